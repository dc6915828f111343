/* api.c -- routes requests and runs the beacon path (see api.h).
 *
 * Sections: per-request state, helpers (CORS, client address, rate limit),
 * the beacon path, consent endpoints, small endpoints, the router.
 *
 * Privacy rules enforced here: the client address is used for the rate
 * limit (hashed, in memory) and the GeoIP lookup, then forgotten; the
 * User-Agent only feeds ua_classify(); refused hits are answered without a
 * log line or a Redis command; nothing here logs request data.
 */
#include "api.h"
#include "assets.h"
#include "beacon.h"
#include "clock.h"
#include "consent.h"
#include "geo.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "revoke.h"
#include "salt.h"
#include "store.h"
#include "ua.h"
#include "url.h"
#include "visitor.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RL_SLOTS 4096
#define HDR_MAX 1024
#define UA_CACHE 4096
#define MAX_SCANS 4

enum pending_kind { P_HIT, P_CONSENT, P_PIXEL, P_WITHDRAW };

/* What a request needs once Redis answers. */
struct pending {
    struct api *a;
    struct http_conn *c;
    enum pending_kind kind;
    char site[BEACON_DOMAIN_MAX + 1];
    char headers[HDR_MAX + 640];  /* CORS and Set-Cookie lines, ready to send */
    char body[512];             /* consent: the JSON body before "held" */
    char receipt[CONSENT_RECEIPT_LEN + 1];  /* withdrawal: whose */
    long long expires_s;
    struct pending *next_free;
};

/* A visitor's later hits carry the same cookie: its verification and its
 * visitor hash are remembered, keyed by the whole cookie value. */
struct seen {
    char value[CONSENT_COOKIE_MAX];
    unsigned char len;
    unsigned gen;               /* revoke_generation() when last checked */
    struct consent_cookie cc;
    long day;                   /* visitor is valid for this salt day */
    char visitor[VISITOR_HEX_LEN + 1];
    char cc_site[BEACON_DOMAIN_MAX + 1];
};
#define SEEN_SLOTS 1024

struct rl_slot {
    unsigned long long key;
    double tokens;
    long long last_us;
};

struct api {
    const struct cfg *cfg;
    const struct geo *geo;
    struct store *store;
    struct consent *consent;
    struct ua *ua;
    struct rl_slot *rl;
    unsigned long long rl_seed;
    struct pending *free_list;
    int scans;                  /* consent scans in flight */
    long salt_day;              /* the day vkey was made for */
    struct visitor_key *vkey;
    struct seen *seen;
    char resp[8192];            /* RESP of the XADD being built */
    struct metrics m;
};

/* KEYS: hits stream, receipts stream, audit stream. ARGV: "count"|"erase",
 * receipt id, time (ms), site, then the receipt's visitor hashes under each
 * salt held. Erasure, withdrawal receipt and audit count are one atomic step.
 * (fs:audit is outside the site's hash slot: on Redis Cluster the audit
 * record would have to move to a per-site stream.) */
static const char ERASE_SCRIPT[] =
    "local erase = ARGV[1] == 'erase'\n"
    "local n, last = 0, '-'\n"
    "while true do\n"
    "  local batch = redis.call('XRANGE', KEYS[1], last, '+', 'COUNT', 500)\n"
    "  if #batch == 0 then break end\n"
    "  for _, e in ipairs(batch) do\n"
    "    local f = e[2]\n"
    "    for i = 1, #f, 2 do\n"
    "      if f[i] == '" HIT_VISITOR "' then\n"
    "        for j = 5, #ARGV do\n"
    "          if f[i + 1] == ARGV[j] then\n"
    "            n = n + 1\n"
    "            if erase then redis.call('XDEL', KEYS[1], e[1]) end\n"
    "            break\n"
    "          end\n"
    "        end\n"
    "        break\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  last = '(' .. batch[#batch][1]\n"
    "end\n"
    "if erase then\n"
    "  redis.call('XADD', KEYS[2], '*', '" RECEIPT_ID "', ARGV[2], '" RECEIPT_ACTION "', 'withdraw',\n"
    "             '" RECEIPT_CHOICE "', '0', '" RECEIPT_TIME "', ARGV[3])\n"
    "  redis.call('XADD', KEYS[3], '*', 'action', 'withdraw', 'by', 'collector',\n"
    "             'site', ARGV[4], 'hits', n, 't', ARGV[3])\n"
    "end\n"
    "return n\n";

