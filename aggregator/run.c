/* run.c -- the daemon loop: take leases, fold sites, wait for hits, purge.
 *
 * One synchronous loop per process. Each turn it folds one batch of every
 * site with hits waiting whose lease it holds or can take (fold.h: read past
 * the cursor, sum in C, apply atomically) and, when nothing was waiting,
 * blocks in one XREAD over the streams of the sites no other aggregator holds,
 * past their cursors (COUNT 1: a wake-up, not a read), for at most
 * aggregator.block_ms. A lease is taken when a site has hits and runs out
 * while it is quiet. Sites another aggregator holds are looked
 * at again when their lease would have run out. Every few seconds it rescans
 * for new sites and, every aggregator.purge_interval, runs the retention
 * purge; every aggregator.archive_interval it moves old consent receipts to
 * the archive (archive.h; nothing when archive.dir is empty). Any connection error drops the connection and retries with backoff;
 * nothing is lost, because the cursor moves only with the counting.
 * SIGTERM/SIGINT are noticed between batches: the batch in hand is applied,
 * then the loop ends (a blocked read returns within block_ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "archive.h"
#include "fold.h"
#include "keys.h"
#include "log.h"
#include "purge.h"
#include "rawhit.h"
#include "resp.h"

#define DISCOVER_EVERY_MS 30000
#define BACKOFF_MAX_MS 5000
#define MAX_FIELDS 64
#define RUN_BATCHES 8       /* batches of one site in one turn, while they are full ... */
#define RUN_ALONE_MS 1000   /* ... or more, for this long, while no other site waits */
#define RAMP_FIRST 8        /* a turn's first range asks for aggregator.batch / this */

/* ------------------------------------------------------------------------ */
/* Leases                                                                    */
/* ------------------------------------------------------------------------ */

/* 1 when this process may fold s now, 0 when another aggregator holds it,
 * -1 on a connection error. The lease is taken with SET NX and renewed when
 * half of it has passed. */
static int lease(struct agg *a, struct agg_site *s, int64_t now)
{
    if (s->lease_until - FOLD_LEASE_MS / 2 > now) return 1;
    if (s->busy_until > now) return 0;
    redisReply *r = agg_command(a, "SET %s %s NX PX %d", s->lease_key, a->consumer, (int)FOLD_LEASE_MS);
    if (!r) return -1;
    int held = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!held) {
        r = agg_command(a, "GET %s", s->lease_key);
        if (!r) return -1;
        held = r->type == REDIS_REPLY_STRING && strcmp(r->str, a->consumer) == 0;
        freeReplyObject(r);
        if (held) {
            r = agg_command(a, "PEXPIRE %s %d", s->lease_key, (int)FOLD_LEASE_MS);
            if (!r) return -1;
            freeReplyObject(r);
        }
    }
    if (held) {
        s->lease_until = now + FOLD_LEASE_MS;
        s->busy_until = 0;
    } else {
        s->lease_until = 0;
        s->busy_until = now + FOLD_LEASE_MS / 3;
    }
    return held;
}

