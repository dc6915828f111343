/* serve.c -- the dashboard and Stats API server (see serve.h).
 *
 * Sections: responses, request helpers, who is asking, the routes, the
 * server. A route checks access (auth.h), calls the one module that does the
 * work (query.h for the API, the embedded files for the page) and answers;
 * nothing here reads Redis but /healthz's PING and the realtime PFCOUNT.
 */
#include "serve.h"

#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "auth.h"
#include "clock.h"
#include "embed.h"
#include "http.h"
#include "keys.h"
#include "log.h"
#include "query.h"
#include "web.h"

#define SERVE_MAX_HEADER (16 * 1024)
#define SERVE_MAX_BODY (64 * 1024)      /* a query is a few hundred bytes */
#define SERVE_READ_TIMEOUT_MS 10000
#define SERVE_IDLE_TIMEOUT_MS 60000
#define SERVE_MAX_CONNECTIONS 256
#define SERVE_DISCOVER_S 30             /* new sites show up in /api/sites this fast */
#define REALTIME_MINUTES 5              /* "current visitors": these minutes and the current one */

struct serve {
    struct agg *a;
    struct auth *auth;
    struct event_base *base;
    struct http_server *http;
};

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */
/* ------------------------------------------------------------------------ */

static const char html_headers[] =
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    /* The page asks nothing of any other server. */
    "Content-Security-Policy: default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'\r\n";