/* ------------------------------------------------------------------------ */
/* Per-request state                                                         */
/* ------------------------------------------------------------------------ */

static struct pending *pending_get(struct api *a, struct http_conn *c, enum pending_kind kind)
{
    struct pending *p = a->free_list;
    if (p) a->free_list = p->next_free;
    else if (!(p = malloc(sizeof *p))) return NULL;
    p->a = a;
    p->c = c;
    p->kind = kind;
    p->headers[0] = p->body[0] = p->site[0] = '\0';
    return p;
}

static void pending_put(struct pending *p)
{
    p->next_free = p->a->free_list;
    p->a->free_list = p;
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                 */
/* ------------------------------------------------------------------------ */

static void reply_error(struct api *a, struct http_conn *c, int status, const char *cors,
                        const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", msg);
    metrics_count_status(&a->m, status);
    http_respond(c, status, cors, "application/json", body, (size_t)n);
}

static void refuse(struct api *a, struct http_conn *c, enum metrics_refusal why, const char *cors)
{
    char hdr[HDR_MAX + 64];
    snprintf(hdr, sizeof hdr, "Fairstat-Status: %s\r\n%s", metrics_refusal_name(why), cors);
    METRIC_INC(a->m.refused[why]);
    http_respond(c, 204, hdr, NULL, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* Helpers: origins, client address, rate limit                              */
/* ------------------------------------------------------------------------ */

static int origin_allowed(const struct cfg_site *s, struct http_str origin)
{
    for (size_t i = 0; i < s->n_origins; i++)
        if (strlen(s->origins[i]) == origin.n && strncasecmp(s->origins[i], origin.p, origin.n) == 0)
            return 1;
    return 0;
}

static int origin_known(const struct cfg *cfg, struct http_str origin)
{
    for (size_t i = 0; origin.p && i < cfg->n_sites; i++)
        if (origin_allowed(&cfg->sites[i], origin)) return 1;
    return 0;
}

/* CORS lines for an origin some site allows; "" for any other origin or
 * none, so that no answer is readable by a page we do not serve. */
static void cors_headers(const struct cfg *cfg, struct http_str origin, char *out, size_t len)
{
    if (!origin.p || origin.n == 0 || origin.n > 300 || !origin_known(cfg, origin)) {
        out[0] = '\0';
        return;
    }
    snprintf(out, len,
             "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
             "Vary: Origin\r\n", (int)origin.n, origin.p);
}

static int parse_ip(const char *s, size_t n, struct sockaddr_storage *out)
{
    char buf[64];
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

static const void *addr_bytes(const struct sockaddr *sa, size_t *len)
{
    if (sa->sa_family == AF_INET) {
        *len = 4;
        return &((const struct sockaddr_in *)sa)->sin_addr;
    }
    *len = 16;
    return &((const struct sockaddr_in6 *)sa)->sin6_addr;
}

static int trusted(const struct cfg *cfg, const struct sockaddr *sa)
{
    size_t len;
    const void *b = addr_bytes(sa, &len);
    return cfg_cidr_match(cfg->collector.trusted_proxies, cfg->collector.n_trusted_proxies,
                          sa->sa_family, b);
}

/* The client is the peer, unless the peer is a trusted proxy: then the
 * right-most X-Forwarded-For entry that is not itself a trusted proxy. */
static void client_addr(const struct cfg *cfg, const struct http_request *r,
                        struct sockaddr_storage *out)
{
    memcpy(out, r->peer, r->peer_len < sizeof *out ? r->peer_len : sizeof *out);
    if (!cfg->collector.n_trusted_proxies || !r->forwarded_for.p || !trusted(cfg, r->peer)) return;
    const char *s = r->forwarded_for.p;
    size_t end = r->forwarded_for.n;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && s[start - 1] != ',') start--;
        struct sockaddr_storage ip;
        if (parse_ip(s + start, end - start, &ip) < 0) return;  /* garbage: keep what we have */
        *out = ip;
        if (!trusted(cfg, (struct sockaddr *)&ip)) return;
        end = start ? start - 1 : 0;
    }
}

static int rate_limited(struct api *a, const struct sockaddr *sa)
{
    double rate = a->cfg->collector.rate_limit;
    if (rate <= 0) return 0;
    size_t len;
    const unsigned char *b = addr_bytes(sa, &len);
    /* An IPv6 client usually has a whole /64: count it as one client. */
    if (len == 16) len = 8;
    unsigned long long h = a->rl_seed;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    struct rl_slot *s = &a->rl[h % RL_SLOTS];
    double burst = rate * 2 > 20 ? rate * 2 : 20;
    long long now = clock_mono_us();
    /* A slot changes hands only once its bucket would be full anyway;
     * before that, colliding clients share it rather than reset it. */
    if (s->key != h && (double)(now - s->last_us) / 1e6 * rate >= burst) {
        s->key = h;
        s->tokens = burst;
        s->last_us = now;
    }
    s->tokens += (double)(now - s->last_us) / 1e6 * rate;
    if (s->tokens > burst) s->tokens = burst;
    s->last_us = now;
    if (s->tokens < 1) return 1;
    s->tokens -= 1;
    return 0;
}

/* Writes argv as one RESP command. The hot path formats its own XADD: it is
 * cheaper than hiredis' generic formatter, and every argument is bounded
 * (struct beacon's limits), so buf cannot overflow. */
static char *put_count(char *o, char tag, size_t n)
{
    char tmp[24];
    int k = 0;
    do tmp[k++] = (char)('0' + n % 10); while ((n /= 10));
    *o++ = tag;
    while (k) *o++ = tmp[--k];
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

static size_t resp_format(char *buf, int argc, const char **argv)
{
    char *o = put_count(buf, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]);
        o = put_count(o, '$', n);
        memcpy(o, argv[i], n);
        o += n;
        *o++ = '\r';
        *o++ = '\n';
    }
    return (size_t)(o - buf);
}

/* The consent verdict of a Cookie header for site, from the cache or
 * verified now. *out is the cache slot, set only for CONSENT_GRANTED (only
 * good cookies are remembered: a flood of forged ones evicts nothing and
 * costs only its verification). Expiry is re-checked on every hit. */
static enum consent_verdict check_cookie(struct api *a, struct http_str cookie, const char *site,
                                         long long now_s, struct seen **out)
{
    const char *v;
    size_t n, sl = strlen(site);
    *out = NULL;
    if (consent_find(a->consent, cookie.p, cookie.n, &v, &n) < 0) return CONSENT_NONE;
    if (n == 0 || n > CONSENT_COOKIE_MAX) return CONSENT_INVALID;
    unsigned long long h = a->rl_seed ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)v[i]) * 0x100000001b3ULL;
    for (size_t i = 0; i < sl; i++) h = (h ^ (unsigned char)site[i]) * 0x100000001b3ULL;
    struct seen *s = &a->seen[h % SEEN_SLOTS];
    unsigned gen = revoke_generation();
    if (s->len == n && strcmp(s->cc_site, site) == 0 && CRYPTO_memcmp(s->value, v, n) == 0) {
        long long max_age = (long long)a->cfg->consent.max_age_days * 86400;
        if (now_s - s->cc.issued > max_age) {
            s->len = 0;
            return CONSENT_EXPIRED;
        }
        if (s->gen != gen) {
            if (revoke_contains(site, s->cc.receipt, now_s)) {
                s->len = 0;
                return CONSENT_WITHDRAWN;
            }
            s->gen = gen;
        }
        *out = s;
        return CONSENT_GRANTED;
    }
    struct consent_cookie cc;
    enum consent_verdict verdict = consent_verify(a->consent, site, v, n, now_s, &cc);
    if (verdict == CONSENT_GRANTED && revoke_contains(site, cc.receipt, now_s))
        return CONSENT_WITHDRAWN;
    if (verdict != CONSENT_GRANTED || sl >= sizeof s->cc_site) return verdict;
    memcpy(s->value, v, n);
    s->len = (unsigned char)n;
    s->gen = gen;
    s->cc = cc;
    memcpy(s->cc_site, site, sl + 1);
    s->day = -1;
    *out = s;
    return CONSENT_GRANTED;
}