static void release_leases(struct agg *a)
{
    for (size_t i = 0; i < a->nsites && a->rc; i++) {
        struct agg_site *s = &a->sites[i];
        if (!s->lease_until) continue;
        redisReply *r = agg_command(a, "GET %s", s->lease_key);
        int mine = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, a->consumer) == 0;
        if (r) freeReplyObject(r);
        if (mine && (r = agg_command(a, "DEL %s", s->lease_key))) freeReplyObject(r);
        s->lease_until = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* One batch of one site                                                     */
/* ------------------------------------------------------------------------ */

/* Says in a->err what went wrong with r (which is the caller's); -1. */
static int bad_in(struct agg *a, struct agg_site *s, const char *what, const redisReply *r)
{
    snprintf(a->err, sizeof a->err, "%s %.120s: %.100s", what, s->name,
             r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    return -1;
}

/* bad_in(), freeing r. */
static int bad(struct agg *a, struct agg_site *s, const char *what, redisReply *r)
{
    bad_in(a, s, what, r);
    if (r) freeReplyObject(r);
    return -1;
}

static int read_cursor(struct agg *a, struct agg_site *s)
{
    if (s->cursor_known) return 0;
    redisReply *r = agg_command(a, "GET %s", s->cursor_key);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL) return bad(a, s, "GET cursor", r);
    snprintf(s->cursor, sizeof s->cursor, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    s->cursor_known = 1;
    freeReplyObject(r);
    return 0;
}

/* length and entries-added of an XINFO STREAM reply; 0, or -1. */
static int stream_counts(const redisReply *r, long long *length, long long *added)
{
    int found = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_INTEGER) continue;
        if (strcmp(k->str, "length") == 0) *length = v->integer, found |= 1;
        else if (strcmp(k->str, "entries-added") == 0) *added = v->integer, found |= 2;
    }
    return found == 3 ? 0 : -1;
}

/* A read of a site's stream: XINFO STREAM's counts, the XRANGE entries, the
 * withdrawn generation. */
struct range {
    redisReply *info, *gen;             /* in rg */
    struct resp_entries entries;        /* in rg */
    struct agg_region rg;
    long long length, added;
};

static void range_free(struct range *r)
{
    agg_region_free(&r->rg);
    memset(r, 0, sizeof *r);
}

/* How many entries a turn's ranges ask for: the first aggregator.batch /
 * RAMP_FIRST, each next one twice the one before, up to the batch. With a
 * backlog, Redis has nothing to do until the first batch is counted, nor
 * the aggregator until it is applied: a small first batch starts both
 * sides working sooner (on the realistic load's 500,951 stored hits, a full
 * first batch left Redis all but idle for the first ~100 ms of a drain of
 * about a second: the aggregator's first touch of its heap is in it). */
static size_t ramp_first(size_t batch)
{
    return batch >= RAMP_FIRST ? batch / RAMP_FIRST : batch;
}

static size_t ramp_next(size_t want, size_t batch)
{
    return want < batch / 2 ? want * 2 : batch;
}

/* Appends the read of s's stream past the id after ("" = from its start):
 * XINFO STREAM (length and entries-added, for the script's deletion check),
 * XRANGE COUNT want, and GET of the withdrawn generation -- RANGE_REPLIES
 * replies. */
#define RANGE_REPLIES 3
static int append_range(struct agg *a, struct agg_site *s, const char *after, size_t want)
{
    char from[72], count[24];
    snprintf(from, sizeof from, after[0] ? "(%s" : "-", after);
    snprintf(count, sizeof count, "%zu", want);
    const char *info[] = {"XINFO", "STREAM", s->stream};
    const char *range[] = {"XRANGE", s->stream, from, "+", "COUNT", count};
    const char *gen[] = {"GET", s->gen_key};
    return agg_append_argv(a, 3, info, NULL) < 0 || agg_append_argv(a, 6, range, NULL) < 0 ||
                   agg_append_argv(a, 2, gen, NULL) < 0
               ? -1
               : 0;
}

/* The answers to append_range into r. 0, or -1 (r empty). */
static int get_range(struct agg *a, struct agg_site *s, struct range *r)
{
    memset(r, 0, sizeof *r);
    r->info = agg_get_reply_in(a, &r->rg);
    if (!r->info || agg_get_entries_in(a, &r->rg, &r->entries) < 0 || !(r->gen = agg_get_reply_in(a, &r->rg))) {
        range_free(r);
        return -1;
    }
    if (r->info->type == REDIS_REPLY_ERROR) return 0;      /* no stream yet: nothing to fold */
    if (stream_counts(r->info, &r->length, &r->added) < 0 || r->entries.error ||
        (r->gen->type != REDIS_REPLY_STRING && r->gen->type != REDIS_REPLY_NIL)) {
        range_free(r);
        return bad_in(a, s, "XINFO/XRANGE/GET", NULL);
    }
    return 0;
}

