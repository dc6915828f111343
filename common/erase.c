/* erase.c -- the erase command and its answer (erase.h); the script is erase.lua. */
#include "erase.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

/* erase.lua, embedded at build time with erase.h's constants (common/build.mk). */
extern const char erase_script[];

static const char *const actions[] = {[ERASE_BY_COLLECTOR] = "withdraw", [ERASE_BY_AGGREGATOR] = "forget"};
static const char *const names[] = {[ERASE_BY_COLLECTOR] = "collector", [ERASE_BY_AGGREGATOR] = "aggregator"};

/* When a withdrawn visitor of UTC day `day` may leave the withdrawn set: no
 * raw hit of that day outlives retention.raw_max_age after the day's end
 * (purge), an hour of margin for a late purge. */
static int64_t withdrawn_until(int64_t day, int64_t raw_max_age_ms)
{
    return (day + 1) * CLOCK_DAY_MS + raw_max_age_ms + 3600 * 1000LL;
}

int erase_command(struct erase_call *out, const struct erase_request *req, erase_salt_fn salt,
                  void *arg)
{
    memset(out, 0, sizeof *out);
    if (keys_hits(out->hits_key, sizeof out->hits_key, req->site) < 0 ||
        keys_consent(out->consent_key, sizeof out->consent_key, req->site) < 0 ||
        keys_withdrawn(out->withdrawn_key, sizeof out->withdrawn_key, req->site) < 0 ||
        keys_withdrawn_gen(out->gen_key, sizeof out->gen_key, req->site) < 0)
        return -1;
    snprintf(out->time, sizeof out->time, "%lld", (long long)req->now_ms);
    snprintf(out->mode, sizeof out->mode, "%d", (int)req->mode);

    /* The salts held, and for each the receipt's visitor hash and the day's
     * visit-state key. */
    int64_t today = clock_utc_day(req->now_ms);
    for (int64_t day = today + KEYS_SALT_FIRST_HELD; day <= today + KEYS_SALT_LAST_HELD; day++) {
        char s[ERASE_SALT_MAX], yyyymmdd[CLOCK_DAY_LEN + 1];
        int n = salt(arg, day, s, sizeof s);
        if (n < 0 || n > (int)sizeof s) return -1;
        if (n == 0) continue;
        int k = out->nhashes;
        clock_format_day(day, yyyymmdd);
        if (visitor_hash(s, (size_t)n, req->site, strlen(req->site), req->receipt,
                         strlen(req->receipt), out->hashes[k]) < 0 ||
            keys_visits(out->visits_keys[k], sizeof out->visits_keys[k], req->site, yyyymmdd) < 0)
            return -1;
        snprintf(out->expires[k], sizeof out->expires[k], "%lld",
                 (long long)withdrawn_until(day, req->raw_max_age_ms));
        out->nhashes++;
    }
    snprintf(out->nkeys, sizeof out->nkeys, "%d", ERASE_NKEYS + out->nhashes);

    /* KEYS[k] is argv[3 + k - 1], ARGV[k] follows the keys the same way. */
    const char **v = out->argv;
    int c = 0;
    v[c++] = "EVAL";
    v[c++] = erase_script;
    v[c++] = out->nkeys;
    v[c - 1 + ERASE_KEY_HITS] = out->hits_key;
    v[c - 1 + ERASE_KEY_CONSENT] = out->consent_key;
    v[c - 1 + ERASE_KEY_AUDIT] = KEYS_AUDIT;
    v[c - 1 + ERASE_KEY_WITHDRAWN] = out->withdrawn_key;
    v[c - 1 + ERASE_KEY_GEN] = out->gen_key;
    for (int k = 0; k < out->nhashes; k++) v[c - 1 + ERASE_KEY_VISITS + k] = out->visits_keys[k];
    c += ERASE_NKEYS + out->nhashes;
    v[c - 1 + ERASE_ARG_MODE] = out->mode;
    v[c - 1 + ERASE_ARG_RECEIPT] = req->receipt;
    v[c - 1 + ERASE_ARG_TIME] = out->time;
    v[c - 1 + ERASE_ARG_SITE] = req->site;
    v[c - 1 + ERASE_ARG_ACTION] = actions[req->by];
    v[c - 1 + ERASE_ARG_BY] = names[req->by];
    c += ERASE_ARG_HASHES - 1;
    for (int k = 0; k < out->nhashes; k++) {
        v[c++] = out->hashes[k];
        v[c++] = out->expires[k];
    }
    out->argc = c;
    for (int i = 0; i < c; i++) out->len[i] = strlen(v[i]);
    return 0;
}

int erase_reply(const struct redisReply *reply, long long *hits, int *recorded, int *complete)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return -1;
    for (size_t i = 0; i < 3; i++)
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) return -1;
    if (hits) *hits = reply->element[0]->integer;
    if (recorded) *recorded = reply->element[1]->integer != 0;
    if (complete) *complete = reply->element[2]->integer != 0;
    return 0;
}