/* CORS lines for an allowed Origin, or "" (no CORS unless configured). */
static void cors(const struct serve *s, const struct http_request *req, char *out, size_t cap)
{
    out[0] = '\0';
    const struct cfg *c = s->a->cfg;
    for (size_t i = 0; req->origin.p && i < c->serve.n_cors_origins; i++) {
        const char *o = c->serve.cors_origins[i];
        if (strlen(o) == req->origin.n && memcmp(o, req->origin.p, req->origin.n) == 0) {
            snprintf(out, cap, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", o);
            return;
        }
    }
}

static void respond_json(struct serve *s, struct http_conn *c, const struct http_request *req,
                         int status, const char *extra, const char *body)
{
    char h[1024];
    cors(s, req, h, sizeof h);
    size_t n = strlen(h);
    snprintf(h + n, sizeof h - n, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s",
             extra ? extra : "");
    http_respond(c, status, h, "application/json", body, strlen(body));
}

/* {"error": msg}, as Plausible answers. */
static void respond_error(struct serve *s, struct http_conn *c, const struct http_request *req,
                          int status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    respond_json(s, c, req, status,
                 status == 401 ? "WWW-Authenticate: Bearer realm=\"fairstat\"\r\n" : NULL,
                 body ? body : "{\"error\":\"out of memory\"}");
    free(body);
}

static void redirect(struct http_conn *c, const char *location, const char *cookie)
{
    char h[512];
    snprintf(h, sizeof h, "Location: %s\r\nCache-Control: no-store\r\n%s", location, cookie ? cookie : "");
    http_respond(c, 303, h, "text/plain; charset=utf-8", "", 0);
}

/* ------------------------------------------------------------------------ */
/* Request helpers                                                           */
/* ------------------------------------------------------------------------ */

static int is_path(const struct http_request *req, const char *p)
{
    return req->path.n == strlen(p) && memcmp(req->path.p, p, req->path.n) == 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The value of name in a query string or form body (percent- and
 * '+'-decoded) into out (NUL-terminated). Its length, or -1 when absent, too
 * long or malformed. */
static long form_value(struct http_str in, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name), i = 0;
    while (i < in.n) {
        size_t end = i;
        while (end < in.n && in.p[end] != '&') end++;
        if (end - i > k && memcmp(in.p + i, name, k) == 0 && in.p[i + k] == '=') {
            size_t o = 0;
            for (size_t j = i + k + 1; j < end; j++) {
                int ch = in.p[j];
                if (ch == '+') ch = ' ';
                else if (ch == '%') {
                    if (j + 2 >= end) return -1;
                    int h1 = hexval(in.p[j + 1]), h2 = hexval(in.p[j + 2]);
                    if (h1 < 0 || h2 < 0) return -1;
                    ch = h1 * 16 + h2;
                    j += 2;
                }
                if (o + 1 >= cap) return -1;
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return (long)o;
        }
        i = end + 1;
    }
    return -1;
}

/* The known site named name, or NULL (sites are looked for again once). */
static struct agg_site *known_site(struct serve *s, const char *name)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->a->nsites; i++)
            if (strcmp(s->a->sites[i].name, name) == 0) return &s->a->sites[i];
        if (pass == 0 && agg_discover(s->a) < 0) break;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Who is asking                                                             */
/* ------------------------------------------------------------------------ */

enum who { WHO_NOBODY, WHO_WRONG, WHO_OK };

/* A Bearer token first (a wrong one is wrong, whatever the cookie says),
 * then the session cookie. On WHO_OK *scope is the caller's site, or NULL
 * for every site. */
static enum who who(struct serve *s, const struct http_request *req, const char **scope)
{
    size_t n;
    const char *tok = auth_bearer(req->authorization.p, req->authorization.n, &n);
    if (req->authorization.p) {
        if (!tok) return WHO_WRONG;
        return auth_token(s->auth, tok, n, scope) ? WHO_OK : WHO_WRONG;
    }
    if (auth_session_find(s->auth, req->cookie.p, req->cookie.n, clock_now_ms(), scope)) return WHO_OK;
    return WHO_NOBODY;
}

/* 401 for the API unless someone known asks; 1 when they may go on. */
static int api_gate(struct serve *s, struct http_conn *c, const struct http_request *req,
                    const char **scope)
{
    enum who w = who(s, req, scope);
    if (w == WHO_OK) return 1;
    respond_error(s, c, req, 401, w == WHO_WRONG ? "Invalid API key" :
                  "Missing API key. Send Authorization: Bearer <token>");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                    */
/* ------------------------------------------------------------------------ */

static const char login_head[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>Fairstat - log in</title><style>"
    "body{font:16px/1.5 system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}"
    "@media (prefers-color-scheme:dark){body{background:#111;color:#eee}}"
    "input,button{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.25rem 0}"
    ".err{color:#b00020}@media (prefers-color-scheme:dark){.err{color:#ff8a80}}"
    "</style></head><body><main><h1>Fairstat</h1>";
static const char login_form[] =
    "<form method=\"post\" action=\"/login\"><label for=\"token\">Access token</label>"
    "<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>"
    "<button type=\"submit\">Log in</button></form></main></body></html>";

static void login_page(struct http_conn *c, int status, const char *error)
{
    char body[sizeof login_head + sizeof login_form + 256];
    int n = snprintf(body, sizeof body, "%s%s%s%s%s", login_head, error ? "<p class=\"err\" role=\"alert\">" : "",
                     error ? error : "", error ? "</p>" : "", login_form);
    http_respond(c, status, html_headers, "text/html; charset=utf-8", body, (size_t)n);
}

/* Set-Cookie for a new session of scope, then 303 to location. */
static void start_session(struct serve *s, struct http_conn *c, const char *scope, const char *location)
{
    char value[65], cookie[256];
    if (auth_session_new(s->auth, scope, clock_now_ms(), value) < 0) {
        login_page(c, 500, "Could not start a session.");
        return;
    }
    snprintf(cookie, sizeof cookie, "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%ld%s\r\n",
             AUTH_COOKIE, value, s->a->cfg->serve.session_ttl_s, s->a->cfg->serve.secure_cookie ? "; Secure" : "");
    redirect(c, location, cookie);
}

static void route_login(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    if (req->verb == HTTP_VERB_GET || req->verb == HTTP_VERB_HEAD) {
        login_page(c, 200, NULL);
        return;
    }
    char token[600];
    const char *scope;
    long n = form_value(req->body, "token", token, sizeof token);
    if (n <= 0 || !auth_token(s->auth, token, (size_t)n, &scope)) {
        login_page(c, 401, "That token is not valid.");
        return;
    }
    start_session(s, c, scope, "/");
}

static void route_logout(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    auth_session_end(s->auth, req->cookie.p, req->cookie.n);
    char cookie[160];
    snprintf(cookie, sizeof cookie, "Set-Cookie: %s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s\r\n",
             AUTH_COOKIE, s->a->cfg->serve.secure_cookie ? "; Secure" : "");
    redirect(c, "/login", cookie);
}

static void route_share(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    char site[256], secret[600], location[300];
    size_t n = req->path.n - 7;
    if (n == 0 || n >= sizeof site || memchr(req->path.p + 7, '/', n)) {
        login_page(c, 404, "No such share link.");
        return;
    }
    memcpy(site, req->path.p + 7, n);
    site[n] = '\0';
    long k = form_value(req->query, "auth", secret, sizeof secret);
    if (k <= 0 || !auth_share(s->auth, site, secret, (size_t)k)) {
        login_page(c, 401, "That share link is not valid.");
        return;
    }
    /* the site name is a configured one: no characters a header cannot carry */
    snprintf(location, sizeof location, "/?site=%s", site);
    start_session(s, c, site, location);
}

static void route_dashboard(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    const char *scope;
    if (who(s, req, &scope) != WHO_OK) {
        redirect(c, "/login", NULL);
        return;
    }
    const struct embed_file *f = embed_find(web_files, "dashboard.html", 14);
    if (!f) {
        http_respond(c, 404, html_headers, "text/plain; charset=utf-8", "no dashboard built\n", 19);
        return;
    }
    http_respond(c, 200, html_headers, f->content_type, f->data, f->len);
}

static void route_static(struct http_conn *c, const struct http_request *req)
{
    const struct embed_file *f = embed_find(web_files, req->path.p + 8, req->path.n - 8);
    if (!f) {
        http_respond(c, 404, NULL, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    http_respond(c, 200, "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
                 f->content_type, f->data, f->len);
}

static void route_sites(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    const char *scope;
    if (!api_gate(s, c, req, &scope)) return;
    json_t *list = json_array();
    for (size_t i = 0; i < s->a->nsites; i++) {
        const struct agg_site *site = &s->a->sites[i];
        if (!auth_allows(scope, site->name)) continue;
        json_array_append_new(list, json_pack("{s:s,s:s}", "site_id", site->name,
                                              "timezone", clock_zone_name(site->zone)));
    }
    json_t *o = json_pack("{s:o}", "sites", list);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body) respond_json(s, c, req, 200, NULL, body);
    else respond_error(s, c, req, 500, "out of memory");
    free(body);
}

/* The site a caller asks for: 1, or answered (400 unknown, 403 outside scope). */
static int site_gate(struct serve *s, struct http_conn *c, const struct http_request *req,
                     const char *scope, const char *name, struct agg_site **site)
{
    if (!auth_allows(scope, name)) {
        respond_error(s, c, req, 403, "This token cannot read that site");
        return 0;
    }
    if (!(*site = known_site(s, name))) {
        respond_error(s, c, req, 400, "Unknown site_id");
        return 0;
    }
    return 1;
}

static void route_query(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    const char *scope;
    char err[512];
    struct agg_site *site;
    if (!api_gate(s, c, req, &scope)) return;
    struct query *q = query_parse(req->body.p ? req->body.p : "", req->body.n, err, sizeof err);
    if (!q) {
        respond_error(s, c, req, 400, err);
        return;
    }
    if (!site_gate(s, c, req, scope, query_site(q), &site)) goto out;
    long retention_days = s->a->cfg->retention.aggregates_s / CLOCK_DAY_S;
    if (query_resolve(q, site->zone, clock_now_ms(), retention_days, err, sizeof err) < 0) {
        respond_error(s, c, req, 400, err);
        goto out;
    }
    int status;
    char *body = query_run(s->a, q, s->a->cfg->aggregator.min_visitors, &status, err, sizeof err);
    if (body) respond_json(s, c, req, 200, NULL, body);
    else respond_error(s, c, req, status, err);
    if (!body) log_warn("query: %s", err);
    free(body);
out:
    query_free(q);
}

/* Visitors of the last REALTIME_MINUTES minutes and the current one: the
 * union of the per-minute HyperLogLogs, one PFCOUNT. */
static void route_realtime(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    const char *scope;
    char name[256];
    struct agg_site *site;
    if (!api_gate(s, c, req, &scope)) return;
    if (form_value(req->query, "site_id", name, sizeof name) <= 0) {
        respond_error(s, c, req, 400, "site_id is required");
        return;
    }
    if (!site_gate(s, c, req, scope, name, &site)) return;
    char keys[REALTIME_MINUTES + 1][600];
    const char *argv[REALTIME_MINUTES + 2] = {"PFCOUNT"};
    int64_t now_min = clock_now_ms() / 60000;
    for (int i = 0; i <= REALTIME_MINUTES; i++) {
        if (keys_realtime_minute(keys[i], sizeof keys[i], site->name, now_min - i) < 0) {
            respond_error(s, c, req, 400, "site_id too long");
            return;
        }
        argv[i + 1] = keys[i];
    }
    redisReply *r = agg_command_argv(s->a, REALTIME_MINUTES + 2, argv, NULL);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r) freeReplyObject(r);
        respond_error(s, c, req, 503, "statistics store unavailable");
        return;
    }
    char body[32];
    snprintf(body, sizeof body, "%lld", r->integer);
    freeReplyObject(r);
    respond_json(s, c, req, 200, NULL, body);
}

static void route_healthz(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    redisReply *r = agg_command(s->a, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    respond_json(s, c, req, ok ? 200 : 503, NULL, ok ? "{\"status\":\"ok\"}" : "{\"status\":\"redis unavailable\"}");
}

/* A CORS preflight: answered for the configured origins only. */
static void route_preflight(struct serve *s, struct http_conn *c, const struct http_request *req)
{
    char h[1024];
    cors(s, req, h, sizeof h);
    if (!h[0]) {
        http_respond(c, 405, "Allow: GET, POST\r\n", "text/plain; charset=utf-8", "", 0);
        return;
    }
    size_t n = strlen(h);
    snprintf(h + n, sizeof h - n, "Access-Control-Allow-Methods: GET, POST\r\n"
             "Access-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Max-Age: 600\r\n");
    http_respond(c, 204, h, NULL, "", 0);
}

static void handle(struct http_conn *c, const struct http_request *req, void *arg)
{
    struct serve *s = arg;
    int get = req->verb == HTTP_VERB_GET || req->verb == HTTP_VERB_HEAD;
    int post = req->verb == HTTP_VERB_POST;
    int api = req->path.n >= 5 && memcmp(req->path.p, "/api/", 5) == 0;
    if (api && req->verb == HTTP_VERB_OPTIONS) route_preflight(s, c, req);
    else if (is_path(req, "/healthz") && get) route_healthz(s, c, req);
    else if (is_path(req, "/api/v2/query") && post) route_query(s, c, req);
    else if (is_path(req, "/api/sites") && get) route_sites(s, c, req);
    else if (is_path(req, "/api/v1/stats/realtime/visitors") && get) route_realtime(s, c, req);
    else if (is_path(req, "/") && get) route_dashboard(s, c, req);
    else if (is_path(req, "/login") && (get || post)) route_login(s, c, req);
    else if (is_path(req, "/logout") && post) route_logout(s, c, req);
    else if (req->path.n > 7 && memcmp(req->path.p, "/share/", 7) == 0 && get) route_share(s, c, req);
    else if (req->path.n > 8 && memcmp(req->path.p, "/static/", 8) == 0 && get) route_static(c, req);
    /* Browsers ask for it on every page; a 404 would be a console error on the
     * dashboard and the login form. No icon, no error: 204. */
    else if (is_path(req, "/favicon.ico") && get)
        http_respond(c, 204, "Cache-Control: max-age=86400\r\n", NULL, "", 0);
    else if (api) respond_error(s, c, req, 404, "Not found");
    else http_respond(c, 404, NULL, "text/plain; charset=utf-8", "not found\n", 10);
}

/* ------------------------------------------------------------------------ */
/* The server                                                                */
/* ------------------------------------------------------------------------ */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct serve *s = arg;
    http_server_stop(s->http);
    event_base_loopexit(s->base, NULL);
}

static void on_discover(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct serve *s = arg;
    if (agg_discover(s->a) < 0) log_warn("finding sites: %s", s->a->err);
}

int serve_run(struct agg *a)
{
    char err[512];
    int rc = 1;
    struct serve s = {.a = a};
    struct event *sigterm = NULL, *sigint = NULL, *discover = NULL;
    if (!(s.auth = auth_new(a->cfg, err, sizeof err))) {
        fprintf(stderr, "fairstat-aggregator: %s\n", err);
        return 2;
    }
    if (agg_discover(a) < 0) log_warn("Redis not reachable yet (%s); retrying per request", a->err);
    /* Analysts, not the public: still, one address may not hold every slot. */
    struct http_limits lim = {.max_header = SERVE_MAX_HEADER, .max_body = SERVE_MAX_BODY,
                              .read_timeout_ms = SERVE_READ_TIMEOUT_MS,
                              .idle_timeout_ms = SERVE_IDLE_TIMEOUT_MS,
                              .max_connections = SERVE_MAX_CONNECTIONS,
                              .max_per_address = SERVE_MAX_CONNECTIONS / 4,
                              .pressure_idle_timeout_ms = 5000};
    if (!(s.base = event_base_new())) {
        fprintf(stderr, "fairstat-aggregator: serve: out of memory\n");
        goto out;
    }
    if (!(s.http = http_server_new(s.base, a->cfg->serve.listen, &lim, handle, &s, err, sizeof err))) {
        /* the HTTP layer names the collector's key: name ours */
        const char *why = strstr(err, ": ");
        fprintf(stderr, "fairstat-aggregator: serve.listen%s\n", why ? why : err);
        goto out;
    }
    sigterm = evsignal_new(s.base, SIGTERM, on_signal, &s);
    sigint = evsignal_new(s.base, SIGINT, on_signal, &s);
    discover = event_new(s.base, -1, EV_PERSIST, on_discover, &s);
    struct timeval every = {SERVE_DISCOVER_S, 0};
    if (!sigterm || !sigint || !discover || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0 ||
        event_add(discover, &every) < 0) {
        fprintf(stderr, "fairstat-aggregator: serve: cannot set up events\n");
        goto out;
    }
    if (!a->cfg->serve.tokens || !*a->cfg->serve.tokens)
        log_warn("serve.tokens is empty: nobody can log in (fairstat-aggregator token prints one)");
    log_info("serving the dashboard and Stats API on %s", a->cfg->serve.listen);
    event_base_dispatch(s.base);
    log_info("stopped");
    rc = 0;
out:
    if (sigterm) event_free(sigterm);
    if (sigint) event_free(sigint);
    if (discover) event_free(discover);
    if (s.http) http_server_free(s.http);
    if (s.base) event_base_free(s.base);
    auth_free(s.auth);
    return rc;
}