static size_t range_entries(const struct range *r)
{
    return r->info && r->info->type != REDIS_REPLY_ERROR ? r->entries.n : 0;
}

/* Starts a batch of s's fold with the entries of r (which must outlive its
 * apply: the fold points into them). 0, or -1. */
static int add_range(struct agg *a, struct agg_site *s, const struct range *r)
{
    fold_reset(s->fold);
    const redisReply *g = r->gen;
    if (fold_withdrawn_gen(s->fold, g->type == REDIS_REPLY_STRING ? g->str : "",
                           g->type == REDIS_REPLY_STRING ? g->len : 0) < 0)
        return bad_in(a, s, "GET withdrawn generation", NULL);
    for (size_t i = 0; i < r->entries.n; i++) {
        const struct resp_entry *e = &r->entries.e[i];
        size_t n = e->n < MAX_FIELDS ? e->n : MAX_FIELDS;
        if (fold_add(s->fold, e->id, e->idlen, e->s, e->len, n & ~(size_t)1) < 0)
            return bad_in(a, s, "fold", NULL);
    }
    return 0;
}

/* Appends the batch's n reads (fold_reads: visit states, capped keys). 0,
 * or -1. */
static int append_reads(struct agg *a, struct agg_site *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int argc;
        const char *const *argv;
        const size_t *lens;
        if (fold_read(s->fold, i, &argc, &argv, &lens) < 0) {
            snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
            return -1;
        }
        if (agg_append_argv(a, argc, (const char **)argv, lens) < 0) return -1;
    }
    return 0;
}

/* Sends the n reads of the batch in the fold and, when ahead, the read of
 * the range past it (want entries): 0, or -1. send_reads_replies() is what
 * they answer. */
static int send_reads(struct agg *a, struct agg_site *s, size_t n, int ahead, size_t want)
{
    return append_reads(a, s, n) < 0 || (ahead && append_range(a, s, fold_last_id(s->fold), want) < 0) ||
                   agg_flush(a) < 0
               ? -1
               : 0;
}

static size_t send_reads_replies(size_t n, int ahead)
{
    return n + (ahead ? RANGE_REPLIES : 0);
}

/* Reads the answers of n reads and hands each to the fold. 0, or -1. */
static int get_reads(struct agg *a, struct agg_site *s, size_t n)
{
    int rc = 0;
    struct agg_region rg = {0};
    const char **vals = NULL;
    size_t *lens = NULL, cap = 0;
    for (size_t i = 0; i < n; i++) {
        redisReply *r = agg_get_reply_in(a, &rg);
        if (!r) {
            rc = -1;
            break;
        }
        if (rc < 0) continue;               /* read the rest: the pipeline stays in step */
        char num[24];
        if (r->type == REDIS_REPLY_INTEGER) {   /* HLEN, PTTL: one value */
            const char *one = num;
            size_t len = (size_t)snprintf(num, sizeof num, "%lld", r->integer);
            if (fold_read_answer(s->fold, i, 1, &one, &len) < 0) {
                snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
                rc = -1;
            }
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = bad_in(a, s, "read", r);
            continue;
        }
        if (r->elements + 1 > cap) {
            cap = 2 * (r->elements + 1);
            free(vals);
            free(lens);
            vals = malloc(cap * sizeof *vals);
            lens = malloc(cap * sizeof *lens);
        }
        for (size_t j = 0; vals && lens && j < r->elements; j++) {
            const redisReply *v = r->element[j];
            vals[j] = v->type == REDIS_REPLY_STRING ? v->str : NULL;
            lens[j] = v->type == REDIS_REPLY_STRING ? v->len : 0;
        }
        if (!vals || !lens || fold_read_answer(s->fold, i, r->elements, vals, lens) < 0) {
            snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
            rc = -1;
        }
    }
    free(vals);
    free(lens);
    agg_region_free(&rg);
    return rc;
}