/* ------------------------------------------------------------------------ */
/* The beacon path                                                           */
/* ------------------------------------------------------------------------ */

static void on_hit_stored(redisReply *r, void *arg)
{
    struct pending *p = arg;
    struct api *a = p->a;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        reply_error(a, p->c, 503, p->headers, "storage unavailable");
    } else {
        METRIC_INC(a->m.accepted);
        if (p->kind == P_PIXEL)
            http_respond(p->c, 202, p->headers, "image/gif",
                         "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01"
                         "\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;",
                         43);
        else
            http_respond(p->c, 202, p->headers, NULL, NULL, 0);
    }
    pending_put(p);
}

static void handle_hit(struct api *a, struct http_conn *c, const struct http_request *r, int pixel)
{
    struct sockaddr_storage client;
    char cors[HDR_MAX];
    struct beacon b;
    cors_headers(a->cfg, r->origin, cors, sizeof cors);

    client_addr(a->cfg, r, &client);
    if (rate_limited(a, (struct sockaddr *)&client)) {
        reply_error(a, c, 429, cors, "rate limited");
        return;
    }
    if (!pixel && r->content_type.p) {
        const struct http_str t = r->content_type;
        if (!(t.n >= 10 && strncasecmp(t.p, "text/plain", 10) == 0) &&
            !(t.n >= 16 && strncasecmp(t.p, "application/json", 16) == 0)) {
            reply_error(a, c, 415, cors, "send the beacon as text/plain or application/json");
            return;
        }
    }
    int rc = pixel ? beacon_parse_query(r->query.p, r->query.n, &b)
                   : beacon_parse_json(r->body.p, r->body.n, &b);
    if (rc != BEACON_OK) {
        reply_error(a, c, 400, cors, beacon_strerror(rc));
        return;
    }
    const struct cfg_site *site = cfg_site_find(a->cfg, b.domain, strlen(b.domain));
    if (!site) {
        reply_error(a, c, 403, cors, "unknown site");
        return;
    }
    if (r->origin.p && !origin_allowed(site, r->origin)) {
        reply_error(a, c, 403, "", "origin not allowed for this site");
        return;
    }

    /* The consent gate: the browser's own signals first, then the cookie. */
    const char *sig = consent_signal(a->cfg, r->sec_gpc.p, r->sec_gpc.n, r->dnt.p, r->dnt.n);
    if (sig) {
        refuse(a, c, sig[0] == 'g' ? REFUSED_GPC : REFUSED_DNT, cors);
        return;
    }
    long long now = clock_now_ms();
    struct seen *seen = NULL;
    if (!r->cookie.p || check_cookie(a, r->cookie, b.domain, now / 1000, &seen) != CONSENT_GRANTED) {
        refuse(a, c, REFUSED_NO_CONSENT, cors);
        return;
    }
    const struct consent_cookie *cc = &seen->cc;
    const struct ua_info *ua = ua_classify(a->ua, r->user_agent.p ? r->user_agent.p : "",
                                           r->user_agent.p ? r->user_agent.n : 0);
    if (ua->bot) {
        refuse(a, c, REFUSED_BOT, cors);
        return;
    }

    /* Enrich, then forget: after this block neither the address nor the
     * User-Agent is referenced again. */
    char country[3], region[16];
    geo_lookup(a->geo, (struct sockaddr *)&client, country, region);
    memset(&client, 0, sizeof client);

    long day = (long)(now / 86400000);
    if (day != a->salt_day) {
        char salt[SALT_HEX_LEN + 1];
        struct visitor_key *k = salt_get(day, salt) == 0 ? visitor_key_new(salt, SALT_HEX_LEN) : NULL;
        if (k) {
            visitor_key_free(a->vkey);
            a->vkey = k;
            a->salt_day = day;
        }
    }
    if (day != a->salt_day) {
        reply_error(a, c, 503, cors, "daily salt unavailable");
        return;
    }
    /* The slot is per (cookie, site), so its visitor hash is this site's. */
    char visitor[VISITOR_HEX_LEN + 1];
    if (seen->day == day) {
        memcpy(visitor, seen->visitor, sizeof visitor);
    } else if (visitor_key_hash(a->vkey, b.domain, strlen(b.domain), cc->receipt,
                                CONSENT_RECEIPT_LEN, visitor) == 0) {
        memcpy(seen->visitor, visitor, sizeof visitor);
        seen->day = day;
    } else {
        reply_error(a, c, 503, cors, "cannot hash");
        return;
    }
    struct pending *p = pending_get(a, c, pixel ? P_PIXEL : P_HIT);
    if (!p) {
        reply_error(a, c, 503, cors, "out of memory");
        return;
    }
    memcpy(p->headers, cors, strlen(cors) + 1);

    char key[300], t[24];
    keys_hits(key, sizeof key, b.domain);
    snprintf(t, sizeof t, "%lld", now);
    /* Empty optional fields are left out: most hits carry no utm_* and no
     * props, and every argument costs Redis a parse and an allocation. A
     * reader treats an absent field as empty (keys.h). */
    const char *argv[3 + 2 * 16] = {
        "XADD", key, "*",
        HIT_TIME, t, HIT_NAME, b.name, HIT_PATH, b.path, HIT_VISITOR, visitor,
        HIT_BROWSER, ua->browser, HIT_OS, ua->os, HIT_DEVICE, ua->device,
    };
    int argc = 17;
    const char *optional[][2] = {
        {HIT_REFERRER, b.referrer}, {HIT_UTM_SOURCE, b.utm[UTM_SOURCE]},
        {HIT_UTM_MEDIUM, b.utm[UTM_MEDIUM]}, {HIT_UTM_CAMPAIGN, b.utm[UTM_CAMPAIGN]},
        {HIT_UTM_TERM, b.utm[UTM_TERM]}, {HIT_UTM_CONTENT, b.utm[UTM_CONTENT]},
        {HIT_COUNTRY, country}, {HIT_REGION, region}, {HIT_PROPS, b.props},
    };
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++) {
        if (!optional[i][1][0]) continue;
        argv[argc++] = optional[i][0];
        argv[argc++] = optional[i][1];
    }
    size_t len = resp_format(a->resp, argc, argv);
    if (store_formatted(a->store, on_hit_stored, p, a->resp, len) < 0) {
        pending_put(p);
        reply_error(a, c, 503, cors, "storage unavailable");
    }
}

