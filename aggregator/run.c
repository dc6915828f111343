/* run.c -- the daemon loop: read, fold, apply; reclaim, discover, purge.
 *
 * One synchronous loop per process. Each turn it blocks in one XREADGROUP over
 * every site's stream (COUNT aggregator.batch, BLOCK aggregator.block_ms) and
 * applies what came back, one script call per site. Every few seconds it
 * reclaims entries another consumer left pending (XAUTOCLAIM), rescans for new
 * sites and, every aggregator.purge_interval, runs the retention purge. Any
 * connection error drops the connection and retries with backoff; nothing is
 * lost, because an entry read but not applied stays pending and is reclaimed.
 * SIGTERM/SIGINT are noticed between batches: the batch in hand is applied,
 * then the loop ends (a blocked read returns within block_ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "fold.h"
#include "keys.h"
#include "log.h"
#include "purge.h"

#define CLAIM_IDLE_MS 30000     /* pending this long: its consumer is presumed dead */
#define CLAIM_EVERY_MS 10000
#define DISCOVER_EVERY_MS 30000
#define BACKOFF_MAX_MS 5000

static int load_script(struct agg *a)
{
    redisReply *r = agg_command(a, "SCRIPT LOAD %s", fold_script);
    if (!r) return -1;
    int ok = r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) memcpy(a->sha, r->str, 41);
    else snprintf(a->err, sizeof a->err, "SCRIPT LOAD: %s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int ensure_group(struct agg *a, struct agg_site *s)
{
    if (s->group_ready) return 0;
    /* From id 0, so that hits stored before the first aggregator ran count. */
    redisReply *r = agg_command(a, "XGROUP CREATE %s %s 0 MKSTREAM", s->stream, KEYS_GROUP);
    if (!r) return -1;
    int ok = r->type != REDIS_REPLY_ERROR || strncmp(r->str, "BUSYGROUP", 9) == 0;
    if (!ok) snprintf(a->err, sizeof a->err, "XGROUP CREATE %.120s: %.100s", s->stream, r->str);
    freeReplyObject(r);
    s->group_ready = ok;
    return ok ? 0 : -1;
}

/* Folds the entries of one XREADGROUP/XAUTOCLAIM reply of site s and applies
 * them in one script call. 0 or -1. */
static int apply(struct agg *a, struct agg_site *s, const redisReply *entries)
{
    if (entries->type != REDIS_REPLY_ARRAY || entries->elements == 0) return 0;
    if (!s->batch) {
        int64_t max_ttl = (int64_t)a->cfg->retention.raw_max_age_s * 1000 + FOLD_IDLE_MS;
        s->batch = fold_batch_new(s->name, s->zone, max_ttl);
        if (!s->batch) goto oom;
    }
    fold_batch_reset(s->batch);
    int64_t now = clock_now_ms();
    enum { MAXF = 64 };
    const char *fv[MAXF];
    size_t fvlen[MAXF];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *f = e->element[1];
        size_t n = 0;
        /* A nil field list is an entry deleted while pending: it still has
         * to be acknowledged, and the script will count nothing for it. */
        if (f->type == REDIS_REPLY_ARRAY)
            for (; n < f->elements && n < MAXF; n++) {
                fv[n] = f->element[n]->str ? f->element[n]->str : "";
                fvlen[n] = f->element[n]->str ? f->element[n]->len : 0;
            }
        if (fold_batch_add(s->batch, e->element[0]->str, e->element[0]->len, fv, fvlen, n & ~(size_t)1, now) < 0)
            goto oom;
    }
    const char **argv;
    const size_t *argvlen;
    size_t argc;
    if (fold_batch_argv(s->batch, a->sha, KEYS_GROUP, a->consumer, &argv, &argvlen, &argc) < 0)
        goto oom;
    redisReply *r = agg_command_argv(a, (int)argc, argv, argvlen);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        /* Redis restarted or SCRIPT FLUSH: load it again and retry once. */
        freeReplyObject(r);
        if (load_script(a) < 0) return -1;
        argv[1] = a->sha;
        r = agg_command_argv(a, (int)argc, argv, argvlen);
    }
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != FOLD_REPLY_LEN) {
        snprintf(a->err, sizeof a->err, "apply script on %.120s: %.100s", s->stream,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    a->stats.read += entries->elements;
    a->stats.counted += (uint64_t)r->element[FOLD_REPLY_COUNTED]->integer;
    a->stats.skipped += (uint64_t)r->element[FOLD_REPLY_SKIPPED]->integer;
    a->stats.batches++;
    log_debug("%s: applied %zu entries (%lld counted)", s->name, entries->elements,
              r->element[FOLD_REPLY_COUNTED]->integer);
    freeReplyObject(r);
    return 0;

oom:
    snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
    return -1;
}

static struct agg_site *site_by_stream(struct agg *a, const char *key)
{
    for (size_t i = 0; i < a->nsites; i++)
        if (strcmp(a->sites[i].stream, key) == 0) return &a->sites[i];
    return NULL;
}

/* One XREADGROUP over every site; *got = entries read. 0 or -1. */
static int read_new(struct agg *a, long block_ms, size_t *got)
{
    *got = 0;
    if (a->nsites == 0) {
        if (block_ms > 0) agg_sleep(a, block_ms);
        return 0;
    }
    size_t argc = 0, cap = 10 + 2 * a->nsites;
    const char **argv = malloc(cap * sizeof *argv);
    if (!argv) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    char count[16], block[24];
    snprintf(count, sizeof count, "%d", a->cfg->aggregator.batch);
    snprintf(block, sizeof block, "%ld", block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = KEYS_GROUP;
    argv[argc++] = a->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (block_ms > 0) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < a->nsites; i++) argv[argc++] = a->sites[i].stream;
    for (size_t i = 0; i < a->nsites; i++) argv[argc++] = ">";
    redisReply *r = agg_command_argv(a, (int)argc, argv, NULL);
    free(argv);
    if (!r) return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: a stream was deleted under us; recreate groups next turn. */
        snprintf(a->err, sizeof a->err, "XREADGROUP: %s", r->str);
        for (size_t i = 0; i < a->nsites; i++) a->sites[i].group_ready = 0;
        rc = -1;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && rc == 0; i++) {
            const redisReply *sr = r->element[i];
            if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2) continue;
            struct agg_site *s = site_by_stream(a, sr->element[0]->str);
            if (!s) continue;
            *got += sr->element[1]->elements;
            rc = apply(a, s, sr->element[1]);
        }
    }
    freeReplyObject(r);
    return rc;
}

