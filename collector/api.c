/* api.c -- the router, the worker's set-up and the reply helpers (api.h).
 *
 * Each route calls the room of its concern: the beacon path is hit.c, the
 * consent endpoints receipt.c, the client address and rate limit client.c;
 * only the small endpoints (preflight, snippet, demo, health, metrics) are
 * answered here. The per-request state that waits for Redis (struct
 * api_pending) is pooled here for all of them (api-internal.h).
 */
#include "api-internal.h"
#include "assets.h"
#include "client.h"
#include "clock.h"
#include "gen.h"
#include "hit.h"
#include "receipt.h"
#include "salt.h"
#include "sites.h"
#include "spool.h"
#include "store.h"
#include "ua.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* User-Agents classified per thread, ~2.9 MB: a miss runs the regexes
 * (~800,000 instructions), and at 4096 (512 sets of 8) the bench's 1,626
 * distinct User-Agents still overflowed a few sets. */
#define UA_CACHE 8192

/* ------------------------------------------------------------------------ */
/* Per-request state and replies                                             */
/* ------------------------------------------------------------------------ */

struct api_pending *api_pending_get(struct api *a, struct http_conn *c, enum api_pending_kind kind)
{
    struct api_pending *p = a->free_list;
    if (p) a->free_list = p->next_free;
    else if (!(p = malloc(sizeof *p))) return NULL;
    p->a = a;
    p->c = c;
    p->kind = kind;
    p->headers[0] = p->body[0] = p->site[0] = '\0';
    return p;
}

void api_pending_put(struct api_pending *p)
{
    p->next_free = p->a->free_list;
    p->a->free_list = p;
}

void api_reply_error(struct api *a, struct http_conn *c, int status, const char *cors,
                     const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", msg);
    metrics_count_status(&a->m, status);
    http_respond(c, status, cors, "application/json", body, (size_t)n);
}

static int origin_allowed(const struct cfg_site *s, struct http_str origin)
{
    for (size_t i = 0; i < s->n_origins; i++)
        if (strlen(s->origins[i]) == origin.n && strncasecmp(s->origins[i], origin.p, origin.n) == 0)
            return 1;
    return 0;
}

static int origin_known(const struct api *a, struct http_str origin)
{
    return origin.p && sites_origin_known(a->sites, origin.p, origin.n);
}

/* CORS lines for an origin some site allows; "" for any other origin or
 * none, so that no answer is readable by a page we do not serve. */
static void cors_headers(const struct api *a, struct http_str origin, char out[API_CORS_MAX])
{
    if (!origin.p || origin.n == 0 || origin.n > 300 || !origin_known(a, origin)) {
        out[0] = '\0';
        return;
    }
    /* Pieced together rather than snprintf'd: this runs on every hit. The
     * origin's length was bounded above, far below API_CORS_MAX. */
    static const char head[] = "Access-Control-Allow-Origin: ";
    /* Fairstat-Status readable by the page: the snippet tells "refused by
     * policy" (204 with a reason) from "stored". */
    static const char tail[] = "\r\nAccess-Control-Allow-Credentials: true\r\n"
                               "Access-Control-Expose-Headers: Fairstat-Status\r\nVary: Origin\r\n";
    char *o = out;
    memcpy(o, head, sizeof head - 1);
    o += sizeof head - 1;
    memcpy(o, origin.p, origin.n);
    o += origin.n;
    memcpy(o, tail, sizeof tail);
}

const struct cfg_site *api_site(struct api *a, struct http_conn *c, const struct http_request *r,
                                const char *domain, const char *cors)
{
    const struct cfg_site *site = sites_find(a->sites, domain, strlen(domain));
    if (!site) {
        api_reply_error(a, c, 403, cors, "unknown site");
        return NULL;
    }
    if (r->origin.p && !origin_allowed(site, r->origin)) {
        api_reply_error(a, c, 403, "", "origin not allowed for this site");
        return NULL;
    }
    return site;
}

/* ------------------------------------------------------------------------ */
/* Small endpoints                                                           */
/* ------------------------------------------------------------------------ */