/* Counts the batch, which begins after the cursor expect, and holds its
 * block (fold_block: the check, then the script and the visit states in one
 * transaction), to be appended after the next batch's reads. 0, or -1. */
static int hold_apply(struct agg *a, struct agg_site *s, const char *expect, long long length,
                      long long added, size_t *ncmds)
{
    if (fold_compute(s->fold, clock_now_ms()) < 0 || fold_block(s->fold, expect, added, length, ncmds) < 0) {
        snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
        return -1;
    }
    a->heldlen = 0;     /* a block held for a batch then refused is not sent */
    for (size_t i = 0; i < *ncmds; i++) {
        int argc;
        const char *const *argv;
        const size_t *lens;
        fold_block_cmd(s->fold, i, &argc, &argv, &lens);
        if (agg_hold_argv(a, argc, (const char **)argv, lens) < 0) return -1;
    }
    return 0;
}

/* What the stats and the cursor need of a batch whose script was sent,
 * kept while the fold goes on to the next one. */
struct batch_done {
    size_t entries, counted, skipped, dropped;
    size_t ncmds;               /* its block's commands: as many replies */
    char last[64];
};

static void batch_done_of(const struct fold *f, struct batch_done *d)
{
    d->entries = fold_entries(f);
    d->skipped = fold_skipped(f);
    d->dropped = fold_dropped(f);
    d->counted = d->entries - d->skipped - d->dropped - fold_duplicates(f);
    snprintf(d->last, sizeof d->last, "%s", fold_last_id(f));
}

/* The status in reply r of a script of the block: {status}, or -1. */
static long long status_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_INTEGER
               ? r->element[0]->integer : -1;
}

/* Reads the replies of batch d's block (fold_block): 1 applied (the cursor
 * moves past it), 0 refused -- the fold forgets what it knew, the range is
 * to be read again -- or -1. */
static int applied(struct agg *a, struct agg_site *s, const struct batch_done *d)
{
    long long checked = -1, status = -1;
    int aborted = 0;        /* EXEC ran nothing though the check had passed */
    for (size_t i = 0; i < d->ncmds; i++) {
        redisReply *r = agg_get_reply(a);
        if (!r) return -1;
        if (i == FOLD_CMD_CHECK) {
            if ((checked = status_of(r)) < 0) return bad(a, s, "apply check on", r);
        } else if (i + 1 < d->ncmds) {      /* +OK, or +QUEUED in the transaction */
            if (r->type != REDIS_REPLY_STATUS) return bad(a, s, "apply on", r);
        } else if (r->type == REDIS_REPLY_NIL) {
            /* EXEC ran nothing: the check refused, or a watched key moved
             * since (another aggregator's cursor, a withdrawal). */
            aborted = checked == FOLD_APPLIED;
            status = aborted ? FOLD_MOVED : checked;
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == d->ncmds - FOLD_CMD_SCRIPT - 1) {
            for (size_t k = 0; k < r->elements; k++)
                if (r->element[k]->type == REDIS_REPLY_ERROR) {
                    bad_in(a, s, "apply on", r->element[k]);
                    freeReplyObject(r);
                    return -1;
                }
            status = status_of(r->element[0]);
            if (status != FOLD_APPLIED)     /* entries deleted after the check (fold.h) */
                log_warn("%s: entries deleted while a batch was applied; its visit states were "
                         "written, its counts were not; reading again", s->name);
        } else {
            return bad(a, s, "apply on", r);
        }
        freeReplyObject(r);
    }
    int rc = 0;
    if (status == FOLD_APPLIED) {
        snprintf(s->cursor, sizeof s->cursor, "%s", d->last);
        a->stats.read += d->entries;
        a->stats.counted += d->counted;
        a->stats.skipped += d->skipped;
        a->stats.dropped += d->dropped;
        a->stats.batches++;
        log_debug("%s: applied %zu entries up to %s", s->name, d->entries, s->cursor);
        rc = 1;
    } else if (status == FOLD_MOVED) {
        /* Another aggregator counted the range: start from its cursor. Or,
         * where EXEC ran nothing after the check passed, the cursor or the
         * withdrawn generation was written meanwhile (another aggregator,
         * an erasure, a purge): which one is not told, so read it again. */
        s->cursor_known = 0;
        if (aborted)
            log_info("%s: cursor or withdrawn generation written while a batch was applied; reading again",
                     s->name);
        else
            log_info("%s: cursor moved by another aggregator; reading again", s->name);
    } else if (status == FOLD_DELETED || status == FOLD_WITHDRAWN) {
        log_debug("%s: entries deleted or a visitor withdrawn while folding; reading again", s->name);
    } else {
        snprintf(a->err, sizeof a->err, "apply on %.120s: status %lld", s->name, status);
        return -1;
    }
    if (rc == 0) fold_forget(s->fold);
    return rc;
}