/* ------------------------------------------------------------------------ */
/* Consent endpoints                                                         */
/* ------------------------------------------------------------------------ */

static void rfc3339(long long secs, char out[32])
{
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void set_cookie_line(const struct cfg *cfg, const char *value, long max_age,
                            char *out, size_t len)
{
    char domain[300] = "";
    if (cfg->consent.cookie_domain[0])
        snprintf(domain, sizeof domain, "; Domain=%s", cfg->consent.cookie_domain);
    snprintf(out, len, "Set-Cookie: %s=%s; Max-Age=%ld; Path=/; SameSite=Lax%s%s\r\n"
             "Cache-Control: no-store\r\n",
             cfg->consent.cookie, value, max_age, cfg->consent.secure ? "; Secure" : "", domain);
}

static void receipt_json(const struct cfg *cfg, const struct consent_cookie *cc, char *out, size_t len)
{
    char issued[32], expires[32];
    rfc3339(cc->issued, issued);
    rfc3339(cc->issued + (long long)cfg->consent.max_age_days * 86400, expires);
    snprintf(out, len,
             "{\"receipt\":\"%s\",\"analytics\":%s,\"policy_version\":\"%s\",\"time\":\"%s\","
             "\"expires\":\"%s\"",
             cc->receipt, cc->analytics ? "true" : "false", cfg->consent.policy_version, issued,
             expires);
}

static void on_receipt_stored(redisReply *r, void *arg)
{
    struct pending *p = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        /* No receipt, no cookie: consent we cannot prove is no consent. */
        reply_error(p->a, p->c, 503, "", "storage unavailable");
    } else {
        METRIC_INC(p->a->m.receipts);
        char body[600];
        int n = snprintf(body, sizeof body, "%s}\n", p->body);
        http_respond(p->c, 200, p->headers, "application/json", body, (size_t)n);
    }
    pending_put(p);
}

