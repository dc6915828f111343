/* purge.c -- the retention purge: raw hits, aggregates, receipts, salts.
 *
 * Stream ids are millisecond times, so "older than" is an id range and
 * XTRIM MINID removes it in one call. XTRIM leaves the group's pending list
 * pointing at trimmed ids; those references are acknowledged here too, and
 * the fold (fold.lua) would count nothing for them anyway because
 * their XDEL returns 0. Aggregate keys carry their day in the name, so SCAN
 * finds them without an index. A dry run walks the same ranges read-only.
 */
#include "purge.h"

#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "archive.h"
#include "keys.h"
#include "log.h"

#define STALE_CONSUMER_MS (3600 * 1000LL)

struct purge_counts {
    long long raw, pending, aggregates, receipts, consumers;
};

/* ------------------------------------------------------------------------ */
/* Selection rules                                                           */
/* ------------------------------------------------------------------------ */

int64_t purge_minid(int64_t as_of_ms, long max_age_s, char out[32])
{
    int64_t ms = as_of_ms - (int64_t)max_age_s * 1000;
    if (ms < 0) ms = 0;
    snprintf(out, 32, "%lld-0", (long long)ms);
    return ms;
}

int64_t purge_aggregate_cutoff(struct clock_zone *zone, int64_t as_of_ms, long max_age_s)
{
    return clock_local_days(zone, as_of_ms - (int64_t)max_age_s * 1000);
}

int purge_salt_expired(const char *key, size_t len, int64_t as_of_ms)
{
    int64_t day = keys_salt_day(key, len);
    if (day < 0) return -1;
    return keys_salt_expires_ms(day) <= as_of_ms;
}

/* ------------------------------------------------------------------------ */
/* Redis work                                                                */
/* ------------------------------------------------------------------------ */