/* Claims and applies every entry of s pending longer than min_idle_ms. */
static int claim(struct agg *a, struct agg_site *s, long min_idle_ms, size_t *got)
{
    char start[64] = "0-0";
    *got = 0;
    do {
        redisReply *r = agg_command(a, "XAUTOCLAIM %s %s %s %ld %s COUNT %d", s->stream, KEYS_GROUP,
                                    a->consumer, min_idle_ms, start, a->cfg->aggregator.batch);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            snprintf(a->err, sizeof a->err, "XAUTOCLAIM %.120s: %.100s", s->stream,
                     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            if (r->type == REDIS_REPLY_ERROR) s->group_ready = 0;
            freeReplyObject(r);
            return -1;
        }
        snprintf(start, sizeof start, "%s", r->element[0]->str);
        *got += r->element[1]->elements;
        int rc = apply(a, s, r->element[1]);
        freeReplyObject(r);
        if (rc < 0) return -1;
    } while (strcmp(start, "0-0") != 0 && !agg_stopping(a));
    return 0;
}

static int claim_all(struct agg *a, long min_idle_ms)
{
    size_t got;
    for (size_t i = 0; i < a->nsites && !agg_stopping(a); i++)
        if (ensure_group(a, &a->sites[i]) < 0 || claim(a, &a->sites[i], min_idle_ms, &got) < 0)
            return -1;
    return 0;
}

/* --once: everything pending (whoever read it) and everything new. */
static int drain(struct agg *a)
{
    if (claim_all(a, 0) < 0) return -1;
    size_t got;
    do {
        if (read_new(a, 0, &got) < 0) return -1;
    } while (got > 0 && !agg_stopping(a));
    return 0;
}

/* Removes this process's consumer from each group, unless it still owns
 * pending entries (then another aggregator must be able to claim them). */
static void leave_groups(struct agg *a)
{
    for (size_t i = 0; i < a->nsites && a->rc; i++) {
        struct agg_site *s = &a->sites[i];
        if (!s->group_ready) continue;
        redisReply *r = agg_command(a, "XPENDING %s %s - + 1 %s", s->stream, KEYS_GROUP, a->consumer);
        int empty = r && r->type == REDIS_REPLY_ARRAY && r->elements == 0;
        if (r) freeReplyObject(r);
        if (!empty) continue;
        r = agg_command(a, "XGROUP DELCONSUMER %s %s %s", s->stream, KEYS_GROUP, a->consumer);
        if (r) freeReplyObject(r);
    }
}

int agg_run(struct agg *a, int once)
{
    long backoff = 100;
    int failures = 0;
    int64_t next_discover = 0, next_claim = 0, next_purge = 0;
    long interval_ms = a->cfg->aggregator.purge_interval_s * 1000;
    log_info("consumer %s, %s", a->consumer, once ? "draining once" : "running");
    while (!agg_stopping(a)) {
        if (!a->rc) {
            if (agg_connect(a) < 0 || load_script(a) < 0) goto fail;
            next_discover = 0;
        }
        int64_t now = clock_now_ms();
        if (now >= next_discover) {
            if (agg_discover(a) < 0) goto fail;
            next_discover = now + DISCOVER_EVERY_MS;
        }
        for (size_t i = 0; i < a->nsites; i++)
            if (ensure_group(a, &a->sites[i]) < 0) goto fail;
        if (once) {
            if (drain(a) < 0) goto fail;
            break;
        }
        if (now >= next_claim) {
            if (claim_all(a, CLAIM_IDLE_MS) < 0) goto fail;
            next_claim = now + CLAIM_EVERY_MS;
        }
        if (interval_ms > 0 && now >= next_purge) {
            if (purge_run(a, now, 0, NULL) < 0) goto fail;
            next_purge = now + interval_ms;
        }
        size_t got;
        if (read_new(a, a->cfg->aggregator.block_ms, &got) < 0) goto fail;
        backoff = 100;
        failures = 0;
        continue;

    fail:
        if (once && ++failures >= 10) {
            log_error("%s; giving up", a->err);
            return 1;
        }
        log_warn("%s; retrying in %ld ms", a->err, backoff);
        agg_disconnect(a);
        agg_sleep(a, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    leave_groups(a);
    log_info("done: %llu entries read, %llu counted, %llu already counted or withdrawn",
             (unsigned long long)a->stats.read, (unsigned long long)a->stats.counted,
             (unsigned long long)a->stats.skipped);
    return 0;
}
