/* receipt.c -- the consent endpoints: record, show, withdraw (receipt.h). */
#include "receipt.h"
#include "api-internal.h"
#include "clock.h"
#include "erase.h"
#include "keys.h"
#include "revoke.h"
#include "salt.h"
#include "store.h"
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* GET and DELETE each look at the newest ERASE_SCAN raw entries inside
 * Redis (erase.h: bounded whatever the backlog); a few at a time per worker
 * all the same, so that a flood of them cannot crowd out the beacons. */
#define MAX_SCANS 4

/* The salts this collector holds (salt.h); never an error: a salt not loaded
 * is a salt not used. */
static int held_salt(void *arg, int64_t day, char *buf, size_t cap)
{
    (void)arg;
    char salt[SALT_HEX_LEN + 1];
    if (cap < SALT_HEX_LEN || salt_get(day, salt) < 0) return 0;
    memcpy(buf, salt, SALT_HEX_LEN);
    return SALT_HEX_LEN;
}

/* Counts the hits of receipt still buffered for site (erase.h); with
 * withdraw, erases them and records the withdrawal and its audit record in
 * the same atomic step. cb gets the script's answer (erase_reply). 0, or -1
 * when Redis is down now (cb is then never called). */
static int erase_hits(struct store *s, const struct cfg *cfg, const char *site,
                      const char *receipt, int64_t now_ms, int withdraw, store_cb cb, void *arg)
{
    struct erase_request req = {.site = site, .receipt = receipt, .now_ms = now_ms,
                                .raw_max_age_ms = cfg->retention.raw_max_age_s * 1000LL,
                                .mode = withdraw ? ERASE_ALWAYS : ERASE_COUNT,
                                .by = ERASE_BY_COLLECTOR};
    struct erase_call call;
    if (erase_command(&call, &req, held_salt, NULL) < 0) return -1;
    return store_command(s, cb, arg, call.argc, call.argv, call.len);
}

static void set_cookie_line(const struct cfg *cfg, const char *value, long long max_age,
                            char *out, size_t len)
{
    char domain[300] = "";
    if (cfg->consent.cookie_domain[0])
        snprintf(domain, sizeof domain, "; Domain=%s", cfg->consent.cookie_domain);
    snprintf(out, len, "Set-Cookie: %s=%s; Max-Age=%lld; Path=/; SameSite=Lax%s%s\r\n"
             "Cache-Control: no-store\r\n",
             cfg->consent.cookie, value, max_age, cfg->consent.secure ? "; Secure" : "", domain);
}

/* The receipt as a JSON object, without its closing brace. */
static void receipt_json(const struct cfg *cfg, const struct consent_cookie *cc, char *out, size_t len)
{
    char issued[32], expires[32];
    clock_format_rfc3339(cc->issued * 1000, issued);
    clock_format_rfc3339((cc->issued + consent_max_age_s(cfg)) * 1000, expires);
    snprintf(out, len,
             "{\"receipt\":\"%s\",\"analytics\":%s,\"policy_version\":\"%s\",\"time\":\"%s\","
             "\"expires\":\"%s\"",
             cc->receipt, cc->analytics ? "true" : "false", cfg->consent.policy_version, issued,
             expires);
}

/* ------------------------------------------------------------------------ */
/* POST: record                                                              */
/* ------------------------------------------------------------------------ */

static void on_recorded(redisReply *r, void *arg)
{
    struct api_pending *p = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        /* No receipt, no cookie: consent we cannot prove is no consent. */
        api_reply_error(p->a, p->c, 503, "", "storage unavailable");
    } else {
        METRIC_INC(p->a->m.receipts);
        char body[600];
        int n = snprintf(body, sizeof body, "%s}\n", p->body);
        http_respond(p->c, 200, p->headers, "application/json", body, (size_t)n);
    }
    api_pending_put(p);
}

void receipt_record(struct api *a, struct http_conn *c, const struct http_request *r,
                    const char *cors)
{
    char domain[BEACON_DOMAIN_MAX + 1];
    int analytics;
    int rc = beacon_parse_consent(r->body.p, r->body.n, domain, &analytics);
    if (rc != BEACON_OK) {
        api_reply_error(a, c, 400, cors, rc == BEACON_MISSING ? "domain and analytics are required"
                                                              : beacon_strerror(rc));
        return;
    }
    if (!api_site(a, c, r, domain, cors)) return;
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
        api_reply_error(a, c, 503, cors, "no randomness");
        return;
    }
    char value[CONSENT_COOKIE_MAX + 1];
    if (consent_issue(a->consent, domain, analytics, cc.issued, cc.receipt, value, sizeof value) < 0) {
        api_reply_error(a, c, 503, cors, "cannot sign");
        return;
    }
    struct api_pending *p = api_pending_get(a, c, API_CONSENT);
    if (!p) {
        api_reply_error(a, c, 503, cors, "out of memory");
        return;
    }
    char cookie[600];
    set_cookie_line(a->cfg, value, consent_max_age_s(a->cfg), cookie, sizeof cookie);
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
    if (store_command(a->store, on_recorded, p, 13, argv, lens) < 0) {
        api_pending_put(p);
        api_reply_error(a, c, 503, cors, "storage unavailable");
    }
}

