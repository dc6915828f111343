/* receipt.c -- the consent endpoints: record, show, withdraw (receipt.h). */
#include "receipt.h"
#include "api-internal.h"
#include "clock.h"
#include "keys.h"
#include "revoke.h"
#include "salt.h"
#include "store.h"
#include "url.h"
#include "visitor.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* GET and DELETE each scan the site's raw stream inside Redis: a few at a
 * time per worker, so that a flood of them cannot stall Redis. */
#define MAX_SCANS 4

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

/* Counts the hits of receipt still buffered for site, matching the visitor
 * hashes it had under every salt held (yesterday's to tomorrow's); with
 * erase, deletes them and records the withdrawal and its audit line in the
 * same atomic step. cb gets the count as an integer reply. 0, or -1 when
 * Redis is down now (cb is then never called). */
static int erase_hits(struct store *s, const char *site, const char *receipt, int64_t now_ms,
                      int erase, store_cb cb, void *arg)
{
    char hits[300], receipts[300], t[24];
    char hashes[3][VISITOR_HEX_LEN + 1];
    keys_hits(hits, sizeof hits, site);
    keys_consent(receipts, sizeof receipts, site);
    snprintf(t, sizeof t, "%lld", (long long)now_ms);
    const char *argv[16] = {"EVAL", ERASE_SCRIPT, "3", hits, receipts, KEYS_AUDIT,
                            erase ? "erase" : "count", receipt, t, site};
    int argc = 10;
    int64_t today = clock_utc_day(now_ms);
    for (int64_t day = today - 1; day <= today + 1; day++) {
        char salt[SALT_HEX_LEN + 1];
        if (salt_get(day, salt) < 0) continue;
        visitor_hash(salt, SALT_HEX_LEN, site, strlen(site), receipt, CONSENT_RECEIPT_LEN,
                     hashes[day - today + 1]);
        argv[argc++] = hashes[day - today + 1];
    }
    size_t lens[16];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    return store_command(s, cb, arg, argc, argv, lens);
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
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        api_reply_error(a, p->c, 503, p->headers, "storage unavailable");
        api_pending_put(p);
        return;
    }
    char body[700];
    int n;
    if (p->kind == API_WITHDRAW) {
        METRIC_INC(a->m.withdrawals);
        revoke_add(p->site, p->receipt, p->expires_s);
        a->m.erased += (unsigned long long)r->integer;
        n = snprintf(body, sizeof body, "{\"withdrawn\":true,\"erased\":%lld}\n", r->integer);
    } else {
        n = snprintf(body, sizeof body, "%s,\"held\":{\"hits\":%lld}}\n", p->body, r->integer);
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
    if (erase_hits(a->store, domain, cc.receipt, now, withdraw, on_counted, p) < 0) {
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