/* The lease is good for the rest of a turn without asking Redis (lease()
 * would say 1 without a command): a turn pipelines its commands, and a
 * lease command in their midst would take another's reply. */
static int lease_fresh(const struct agg_site *s)
{
    return s->lease_until - FOLD_LEASE_MS / 2 > clock_now_ms();
}

/* Whether the turn of s that began at start (ms) goes on to its batch i
 * (from 0): the first RUN_BATCHES, and then, for RUN_ALONE_MS, while no
 * other site is known to wait. A turn's end costs a batch applied and a
 * range read without the other side working (~40 ms at 20,000 hits),
 * so a lone backlog is not cut every RUN_BATCHES. */
static int turn_goes_on(const struct agg *a, const struct agg_site *s, int64_t start, int i)
{
    if (i < RUN_BATCHES) return 1;
    int64_t now = clock_now_ms();
    if (now - start >= RUN_ALONE_MS) return 0;
    for (size_t k = 0; k < a->nsites; k++) {
        const struct agg_site *o = &a->sites[k];
        if (o != s && (o->ready || (o->busy_until && o->busy_until <= now))) return 0;
    }
    return 1;
}

/* Folds s for one turn: a batch, or, while they come back full (a backlog),
 * more (turn_goes_on), pipelined so that Redis and the aggregator work side
 * by side. *got = entries read, *again = more may be waiting (a full batch
 * applied, or one refused and to be read again). 0, or -1; after -1 the
 * connection may hold unread replies: every caller drops it (agg_run).
 *
 * A batch goes through: its reads (visit states, capped keys) sent, their
 * answers counted (fold_compute), its script applied. With a backlog, one
 * write sends batch k+1's reads and the read of range k+2, as soon as
 * range k+1 is in the fold: behind batch k-1's script, which Redis may
 * still be running. Once k+1's reads are answered batch k's script goes,
 * and Redis applies k while the aggregator counts k+1 -- the states k
 * writes laid over what the reads answered (fold_keep_visits,
 * fold_overlay) -- and then takes range k+2 (the rest of its answer comes
 * after k's script) into the fold. k+1's script is held until k's reply
 * says it was applied. Where k+1 reads what k writes beyond visit states
 * (fold_reads_after_apply: the dedupe records of replayed hits, a capped
 * key k wrote without having it loaded), k's script goes first and k+1's
 * reads after it, without the overlay, once k-1's reply says it was
 * applied.
 *
 * A range read ahead is read as if the batches before it were applied --
 * past the last id of the batch before it, its length less the entries
 * the scripts still to run then trim -- and each script checks that, as
 * any batch's: if one was not applied, the next finds the cursor or the
 * counts other than it was told and is refused. On a refusal, whatever was
 * read or counted past the cursor is forgotten and read again. What was
 * read ahead never outlives the turn: two ranges at most in memory,
 * whatever the number of sites with a backlog. */