/* ------------------------------------------------------------------------ */
/* GET: show; DELETE: withdraw                                               */
/* ------------------------------------------------------------------------ */

static void on_counted(redisReply *r, void *arg)
{
    struct api_pending *p = arg;
    struct api *a = p->a;
    a->scans--;
    long long hits;
    int complete;
    if (erase_reply(r, &hits, NULL, &complete) < 0) {
        api_reply_error(a, p->c, 503, p->headers, "storage unavailable");
        api_pending_put(p);
        return;
    }
    char body[700];
    int n;
    if (p->kind == API_WITHDRAW) {
        METRIC_INC(a->m.withdrawals);
        revoke_add(p->site, p->receipt, p->expires_s);
        a->m.erased += (unsigned long long)hits;
        n = snprintf(body, sizeof body, "{\"withdrawn\":true,\"erased\":%lld,\"complete\":%s}\n",
                     hits, complete ? "true" : "false");
    } else {
        n = snprintf(body, sizeof body, "%s,\"held\":{\"hits\":%lld,\"complete\":%s}}\n", p->body,
                     hits, complete ? "true" : "false");
    }
    http_respond(p->c, 200, p->headers, "application/json", body, (size_t)n);
    api_pending_put(p);
}

/* GET shows the receipt and how many hits are still held; DELETE withdraws,
 * erases those hits and clears the cookie. */
static void show_or_withdraw(struct api *a, struct http_conn *c, const struct http_request *r,
                             const char *cors, int withdraw)
{
    char domain[BEACON_DOMAIN_MAX + 1];
    char clear[400];
    set_cookie_line(a->cfg, "", 0, clear, sizeof clear);
    int n = url_query_get(r->query.p, r->query.n, "domain", domain, sizeof domain);
    for (int i = 0; i < n; i++) domain[i] = (char)tolower((unsigned char)domain[i]);
    if (n <= 0) {
        api_reply_error(a, c, 400, cors, "domain is required: ?domain=example.com");
        return;
    }
    if (!api_site(a, c, r, domain, cors)) return;
    struct consent_cookie cc;
    long long now = clock_now_ms();
    enum consent_verdict v = r->cookie.p ? consent_check(a->consent, domain, r->cookie.p,
                                                         r->cookie.n, now / 1000, &cc)
                                         : CONSENT_NONE;
    if ((v == CONSENT_GRANTED || v == CONSENT_DENIED) && revoke_contains(domain, cc.receipt, now / 1000))
        v = CONSENT_WITHDRAWN;
    if (v != CONSENT_GRANTED && v != CONSENT_DENIED) {
        char hdr[API_CORS_MAX + 400];
        snprintf(hdr, sizeof hdr, "%s%s", cors, withdraw ? clear : "");
        metrics_count_status(&a->m, 404);
        static const char body[] = "{\"error\":\"no consent recorded\"}\n";
        http_respond(c, 404, hdr, "application/json", body, sizeof body - 1);
        return;
    }
    if (a->scans >= MAX_SCANS) {
        api_reply_error(a, c, 429, cors, "busy, try again");
        return;
    }
    struct api_pending *p = api_pending_get(a, c, withdraw ? API_WITHDRAW : API_CONSENT);
    if (!p) {
        api_reply_error(a, c, 503, cors, "out of memory");
        return;
    }
    snprintf(p->site, sizeof p->site, "%s", domain);
    memcpy(p->receipt, cc.receipt, sizeof p->receipt);
    p->expires_s = cc.issued + consent_max_age_s(a->cfg);
    snprintf(p->headers, sizeof p->headers, "%s%s", cors, withdraw ? clear : "Cache-Control: no-store\r\n");
    receipt_json(a->cfg, &cc, p->body, sizeof p->body);
    if (erase_hits(a->store, a->cfg, domain, cc.receipt, now, withdraw, on_counted, p) < 0) {
        api_pending_put(p);
        api_reply_error(a, c, 503, cors, "storage unavailable");
        return;
    }
    a->scans++;
}

void receipt_show(struct api *a, struct http_conn *c, const struct http_request *r,
                  const char *cors)
{
    show_or_withdraw(a, c, r, cors, 0);
}

void receipt_withdraw(struct api *a, struct http_conn *c, const struct http_request *r,
                      const char *cors)
{
    show_or_withdraw(a, c, r, cors, 1);
}