static void on_held(redisReply *r, void *arg)
{
    struct pending *p = arg;
    struct api *a = p->a;
    a->scans--;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        reply_error(a, p->c, 503, p->headers, "storage unavailable");
        pending_put(p);
        return;
    }
    char body[700];
    int n;
    if (p->kind == P_WITHDRAW) {
        METRIC_INC(a->m.withdrawals);
        revoke_add(p->site, p->receipt, p->expires_s);
        a->m.erased += (unsigned long long)r->integer;
        n = snprintf(body, sizeof body, "{\"withdrawn\":true,\"erased\":%lld}\n", r->integer);
    } else {
        n = snprintf(body, sizeof body, "%s,\"held\":{\"hits\":%lld}}\n", p->body, r->integer);
    }
    http_respond(p->c, 200, p->headers, "application/json", body, (size_t)n);
    pending_put(p);
}

static const struct cfg_site *consent_site(struct api *a, struct http_conn *c,
                                           const struct http_request *r, const char *domain,
                                           const char *cors)
{
    const struct cfg_site *site = cfg_site_find(a->cfg, domain, strlen(domain));
    if (!site) {
        reply_error(a, c, 403, cors, "unknown site");
        return NULL;
    }
    if (r->origin.p && !origin_allowed(site, r->origin)) {
        reply_error(a, c, 403, "", "origin not allowed for this site");
        return NULL;
    }
    return site;
}