static void handle_preflight(struct api *a, struct http_conn *c, const struct http_request *r)
{
    if (!origin_known(a, r->origin)) {
        api_reply_error(a, c, 403, "", "origin not allowed");
        return;
    }
    char hdr[API_CORS_MAX];
    snprintf(hdr, sizeof hdr,
             "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
             "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
             "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: %lld\r\n"
             "Vary: Origin\r\n", (int)r->origin.n, r->origin.p, CLOCK_DAY_S);
    http_respond(c, 204, hdr, NULL, NULL, 0);
}

static void handle_snippet(struct api *a, struct http_conn *c, const struct http_request *r,
                           enum asset_snippet which)
{
    int gzip = r->accept_encoding.p && memmem(r->accept_encoding.p, r->accept_encoding.n, "gzip", 4);
    const struct asset *s = assets_snippet(which, gzip);
    if (!s) {
        api_reply_error(a, c, 404, "", "snippet not built");
        return;
    }
    int zipped = s == assets_snippet(which, 1) && s != assets_snippet(which, 0);
    http_respond(c, 200,
                 zipped ? "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
                          "Cache-Control: public, max-age=3600\r\nAccess-Control-Allow-Origin: *\r\n"
                        : "Vary: Accept-Encoding\r\nCache-Control: public, max-age=3600\r\n"
                          "Access-Control-Allow-Origin: *\r\n",
                 "application/javascript; charset=utf-8", s->data, s->len);
}

static void handle_demo(struct api *a, struct http_conn *c, const struct http_request *r)
{
    struct asset f;
    const char *type;
    int status = assets_demo(r->path.p + 6, r->path.n - 6, &f, &type);
    if (status) {
        api_reply_error(a, c, status, "", "not found");
        return;
    }
    http_respond(c, 200, "Cache-Control: no-cache\r\n", type, f.data, f.len);
    free(f.data);
}

/* /healthz: can this process take hits now? It needs today's salt, and
 * Redis or room in the spool. /readyz: is Redis answering (a PING within
 * collector.redis_timeout)? -- the one to route traffic by when several
 * collectors share the load. */
static void handle_health(struct api *a, struct http_conn *c, int ready_check)
{
    char salt[SALT_HEX_LEN + 1], body[160];
    int salt_ok = salt_get(clock_utc_today(), salt) == 0;
    int redis = store_ready(a->store);
    struct spool_stats st = {0};
    if (a->spool) spool_stats(a->spool, &st);
    int spool_ok = a->spool && st.bytes + 8192 <= a->cfg->collector.spool_max_bytes /
                                                  (size_t)a->cfg->collector.threads;
    int ok = ready_check ? redis && salt_ok : salt_ok && (store_is_up(a->store) || spool_ok);
    int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"redis\":\"%s\",\"spool\":\"%s\"}\n",
                     ok ? "ok" : "unavailable", redis ? "up" : "down",
                     !a->spool ? "off" : spool_ok ? (st.bytes ? "in use" : "empty") : "full");
    http_respond(c, ok ? 200 : 503, "Cache-Control: no-store\r\n", "application/json", body,
                 (size_t)n);
}