static int bad_reply(struct agg *a, redisReply *r, const char *what)
{
    snprintf(a->err, sizeof a->err, "%s: %.200s", what,
             r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return -1;
}

/* Counts entries of stream with id < cutoff_ms (dry run). */
static int count_older(struct agg *a, const char *stream, int64_t cutoff_ms, long long *n)
{
    char start[64] = "-", end[32];
    *n = 0;
    if (cutoff_ms <= 0) return 0;
    snprintf(end, sizeof end, "%lld", (long long)cutoff_ms - 1);
    for (;;) {
        redisReply *r = agg_command(a, "XRANGE %s %s %s COUNT 1000", stream, start, end);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY) return bad_reply(a, r, "XRANGE");
        *n += (long long)r->elements;
        if (r->elements < 1000) {
            freeReplyObject(r);
            return 0;
        }
        snprintf(start, sizeof start, "(%s", r->element[r->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
}

/* XTRIM MINID, and where gen is given (a site's raw hits) and entries
 * went, the withdrawn generation raised in the same step: a fold whose
 * batch is between its check and its EXEC (fold.h, fold_block) WATCHes it,
 * so a purge landing there makes that EXEC run nothing. */
static const char trim_script[] =
    "local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])\n"
    "if n > 0 then redis.call('INCR', KEYS[2]) end\n"
    "return n\n";

static int trim(struct agg *a, const char *stream, const char *gen, int64_t as_of_ms, long max_age_s,
                int dry, long long *n)
{
    char minid[32];
    int64_t cutoff = purge_minid(as_of_ms, max_age_s, minid);
    if (dry) return count_older(a, stream, cutoff, n);
    redisReply *r = gen ? agg_command(a, "EVAL %s 2 %s %s %s", trim_script, stream, gen, minid)
                        : agg_command(a, "XTRIM %s MINID %s", stream, minid);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_INTEGER) return bad_reply(a, r, "XTRIM");
    *n = r->integer;
    freeReplyObject(r);
    return 0;
}

/* Pending-list references older than the raw cutoff: acknowledged and
 * deleted (the entries themselves are usually trimmed already). */
static int purge_pending(struct agg *a, const char *stream, int64_t as_of_ms, long max_age_s,
                         int dry, long long *n)
{
    char minid[32], start[64] = "-", end[32];
    int64_t cutoff = purge_minid(as_of_ms, max_age_s, minid);
    *n = 0;
    if (cutoff <= 0) return 0;
    snprintf(end, sizeof end, "%lld", (long long)cutoff - 1);
    for (;;) {
        redisReply *r = agg_command(a, "XPENDING %s %s %s %s 1000", stream, KEYS_GROUP, start, end);
        if (!r) return -1;
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
            freeReplyObject(r);
            return 0;
        }
        if (r->type != REDIS_REPLY_ARRAY) return bad_reply(a, r, "XPENDING");
        size_t k = r->elements;
        if (k == 0) {
            freeReplyObject(r);
            return 0;
        }
        *n += (long long)k;
        if (dry) {
            snprintf(start, sizeof start, "(%s", r->element[k - 1]->element[0]->str);
        } else {
            const char **argv = malloc((k + 3) * sizeof *argv);
            if (!argv) {
                freeReplyObject(r);
                snprintf(a->err, sizeof a->err, "out of memory");
                return -1;
            }
            for (int pass = 0; pass < 2; pass++) {
                size_t c = 0;
                argv[c++] = pass ? "XDEL" : "XACK";
                argv[c++] = stream;
                if (!pass) argv[c++] = KEYS_GROUP;
                for (size_t i = 0; i < k; i++) argv[c++] = r->element[i]->element[0]->str;
                redisReply *x = agg_command_argv(a, (int)c, argv, NULL);
                if (!x) {
                    free(argv);
                    freeReplyObject(r);
                    return -1;
                }
                freeReplyObject(x);
            }
            free(argv);
        }
        freeReplyObject(r);
        if (k < 1000 && dry) return 0;
    }
}

/* UNLINK of aggregates with the withdrawn generation (KEYS[1]) raised in
 * the same step, as trim_script does for raw hits. */
static const char unlink_script[] =
    "redis.call('INCR', KEYS[1])\n"
    "return redis.call('UNLINK', unpack(KEYS, 2))\n";

/* Deletes the n keys at keys[0..n): UNLINK, or unlink_script where gen is
 * given. keys has UNLINK_HEAD free slots before it. 0, or -1. */
#define UNLINK_HEAD 4
static int unlink_keys(struct agg *a, const char **keys, size_t n, const char *gen)
{
    char numkeys[24];
    const char **argv = keys - (gen ? UNLINK_HEAD : 1);
    if (gen) {
        snprintf(numkeys, sizeof numkeys, "%zu", n + 1);
        argv[0] = "EVAL", argv[1] = unlink_script, argv[2] = numkeys, argv[3] = gen;
    } else {
        argv[0] = "UNLINK";
    }
    redisReply *x = agg_command_argv(a, (int)(keys + n - argv), argv, NULL);
    if (!x) return -1;
    /* As before the script: only the step that raises gen fails on an error reply. */
    if (gen && x->type != REDIS_REPLY_INTEGER) return bad_reply(a, x, "UNLINK and INCR");
    freeReplyObject(x);
    return 0;
}

/* Calls fn(key, len, arg) for each key matching pattern; deletes it when fn
 * returns 1 and !dry, raising gen in the same step where it is given.
 * Counts the selected keys in *n. */
static int scan_select(struct agg *a, const char *pattern, int dry, long long *n,
                       int (*fn)(const char *, size_t, void *), void *arg, const char *gen)
{
    char cursor[32] = "0";
    *n = 0;
    do {
        redisReply *r = agg_command(a, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return bad_reply(a, r, "SCAN");
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        const char **argv = malloc((UNLINK_HEAD + keys->elements) * sizeof *argv);
        if (!argv) {
            freeReplyObject(r);
            snprintf(a->err, sizeof a->err, "out of memory");
            return -1;
        }
        const char **sel = argv + UNLINK_HEAD;
        size_t c = 0;
        for (size_t i = 0; i < keys->elements; i++)
            if (fn(keys->element[i]->str, keys->element[i]->len, arg) == 1)
                sel[c++] = keys->element[i]->str;
        *n += (long long)c;
        int rc = !dry && c > 0 ? unlink_keys(a, sel, c, gen) : 0;
        free(argv);
        freeReplyObject(r);
        if (rc < 0) return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

struct agg_sel {
    const char *site;
    int64_t cutoff_day;
};

static int select_aggregate(const char *key, size_t len, void *arg)
{
    const struct agg_sel *s = arg;
    int64_t day = keys_aggregate_day(key, len, s->site);
    return day >= 0 && day < s->cutoff_day;
}

static int select_salt(const char *key, size_t len, void *arg)
{
    return purge_salt_expired(key, len, *(const int64_t *)arg) == 1;
}

/* Consumers left by killed aggregators: nothing pending, idle for an hour. */
static int drop_stale_consumers(struct agg *a, const char *stream, long long *n)
{
    *n = 0;
    redisReply *r = agg_command(a, "XINFO CONSUMERS %s %s", stream, KEYS_GROUP);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return 0;               /* no group yet */
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *c = r->element[i];
        const char *name = NULL;
        long long pending = -1, idle = 0;
        for (size_t k = 0; c->type == REDIS_REPLY_ARRAY && k + 1 < c->elements; k += 2) {
            const char *f = c->element[k]->str;
            if (!f) continue;
            if (strcmp(f, "name") == 0) name = c->element[k + 1]->str;
            else if (strcmp(f, "pending") == 0) pending = c->element[k + 1]->integer;
            else if (strcmp(f, "idle") == 0) idle = c->element[k + 1]->integer;
        }
        if (!name || pending != 0 || idle < STALE_CONSUMER_MS || strcmp(name, a->consumer) == 0)
            continue;
        redisReply *x = agg_command(a, "XGROUP DELCONSUMER %s %s %s", stream, KEYS_GROUP, name);
        if (!x) {
            freeReplyObject(r);
            return -1;
        }
        freeReplyObject(x);
        (*n)++;
    }
    freeReplyObject(r);
    return 0;
}

static int purge_site(struct agg *a, struct agg_site *s, int64_t as_of_ms, int dry,
                      struct purge_counts *c)
{
    const struct cfg *cfg = a->cfg;
    char key[512], pattern[1100];
    memset(c, 0, sizeof *c);
    if (trim(a, s->stream, s->gen_key, as_of_ms, cfg->retention.raw_max_age_s, dry, &c->raw) < 0 ||
        purge_pending(a, s->stream, as_of_ms, cfg->retention.raw_max_age_s, dry, &c->pending) < 0)
        return -1;
    if (keys_consent(key, sizeof key, s->name) < 0 ||
        trim(a, key, NULL, as_of_ms, cfg->retention.consent_receipts_s, dry, &c->receipts) < 0)
        return -1;
    if (keys_aggregates_pattern(pattern, sizeof pattern, s->name) < 0) return 0;
    struct agg_sel sel = {s->name,
                          purge_aggregate_cutoff(s->zone, as_of_ms, cfg->retention.aggregates_s)};
    /* Where aggregates of the last two local days may go (an --as-of ahead
     * of the retention; a day's margin for the fold's clock), the withdrawn
     * generation is raised in the step that deletes them, as for raw hits:
     * a running fold then forgets the HyperLogLog members it remembers as
     * added (fold.c, seen set), and its batch read before and applied after
     * runs nothing. */
    int recent = sel.cutoff_day >= clock_local_days(s->zone, clock_now_ms()) - 1;
    if (scan_select(a, pattern, dry, &c->aggregates, select_aggregate, &sel, recent ? s->gen_key : NULL) < 0)
        return -1;
    if (!dry && drop_stale_consumers(a, s->stream, &c->consumers) < 0) return -1;
    return 0;
}

static int audit(struct agg *a, int64_t as_of_ms, const struct purge_counts *per, long long salts)
{
    size_t cap = 12 + a->nsites * 8;
    const char **argv = calloc(cap, sizeof *argv);
    char (*num)[32] = calloc(a->nsites * 4 + 2, sizeof *num);
    char (*names)[300] = calloc(a->nsites * 4 + 1, sizeof *names);
    char asof[32], now[32];
    int rc = -1;
    if (!argv || !num || !names) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto out;
    }
    clock_format_rfc3339(as_of_ms, asof);
    snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
    size_t c = 0, k = 0;
    argv[c++] = "XADD";
    argv[c++] = KEYS_AUDIT;
    argv[c++] = "*";
    argv[c++] = "action";
    argv[c++] = "purge";
    argv[c++] = "t";
    argv[c++] = now;
    argv[c++] = "as_of";
    argv[c++] = asof;
    argv[c++] = "salts";
    snprintf(num[k], sizeof num[k], "%lld", salts);
    argv[c++] = num[k++];
    for (size_t i = 0; i < a->nsites; i++) {
        const long long v[4] = {per[i].raw, per[i].pending, per[i].aggregates, per[i].receipts};
        static const char *const what[4] = {"raw", "pending", "aggregates", "receipts"};
        for (int j = 0; j < 4; j++) {
            size_t at = i * 4 + (size_t)j;
            snprintf(names[at], sizeof names[at], "%.250s.%s", a->sites[i].name, what[j]);
            snprintf(num[k], sizeof num[k], "%lld", v[j]);
            argv[c++] = names[at];
            argv[c++] = num[k++];
        }
    }
    redisReply *r = agg_command_argv(a, (int)c, argv, NULL);
    if (!r) goto out;
    rc = r->type == REDIS_REPLY_STRING ? 0 : -1;
    if (rc < 0) snprintf(a->err, sizeof a->err, "XADD %s: %s", KEYS_AUDIT, r->str ? r->str : "bad reply");
    freeReplyObject(r);
out:
    free(argv);
    free(num);
    free(names);
    return rc;
}

int purge_run(struct agg *a, int64_t as_of_ms, int dry_run, FILE *out)
{
    struct purge_counts *per = calloc(a->nsites + 1, sizeof *per);
    long long salts = 0, total = 0;
    int rc = -1;
    if (!per) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    char asof[32];
    clock_format_rfc3339(as_of_ms, asof);
    if (out)
        fprintf(out, "purge as of %s%s\n", asof, dry_run ? " (dry run: nothing deleted)" : "");
    for (size_t i = 0; i < a->nsites; i++) {
        if (purge_site(a, &a->sites[i], as_of_ms, dry_run, &per[i]) < 0) goto out;
        const struct purge_counts *c = &per[i];
        total += c->raw + c->pending + c->aggregates + c->receipts;
        if (out)
            fprintf(out, "%s: %s%lld raw hits, %lld pending references, %lld aggregate keys, "
                         "%lld consent receipts\n",
                    a->sites[i].name, dry_run ? "would remove " : "removed ", c->raw, c->pending,
                    c->aggregates, c->receipts);
    }
    char pattern[32];
    keys_salt_pattern(pattern, sizeof pattern);
    if (scan_select(a, pattern, dry_run, &salts, select_salt, &as_of_ms, NULL) < 0) goto out;
    total += salts;
    if (out) fprintf(out, "salts: %s%lld\n", dry_run ? "would remove " : "removed ", salts);
    /* Whole archive files past retention.consent_receipts, each site's with
     * its own archive_purge audit record. */
    if (archive_run_purge(a, as_of_ms, dry_run, out) < 0) goto out;
    if (!dry_run) {
        if (audit(a, as_of_ms, per, salts) < 0) goto out;
        if (total) log_info("purge as of %s removed %lld items", asof, total);
    }
    rc = 0;
out:
    free(per);
    return rc;
}