static void handle_consent_post(struct api *a, struct http_conn *c, const struct http_request *r,
                                const char *cors)
{
    char domain[BEACON_DOMAIN_MAX + 1];
    int analytics;
    int rc = beacon_parse_consent(r->body.p, r->body.n, domain, &analytics);
    if (rc != BEACON_OK) {
        reply_error(a, c, 400, cors, rc == BEACON_MISSING ? "domain and analytics are required"
                                                          : beacon_strerror(rc));
        return;
    }
    if (!consent_site(a, c, r, domain, cors)) return;
    long long now = clock_now_ms();
    struct consent_cookie cc = {.analytics = analytics, .issued = now / 1000};
    /* A visitor who chooses again keeps the receipt id: one visitor, one id. */
    struct consent_cookie old;
    enum consent_verdict v = r->cookie.p ? consent_check(a->consent, domain, r->cookie.p,
                                                         r->cookie.n, now / 1000, &old)
                                         : CONSENT_NONE;
    if ((v == CONSENT_GRANTED || v == CONSENT_DENIED) &&
        !revoke_contains(domain, old.receipt, now / 1000))
        memcpy(cc.receipt, old.receipt, sizeof cc.receipt);
    else if (consent_new_receipt(cc.receipt) < 0) {
        reply_error(a, c, 503, cors, "no randomness");
        return;
    }
    char value[CONSENT_COOKIE_MAX + 1];
    if (consent_issue(a->consent, domain, analytics, cc.issued, cc.receipt, value, sizeof value) < 0) {
        reply_error(a, c, 503, cors, "cannot sign");
        return;
    }
    struct pending *p = pending_get(a, c, P_CONSENT);
    if (!p) {
        reply_error(a, c, 503, cors, "out of memory");
        return;
    }
    char cookie[600];
    set_cookie_line(a->cfg, value, (long)a->cfg->consent.max_age_days * 86400, cookie, sizeof cookie);
    snprintf(p->headers, sizeof p->headers, "%s%s", cors, cookie);
    receipt_json(a->cfg, &cc, p->body, sizeof p->body);

    char key[300], t[24];
    keys_consent(key, sizeof key, domain);
    snprintf(t, sizeof t, "%lld", now);
    const char *argv[] = {"XADD", key, "*", RECEIPT_ID, cc.receipt,
                          RECEIPT_ACTION, analytics ? "grant" : "deny",
                          RECEIPT_CHOICE, analytics ? "1" : "0",
                          RECEIPT_POLICY, a->cfg->consent.policy_version, RECEIPT_TIME, t};
    size_t lens[13];
    for (int i = 0; i < 13; i++) lens[i] = strlen(argv[i]);
    if (store_command(a->store, on_receipt_stored, p, 13, argv, lens) < 0) {
        pending_put(p);
        reply_error(a, c, 503, cors, "storage unavailable");
    }
}

/* GET shows the receipt and how many hits are still held; DELETE withdraws,
 * erases those hits and clears the cookie. Both run the same server-side
 * script over the site's raw stream, matching the visitor hashes this
 * receipt had under every salt still held. */