static int fold_site(struct agg *a, struct agg_site *s, size_t *got, int *again)
{
    *got = 0;
    *again = 0;
    if (read_cursor(a, s) < 0) return -1;
    if (!s->fold && !(s->fold = fold_new(s->name, s->zone, a->cfg->aggregator.max_members,
                                             a->cfg->aggregator.max_page_visitors))) {
        snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
        return -1;
    }
    fold_set_dedupe_window(s->fold, (int64_t)a->cfg->retention.raw_max_age_s * 1000);
    fold_set_visit_cache(s->fold, &a->visit_cache_used, (size_t)a->cfg->aggregator.visit_cache);
    fold_set_retention(s->fold, (int64_t)a->cfg->retention.aggregates_s * 1000);
    const size_t batch = (size_t)a->cfg->aggregator.batch;
    struct range cur = {0}, next = {0};
    struct batch_done sent = {0}, now;
    int pending = 0;        /* sent: the batch before, counted, its script not yet answered */
    int script_first = 0;   /* its script went before this batch's reads (else it is held) */
    int rc = 0, ahead;
    size_t ncmds;
    size_t nreads, unread = 0;
    redisReply *r;

    size_t want = ramp_first(batch);    /* entries asked of the range in the fold */
    if (append_range(a, s, s->cursor, want) < 0 || get_range(a, s, &cur) < 0) return -1;
    if (range_entries(&cur) == 0) goto out;
    if (add_range(a, s, &cur) < 0) goto fail;
    const int64_t start = clock_now_ms();
    ahead = range_entries(&cur) >= want && turn_goes_on(a, s, start, 1);
    if (fold_reads(s->fold, &nreads) < 0) goto oom;
    if (send_reads(a, s, nreads, ahead, ramp_next(want, batch)) < 0) goto fail;
    for (int i = 0;; i++) {
        size_t n = range_entries(&cur);
        *got += n;
        if (pending && script_first) {          /* its script came first */
            pending = 0;
            if ((rc = applied(a, s, &sent)) < 0) goto fail;
            if (rc == 0) {
                unread = send_reads_replies(nreads, ahead);
                goto refused;
            }
        }
        fold_overlay(s->fold, pending);
        if (get_reads(a, s, nreads) < 0) goto fail;
        fold_overlay(s->fold, 0);
        /* The batch before is applied while this one is counted. Its script
         * goes now that this batch's reads are answered; the range read
         * with them may still be coming: Redis writes a client's replies
         * 64 KiB per turn of its loop and runs a script whole, so the rest
         * of it comes once the script is done, by when this batch is
         * counted. */
        if (pending && (agg_append_held(a) < 0 || agg_flush(a) < 0)) goto fail;
        if (hold_apply(a, s, pending ? sent.last : s->cursor, cur.length, cur.added, &ncmds) < 0) goto fail;
        if (fold_keep_visits(s->fold) < 0) goto oom;
        batch_done_of(s->fold, &now);
        now.ncmds = ncmds;
        if (ahead) {
            if (get_range(a, s, &next) < 0) goto fail;
            /* the entries trimmed by the scripts that run after this read */
            next.length -= (long long)(n + (pending ? sent.entries : 0));
        }
        int more = range_entries(&next) > 0 && turn_goes_on(a, s, start, i + 1) && !agg_stopping(a) &&
                   lease_fresh(s);
        if (more) {                             /* the next batch, while Redis applies */
            range_free(&cur);
            cur = next;
            memset(&next, 0, sizeof next);
            want = ramp_next(want, batch);
            if (add_range(a, s, &cur) < 0) goto fail;
            if (fold_reads(s->fold, &nreads) < 0) goto oom;
        }
        /* The next batch's reads (and the range past it) go now, behind
         * the script Redis is running, so that Redis turns to them as soon
         * as it is done, not a round trip later. Not where this batch's
         * script must go before them: that waits for the reply saying the
         * one before was applied, so that a script is never sent behind a
         * refused one. */
        int early = 0;
        if (more) {
            ahead = range_entries(&cur) >= want && turn_goes_on(a, s, start, i + 2);
            script_first = fold_reads_after_apply(s->fold);
            early = !script_first;
            if (early && send_reads(a, s, nreads, ahead, ramp_next(want, batch)) < 0) goto fail;
        }
        if (pending) {                          /* the batch before, applied meanwhile */
            pending = 0;
            if ((rc = applied(a, s, &sent)) < 0) goto fail;
            if (rc == 0) {
                unread = early ? send_reads_replies(nreads, ahead) : 0;
                goto refused;
            }
        }
        if (!more) {
            if (agg_append_held(a) < 0 || agg_flush(a) < 0 || (rc = applied(a, s, &now)) < 0)
                goto fail;
            if (rc == 0) goto refused;
            *again = n >= want;
            break;
        }
        if (script_first && (agg_append_held(a) < 0 || send_reads(a, s, nreads, ahead, ramp_next(want, batch)) < 0))
            goto fail;
        sent = now;
        pending = 1;
    }
out:
    range_free(&cur);
    range_free(&next);
    return 0;
refused:
    /* Nothing past the cursor counts: read what is still coming, forget it. */
    for (; unread > 0; unread--) {
        if (!(r = agg_get_reply(a))) goto fail;
        freeReplyObject(r);
    }
    *again = 1;
    range_free(&cur);
    range_free(&next);
    return 0;
oom:
    snprintf(a->err, sizeof a->err, "out of memory folding %.120s", s->name);
fail:
    fold_forget(s->fold);       /* applied or not: we cannot tell */
    range_free(&cur);
    range_free(&next);
    return -1;
}