static void handle_metrics(struct http_conn *c)
{
    char *buf = malloc(32768);
    if (!buf) {
        http_respond(c, 503, NULL, NULL, NULL, 0);
        return;
    }
    size_t n = metrics_render(buf, 32768);
    http_respond(c, 200, "Cache-Control: no-store\r\n", "text/plain; version=0.0.4", buf, n);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Router                                                                    */
/* ------------------------------------------------------------------------ */

static int path_is(const struct http_request *r, const char *p)
{
    size_t n = strlen(p);
    return r->path.n == n && memcmp(r->path.p, p, n) == 0;
}

static int rate_limited(struct api *a, const struct http_request *r)
{
    struct sockaddr_storage client;
    client_addr(a->cfg, r, &client);
    return client_limited(a->limit, (struct sockaddr *)&client);
}

void api_handle(struct http_conn *c, const struct http_request *r, void *arg)
{
    struct api *a = arg;
    api_reload(a);
    enum http_verb v = r->verb;
    char cors[API_CORS_MAX];

    if (path_is(r, "/api/event")) {
        if (v == HTTP_VERB_POST) {
            cors_headers(a, r->origin, cors);
            hit_handle(a, c, r, cors, 0);
        } else if (v == HTTP_VERB_OPTIONS) {
            handle_preflight(a, c, r);
        } else {
            api_reply_error(a, c, 405, "Allow: POST, OPTIONS\r\n", "use POST");
        }
    } else if (path_is(r, "/p.gif")) {
        if (v == HTTP_VERB_GET) {
            cors_headers(a, r->origin, cors);
            hit_handle(a, c, r, cors, 1);
        } else {
            api_reply_error(a, c, 405, "Allow: GET\r\n", "use GET");
        }
    } else if (path_is(r, "/consent")) {
        cors_headers(a, r->origin, cors);
        if (v != HTTP_VERB_OPTIONS && rate_limited(a, r))
            api_reply_error(a, c, 429, cors, "rate limited");
        else if (v == HTTP_VERB_POST) receipt_record(a, c, r, cors);
        else if (v == HTTP_VERB_GET) receipt_show(a, c, r, cors);
        else if (v == HTTP_VERB_DELETE) receipt_withdraw(a, c, r, cors);
        else if (v == HTTP_VERB_OPTIONS) handle_preflight(a, c, r);
        else api_reply_error(a, c, 405, "Allow: GET, POST, DELETE, OPTIONS\r\n", "method not allowed");
    } else if (path_is(r, "/healthz") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_health(a, c, 0);
    } else if (path_is(r, "/readyz") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_health(a, c, 1);
    } else if (path_is(r, "/metrics") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_metrics(c);
    } else if (path_is(r, "/fs.js") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_snippet(a, c, r, ASSET_FS);
    } else if (path_is(r, "/fs-cmp.js") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_snippet(a, c, r, ASSET_FS_CMP);
    } else if (r->path.n >= 6 && memcmp(r->path.p, "/demo/", 6) == 0 && v == HTTP_VERB_GET) {
        handle_demo(a, c, r);
    } else if (path_is(r, "/demo")) {
        http_respond(c, 301, "Location: /demo/\r\n", NULL, NULL, 0);
    } else {
        api_reply_error(a, c, 404, "", "not found");
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

struct api *api_new(struct event_base *base, struct gen *g, struct gen_box *box, int worker,
                    char *err, size_t errlen)
{
    struct api *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        gen_release(g);
        return NULL;
    }
    a->gen = g;
    a->box = box;
    a->worker = worker;
    a->cfg = g->cfg;
    a->geo = g->geo;
    a->sites = g->sites;
    a->consent = g->consent[worker];
    a->cmp = g->cmp[worker];
    const struct cfg *c = g->cfg;
    if (!(a->limit = client_limit_new(c->collector.rate_limit)) || !(a->hits = hit_cache_new())) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    if (!(a->ua = ua_new(UA_CACHE, err, errlen))) goto error;
    if (!(a->store = store_new(base, c, err, errlen))) goto error;
    a->m.store = a->store;
    if (hit_spool_start(a, base, worker, err, errlen) < 0) goto error;
    metrics_register(&a->m);
    return a;

error:
    api_free(a);
    return NULL;
}

/* Requests in flight keep only copies (the site's name, ready headers), and
 * the cookie cache is keyed by site pointers and verdicts of the old keys:
 * it is emptied, so nothing of the old generation is read after the swap. */
void api_reload(struct api *a)
{
    struct gen *g = gen_take(a->box);
    if (!g) return;
    hit_cache_clear(a->hits);
    a->cfg = g->cfg;
    a->geo = g->geo;
    a->sites = g->sites;
    a->consent = g->consent[a->worker];
    a->cmp = g->cmp[a->worker];
    gen_release(a->gen);
    a->gen = g;
}

void api_attach_http(struct api *a, struct http_server *http)
{
    a->m.http = http;
}

void api_free(struct api *a)
{
    if (!a) return;
    a->m.store = NULL;
    a->m.http = NULL;
    store_free(a->store);       /* pending hits go to the spool */
    a->store = NULL;
    hit_spool_stop(a);
    if (a->ua) ua_free(a->ua);
    client_limit_free(a->limit);
    hit_cache_free(a->hits);
    gen_release(a->gen);
    while (a->free_list) {
        struct api_pending *p = a->free_list;
        a->free_list = p->next_free;
        free(p);
    }
    /* a->m stays registered with metrics; the process is exiting. */
}