static void handle_consent_read(struct api *a, struct http_conn *c, const struct http_request *r,
                                const char *cors, int withdraw)
{
    char domain[BEACON_DOMAIN_MAX + 1];
    char clear[400];
    set_cookie_line(a->cfg, "", 0, clear, sizeof clear);
    int n = url_query_get(r->query.p, r->query.n, "domain", domain, sizeof domain);
    for (int i = 0; i < n; i++) domain[i] = (char)tolower((unsigned char)domain[i]);
    if (n <= 0) {
        reply_error(a, c, 400, cors, "domain is required: ?domain=example.com");
        return;
    }
    if (!consent_site(a, c, r, domain, cors)) return;
    struct consent_cookie cc;
    long long now = clock_now_ms();
    enum consent_verdict v = r->cookie.p ? consent_check(a->consent, domain, r->cookie.p,
                                                         r->cookie.n, now / 1000, &cc)
                                         : CONSENT_NONE;
    if ((v == CONSENT_GRANTED || v == CONSENT_DENIED) && revoke_contains(domain, cc.receipt, now / 1000))
        v = CONSENT_WITHDRAWN;
    if (v != CONSENT_GRANTED && v != CONSENT_DENIED) {
        char hdr[HDR_MAX + 400];
        snprintf(hdr, sizeof hdr, "%s%s", cors, withdraw ? clear : "");
        metrics_count_status(&a->m, 404);
        static const char body[] = "{\"error\":\"no consent recorded\"}\n";
        http_respond(c, 404, hdr, "application/json", body, sizeof body - 1);
        return;
    }
    /* Each of these scans the site's raw stream inside Redis: a few at a
     * time per worker, so that a flood of them cannot stall Redis. */
    if (a->scans >= MAX_SCANS) {
        reply_error(a, c, 429, cors, "busy, try again");
        return;
    }
    struct pending *p = pending_get(a, c, withdraw ? P_WITHDRAW : P_CONSENT);
    if (!p) {
        reply_error(a, c, 503, cors, "out of memory");
        return;
    }
    snprintf(p->site, sizeof p->site, "%s", domain);
    memcpy(p->receipt, cc.receipt, sizeof p->receipt);
    p->expires_s = cc.issued + (long long)a->cfg->consent.max_age_days * 86400;
    snprintf(p->headers, sizeof p->headers, "%s%s", cors, withdraw ? clear : "Cache-Control: no-store\r\n");
    receipt_json(a->cfg, &cc, p->body, sizeof p->body);

    char hits[300], receipts[300], t[24];
    char hashes[3][VISITOR_HEX_LEN + 1];
    keys_hits(hits, sizeof hits, domain);
    keys_consent(receipts, sizeof receipts, domain);
    snprintf(t, sizeof t, "%lld", now);
    const char *argv[16] = {"EVAL", ERASE_SCRIPT, "3", hits, receipts, KEYS_AUDIT,
                            withdraw ? "erase" : "count", cc.receipt, t, domain};
    int argc = 10;
    long today = (long)(now / 86400000);
    for (long day = today - 1; day <= today + 1; day++) {
        char salt[SALT_HEX_LEN + 1];
        if (salt_get(day, salt) < 0) continue;
        visitor_hash(salt, SALT_HEX_LEN, domain, strlen(domain), cc.receipt, CONSENT_RECEIPT_LEN,
                     hashes[day - today + 1]);
        argv[argc++] = hashes[day - today + 1];
    }
    size_t lens[16];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    if (store_command(a->store, on_held, p, argc, argv, lens) < 0) {
        pending_put(p);
        reply_error(a, c, 503, cors, "storage unavailable");
        return;
    }
    a->scans++;
}

/* ------------------------------------------------------------------------ */
/* Small endpoints                                                           */
/* ------------------------------------------------------------------------ */

static void handle_preflight(struct api *a, struct http_conn *c, const struct http_request *r)
{
    if (!origin_known(a->cfg, r->origin)) {
        reply_error(a, c, 403, "", "origin not allowed");
        return;
    }
    char hdr[HDR_MAX];
    int n = snprintf(hdr, sizeof hdr,
                     "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
                     "Access-Control-Allow-Methods: GET, POST, DELETE, OPTIONS\r\n"
                     "Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n"
                     "Vary: Origin\r\n", (int)r->origin.n, r->origin.p);
    (void)n;
    http_respond(c, 204, hdr, NULL, NULL, 0);
}

static void handle_snippet(struct api *a, struct http_conn *c, const struct http_request *r)
{
    int gzip = r->accept_encoding.p && memmem(r->accept_encoding.p, r->accept_encoding.n, "gzip", 4);
    const struct asset *s = assets_snippet(gzip);
    if (!s) {
        reply_error(a, c, 404, "", "snippet not built");
        return;
    }
    int zipped = s == assets_snippet(1) && s != assets_snippet(0);
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
        reply_error(a, c, status, "", "not found");
        return;
    }
    http_respond(c, 200, "Cache-Control: no-cache\r\n", type, f.data, f.len);
    free(f.data);
}