/* One batch of every site that may have hits waiting and that this process
 * may fold; *got = entries read. With waiting (run --once), *waiting = sites
 * another aggregator holds whose stream is not empty. A site stays ready
 * while its batches come back full; the others wait for wait_for_hits() to
 * mark them. */
static int fold_all(struct agg *a, size_t *got, size_t *waiting)
{
    *got = 0;
    if (waiting) *waiting = 0;
    for (size_t i = 0; i < a->nsites && !agg_stopping(a); i++) {
        struct agg_site *s = &a->sites[i];
        int64_t now = clock_now_ms();
        if (!s->ready && !(s->busy_until && s->busy_until <= now)) continue;
        int held = lease(a, s, now);
        if (held < 0) return -1;
        if (!held && waiting) {
            /* Folded raw hits are trimmed: what is left is still to count. */
            redisReply *r = agg_command(a, "XLEN %s", s->stream);
            if (!r) return -1;
            *waiting += r->type == REDIS_REPLY_INTEGER && r->integer > 0;
            freeReplyObject(r);
        }
        if (!held) continue;
        size_t n;
        if (fold_site(a, s, &n, &s->ready) < 0) return -1;
        *got += n;
    }
    return 0;
}

static int waits_here(const struct agg_site *s, int64_t now)
{
    return s->cursor_known && !(s->busy_until > now);
}

/* Waits up to block_ms for a hit past the cursor of a site no other
 * aggregator holds (or for the next look at one another holds). 0, or -1. */