static void handle_health(struct api *a, struct http_conn *c)
{
    char salt[SALT_HEX_LEN + 1];
    if (store_is_up(a->store) && salt_get((long)(clock_now_ms() / 86400000), salt) == 0) {
        static const char ok[] = "{\"status\":\"ok\",\"redis\":\"up\"}\n";
        http_respond(c, 200, "Cache-Control: no-store\r\n", "application/json", ok, sizeof ok - 1);
    } else {
        static const char down[] = "{\"status\":\"unavailable\",\"redis\":\"down\"}\n";
        http_respond(c, 503, "Cache-Control: no-store\r\n", "application/json", down, sizeof down - 1);
    }
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

void api_handle(struct http_conn *c, const struct http_request *r, void *arg)
{
    struct api *a = arg;
    enum http_verb v = r->verb;
    char cors[HDR_MAX];

    if (path_is(r, "/api/event")) {
        if (v == HTTP_VERB_POST) handle_hit(a, c, r, 0);
        else if (v == HTTP_VERB_OPTIONS) handle_preflight(a, c, r);
        else reply_error(a, c, 405, "Allow: POST, OPTIONS\r\n", "use POST");
    } else if (path_is(r, "/p.gif")) {
        if (v == HTTP_VERB_GET) handle_hit(a, c, r, 1);
        else reply_error(a, c, 405, "Allow: GET\r\n", "use GET");
    } else if (path_is(r, "/consent")) {
        cors_headers(a->cfg, r->origin, cors, sizeof cors);
        struct sockaddr_storage client;
        client_addr(a->cfg, r, &client);
        if (v != HTTP_VERB_OPTIONS && rate_limited(a, (struct sockaddr *)&client))
            reply_error(a, c, 429, cors, "rate limited");
        else if (v == HTTP_VERB_POST) handle_consent_post(a, c, r, cors);
        else if (v == HTTP_VERB_GET) handle_consent_read(a, c, r, cors, 0);
        else if (v == HTTP_VERB_DELETE) handle_consent_read(a, c, r, cors, 1);
        else if (v == HTTP_VERB_OPTIONS) handle_preflight(a, c, r);
        else reply_error(a, c, 405, "Allow: GET, POST, DELETE, OPTIONS\r\n", "method not allowed");
    } else if (path_is(r, "/healthz") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_health(a, c);
    } else if (path_is(r, "/metrics") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_metrics(c);
    } else if (path_is(r, "/fs.js") && (v == HTTP_VERB_GET || v == HTTP_VERB_HEAD)) {
        handle_snippet(a, c, r);
    } else if (r->path.n >= 6 && memcmp(r->path.p, "/demo/", 6) == 0 && v == HTTP_VERB_GET) {
        handle_demo(a, c, r);
    } else if (path_is(r, "/demo")) {
        http_respond(c, 301, "Location: /demo/\r\n", NULL, NULL, 0);
    } else {
        reply_error(a, c, 404, "", "not found");
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

struct api *api_new(struct event_base *base, const struct cfg *c, const struct geo *geo,
                    char *err, size_t errlen)
{
    struct api *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = c;
    a->geo = geo;
    a->rl = calloc(RL_SLOTS, sizeof *a->rl);
    if (!a->rl) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    RAND_bytes((unsigned char *)&a->rl_seed, sizeof a->rl_seed);
    a->rl_seed |= 1;
    a->salt_day = -1;
    a->seen = calloc(SEEN_SLOTS, sizeof *a->seen);
    if (!a->seen) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    if (!(a->consent = consent_new(c))) {
        snprintf(err, errlen, "consent.secret: missing or unusable");
        goto error;
    }
    if (!(a->ua = ua_new(UA_CACHE, err, errlen))) goto error;
    if (!(a->store = store_new(base, c, err, errlen))) goto error;
    a->m.store = a->store;
    metrics_register(&a->m);
    return a;

error:
    api_free(a);
    return NULL;
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
    store_free(a->store);
    a->store = NULL;
    consent_free(a->consent);
    visitor_key_free(a->vkey);
    if (a->ua) ua_free(a->ua);
    free(a->rl);
    free(a->seen);
    while (a->free_list) {
        struct pending *p = a->free_list;
        a->free_list = p->next_free;
        free(p);
    }
    /* a->m stays registered with metrics; the process is exiting. */
}