static int wait_for_hits(struct agg *a, long block_ms)
{
    size_t n = 0, cap = 6 + 2 * a->nsites;
    const char **argv = malloc(cap * sizeof *argv);
    if (!argv) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    int64_t now = clock_now_ms();
    for (size_t i = 0; i < a->nsites; i++) {
        const struct agg_site *s = &a->sites[i];
        if (s->busy_until > now && s->busy_until - now < block_ms) block_ms = (long)(s->busy_until - now);
    }
    char count_block[24];
    snprintf(count_block, sizeof count_block, "%ld", block_ms > 1 ? block_ms : 1);
    argv[n++] = "XREAD";
    argv[n++] = "COUNT";
    argv[n++] = "1";
    argv[n++] = "BLOCK";
    argv[n++] = count_block;
    argv[n++] = "STREAMS";
    size_t first = n;
    /* Every site another aggregator does not hold: a lease is taken when
     * hits arrive, not kept while a site is quiet (10,000 idle sites cost
     * no renewals). */
    for (size_t i = 0; i < a->nsites; i++)
        if (waits_here(&a->sites[i], now)) argv[n++] = a->sites[i].stream;
    size_t nstreams = n - first;
    for (size_t i = 0; i < a->nsites; i++)
        if (waits_here(&a->sites[i], now))
            argv[n++] = a->sites[i].cursor[0] ? a->sites[i].cursor : "0-0";
    int rc = 0;
    if (nstreams == 0) {
        agg_sleep(a, block_ms);
    } else {
        redisReply *r = agg_command_argv(a, (int)n, argv, NULL);
        if (!r) rc = -1;
        else if (r->type == REDIS_REPLY_ERROR) {
            snprintf(a->err, sizeof a->err, "XREAD: %.200s", r->str);
            rc = -1;
        } else if (r->type == REDIS_REPLY_ARRAY) {
            /* The streams that have a hit past their cursor, in the order
             * they were asked for: one walk over the sites finds them all. */
            size_t k = 0;
            for (size_t i = 0; i < r->elements; i++) {
                const redisReply *sr = r->element[i];
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements < 1 || sr->element[0]->type != REDIS_REPLY_STRING)
                    continue;
                size_t from = k;
                while (k < a->nsites && strcmp(a->sites[k].stream, sr->element[0]->str) != 0) k++;
                if (k == a->nsites) {           /* not in order after all: look from the start */
                    for (k = 0; k < from && strcmp(a->sites[k].stream, sr->element[0]->str) != 0; k++) {}
                    if (k == from) continue;
                }
                a->sites[k].ready = 1;
            }
        }
        if (r) freeReplyObject(r);
    }
    free(argv);
    return rc;
}

int agg_run(struct agg *a, int once)
{
    long backoff = 100;
    int failures = 0;
    int64_t next_discover = 0, next_purge = 0, next_archive = 0;
    long interval_ms = a->cfg->aggregator.purge_interval_s * 1000;
    long archive_ms = a->cfg->aggregator.archive_interval_s * 1000;
    log_info("consumer %s, %s", a->consumer, once ? "draining once" : "running");
    while (!agg_stopping(a)) {
        if (!a->rc) {
            if (agg_connect(a) < 0) goto fail;
            next_discover = 0;
        }
        int64_t now = clock_now_ms();
        if (now >= next_discover) {
            if (agg_discover(a) < 0) goto fail;
            next_discover = now + DISCOVER_EVERY_MS;
        }
        if (!once && interval_ms > 0 && now >= next_purge) {
            if (purge_run(a, now, 0, NULL) < 0) goto fail;
            next_purge = now + interval_ms;
        }
        if (!once && archive_ms > 0 && now >= next_archive) {
            /* An archive that cannot be written (disk full, a broken
             * chain) must not stop the counting: the receipts wait in
             * Redis, and the next turn tries again. */
            if (archive_run(a, now, NULL) < 0) {
                if (!a->rc) goto fail;
                log_error("archive: %s; receipts stay in Redis, next try in %ld s", a->err, archive_ms / 1000);
            }
            next_archive = now + archive_ms;
        }
        size_t got, waiting = 0;
        if (fold_all(a, &got, once ? &waiting : NULL) < 0) goto fail;
        /* --once ends when every queued hit is counted: hits of a site
         * another aggregator holds (or held, until its lease runs out, if
         * it died) are waited for. */
        if (once && got == 0 && waiting == 0) break;
        if (once && got == 0) agg_sleep(a, 100);
        if (!once && got == 0 && wait_for_hits(a, a->cfg->aggregator.block_ms) < 0) goto fail;
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
    release_leases(a);
    log_info("done: %llu entries read, %llu counted, %llu dropped (withdrawn visitors), "
             "%llu not raw hits",
             (unsigned long long)a->stats.read, (unsigned long long)a->stats.counted,
             (unsigned long long)a->stats.dropped, (unsigned long long)a->stats.skipped);
    return 0;
}
