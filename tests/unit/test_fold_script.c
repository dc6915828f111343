/* test_fold_script.c -- the fold in a real Redis: what a batch counts, once.
 *
 * Each test queues packed raw hits (rawhit.h) with XADD, then reads, folds
 * and applies them the way run.c does: the cursor, XINFO STREAM + XRANGE past
 * it, fold_add(), one HMGET per day of visit state, fold_compute(),
 * fold_argv() and the embedded fold_script by its SHA1; then it reads back
 * the aggregate keys, the cursor and the stream. Hit times are fixed
 * (2024-05-01, UTC) and carried in the hits (RAWHIT_F_TIME).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agg.h"
#include "cfg.h"
#include "clock.h"
#include "fold.h"
#include "hll.h"
#include "keys.h"
#include "rawhit.h"
#include "redis_server.h"

#define SITE "example.com"
#define DAY "20240501"
#define T0 1714564800000LL      /* 2024-05-01T12:00:00Z */
#define MIN (60 * 1000LL)
#define VISITOR "0123456789abcdef"

static struct redis_server rs;
#define CMD(...) redis_server_cmd(&rs, __VA_ARGS__)
static int max_members = 1000, max_page_visitors = 1000;   /* a test may lower them */
static struct clock_zone *utc;
static char sha[41];

/* ------------------------------------------------------------------------ */
/* Redis                                                                     */
/* ------------------------------------------------------------------------ */

static long long integer(redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : 0;
    freeReplyObject(r);
    return v;
}

static const char *day_key(const char *dim)
{
    static char key[256];
    assert_true(keys_day(key, sizeof key, SITE, DAY, dim) > 0);
    return key;
}

static const char *stream_key(const char *site)
{
    static char key[600];
    assert_true(keys_hits(key, sizeof key, site) > 0);
    return key;
}

/* The day's counter dim[member]; 0 when absent. */
static long long count(const char *dim, const char *member)
{
    return integer(CMD("HGET %s %s", day_key(dim), member));
}

static long long members(const char *dim)
{
    return integer(CMD("HLEN %s", day_key(dim)));
}

static long long visitors(const char *page)
{
    char key[256];
    assert_true(keys_uv(key, sizeof key, SITE, DAY, page) > 0);
    return integer(CMD("PFCOUNT %s", key));
}

static long long stream_length(const char *site)
{
    return integer(CMD("XLEN %s", stream_key(site)));
}

static void xadd_raw(const char *site, const char *field, const char *value, size_t len)
{
    const char *argv[] = {"XADD", stream_key(site), "*", field, value};
    size_t lens[] = {4, strlen(argv[1]), 1, strlen(field), len};
    redisReply *r = redisCommandArgv(rs.rc, 5, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
}

/* Queues a packed hit: a pageview when name is NULL, with props (JSON) when
 * not NULL, an engagement when sd >= 0. */
static void hit_full(int64_t t, const char *name, const char *path, const char *visitor,
                     const char *props, int sd, uint32_t engaged_ms)
{
    struct rawhit h = {.id = (uint64_t)t, .flags = RAWHIT_F_TIME, .t_ms = t,
                       .device = RAWHIT_DEVICE_DESKTOP, .engagement = sd >= 0,
                       .scroll_depth = sd >= 0 ? (unsigned)sd : 0, .engaged_ms = engaged_ms};
    if (visitor) {
        assert_int_equal(rawhit_visitor_from_hex(visitor, strlen(visitor), h.visitor), 0);
        h.flags |= RAWHIT_F_VISITOR;
    }
    rawhit_set(&h, RAWHIT_PATH, path);
    rawhit_set(&h, RAWHIT_BROWSER, "Firefox");
    rawhit_set(&h, RAWHIT_OS, "Linux");
    rawhit_set(&h, RAWHIT_NAME, name);
    rawhit_set(&h, RAWHIT_REFERRER, "news.example");
    rawhit_set(&h, RAWHIT_COUNTRY, "DE");
    rawhit_set(&h, RAWHIT_PROPS, props);
    char buf[RAWHIT_MAX];
    size_t n = rawhit_encode(&h, buf, sizeof buf);
    assert_true(n > 0);
    xadd_raw(SITE, RAWHIT_FIELD, buf, n);
}

static void hit(int64_t t, const char *name, const char *path, const char *visitor)
{
    hit_full(t, name, path, visitor, NULL, -1, 0);
}

static void engagement(int64_t t, const char *path, const char *visitor, int sd, uint32_t ms)
{
    hit_full(t, NULL, path, visitor, NULL, sd, ms);
}

static void pageview(int64_t t, const char *path, const char *visitor)
{
    hit(t, NULL, path, visitor);
}

/* ------------------------------------------------------------------------ */
/* The fold, as run.c drives it                                              */
/* ------------------------------------------------------------------------ */

struct batch {
    struct fold *fold;
    int own;                    /* fold made for this batch */
    redisReply *range;          /* the entries fold_add() points into */
    char expect[64];
    long long length, added;
    size_t entries;
    int read_withdrawn;         /* the batch read the withdrawn set */
    char reads[256];            /* the commands of its reads, space-separated */
};

/* Reads up to count entries past site's cursor into a batch of fold f (kept
 * from batch to batch, as run.c keeps it), or of a fresh fold when f is NULL. */
static struct batch *read_batch_into(struct fold *f, const char *site, int count)
{
    struct batch *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->own = !f;
    assert_non_null(b->fold = f ? f : fold_new(site, utc, max_members, max_page_visitors));
    fold_reset(b->fold);
    char ck[600];
    assert_true(keys_cursor(ck, sizeof ck, site) > 0);
    redisReply *c = CMD("GET %s", ck);
    snprintf(b->expect, sizeof b->expect, "%s", c->type == REDIS_REPLY_STRING ? c->str : "");
    freeReplyObject(c);
    assert_true(keys_withdrawn_gen(ck, sizeof ck, site) > 0);
    c = CMD("GET %s", ck);
    assert_int_equal(fold_withdrawn_gen(b->fold, c->type == REDIS_REPLY_STRING ? c->str : "",
                                        c->type == REDIS_REPLY_STRING ? c->len : 0), 0);
    freeReplyObject(c);
    redisReply *info = redisCommand(rs.rc, "XINFO STREAM %s", stream_key(site));
    assert_non_null(info);
    for (size_t i = 0; info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
        if (strcmp(info->element[i]->str, "length") == 0) b->length = info->element[i + 1]->integer;
        if (strcmp(info->element[i]->str, "entries-added") == 0) b->added = info->element[i + 1]->integer;
    }
    freeReplyObject(info);
    char from[80];
    snprintf(from, sizeof from, b->expect[0] ? "(%s" : "-", b->expect);
    b->range = CMD("XRANGE %s %s + COUNT %d", stream_key(site), from, count);
    const redisReply *r = b->range;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *fields = e->element[1];
        const char *fv[64];
        size_t fvlen[64];
        assert_true(fields->elements <= 64);
        for (size_t k = 0; k < fields->elements; k++) {
            fv[k] = fields->element[k]->str;
            fvlen[k] = fields->element[k]->len;
        }
        assert_int_equal(fold_add(b->fold, e->element[0]->str, e->element[0]->len, fv, fvlen, fields->elements), 0);
    }
    b->entries = r->elements;
    assert_int_equal(fold_entries(b->fold), b->entries);
    /* The reads, each answered as it is sent (run.c pipelines them). */
    size_t nq;
    assert_int_equal(fold_reads(b->fold, &nq), 0);
    for (size_t i = 0; i < nq; i++) {
        int argc;
        const char *const *argv;
        const size_t *lens;
        assert_int_equal(fold_read(b->fold, i, &argc, &argv, &lens), 0);
        if (strcmp(argv[0], "ZRANGE") == 0) b->read_withdrawn = 1;
        size_t at = strlen(b->reads);
        snprintf(b->reads + at, sizeof b->reads - at, "%s%.*s", at ? " " : "", (int)lens[0], argv[0]);
        redisReply *m = redisCommandArgv(rs.rc, argc, (const char **)argv, lens);
        assert_non_null(m);
        if (m->type == REDIS_REPLY_INTEGER) {          /* HLEN */
            char num[24];
            const char *one = num;
            size_t len = (size_t)snprintf(num, sizeof num, "%lld", m->integer);
            assert_int_equal(fold_read_answer(b->fold, i, 1, &one, &len), 0);
            freeReplyObject(m);
            continue;
        }
        assert_int_equal(m->type, REDIS_REPLY_ARRAY);
        const char *vals[4096];
        size_t vlens[4096];
        assert_true(m->elements <= 4096);
        for (size_t j = 0; j < m->elements; j++) {
            vals[j] = m->element[j]->type == REDIS_REPLY_STRING ? m->element[j]->str : NULL;
            vlens[j] = m->element[j]->len;
        }
        assert_int_equal(fold_read_answer(b->fold, i, m->elements, vals, vlens), 0);
        freeReplyObject(m);
    }
    return b;
}

/* Applies b as run.c does, its block (fold_block) in one write: FOLD_APPLIED,
 * FOLD_MOVED, FOLD_DELETED or FOLD_WITHDRAWN. The hits are of 2024, but the
 * fold runs now (now_ms is kept for the reader: when the test's story says the
 * fold runs): visit state expires on Redis's real clock. */
static size_t lay_out(struct batch *b);
static long long send_block(struct batch *b, size_t ncmds);

static long long apply(struct batch *b, int64_t now_ms)
{
    (void)now_ms;
    return send_block(b, lay_out(b));
}

/* Sends b's block, laid out by fold_block(), and reads its replies: the status. */
static long long send_block(struct batch *b, size_t ncmds)
{
    for (size_t i = 0; i < ncmds; i++) {
        int argc;
        const char *const *argv;
        const size_t *len;
        fold_block_cmd(b->fold, i, &argc, &argv, &len);
        assert_int_equal(redisAppendCommandArgv(rs.rc, argc, (const char **)argv, len), REDIS_OK);
    }
    assert_int_equal(fold_keep_visits(b->fold), 0);     /* as run.c, after every batch */
    long long checked = -1, status = -1;
    for (size_t i = 0; i < ncmds; i++) {
        redisReply *r;
        assert_int_equal(redisGetReply(rs.rc, (void **)&r), REDIS_OK);
        if (r->type == REDIS_REPLY_ERROR) fail_msg("apply, command %zu: %s", i, r->str);
        if (i == FOLD_CMD_CHECK) {
            assert_int_equal(r->type, REDIS_REPLY_ARRAY);
            checked = r->element[0]->integer;
        } else if (i + 1 == ncmds && r->type == REDIS_REPLY_NIL) {
            assert_int_not_equal(checked, FOLD_APPLIED);    /* nothing else writes here */
            status = checked;
        } else if (i + 1 == ncmds) {
            assert_int_equal(r->type, REDIS_REPLY_ARRAY);
            assert_int_equal(r->elements, ncmds - FOLD_CMD_SCRIPT - 1);
            for (size_t k = 0; k < r->elements; k++)
                if (r->element[k]->type == REDIS_REPLY_ERROR) fail_msg("apply: %s", r->element[k]->str);
            assert_int_equal(r->element[0]->type, REDIS_REPLY_ARRAY);
            status = r->element[0]->element[0]->integer;
            assert_int_equal(status, checked);
        } else {
            assert_int_equal(r->type, REDIS_REPLY_STATUS);
        }
        freeReplyObject(r);
    }
    return status;
}

/* The visit states of DAY held in Redis. */
static long long visit_states(void)
{
    char vk[256];
    assert_true(keys_visits(vk, sizeof vk, SITE, DAY) > 0);
    return integer(CMD("HLEN %s", vk));
}

static struct batch *read_batch(const char *site, int count)
{
    return read_batch_into(NULL, site, count);
}

static void free_batch(struct batch *b)
{
    if (b->own) fold_free(b->fold);
    freeReplyObject(b->range);
    free(b);
}

/* The next batch of a fold kept across batches (as run.c keeps it), read
 * and applied. */
static void apply_next(struct fold *f, int64_t now_ms)
{
    struct batch *b = read_batch_into(f, SITE, 1000);
    assert_int_equal(apply(b, now_ms), FOLD_APPLIED);
    free_batch(b);
}

/* Reads, folds and applies everything queued on SITE, in batches of count. */
static size_t fold_everything(int64_t now_ms, int count)
{
    size_t total = 0;
    for (;;) {
        struct batch *b = read_batch(SITE, count);
        size_t n = b->entries;
        if (n) assert_int_equal(apply(b, now_ms), FOLD_APPLIED);
        free_batch(b);
        if (!n) return total;
        total += n;
    }
}

static size_t fold_all(int64_t now_ms)
{
    return fold_everything(now_ms, 1000);
}

static char *cursor(void)
{
    static char out[64];
    char ck[600];
    keys_cursor(ck, sizeof ck, SITE);
    redisReply *r = CMD("GET %s", ck);
    snprintf(out, sizeof out, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return out;
}

static char *last_id(void)
{
    static char out[64];
    redisReply *r = CMD("XREVRANGE %s + - COUNT 1", stream_key(SITE));
    assert_true(r->elements == 1);
    snprintf(out, sizeof out, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Exactly once                                                              */
/* ------------------------------------------------------------------------ */

static void counts_a_batch_once_and_trims_its_raw_entries(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/b", "00000000000000a2");
    pageview(T0 + 2 * MIN, "/a", "00000000000000a3");
    char last[64];
    snprintf(last, sizeof last, "%s", last_id());

    assert_int_equal(fold_all(T0 + 2 * MIN), 3);

    assert_int_equal(count("totals", "pageviews"), 3);
    assert_int_equal(count("totals", "visits"), 3);
    assert_int_equal(count("totals", "bounces"), 3);
    assert_int_equal(count("page", "/a"), 2);
    assert_int_equal(count("page", "/b"), 1);
    assert_int_equal(count("entry", "/a"), 2);
    assert_int_equal(count("exit", "/b"), 1);
    assert_int_equal(count("source", "news.example"), 3);
    assert_int_equal(count("country", "DE"), 3);
    assert_int_equal(count("browser", "Firefox"), 3);
    assert_int_equal(count("device", "desktop"), 3);
    assert_int_equal(visitors(NULL), 3);
    assert_int_equal(visitors("/a"), 2);
    char hour[256];
    assert_true(keys_hour(hour, sizeof hour, SITE, DAY "12") > 0);
    assert_int_equal(integer(CMD("HGET %s pageviews", hour)), 3);
    assert_int_equal(stream_length(SITE), 0);
    assert_string_equal(cursor(), last);
}

static void a_replayed_batch_changes_nothing(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/a", "00000000000000a2");
    struct batch *b = read_batch(SITE, 1000);
    assert_int_equal(apply(b, T0 + MIN), FOLD_APPLIED);

    /* A crash between the script and its reply: the same batch again. */
    assert_int_equal(apply(b, T0 + MIN), FOLD_MOVED);

    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("totals", "visits"), 2);
    assert_int_equal(count("page", "/a"), 2);
    assert_int_equal(stream_length(SITE), 0);
    free_batch(b);
}

static void two_aggregators_on_one_range_count_it_once(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/b", "00000000000000a2");
    struct batch *first = read_batch(SITE, 1000), *second = read_batch(SITE, 1000);

    assert_int_equal(apply(second, T0 + MIN), FOLD_APPLIED);
    assert_int_equal(apply(first, T0 + MIN), FOLD_MOVED);

    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("page", "/a"), 1);
    free_batch(first);
    free_batch(second);
}

static void an_entry_deleted_after_the_read_sends_the_batch_back(void **state)
{
    (void)state;
    pageview(T0, "/kept", "00000000000000a1");
    pageview(T0 + MIN, "/withdrawn", "00000000000000a2");
    struct batch *b = read_batch(SITE, 1000);
    assert_int_equal(b->entries, 2);
    /* Withdrawn (DELETE /consent, forget) or purged while the batch was in hand. */
    freeReplyObject(CMD("XDEL %s %s", stream_key(SITE), last_id()));

    assert_int_equal(apply(b, T0 + MIN), FOLD_DELETED);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(visit_states(), 0);        /* the check refused: EXEC ran nothing */
    assert_int_equal(stream_length(SITE), 1);
    assert_string_equal(cursor(), "");

    /* Read again, without the deleted hit. */
    assert_int_equal(fold_all(T0 + MIN), 1);
    assert_int_equal(count("page", "/kept"), 1);
    assert_int_equal(count("page", "/withdrawn"), 0);
    assert_int_equal(count("totals", "pageviews"), 1);
    assert_int_equal(visitors(NULL), 1);
    free_batch(b);
}

/* A withdrawal as erase.lua writes it: the visitor's 8 bytes in the withdrawn
 * set until `until` (ms), the generation raised. */
static void withdraw(const char *visitor, long long until)
{
    unsigned char v[RAWHIT_VISITOR_LEN];
    assert_int_equal(rawhit_visitor_from_hex(visitor, strlen(visitor), v), 0);
    char key[600];
    assert_true(keys_withdrawn(key, sizeof key, SITE) > 0);
    freeReplyObject(redisCommand(rs.rc, "ZADD %s %lld %b", key, until, v, sizeof v));
    assert_true(keys_withdrawn_gen(key, sizeof key, SITE) > 0);
    freeReplyObject(CMD("INCR %s", key));
}

static long long audit_drops(void)
{
    redisReply *r = CMD("XRANGE %s - +", KEYS_AUDIT);
    long long hits = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        int drop = 0;
        long long n = 0;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "action") == 0) drop = strcmp(f->element[k + 1]->str, "drop") == 0;
            if (strcmp(f->element[k]->str, "hits") == 0) n = atoll(f->element[k + 1]->str);
        }
        if (drop) hits += n;
    }
    freeReplyObject(r);
    return hits;
}

static void a_withdrawn_visitors_hits_are_dropped_uncounted_and_trimmed(void **state)
{
    (void)state;
    long long later = clock_now_ms() + 3600 * 1000LL;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/gone", "00000000000000a2");
    hit(T0 + 2 * MIN, "signup", "/gone", "00000000000000a2");
    pageview(T0 + 3 * MIN, "/b", "00000000000000a1");
    withdraw("00000000000000a2", later);

    assert_int_equal(fold_all(T0 + 3 * MIN), 4);
    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("totals", "visits"), 1);
    assert_int_equal(count("totals", "events"), 0);
    assert_int_equal(count("page", "/gone"), 0);
    assert_int_equal(visitors(NULL), 1);
    /* Deleted with the range, and the deletion counted in the audit trail. */
    assert_int_equal(stream_length(SITE), 0);
    assert_int_equal(audit_drops(), 2);
}

/* The one gap fold.h owns up to: an entry deleted, by something that does not
 * raise the withdrawn generation, after the block's check passed and before
 * its EXEC. The script refuses inside EXEC; pageviews and page counts stay
 * exact, the visit states were written ahead (so the visits they begin are
 * lost when the batch is read again: fold.h). Driven by hand: the block up to EXEC, then an
 * XDEL from another connection, then EXEC. */
/* Two pageviews read as one batch whose block is sent up to its EXEC; then
 * a second connection deletes an entry before EXEC goes -- the second by
 * XDEL, or, as purge.c does, the first by XTRIM MINID with the withdrawn
 * generation raised in the same step: EXEC's reply. */
static redisReply *exec_after(int purge)
{
    pageview(T0, "/first", "00000000000000a1");
    char second[64];
    pageview(T0 + MIN, "/second", "00000000000000a2");
    snprintf(second, sizeof second, "%s", last_id());
    struct batch *b = read_batch(SITE, 1000);
    size_t ncmds;
    assert_int_equal(fold_compute(b->fold, clock_now_ms()), 0);
    assert_int_equal(fold_block(b->fold, b->expect, b->added, b->length, &ncmds), 0);
    for (size_t i = 0; i + 1 < ncmds; i++) {
        int argc;
        const char *const *argv;
        const size_t *len;
        fold_block_cmd(b->fold, i, &argc, &argv, &len);
        redisReply *r = redisCommandArgv(rs.rc, argc, (const char **)argv, len);
        assert_non_null(r);
        if (i == FOLD_CMD_CHECK) assert_int_equal(r->element[0]->integer, FOLD_APPLIED);
        freeReplyObject(r);
    }
    redisContext *other = redisConnect("127.0.0.1", rs.port);
    assert_true(other && !other->err);
    char stream[320], gen[320];
    assert_true(keys_hits(stream, sizeof stream, SITE) > 0);
    assert_true(keys_withdrawn_gen(gen, sizeof gen, SITE) > 0);
    if (purge) {
        redisAppendCommand(other, "MULTI");
        redisAppendCommand(other, "XTRIM %s MINID %s", stream, second);
        redisAppendCommand(other, "INCR %s", gen);
        redisAppendCommand(other, "EXEC");
        for (int i = 0; i < 4; i++) {
            redisReply *x = NULL;
            assert_int_equal(redisGetReply(other, (void **)&x), REDIS_OK);
            if (i == 3) assert_int_equal(x->element[0]->integer, 1);     /* the trim deleted the first */
            freeReplyObject(x);
        }
    } else {
        redisReply *x = redisCommand(other, "XDEL %s %s", stream, second);
        assert_int_equal(integer(x), 1);
    }
    redisFree(other);
    redisReply *r = redisCommand(rs.rc, "EXEC");
    fold_forget(b->fold);
    free_batch(b);
    return r;
}

/* After exec_after(): read again, the hit left (on page kept) is counted
 * once, the deleted one never, and the stream is empty. */
static void read_again_counts_only(const char *kept)
{
    assert_int_equal(fold_all(T0 + MIN), 1);
    assert_int_equal(count("totals", "pageviews"), 1);
    assert_int_equal(count("page", "/first"), strcmp(kept, "/first") == 0);
    assert_int_equal(count("page", "/second"), strcmp(kept, "/second") == 0);
    assert_int_equal(stream_length(SITE), 0);
}

static void an_entry_deleted_between_the_check_and_exec_is_not_counted(void **state)
{
    (void)state;
    /* An XDEL by hand: it raises nothing the block WATCHes (fold.h). */
    redisReply *r = exec_after(0);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->element[0]->integer, FOLD_DELETED);
    freeReplyObject(r);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(visit_states(), 2);        /* written ahead: the gap */

    read_again_counts_only("/first");
}

static void a_purge_between_the_check_and_exec_leaves_nothing_written(void **state)
{
    (void)state;
    redisReply *r = exec_after(1);
    assert_int_equal(r->type, REDIS_REPLY_NIL);     /* the generation moved: EXEC ran nothing */
    freeReplyObject(r);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(visit_states(), 0);
    assert_int_equal(stream_length(SITE), 1);

    read_again_counts_only("/second");
}

static void a_withdrawal_after_the_read_sends_the_batch_back(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/gone", "00000000000000a2");
    struct batch *b = read_batch(SITE, 1000);
    withdraw("00000000000000a2", clock_now_ms() + 3600 * 1000LL);
    assert_int_equal(apply(b, T0 + MIN), FOLD_WITHDRAWN);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(visit_states(), 0);        /* none written back for the withdrawn visitor */
    assert_int_equal(stream_length(SITE), 2);
    free_batch(b);

    assert_int_equal(fold_all(T0 + MIN), 2);
    assert_int_equal(count("totals", "pageviews"), 1);
    assert_int_equal(count("page", "/gone"), 0);
    assert_int_equal(audit_drops(), 1);
}

static void a_kept_fold_reads_the_withdrawn_set_only_when_it_changed(void **state)
{
    (void)state;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    long long later = clock_now_ms() + 3600 * 1000LL;
    /* Nobody withdrawn yet: nothing to read. */
    pageview(T0, "/a", "00000000000000a1");
    struct batch *b = read_batch_into(f, SITE, 1000);
    assert_false(b->read_withdrawn);
    assert_int_equal(apply(b, T0), FOLD_APPLIED);
    free_batch(b);

    withdraw("00000000000000a2", later);
    pageview(T0 + MIN, "/gone", "00000000000000a2");
    b = read_batch_into(f, SITE, 1000);
    assert_true(b->read_withdrawn);
    assert_int_equal(apply(b, T0 + MIN), FOLD_APPLIED);
    free_batch(b);

    /* Same generation: the copy in memory still holds, and still drops. */
    pageview(T0 + 2 * MIN, "/gone", "00000000000000a2");
    pageview(T0 + 2 * MIN, "/b", "00000000000000a1");
    b = read_batch_into(f, SITE, 1000);
    assert_false(b->read_withdrawn);
    assert_int_equal(apply(b, T0 + 2 * MIN), FOLD_APPLIED);
    free_batch(b);
    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("page", "/gone"), 0);
    assert_int_equal(audit_drops(), 2);
    fold_free(f);
}

static void withdrawn_entries_past_their_time_are_pruned(void **state)
{
    (void)state;
    withdraw("00000000000000a2", clock_now_ms() - 1000);
    withdraw("00000000000000a3", clock_now_ms() + 3600 * 1000LL);
    pageview(T0, "/a", "00000000000000a1");
    assert_int_equal(fold_all(T0), 1);
    char key[600];
    assert_true(keys_withdrawn(key, sizeof key, SITE) > 0);
    assert_int_equal(integer(CMD("ZCARD %s", key)), 1);
}

/* With retention.aggregates set, every aggregate key the batch writes expires
 * at its day + that retention + a day; other keys (cursor, visit state) keep
 * their own lifetimes. */
static void aggregate_keys_expire_after_their_retention(void **state)
{
    (void)state;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    const int64_t keep = 20LL * 365 * CLOCK_DAY_MS;   /* the hits are of 2024: past any shorter retention */
    fold_set_retention(f, keep);
    pageview(T0, "/a", "00000000000000a1");
    apply_next(f, T0);
    const long long want = (clock_utc_day(T0) + 2) * CLOCK_DAY_MS + keep;
    assert_int_equal(integer(CMD("PEXPIRETIME %s", day_key("totals"))), want);
    assert_int_equal(integer(CMD("PEXPIRETIME %s", day_key("page"))), want);
    char key[256];
    assert_true(keys_uv(key, sizeof key, SITE, DAY, NULL) > 0);
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), want);
    assert_true(keys_hour(key, sizeof key, SITE, DAY "12") > 0);
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), want);
    assert_true(keys_cursor(key, sizeof key, SITE) > 0);
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), -1);
    fold_free(f);
}

static void a_hit_queued_after_the_read_waits_for_the_next_batch(void **state)
{
    (void)state;
    pageview(T0, "/first", "00000000000000a1");
    struct batch *b = read_batch(SITE, 1000);
    pageview(T0 + MIN, "/later", "00000000000000a2");

    assert_int_equal(apply(b, T0 + MIN), FOLD_APPLIED);
    assert_int_equal(count("page", "/first"), 1);
    assert_int_equal(count("page", "/later"), 0);
    assert_int_equal(stream_length(SITE), 1);

    assert_int_equal(fold_all(T0 + MIN), 1);
    assert_int_equal(count("page", "/later"), 1);
    assert_int_equal(stream_length(SITE), 0);
    free_batch(b);
}

static void small_batches_add_up_to_the_same_counts(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        char v[17];
        snprintf(v, sizeof v, "%016x", i % 7);
        pageview(T0 + i * 1000, i % 2 ? "/odd" : "/even", v);
    }
    assert_int_equal(fold_everything(T0 + MIN, 3), 50);
    assert_int_equal(count("totals", "pageviews"), 50);
    assert_int_equal(count("page", "/odd"), 25);
    assert_int_equal(count("totals", "visits"), 7);
    assert_int_equal(count("totals", "bounces"), 0);
    assert_int_equal(visitors(NULL), 7);
}

static void the_apply_costs_one_argument_per_distinct_member_not_per_hit(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) pageview(T0 + i, "/same", i % 2 ? "00000000000000a1" : "00000000000000a2");
    struct batch *b = read_batch(SITE, 1000);
    const char **argv;
    const size_t *len;
    size_t argc;
    assert_int_equal(fold_compute(b->fold, T0 + MIN), 0);
    assert_int_equal(fold_argv(b->fold, sha, b->expect, b->added, b->length, &argv, &len, &argc), 0);
    /* 3 + keys, then the head; then ops for a handful of distinct
     * (key, member) pairs: far fewer than the 200 hits. */
    assert_true(argc < 200);
    free_batch(b);
}

/* The block's PFADDs (the day's and the pages' visitors) carry each
 * visitor once, however many of its hits the batch
 * holds, and count the same as one PFADD per hit would. */
static void a_visitors_hits_in_one_batch_add_it_once_to_each_hyperloglog(void **state)
{
    (void)state;
    for (int i = 0; i < 300; i++)
        pageview(T0 + i, i % 3 ? "/a" : "/b", i % 2 ? "00000000000000a1" : "00000000000000a2");
    struct batch *b = read_batch(SITE, 1000);
    size_t ncmds, pfadds = 0;
    assert_int_equal(fold_compute(b->fold, clock_now_ms()), 0);
    assert_int_equal(fold_block(b->fold, b->expect, b->added, b->length, &ncmds), 0);
    for (size_t i = 0; i < ncmds; i++) {
        int argc;
        const char *const *argv;
        const size_t *len;
        fold_block_cmd(b->fold, i, &argc, &argv, &len);
        if (len[0] != 5 || memcmp(argv[0], "PFADD", 5) != 0) continue;
        pfadds++;
        assert_int_equal(argc, 2 + 2);      /* PFADD key a1 a2: each once */
        assert_false(len[2] == len[3] && memcmp(argv[2], argv[3], len[2]) == 0);
    }
    /* the day's, /a's and /b's (hits of 2024 write no realtime minute) */
    assert_int_equal(pfadds, 3);
    free_batch(b);
    b = read_batch(SITE, 1000);
    assert_int_equal(apply(b, T0 + MIN), FOLD_APPLIED);
    free_batch(b);
    assert_int_equal(visitors(NULL), 2);
    assert_int_equal(visitors("/a"), 2);
    assert_int_equal(visitors("/b"), 2);
}

/* Lays out b's block, once, as run.c does: fold_compute() decides what is
 * sent. Its number of commands. */
static size_t lay_out(struct batch *b)
{
    size_t ncmds;
    assert_int_equal(fold_compute(b->fold, clock_now_ms()), 0);
    assert_int_equal(fold_block(b->fold, b->expect, b->added, b->length, &ncmds), 0);
    return ncmds;
}

/* The visitors a block of ncmds commands, laid out, PFADDs to key: the last
 * two hex digits of each, "a1 a3 ". */
static const char *pfadded(struct batch *b, size_t ncmds, const char *key)
{
    static char out[1024];
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ncmds; i++) {
        int argc;
        const char *const *argv;
        const size_t *len;
        fold_block_cmd(b->fold, i, &argc, &argv, &len);
        if (len[0] != 5 || memcmp(argv[0], "PFADD", 5) != 0 || len[1] != strlen(key) ||
            memcmp(argv[1], key, len[1]) != 0)
            continue;
        for (int k = 2; k < argc; k++)
            at += (size_t)snprintf(out + at, sizeof out - at, "%.*s ", 2, argv[k] + len[k] - 2);
    }
    return out;
}

/* A fold kept from batch to batch (run.c) sends a (HyperLogLog, visitor) once:
 * a visitor back on a page of today adds nothing new to it. A batch refused
 * makes it forget what it sent; the keys of older days are sent in full
 * (their retention purge may come sooner than the fold would know). */
static void a_kept_fold_sends_a_visitor_to_a_hyperloglog_once_until_a_batch_is_refused(void **state)
{
    (void)state;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    fold_set_retention(f, 400 * CLOCK_DAY_MS);
    int64_t t = clock_now_ms() - 2 * 3600 * 1000LL;    /* today's, before the realtime minutes */
    char today[CLOCK_DAY_LEN + 1], page[256], all[256], old[256];
    clock_format_day(clock_utc_day(t), today);
    assert_true(keys_uv(page, sizeof page, SITE, today, "/a") > 0);
    assert_true(keys_uv(all, sizeof all, SITE, today, NULL) > 0);
    assert_true(keys_uv(old, sizeof old, SITE, DAY, "/a") > 0);

    pageview(t, "/a", "00000000000000a1");
    pageview(t + 1, "/a", "00000000000000a2");
    pageview(T0, "/a", "00000000000000b1");
    struct batch *b = read_batch_into(f, SITE, 1000);
    size_t n = lay_out(b);
    assert_string_equal(pfadded(b, n, page), "a1 a2 ");
    assert_string_equal(pfadded(b, n, old), "b1 ");
    assert_int_equal(send_block(b, n), FOLD_APPLIED);
    free_batch(b);

    pageview(t + 2, "/a", "00000000000000a1");
    pageview(t + 3, "/a", "00000000000000a3");
    pageview(t + 4, "/b", "00000000000000a2");
    pageview(T0 + 1, "/a", "00000000000000b1");
    b = read_batch_into(f, SITE, 1000);
    n = lay_out(b);
    assert_string_equal(pfadded(b, n, page), "a3 ");
    assert_string_equal(pfadded(b, n, all), "a3 ");
    assert_string_equal(pfadded(b, n, old), "b1 ");      /* 2024: sent again */
    assert_int_equal(send_block(b, n), FOLD_APPLIED);
    free_batch(b);

    /* a4 is laid out, but the batch is refused (an entry of it deleted):
     * read again, a4 is sent again. */
    pageview(t + 5, "/a", "00000000000000a4");
    pageview(t + 6, "/a", "00000000000000a5");
    b = read_batch_into(f, SITE, 1000);
    n = lay_out(b);
    assert_string_equal(pfadded(b, n, page), "a4 a5 ");
    freeReplyObject(CMD("XDEL %s %s", stream_key(SITE), b->range->element[1]->element[0]->str));
    assert_int_equal(send_block(b, n), FOLD_DELETED);
    fold_forget(f);             /* as run.c does */
    free_batch(b);
    b = read_batch_into(f, SITE, 1000);
    n = lay_out(b);
    assert_string_equal(pfadded(b, n, page), "a4 ");
    assert_int_equal(send_block(b, n), FOLD_APPLIED);
    free_batch(b);
    fold_free(f);

    assert_int_equal(integer(CMD("PFCOUNT %s", page)), 4);
    assert_int_equal(integer(CMD("PFCOUNT %s", all)), 4);
    /* 2024's keys were past their 400 days: each PEXPIREAT deleted its key,
     * which is why a member of an old day is always sent */
    assert_int_equal(visitors("/a"), 0);
}

/* Reads the next batch into kept fold f, checks the members it sends to
 * HyperLogLog key, and applies it. */
static void batch_sends(struct fold *f, const char *key, const char *members)
{
    struct batch *b = read_batch_into(f, SITE, 1000);
    size_t n = lay_out(b);
    assert_string_equal(pfadded(b, n, key), members);
    assert_int_equal(send_block(b, n), FOLD_APPLIED);
    free_batch(b);
}

/* A purge that deletes today's keys (an --as-of ahead by the retention)
 * raises the withdrawn generation (purge.c); a kept fold that reads a new
 * one forgets which members it added, so a returning visitor is added to
 * the key made anew. With the same generation it is not sent. */
static void a_new_withdrawn_generation_empties_what_the_fold_remembers_as_added(void **state)
{
    (void)state;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    fold_set_retention(f, 400 * CLOCK_DAY_MS);
    int64_t t = clock_now_ms() - 2 * 3600 * 1000LL;
    char today[CLOCK_DAY_LEN + 1], page[256], gen[600];
    clock_format_day(clock_utc_day(t), today);
    assert_true(keys_uv(page, sizeof page, SITE, today, "/a") > 0);
    assert_true(keys_withdrawn_gen(gen, sizeof gen, SITE) > 0);

    pageview(t, "/a", "00000000000000a1");
    batch_sends(f, page, "a1 ");

    /* the key deleted, the generation left: a1 is not sent again */
    freeReplyObject(CMD("DEL %s", page));
    pageview(t + 1, "/a", "00000000000000a1");
    batch_sends(f, page, "");
    assert_int_equal(integer(CMD("PFCOUNT %s", page)), 0);

    /* as purge does: deleted and the generation raised (one MULTI/EXEC) */
    freeReplyObject(CMD("INCR %s", gen));
    pageview(t + 2, "/a", "00000000000000a1");
    batch_sends(f, page, "a1 ");

    /* and from then on remembered again under the new generation */
    pageview(t + 3, "/a", "00000000000000a1");
    batch_sends(f, page, "");
    fold_free(f);
    assert_int_equal(integer(CMD("PFCOUNT %s", page)), 1);
}

/* ------------------------------------------------------------------------ */
/* HyperLogLogs of thousands of members: merged as registers (hll.h)        */
/* ------------------------------------------------------------------------ */

static const char *nth_visitor(int i)
{
    static char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)(i + 1) * 0x9e3779b97f4a7c15ULL);
    return hex;
}

/* Registers of two HyperLogLogs, compared one by one (PFDEBUG GETREG makes
 * both dense: read the encodings first). */
static void assert_same_registers(const char *key, const char *ref)
{
    redisReply *a = CMD("PFDEBUG GETREG %s", key), *b = CMD("PFDEBUG GETREG %s", ref);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, HLL_REGISTERS);
    assert_int_equal(b->elements, HLL_REGISTERS);
    size_t differ = 0, set = 0;
    for (size_t i = 0; i < HLL_REGISTERS; i++) {
        differ += a->element[i]->integer != b->element[i]->integer;
        set += a->element[i]->integer != 0;
    }
    freeReplyObject(a);
    freeReplyObject(b);
    assert_int_equal(differ, 0);
    assert_true(set > 1000);
}

static char *encoding(const char *key)
{
    static char out[16];
    redisReply *r = CMD("PFDEBUG ENCODING %s", key);
    snprintf(out, sizeof out, "%s", r->str);
    freeReplyObject(r);
    return out;
}

/* Queues a pageview of page by each of the first n visitors, folds them in
 * one batch, and names the page's visitor HyperLogLog. */
static const char *fold_visitors_of(const char *page, int n)
{
    static char uv[256];
    for (int i = 0; i < n; i++) pageview(T0 + i, page, nth_visitor(i));
    fold_everything(T0 + MIN, 5000);
    assert_true(keys_uv(uv, sizeof uv, SITE, DAY, page) > 0);
    return uv;
}

/* PFADDs the first n visitors to the key "ref", to compare with. */
static void ref_of_visitors(int n)
{
    for (int i = 0; i < n; i++) freeReplyObject(CMD("PFADD ref %s", nth_visitor(i)));
}

/* A visitor count within 3 % of n. */
static void assert_about(long long count, long long n)
{
    assert_true(count > n * 97 / 100 && count < n * 103 / 100);
}

static void thousands_of_visitors_merge_into_the_registers_pfadd_sets(void **state)
{
    (void)state;
    char uv[256], merge[256];
    assert_true(keys_uv(uv, sizeof uv, SITE, DAY, "/") > 0);
    assert_true(keys_merge(merge, sizeof merge, SITE) > 0);
    /* A first batch of 300 visitors: PFADD, the page's HyperLogLog sparse. */
    for (int i = 0; i < 300; i++) pageview(T0 + i, "/", nth_visitor(i));
    fold_all(T0 + MIN);
    assert_string_equal(encoding(uv), "sparse");
    /* Then 3,000 more in one batch: their registers, merged -- one argument
     * per HyperLogLog, not 3,000 (the visit states take two per visitor). */
    for (int i = 300; i < 3300; i++) pageview(T0 + i, "/", nth_visitor(i));
    struct batch *b = read_batch(SITE, 5000);
    const char **argv;
    const size_t *len;
    size_t argc, dense = 0;
    assert_int_equal(fold_compute(b->fold, clock_now_ms()), 0);
    assert_int_equal(fold_argv(b->fold, sha, b->expect, b->added, b->length, &argv, &len, &argc), 0);
    for (size_t i = 0; i < argc; i++) dense += len[i] == HLL_DENSE_BYTES && memcmp(argv[i], "HYLL", 4) == 0;
    assert_int_equal(dense, 2);         /* the page's and the day's (2024: no minute key) */
    assert_true(argc < 2 * 3000 + 500);
    assert_int_equal(apply(b, T0 + MIN), FOLD_APPLIED);
    free_batch(b);

    /* The same registers as PFADD of every visitor, on the page and the day;
     * the scratch key is gone. */
    ref_of_visitors(3300);
    assert_string_equal(encoding(uv), "dense");
    assert_same_registers(uv, "ref");
    assert_same_registers(day_key("uv"), "ref");
    assert_int_equal(integer(CMD("EXISTS %s", merge)), 0);
    assert_about(visitors("/"), 3300);
}

static void a_new_key_of_thousands_of_members_is_set_from_the_registers(void **state)
{
    (void)state;
    const char *uv = fold_visitors_of("/new", 2500);
    ref_of_visitors(2500);
    assert_same_registers(uv, "ref");
}

static void a_page_with_hundreds_of_visitors_keeps_a_sparse_hyperloglog(void **state)
{
    (void)state;
    /* 900 members cannot need the dense form: PFADD, as before. */
    assert_string_equal(encoding(fold_visitors_of("/small", 900)), "sparse");
    assert_about(visitors("/small"), 900);
}

/* Past HLL_MERGE_MIN members the registers decide: 1,200 visitors still fit
 * the sparse form (hll_needs_dense() is 0), so the page keeps its PFADD and a
 * small sparse HyperLogLog (a merge would make it a 12 KB dense one). */
static void a_page_of_1200_visitors_that_fit_the_sparse_form_keeps_pfadd(void **state)
{
    (void)state;
    uint8_t *reg = calloc(HLL_REGISTERS, 1);
    assert_non_null(reg);
    for (int i = 0; i < 1200; i++) hll_add(reg, nth_visitor(i), 16);
    assert_int_equal(hll_needs_dense(reg), 0);
    free(reg);
    assert_string_equal(encoding(fold_visitors_of("/mid", 1200)), "sparse");
    assert_string_equal(encoding(day_key("uv")), "sparse");
}

/* A merged HyperLogLog that is new is SET: its expiry must still be the one
 * PFADD + PEXPIREAT gives (the realtime minute's; retention.aggregates for
 * the day's). */
static void a_merged_new_hyperloglog_keeps_its_expiry(void **state)
{
    (void)state;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    const int64_t keep = 20LL * 365 * CLOCK_DAY_MS;
    fold_set_retention(f, keep);
    int64_t now = clock_now_ms(), minute = now / MIN - 1;
    for (int i = 0; i < 2500; i++) pageview(T0 + i, "/", nth_visitor(i));
    struct batch *b = read_batch_into(f, SITE, 10000);
    assert_int_equal(apply(b, now), FOLD_APPLIED);
    free_batch(b);
    for (int i = 0; i < 2500; i++) pageview(minute * MIN + 1 + i, "/now", nth_visitor(i));
    b = read_batch_into(f, SITE, 10000);
    assert_int_equal(apply(b, now), FOLD_APPLIED);
    free_batch(b);
    char key[256];
    assert_true(keys_uv(key, sizeof key, SITE, DAY, NULL) > 0);
    assert_string_equal(encoding(key), "dense");
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), (clock_utc_day(T0) + 2) * CLOCK_DAY_MS + keep);
    assert_true(keys_realtime_minute(key, sizeof key, SITE, minute) > 0);
    assert_string_equal(encoding(key), "dense");
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), keys_realtime_expires_ms(minute));
    fold_free(f);
}

/* Redis's hash and register rule, for members of every tail length. */
static void hll_member_picks_the_register_and_value_redis_does(void **state)
{
    (void)state;
    uint8_t *reg = calloc(HLL_REGISTERS, 1);
    assert_non_null(reg);
    char m[80];
    for (int i = 0; i < 4000; i++) {
        size_t l = (size_t)(i % 41);
        for (size_t k = 0; k < l; k++) m[k] = (char)('a' + (i * 31 + (int)k * 7) % 26);
        if (l >= 4) snprintf(m, 5, "%04d", i % 10000);
        redisReply *r = redisCommand(rs.rc, "PFADD ref %b", m, l);
        freeReplyObject(r);
        hll_add(reg, m, l);
    }
    unsigned char dense[HLL_DENSE_BYTES];
    hll_dense(reg, dense);
    redisReply *r = redisCommand(rs.rc, "SET mine %b", dense, sizeof dense);
    freeReplyObject(r);
    assert_int_equal(hll_needs_dense(reg), 1);
    assert_same_registers("mine", "ref");
    free(reg);
}

/* ------------------------------------------------------------------------ */
/* Visits                                                                    */
/* ------------------------------------------------------------------------ */

static void second_pageview_takes_back_the_bounce_adds_duration_and_moves_the_exit(void **state)
{
    (void)state;
    pageview(T0, "/a", VISITOR);
    fold_all(T0);
    assert_int_equal(count("totals", "bounces"), 1);
    assert_int_equal(count("exit", "/a"), 1);

    /* In a later batch: the visit is joined through its state in Redis. */
    pageview(T0 + 2 * MIN, "/b", VISITOR);
    fold_all(T0 + 2 * MIN);

    assert_int_equal(count("totals", "visits"), 1);
    assert_int_equal(count("totals", "bounces"), 0);
    assert_int_equal(count("totals", "duration_ms"), 2 * MIN);
    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("entry", "/a"), 1);
    assert_int_equal(count("exit", "/b"), 1);
    /* The page the visit moved away from is dropped at zero, not kept at 0. */
    assert_int_equal(integer(CMD("HEXISTS %s /a", day_key("exit"))), 0);
    assert_int_equal(count("source", "news.example"), 1);
    /* The day's visit state: one field. Its day is long over, so it lives
     * the idle time from the fold on (a late hit of the visit may follow). */
    char vk[256];
    assert_true(keys_visits(vk, sizeof vk, SITE, DAY) > 0);
    assert_int_equal(integer(CMD("HLEN %s", vk)), 1);
    long long at = integer(CMD("PEXPIRETIME %s", vk)), now = clock_now_ms();
    assert_true(at > now + FOLD_IDLE_MS - 60000 && at <= now + FOLD_IDLE_MS);
}

static void a_pageview_after_the_idle_time_starts_a_new_visit(void **state)
{
    (void)state;
    pageview(T0, "/a", VISITOR);
    fold_all(T0);

    pageview(T0 + FOLD_IDLE_MS + MIN, "/b", VISITOR);
    fold_all(T0 + FOLD_IDLE_MS + MIN);

    assert_int_equal(count("totals", "visits"), 2);
    assert_int_equal(count("totals", "bounces"), 2);
    assert_int_equal(count("totals", "duration_ms"), 0);
    assert_int_equal(count("entry", "/b"), 1);
    assert_int_equal(count("exit", "/a"), 1);
    assert_int_equal(count("exit", "/b"), 1);
}

static void visits_within_one_batch_join_as_across_batches(void **state)
{
    (void)state;
    pageview(T0, "/a", VISITOR);
    pageview(T0 + MIN, "/b", VISITOR);
    pageview(T0 + 3 * MIN, "/c", VISITOR);
    fold_all(T0 + 3 * MIN);

    assert_int_equal(count("totals", "visits"), 1);
    assert_int_equal(count("totals", "bounces"), 0);
    assert_int_equal(count("totals", "duration_ms"), 3 * MIN);
    assert_int_equal(count("exit", "/c"), 1);
    assert_int_equal(members("exit"), 1);
}

static void a_straggler_older_than_the_visit_is_its_own_visit(void **state)
{
    (void)state;
    int64_t visit = T0 + 2 * 60 * MIN;
    pageview(visit, "/now", VISITOR);
    fold_all(visit);

    /* Queued late: a hit from long before the current visit began. */
    pageview(T0, "/early", VISITOR);
    fold_all(visit);
    assert_int_equal(count("totals", "visits"), 2);
    assert_int_equal(count("totals", "bounces"), 2);
    assert_int_equal(count("entry", "/early"), 1);

    /* The current visit was left alone: its second pageview joins it. */
    pageview(visit + MIN, "/next", VISITOR);
    fold_all(visit + MIN);
    assert_int_equal(count("totals", "visits"), 2);
    assert_int_equal(count("totals", "bounces"), 1);
    assert_int_equal(count("totals", "duration_ms"), MIN);
    assert_int_equal(count("exit", "/next"), 1);
    assert_int_equal(count("exit", "/early"), 1);
    assert_int_equal(integer(CMD("HEXISTS %s /now", day_key("exit"))), 0);
}

/* ------------------------------------------------------------------------ */
/* Bounded memory                                                            */
/* ------------------------------------------------------------------------ */

static void a_breakdown_keeps_its_cap_of_members_and_counts_the_rest_as_other(void **state)
{
    (void)state;
    max_members = 3;
    for (int i = 0; i < 5; i++) {
        char path[16], v[17];
        snprintf(path, sizeof path, "/p%d", i);
        snprintf(v, sizeof v, "%016x", i + 1);
        pageview(T0 + i, path, v);
    }
    fold_everything(T0, 2);      /* across batches: the cap holds for the day */
    pageview(T0 + 10, "/p0", "00000000000000ff");
    pageview(T0 + 11, "/p9", "00000000000000fe");
    fold_all(T0);
    max_members = 1000;

    assert_int_equal(members("page"), 4);               /* 3 pages and (other) */
    assert_int_equal(count("page", "/p0"), 2);          /* a kept page keeps counting */
    assert_int_equal(count("page", "/p1"), 1);
    assert_int_equal(count("page", "/p2"), 1);
    assert_int_equal(count("page", FOLD_OTHER), 3);     /* /p3, /p4, /p9 */
    assert_int_equal(count("totals", "pageviews"), 7);
    assert_int_equal(count("entry", FOLD_OTHER), 3);
}

static void an_exit_page_beyond_the_cap_moves_out_of_other(void **state)
{
    (void)state;
    max_members = 1;
    pageview(T0, "/a", "00000000000000a1");          /* /a takes the one place */
    pageview(T0 + 1, "/b", VISITOR);                 /* exit /b -> (other) */
    fold_all(T0);
    pageview(T0 + MIN, "/a", VISITOR);               /* the visit's exit moves to /a */
    fold_all(T0 + MIN);
    max_members = 1000;

    assert_int_equal(count("exit", "/a"), 2);
    assert_int_equal(integer(CMD("HEXISTS %s %s", day_key("exit"), FOLD_OTHER)), 0);
    assert_int_equal(integer(CMD("HEXISTS %s /b", day_key("exit"))), 0);
}

static void a_fold_kept_across_batches_forgets_its_caps_when_a_batch_is_refused(void **state)
{
    (void)state;
    max_members = 2;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    pageview(T0, "/a", "00000000000000a1");
    apply_next(f, T0);

    /* /gone takes the second place in the fold's memory, but the batch is
     * refused: that very hit was withdrawn meanwhile. */
    pageview(T0 + 1, "/gone", "00000000000000a2");
    pageview(T0 + 2, "/b", "00000000000000a3");
    struct batch *b = read_batch_into(f, SITE, 1000);
    freeReplyObject(CMD("XDEL %s %s", stream_key(SITE), b->range->element[0]->element[0]->str));
    assert_int_equal(apply(b, T0), FOLD_DELETED);
    fold_forget(f);             /* as run.c does */
    free_batch(b);

    /* Read again: the place is free for /b. */
    apply_next(f, T0);
    fold_free(f);
    max_members = 1000;

    assert_int_equal(count("page", "/a"), 1);
    assert_int_equal(count("page", "/b"), 1);
    assert_int_equal(count("page", "/gone"), 0);
    assert_int_equal(count("page", FOLD_OTHER), 0);
}

/* A purge that deletes a day's aggregates raises the withdrawn generation
 * (purge.c); a kept fold that reads a new one forgets the members it knew of
 * the capped keys, so the day's first pages after the purge get their own
 * rows again instead of "(other)" for members that are gone. */
static void a_new_withdrawn_generation_forgets_the_members_of_capped_keys(void **state)
{
    (void)state;
    max_members = 2;
    max_page_visitors = 2;
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    char gen[600];
    assert_true(keys_withdrawn_gen(gen, sizeof gen, SITE) > 0);
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + 1, "/b", "00000000000000a2");
    apply_next(f, T0);

    /* as purge does: the day's keys deleted and the generation raised */
    freeReplyObject(CMD("EVAL %s 0 %s",
                        "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end",
                        "fs:{" SITE "}:d:" DAY ":*"));
    freeReplyObject(CMD("INCR %s", gen));
    pageview(T0 + 2, "/c", "00000000000000a3");
    apply_next(f, T0);
    fold_free(f);
    max_members = 1000;
    max_page_visitors = 1000;

    assert_int_equal(count("page", "/c"), 1);
    assert_int_equal(count("page", FOLD_OTHER), 0);
    assert_int_equal(visitors("/c"), 1);    /* the day's page set went too */
}

static void only_the_first_pages_of_a_day_get_a_visitor_count(void **state)
{
    (void)state;
    max_page_visitors = 2;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + 1, "/b", "00000000000000a2");
    fold_all(T0);
    pageview(T0 + 2, "/c", "00000000000000a3");
    pageview(T0 + 3, "/a", "00000000000000a4");
    fold_all(T0);
    max_page_visitors = 1000;

    assert_int_equal(visitors("/a"), 2);
    assert_int_equal(visitors("/b"), 1);
    char key[256];
    keys_uv(key, sizeof key, SITE, DAY, "/c");
    assert_int_equal(integer(CMD("EXISTS %s", key)), 0);
    assert_true(keys_day(key, sizeof key, SITE, DAY, FOLD_PAGE_SET) > 0);
    assert_int_equal(integer(CMD("SCARD %s", key)), 2);
    assert_int_equal(visitors(NULL), 4);               /* the site's count misses no one */
    assert_int_equal(count("page", "/c"), 1);
}

/* ------------------------------------------------------------------------ */
/* Events, earlier entries and unusable ones                                 */
/* ------------------------------------------------------------------------ */

static void custom_events_count_events_not_pageviews(void **state)
{
    (void)state;
    hit(T0, "signup", "/join", VISITOR);
    hit(T0 + 1, "signup", "/join", VISITOR);

    assert_int_equal(fold_all(T0), 2);

    assert_int_equal(count("totals", "events"), 2);
    assert_int_equal(count("event", "signup"), 2);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(count("totals", "visits"), 0);
    assert_int_equal(members("page"), 0);
    assert_int_equal(members("entry"), 0);
    assert_int_equal(visitors(NULL), 1);
    char vk[256];
    assert_true(keys_visits(vk, sizeof vk, SITE, DAY) > 0);
    assert_int_equal(integer(CMD("EXISTS %s", vk)), 0);
}

static long long prop_count(const char *name, const char *value)
{
    char key[256];
    assert_true(keys_prop(key, sizeof key, SITE, DAY, name) > 0);
    return integer(CMD("HGET %s %s", key, value));
}

static long long prop_values(const char *name)
{
    char key[256];
    assert_true(keys_prop(key, sizeof key, SITE, DAY, name) > 0);
    return integer(CMD("HLEN %s", key));
}

static long long realtime_keys(void)
{
    redisReply *r = CMD("KEYS fs:{%s}:rt:*", SITE);
    long long n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

static void engagements_sum_time_and_scroll_per_page_and_count_nowhere_else(void **state)
{
    (void)state;
    pageview(T0, "/blog", VISITOR);
    engagement(T0 + 5000, "/blog", VISITOR, 40, 5000);
    engagement(T0 + 9000, "/blog", VISITOR, 80, 3000);
    engagement(T0 + 9500, "/about", "00000000000000a1", 100, 0);

    assert_int_equal(fold_all(T0 + MIN), 4);

    assert_int_equal(count("engaged", "/blog"), 8000);
    assert_int_equal(count("scroll", "/blog"), 120);
    assert_int_equal(count("engagements", "/blog"), 2);
    assert_int_equal(count("engagements", "/about"), 1);
    assert_int_equal(count("scroll", "/about"), 100);
    /* Not a pageview, not an event, no part in visits or visitors. */
    assert_int_equal(count("totals", "pageviews"), 1);
    assert_int_equal(count("totals", "events"), 0);
    assert_int_equal(members("event"), 0);
    assert_int_equal(members("page"), 1);
    assert_int_equal(count("totals", "visits"), 1);
    assert_int_equal(count("totals", "bounces"), 1);
    assert_int_equal(count("totals", "duration_ms"), 0);
    assert_int_equal(count("exit", "/blog"), 1);
    assert_int_equal(visitors(NULL), 1);
    assert_int_equal(count("engagements", FOLD_OTHER), 0);
}

static void engagement_pages_keep_the_cap_of_members(void **state)
{
    (void)state;
    max_members = 2;
    for (int i = 0; i < 4; i++) {
        char path[16];
        snprintf(path, sizeof path, "/p%d", i);
        engagement(T0 + i, path, VISITOR, 10, 1000);
    }
    fold_everything(T0, 3);
    max_members = 1000;
    assert_int_equal(members("engaged"), 3);            /* 2 pages and (other) */
    assert_int_equal(count("engaged", FOLD_OTHER), 2000);
    assert_int_equal(count("engagements", FOLD_OTHER), 2);
    assert_int_equal(count("scroll", FOLD_OTHER), 20);
}

static void props_count_per_name_and_value_on_pageviews_and_events(void **state)
{
    (void)state;
    hit_full(T0, "Signup", "/join", VISITOR, "{\"plan\":\"pro\",\"seats\":3,\"trial\":true}", -1, 0);
    hit_full(T0 + 1, "Signup", "/join", VISITOR, "{\"plan\":\"free\",\"note\":null}", -1, 0);
    hit_full(T0 + 2, NULL, "/join", VISITOR, "{\"plan\":\"pro\"}", -1, 0);
    /* An engagement carries its pageview's props: not counted again. */
    hit_full(T0 + 3, NULL, "/join", VISITOR, "{\"plan\":\"pro\"}", 50, 10);
    /* Not flat (an earlier writer): what comes before the fault counts. */
    hit_full(T0 + 4, "Other", "/", VISITOR, "{\"kind\":\"x\",\"deep\":{\"a\":1},\"late\":\"y\"}", -1, 0);

    assert_int_equal(fold_all(T0 + MIN), 5);

    assert_int_equal(count("props", "plan"), 3);
    assert_int_equal(count("props", "seats"), 1);
    assert_int_equal(count("props", "trial"), 1);
    assert_int_equal(count("props", "kind"), 1);
    assert_int_equal(count("props", "note"), 0);        /* null: no value */
    assert_int_equal(count("props", "late"), 0);
    assert_int_equal(prop_count("plan", "pro"), 2);
    assert_int_equal(prop_count("plan", "free"), 1);
    assert_int_equal(prop_count("seats", "3"), 1);
    assert_int_equal(prop_count("trial", "true"), 1);
    assert_int_equal(prop_count("kind", "x"), 1);
    assert_int_equal(count("totals", "events"), 3);
    assert_int_equal(count("totals", "pageviews"), 1);
}

static void props_keep_their_caps_of_names_and_values(void **state)
{
    (void)state;
    max_members = 2;
    const char *plans[] = {"a", "b", "c", "a", "d"};
    for (int i = 0; i < 5; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"plan\":\"%s\"}", plans[i]);
        hit_full(T0 + i, "Buy", "/", VISITOR, props, -1, 0);
    }
    fold_everything(T0, 2);
    max_members = 1000;
    assert_int_equal(prop_values("plan"), 3);           /* a, b and (other) */
    assert_int_equal(prop_count("plan", "a"), 2);
    assert_int_equal(prop_count("plan", FOLD_OTHER), 2);

    /* Names: the day's first FOLD_MAX_PROP_NAMES; the rest count as
     * (other) and keep no values. */
    for (int i = 0; i < FOLD_MAX_PROP_NAMES + 5; i++) {
        char props[64];
        snprintf(props, sizeof props, "{\"n%03d\":\"v\"}", i);
        hit_full(T0 + 100 + i, "Buy", "/", VISITOR, props, -1, 0);
    }
    fold_everything(T0, 40);
    assert_int_equal(members("props"), FOLD_MAX_PROP_NAMES + 1);
    assert_int_equal(count("props", FOLD_OTHER), 6);   /* n099.. past plan + 99 */
    char key[256];
    keys_prop(key, sizeof key, SITE, DAY, FOLD_OTHER);
    assert_int_equal(integer(CMD("EXISTS %s", key)), 0);
}

static void a_recent_hit_adds_its_visitor_to_its_minute_which_expires_ten_minutes_after(void **state)
{
    (void)state;
    int64_t now = clock_now_ms();
    int64_t minute = now / MIN - 1;
    pageview(minute * MIN + 5, "/now", VISITOR);
    hit(minute * MIN + 6, "Signup", "/now", "00000000000000a1");
    engagement(minute * MIN + 7, "/now", "00000000000000a2", 10, 10);   /* not a visitor now */
    pageview(now - 11 * MIN, "/then", "00000000000000a3");              /* its key would be gone */
    pageview(T0, "/old", "00000000000000a4");

    fold_all(now);

    char key[256];
    assert_true(keys_realtime_minute(key, sizeof key, SITE, minute) > 0);
    assert_int_equal(integer(CMD("PFCOUNT %s", key)), 2);
    assert_int_equal(integer(CMD("PEXPIRETIME %s", key)), keys_realtime_expires_ms(minute));
    assert_int_equal(realtime_keys(), 1);
}

/* bypage:<dim>[entry page KEYS_BYPAGE_SEP value]; 0 when absent. */
static long long bypage(const char *dim, const char *page, const char *value)
{
    char key[256], m[256];
    assert_true(keys_bypage(key, sizeof key, SITE, DAY, dim) > 0);
    int n = snprintf(m, sizeof m, "%s%c%s", page, KEYS_BYPAGE_SEP, value);
    return integer(redisCommand(rs.rc, "HGET %s %b", key, m, (size_t)n));
}

static void visit_breakdowns_count_per_entry_page_too(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + 1, "/b", "00000000000000a1");          /* same visit: not an entry */
    pageview(T0 + 2, "/a", "00000000000000a2");
    pageview(T0 + 3, "/b", "00000000000000a3");

    fold_all(T0 + MIN);

    assert_int_equal(bypage("source", "/a", "news.example"), 2);
    assert_int_equal(bypage("source", "/b", "news.example"), 1);
    assert_int_equal(bypage("country", "/a", "DE"), 2);
    assert_int_equal(bypage("browser", "/b", "Firefox"), 1);
    assert_int_equal(bypage("os", "/a", "Linux"), 2);
    assert_int_equal(bypage("device", "/a", "desktop"), 2);
    assert_int_equal(bypage("utm_source", "/a", ""), 0);    /* empty values skipped, as in utm_source */
    char key[256];
    keys_bypage(key, sizeof key, SITE, DAY, "utm_source");
    assert_int_equal(integer(CMD("EXISTS %s", key)), 0);
}

static void a_per_page_breakdown_keeps_its_cap_for_whole_members(void **state)
{
    (void)state;
    max_members = 1;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + 1, "/b", "00000000000000a2");
    fold_everything(T0, 1);
    max_members = 1000;
    char key[256];
    keys_bypage(key, sizeof key, SITE, DAY, "source");
    assert_int_equal(integer(CMD("HLEN %s", key)), 2);    /* /a's member and (other) */
    assert_int_equal(bypage("source", "/a", "news.example"), 1);
    assert_int_equal(integer(CMD("HGET %s %s", key, FOLD_OTHER)), 1);
}

static void entries_written_field_by_field_by_earlier_versions_still_count(void **state)
{
    (void)state;
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", T0);
    const char *argv[] = {"XADD", stream_key(SITE), "*", HIT_TIME, ts, HIT_NAME, "pageview",
                          HIT_PATH, "/old", HIT_COUNTRY, "FR", HIT_DEVICE, "mobile", HIT_VISITOR, VISITOR};
    freeReplyObject(redisCommandArgv(rs.rc, 15, argv, NULL));
    pageview(T0 + MIN, "/new", VISITOR);

    assert_int_equal(fold_all(T0 + MIN), 2);

    assert_int_equal(count("page", "/old"), 1);
    assert_int_equal(count("page", "/new"), 1);
    assert_int_equal(count("totals", "visits"), 1);    /* one visitor, one visit */
    assert_int_equal(count("country", "FR"), 1);
    assert_int_equal(count("device", "mobile"), 1);
    assert_int_equal(visitors(NULL), 1);
}

static void an_unreadable_entry_is_trimmed_and_counts_nothing(void **state)
{
    (void)state;
    xadd_raw(SITE, RAWHIT_FIELD, "\x09garbage", 8);
    xadd_raw(SITE, "x", "y", 1);

    struct batch *b = read_batch(SITE, 1000);
    assert_int_equal(fold_skipped(b->fold), 2);
    assert_int_equal(apply(b, T0), FOLD_APPLIED);

    assert_int_equal(stream_length(SITE), 0);
    /* Nothing but the stream and the cursor was written. */
    assert_int_equal(integer(CMD("DBSIZE")), 2);
    free_batch(b);
}

/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Hit ids: each counted once (docs/aggregator.md, Exactly once)             */
/* ------------------------------------------------------------------------ */

#define EPOCH 0x123456ULL
#define ID(seq) (EPOCH << 24 | (seq))

/* An original (flags 0) or a replay (RAWHIT_F_REPLAYED) of hit id at t. */
static void hit_as(int64_t t, uint64_t id, unsigned flags, const char *path)
{
    struct rawhit h = {.id = id, .flags = RAWHIT_F_TIME | flags, .t_ms = t,
                       .device = RAWHIT_DEVICE_DESKTOP};
    rawhit_set(&h, RAWHIT_PATH, path);
    char buf[RAWHIT_MAX];
    size_t n = rawhit_encode(&h, buf, sizeof buf);
    assert_true(n > 0);
    xadd_raw(SITE, RAWHIT_FIELD, buf, n);
}

static void the_same_replayed_id_twice_in_one_batch_counts_once(void **state)
{
    (void)state;
    hit_as(T0, ID(1), RAWHIT_F_REPLAYED, "/r");
    hit_as(T0, ID(1), RAWHIT_F_REPLAYED, "/r");
    hit_as(T0, ID(2), RAWHIT_F_REPLAYED, "/r");
    assert_int_equal(fold_all(T0), 3);
    assert_int_equal(count("totals", "pageviews"), 2);
}

static void the_same_replayed_id_across_batches_counts_once(void **state)
{
    (void)state;
    hit_as(T0, ID(1), RAWHIT_F_REPLAYED, "/r");
    hit_as(T0, ID(2), RAWHIT_F_REPLAYED, "/r");
    hit_as(T0, ID(1), RAWHIT_F_REPLAYED, "/r");     /* replayed again after a crash */
    hit_as(T0, ID(2), RAWHIT_F_REPLAYED, "/r");
    assert_int_equal(fold_everything(T0, 1), 4);
    assert_int_equal(count("totals", "pageviews"), 2);
}

static void a_replay_after_its_original_landed_is_dropped(void **state)
{
    (void)state;
    /* Originals 1..3 went over one connection; the writes of 2 and 3 timed
     * out, 2 landed (so 1 did too), 3 did not: 2 and 3 are replayed. */
    hit_as(T0, ID(1), 0, "/o");
    hit_as(T0, ID(2), 0, "/o");
    assert_int_equal(fold_all(T0), 2);
    hit_as(T0, ID(2), RAWHIT_F_REPLAYED, "/o");
    hit_as(T0, ID(3), RAWHIT_F_REPLAYED, "/o");
    assert_int_equal(fold_everything(T0, 1), 2);
    assert_int_equal(count("totals", "pageviews"), 3);
    /* In one batch alike. */
    hit_as(T0, ID(4), 0, "/p");
    hit_as(T0, ID(4), RAWHIT_F_REPLAYED, "/p");
    hit_as(T0, ID(5), RAWHIT_F_REPLAYED, "/p");
    assert_int_equal(fold_all(T0), 3);
    assert_int_equal(count("page", "/p"), 2);
}

static void an_original_landing_after_its_replay_is_dropped(void **state)
{
    (void)state;
    hit_as(T0, ID(7), RAWHIT_F_REPLAYED, "/late");
    assert_int_equal(fold_all(T0), 1);
    hit_as(T0, ID(7), 0, "/late");                  /* across batches */
    hit_as(T0, ID(8), RAWHIT_F_REPLAYED, "/late");
    hit_as(T0, ID(8), 0, "/late");                  /* in one batch */
    hit_as(T0, ID(9), 0, "/late");                  /* no twin: counts */
    assert_int_equal(fold_all(T0), 4);
    assert_int_equal(count("page", "/late"), 3);
}

static void hits_of_other_epochs_and_earlier_versions_are_left_alone(void **state)
{
    (void)state;
    hit_as(T0, ID(5), 0, "/e");
    hit_as(T0, (EPOCH + 1) << 24 | 1, RAWHIT_F_REPLAYED, "/e");  /* another connection's */
    hit_as(T0, 0, 0, "/e");                                        /* no id */
    hit_as(T0, 0, 0, "/e");
    assert_int_equal(fold_all(T0), 4);
    assert_int_equal(count("page", "/e"), 4);
}

static int start(void **state)
{
    (void)state;
    char err[128];
    utc = clock_zone_new("UTC", err, sizeof err);
    if (!utc || redis_server_start(&rs) < 0) return -1;
    redisReply *r = redisCommand(rs.rc, "SCRIPT LOAD %s", fold_script);
    int ok = r && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok) memcpy(sha, r->str, 41);
    else fprintf(stderr, "SCRIPT LOAD: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
    if (r) freeReplyObject(r);
    return ok ? 0 : -1;
}

static int stop(void **state)
{
    (void)state;
    redis_server_stop(&rs);
    clock_zone_free(utc);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The daemon's loop (run.c): batches pipelined                              */
/* ------------------------------------------------------------------------ */

/* A pageview with an id and a visitor (hex), original or replayed. */
static void pageview_as(int64_t t, uint64_t id, unsigned flags, const char *path, const char *visitor)
{
    struct rawhit h = {.id = id, .flags = RAWHIT_F_TIME | RAWHIT_F_VISITOR | flags, .t_ms = t,
                       .device = RAWHIT_DEVICE_DESKTOP};
    assert_int_equal(rawhit_visitor_from_hex(visitor, strlen(visitor), h.visitor), 0);
    rawhit_set(&h, RAWHIT_PATH, path);
    rawhit_set(&h, RAWHIT_REFERRER, "news.example");
    char buf[RAWHIT_MAX];
    size_t n = rawhit_encode(&h, buf, sizeof buf);
    assert_true(n > 0);
    xadd_raw(SITE, RAWHIT_FIELD, buf, n);
}

/* 40 visitors' pageviews over three hours, time-ordered, some visits
 * idle long enough to end; now and then the replay of a hit (the one just
 * before, or a few back) and the replay of a hit that never landed. */
static size_t queue_story(void)
{
    uint32_t x = 12345;
    size_t distinct = 0;
    uint64_t seq = 0, ids[700];
    for (int i = 0; i < 600; i++) {
        x = x * 1103515245u + 12345u;
        char visitor[17];
        snprintf(visitor, sizeof visitor, "%016x", (x >> 8) % 40);
        char path[16];
        snprintf(path, sizeof path, "/p%u", (x >> 16) % 30);
        int64_t t = T0 + (int64_t)i * 18000 + (i % 7 == 0 ? 0 : (x >> 4) % 900);
        ids[seq] = ID(seq + 1);
        pageview_as(t, ids[seq++], 0, path, visitor);
        distinct++;
        if (i % 11 == 5) pageview_as(t, ids[seq - 1], RAWHIT_F_REPLAYED, path, visitor);
        if (i % 17 == 9 && seq > 5) pageview_as(t, ids[seq - 4], RAWHIT_F_REPLAYED, path, visitor);
        if (i % 53 == 20) {     /* lost on the way, then replayed: counts */
            ids[seq] = ID(seq + 1);
            pageview_as(t, ids[seq++], RAWHIT_F_REPLAYED, "/lost", visitor);
            distinct++;
        }
    }
    return distinct;
}

/* Every key but the stream's own bookkeeping (its entries have other ids
 * each time the story is queued) as sorted "key type value" lines. */
static char *snapshot(void)
{
    redisReply *r = CMD("EVAL %s 0",
        "local out, cur = {}, '0' "
        "repeat "
        "  local s = redis.call('SCAN', cur, 'COUNT', 1000) cur = s[1] "
        "  for _, k in ipairs(s[2]) do "
        "    local t = redis.call('TYPE', k)['ok'] "
        "    if k:find(':hits$') or k:find(':cursor$') or k:find(':lease$') or k == 'fs:audit' then "
        "    elseif t == 'hash' then "
        "      local h = redis.call('HGETALL', k) "
        "      for i = 1, #h, 2 do out[#out + 1] = k .. ' h ' .. h[i] .. '=' .. h[i + 1] end "
        "    elseif t == 'set' then "
        "      for _, m in ipairs(redis.call('SMEMBERS', k)) do out[#out + 1] = k .. ' s ' .. m end "
        "    elseif t == 'string' then "
        "      out[#out + 1] = k .. ' v ' .. redis.sha1hex(redis.call('GET', k)) "
        "    else out[#out + 1] = k .. ' ' .. t end "
        "  end "
        "until cur == '0' "
        "table.sort(out) "
        "return table.concat(out, '\\n')");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *s = strdup(r->str);
    freeReplyObject(r);
    return s;
}

/* The site's time zone in run_once's configuration (NULL: UTC). */
static const char *run_zone;

/* agg_run(once) on SITE with aggregator.batch = batch and
 * aggregator.visit_cache = cache (< 0: the default). */
static void run_once_cache(int batch, int cache);

static void run_once(int batch)
{
    run_once_cache(batch, -1);
}

static void run_once_cache(int batch, int cache)
{
    char path[128], err[256], url[64], over[64];
    snprintf(path, sizeof path, "%s/agg.conf", rs.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "[redis]\nurl = redis://127.0.0.1:%d/0\n[consent]\nsecret = %s\n"
                "[retention]\naggregates = 10y\n[site " SITE "]\norigins = https://" SITE "\n",
            rs.port, "0123456789abcdef0123456789abcdef");
    if (run_zone) fprintf(fp, "timezone = %s\n", run_zone);
    fclose(fp);
    (void)url;
    snprintf(over, sizeof over, "aggregator.batch=%d", batch);
    char vc[64];
    snprintf(vc, sizeof vc, "aggregator.visit_cache=%d", cache);
    char *overrides[] = {over, vc};
    struct cfg *cfg = cfg_load(path, overrides, cache < 0 ? 1 : 2, err, sizeof err);
    if (!cfg) fail_msg("config: %s", err);
    struct agg *a = agg_new(cfg, err, sizeof err);
    if (!a) fail_msg("agg_new: %s", err);
    assert_int_equal(agg_run(a, 1), 0);
    agg_free(a);
    cfg_free(cfg);
}

/* Batches of 3, pipelined (each batch's reads answered before the one
 * before it is applied, the visit states it wrote laid over them; replays
 * whose originals the batch before counts read after it), count exactly
 * what one batch of everything counts: visits running across batches,
 * replays within and across batches. */
static void pipelined_small_batches_count_what_one_batch_counts(void **state)
{
    (void)state;
    size_t distinct = queue_story();
    run_once(100000);
    assert_int_equal(count("totals", "pageviews"), (long long)distinct);
    assert_int_equal(stream_length(SITE), 0);
    char *one = snapshot();
    freeReplyObject(CMD("FLUSHALL"));
    assert_int_equal(queue_story(), distinct);
    run_once(3);
    assert_int_equal(stream_length(SITE), 0);
    char *small = snapshot();
    assert_string_equal(small, one);
    assert_true(count("totals", "visits") > 40);    /* the story has visits to get wrong */
    assert_true(count("totals", "bounces") > 0);
    free(one);
    free(small);
}

/* A visit begun on day D-1 (counted by an earlier process) moves its exit
 * page on D-1's exit hash in batch k, whose hits are all of day D: k writes
 * D-1's exit key without having loaded it. Batch k+1 holds a straggler of
 * D-1 (so it loads D-1's exit key) and the visit's next page. Pipelined,
 * k+1's HKEYS runs before k's script, misses k's new exit page, and k+1
 * takes the page's -1 to "(other)" (then dropped as <= 0): the exit page of
 * k stays counted. (Visits are kept per UTC day: the site's zone puts the
 * local midnight inside one.) One batch (or sequential batches) ends with D-1's exits
 * {"/w": 1, "/p": 1}. */
static void story_across_midnight(int batch)
{
    /* Berlin (UTC+2): local midnight is 22:00 UTC, so the visit's hits share
     * their UTC day's visit hash across the local midnight. */
    const int64_t late = T0 + 9 * 60 * MIN + 50 * MIN;        /* 2024-05-01 23:50 local */
    pageview_as(late, ID(1), 0, "/a", "00000000000000b1");
    run_once(100000);                                        /* another process */
    pageview_as(late + 15 * MIN, ID(2), 0, "/m", "00000000000000b1");   /* D 00:05 */
    pageview_as(late + 15 * MIN, ID(3), 0, "/x", "00000000000000b2");
    pageview_as(late + 15 * MIN, ID(4), 0, "/x", "00000000000000b3");
    pageview_as(late + 5 * MIN, ID(5), 0, "/w", "00000000000000b4");    /* D-1 23:55, late */
    pageview_as(late + 20 * MIN, ID(6), 0, "/p", "00000000000000b1");   /* D 00:10 */
    run_once(batch);
    assert_int_equal(stream_length(SITE), 0);
}

static void an_exit_key_of_the_day_before_written_unloaded_then_loaded_early_counts_what_one_batch_counts(void **state)
{
    (void)state;
    run_zone = "Europe/Berlin";
    story_across_midnight(100000);
    char *one = snapshot();
    long long m1 = count("exit", "/m"), p1 = count("exit", "/p"), w1 = count("exit", "/w");
    freeReplyObject(CMD("FLUSHALL"));
    story_across_midnight(3);
    run_zone = NULL;
    char *small = snapshot();
    long long m3 = count("exit", "/m"), p3 = count("exit", "/p"), w3 = count("exit", "/w");
    int same = strcmp(small, one) == 0;
    free(one);
    free(small);
    assert_int_equal(m1, 0);
    assert_int_equal(p1, 1);
    assert_int_equal(w1, 1);
    assert_int_equal(p3, 1);
    assert_int_equal(w3, 1);
    assert_int_equal(m3, 0);        /* pipelined: 1, and exits 3 for 2 visits */
    assert_true(same);
}

/* ------------------------------------------------------------------------ */
/* The visit cache                                                           */
/* ------------------------------------------------------------------------ */

/* Calls of command cmd since CONFIG RESETSTAT. */
static long long calls(const char *cmd)
{
    redisReply *r = CMD("INFO commandstats");
    char want[64];
    snprintf(want, sizeof want, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, want);
    long long n = p ? atoll(p + strlen(want)) : 0;
    freeReplyObject(r);
    return n;
}

/* 30 visitors' pageviews over three hours of one UTC day, no replays (whose
 * dedupe reads are HMGETs too). */
static void queue_plain_story(int from, int to)
{
    uint32_t x = 777;
    for (int i = 0; i < to; i++) {
        x = x * 1103515245u + 12345u;
        if (i < from) continue;
        char visitor[17], path[16];
        snprintf(visitor, sizeof visitor, "%016x", (x >> 8) % 30);
        snprintf(path, sizeof path, "/p%u", (x >> 16) % 20);
        pageview_as(T0 + (int64_t)i * 36000 + (x >> 4) % 900, ID(i + 1), 0, path, visitor);
    }
}

/* The first batch of a process also reads the record of replayed ids
 * (HRANDFIELD, then HMGET): one HMGET that is not a visit read. */
#define DEDUPE_HMGETS 1

static void the_visit_cache_counts_what_reading_every_state_counts_and_reads_a_new_day_once(void **state)
{
    (void)state;
    queue_plain_story(0, 300);
    run_once_cache(100000, 0);
    char *one = snapshot();
    assert_true(count("totals", "visits") > 30);    /* visits to get wrong */
    assert_true(count("totals", "bounces") > 0);

    freeReplyObject(CMD("FLUSHALL"));
    queue_plain_story(0, 300);
    freeReplyObject(CMD("CONFIG RESETSTAT"));
    run_once_cache(3, 0);                           /* off: every batch reads */
    assert_int_equal(calls("hmget"), 100 + DEDUPE_HMGETS);
    assert_int_equal(calls("hlen"), 0);
    char *off = snapshot();

    freeReplyObject(CMD("FLUSHALL"));
    queue_plain_story(0, 300);
    freeReplyObject(CMD("CONFIG RESETSTAT"));
    run_once_cache(3, 1000);                        /* the day's hash did not exist */
    assert_int_equal(calls("hmget"), 1 + DEDUPE_HMGETS);
    assert_int_equal(calls("hlen"), 1);
    assert_int_equal(calls("hgetall"), 0);
    char *on = snapshot();

    freeReplyObject(CMD("FLUSHALL"));
    queue_plain_story(0, 300);
    freeReplyObject(CMD("CONFIG RESETSTAT"));
    run_once_cache(3, 10);                          /* 30 visitors: over its limit */
    long long hmgets = calls("hmget");              /* held until the 11th visitor, then read */
    assert_true(hmgets > 90 && hmgets < 100 + DEDUPE_HMGETS);
    char *small = snapshot();

    int same = strcmp(off, one) == 0 && strcmp(on, one) == 0 && strcmp(small, one) == 0;
    free(one);
    free(off);
    free(on);
    free(small);
    assert_true(same);
}

static void a_day_counted_by_another_process_is_read_whole_once_then_held(void **state)
{
    (void)state;
    queue_plain_story(0, 300);
    run_once_cache(100000, 0);
    char *one = snapshot();

    freeReplyObject(CMD("FLUSHALL"));
    queue_plain_story(0, 150);
    run_once_cache(100000, 0);                      /* another process */
    queue_plain_story(150, 300);
    freeReplyObject(CMD("CONFIG RESETSTAT"));
    run_once_cache(3, 1000);
    assert_int_equal(calls("hlen"), 1);             /* batch 1: HMGET and HLEN */
    assert_int_equal(calls("hgetall"), 1);          /* batch 2: the hash whole */
    assert_int_equal(calls("hmget"), 1 + DEDUPE_HMGETS);   /* the 48 after: nothing */
    char *later = snapshot();

    int same = strcmp(later, one) == 0;
    free(one);
    free(later);
    assert_true(same);
}

/* Which visit reads a kept fold's next batch of 3 on SITE sent (of HMGET,
 * HLEN, HGETALL, in that order, space-separated); the batch is applied. */
static void next_batch_reads(struct fold *f, char *out, size_t len)
{
    struct batch *b = read_batch_into(f, SITE, 3);
    out[0] = '\0';
    static const char *const visit_reads[] = {"HMGET", "HLEN", "HGETALL"};
    for (size_t k = 0; k < 3; k++) {
        char tok[16];
        snprintf(tok, sizeof tok, " %s ", visit_reads[k]);
        char padded[300];
        snprintf(padded, sizeof padded, " %s ", b->reads);
        if (strstr(padded, tok))
            snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? " " : "", visit_reads[k]);
    }
    assert_int_equal(apply(b, T0), FOLD_APPLIED);
    free_batch(b);
}

/* A fold kept from batch to batch, with a visit cache of 1000 states. */
static struct fold *cached_fold(size_t *used)
{
    struct fold *f = fold_new(SITE, utc, max_members, max_page_visitors);
    assert_non_null(f);
    fold_set_visit_cache(f, used, 1000);
    return f;
}

static void an_erasure_or_a_batch_not_applied_drops_the_visit_cache(void **state)
{
    (void)state;
    queue_plain_story(0, 12);
    size_t used = 0;
    struct fold *f = cached_fold(&used);
    char reads[64];
    next_batch_reads(f, reads, sizeof reads);
    assert_string_equal(reads, "HMGET HLEN");       /* the day's hash is new */
    assert_true(used > 0);
    next_batch_reads(f, reads, sizeof reads);
    assert_string_equal(reads, "");                 /* held whole */

    /* An erasure: erase.lua deletes a state and raises the generation. */
    char gen[600];
    assert_true(keys_withdrawn_gen(gen, sizeof gen, SITE) > 0);
    freeReplyObject(CMD("INCR %s", gen));
    next_batch_reads(f, reads, sizeof reads);
    assert_string_equal(reads, "HMGET HLEN");       /* dropped, asked again */
    next_batch_reads(f, reads, sizeof reads);
    assert_string_equal(reads, "HGETALL");          /* the hash exists now */

    fold_forget(f);                                 /* a batch not applied */
    assert_int_equal(used, 0);
    fold_free(f);
}

static void a_day_held_whole_goes_when_its_hash_is_about_to_expire(void **state)
{
    (void)state;
    queue_plain_story(0, 6);
    run_once_cache(100000, 0);                      /* another process */
    char vk[600];
    assert_true(keys_visits(vk, sizeof vk, SITE, DAY) > 0);
    assert_int_equal(integer(CMD("PEXPIRE %s 30000", vk)), 1);   /* within the cache's margin */
    for (int i = 0; i < 9; i++) hit(T0 + 60 * MIN + i, "signup", "/p1", "0000000000000001");
    size_t used = 0;
    struct fold *f = cached_fold(&used);
    char reads[64];
    next_batch_reads(f, reads, sizeof reads);
    assert_string_equal(reads, "HMGET HLEN");
    next_batch_reads(f, reads, sizeof reads);       /* events write no state: not HGETALL, */
    assert_string_equal(reads, "HMGET HLEN");       /* the day goes before its hash does */
    fold_free(f);
}

static int fresh(void **state)
{
    (void)state;
    freeReplyObject(CMD("FLUSHALL"));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(counts_a_batch_once_and_trims_its_raw_entries, fresh),
        cmocka_unit_test_setup(a_replayed_batch_changes_nothing, fresh),
        cmocka_unit_test_setup(two_aggregators_on_one_range_count_it_once, fresh),
        cmocka_unit_test_setup(an_entry_deleted_after_the_read_sends_the_batch_back, fresh),
        cmocka_unit_test_setup(an_entry_deleted_between_the_check_and_exec_is_not_counted, fresh),
        cmocka_unit_test_setup(a_purge_between_the_check_and_exec_leaves_nothing_written, fresh),
        cmocka_unit_test_setup(a_hit_queued_after_the_read_waits_for_the_next_batch, fresh),
        cmocka_unit_test_setup(aggregate_keys_expire_after_their_retention, fresh),
        cmocka_unit_test_setup(a_withdrawn_visitors_hits_are_dropped_uncounted_and_trimmed, fresh),
        cmocka_unit_test_setup(a_withdrawal_after_the_read_sends_the_batch_back, fresh),
        cmocka_unit_test_setup(a_kept_fold_reads_the_withdrawn_set_only_when_it_changed, fresh),
        cmocka_unit_test_setup(withdrawn_entries_past_their_time_are_pruned, fresh),
        cmocka_unit_test_setup(small_batches_add_up_to_the_same_counts, fresh),
        cmocka_unit_test_setup(the_apply_costs_one_argument_per_distinct_member_not_per_hit, fresh),
        cmocka_unit_test_setup(a_visitors_hits_in_one_batch_add_it_once_to_each_hyperloglog, fresh),
        cmocka_unit_test_setup(a_kept_fold_sends_a_visitor_to_a_hyperloglog_once_until_a_batch_is_refused, fresh),
        cmocka_unit_test_setup(a_new_withdrawn_generation_empties_what_the_fold_remembers_as_added, fresh),
        cmocka_unit_test_setup(thousands_of_visitors_merge_into_the_registers_pfadd_sets, fresh),
        cmocka_unit_test_setup(a_new_key_of_thousands_of_members_is_set_from_the_registers, fresh),
        cmocka_unit_test_setup(a_page_with_hundreds_of_visitors_keeps_a_sparse_hyperloglog, fresh),
        cmocka_unit_test_setup(hll_member_picks_the_register_and_value_redis_does, fresh),
        cmocka_unit_test_setup(a_page_of_1200_visitors_that_fit_the_sparse_form_keeps_pfadd, fresh),
        cmocka_unit_test_setup(a_merged_new_hyperloglog_keeps_its_expiry, fresh),
        cmocka_unit_test_setup(second_pageview_takes_back_the_bounce_adds_duration_and_moves_the_exit, fresh),
        cmocka_unit_test_setup(a_pageview_after_the_idle_time_starts_a_new_visit, fresh),
        cmocka_unit_test_setup(visits_within_one_batch_join_as_across_batches, fresh),
        cmocka_unit_test_setup(a_straggler_older_than_the_visit_is_its_own_visit, fresh),
        cmocka_unit_test_setup(a_breakdown_keeps_its_cap_of_members_and_counts_the_rest_as_other, fresh),
        cmocka_unit_test_setup(an_exit_page_beyond_the_cap_moves_out_of_other, fresh),
        cmocka_unit_test_setup(a_fold_kept_across_batches_forgets_its_caps_when_a_batch_is_refused, fresh),
        cmocka_unit_test_setup(a_new_withdrawn_generation_forgets_the_members_of_capped_keys, fresh),
        cmocka_unit_test_setup(only_the_first_pages_of_a_day_get_a_visitor_count, fresh),
        cmocka_unit_test_setup(custom_events_count_events_not_pageviews, fresh),
        cmocka_unit_test_setup(engagements_sum_time_and_scroll_per_page_and_count_nowhere_else, fresh),
        cmocka_unit_test_setup(engagement_pages_keep_the_cap_of_members, fresh),
        cmocka_unit_test_setup(props_count_per_name_and_value_on_pageviews_and_events, fresh),
        cmocka_unit_test_setup(props_keep_their_caps_of_names_and_values, fresh),
        cmocka_unit_test_setup(a_recent_hit_adds_its_visitor_to_its_minute_which_expires_ten_minutes_after, fresh),
        cmocka_unit_test_setup(visit_breakdowns_count_per_entry_page_too, fresh),
        cmocka_unit_test_setup(a_per_page_breakdown_keeps_its_cap_for_whole_members, fresh),
        cmocka_unit_test_setup(the_same_replayed_id_twice_in_one_batch_counts_once, fresh),
        cmocka_unit_test_setup(the_same_replayed_id_across_batches_counts_once, fresh),
        cmocka_unit_test_setup(a_replay_after_its_original_landed_is_dropped, fresh),
        cmocka_unit_test_setup(an_original_landing_after_its_replay_is_dropped, fresh),
        cmocka_unit_test_setup(hits_of_other_epochs_and_earlier_versions_are_left_alone, fresh),
        cmocka_unit_test_setup(entries_written_field_by_field_by_earlier_versions_still_count, fresh),
        cmocka_unit_test_setup(an_unreadable_entry_is_trimmed_and_counts_nothing, fresh),
        cmocka_unit_test_setup(pipelined_small_batches_count_what_one_batch_counts, fresh),
        cmocka_unit_test_setup(an_exit_key_of_the_day_before_written_unloaded_then_loaded_early_counts_what_one_batch_counts, fresh),
        cmocka_unit_test_setup(the_visit_cache_counts_what_reading_every_state_counts_and_reads_a_new_day_once, fresh),
        cmocka_unit_test_setup(a_day_counted_by_another_process_is_read_whole_once_then_held, fresh),
        cmocka_unit_test_setup(an_erasure_or_a_batch_not_applied_drops_the_visit_cache, fresh),
        cmocka_unit_test_setup(a_day_held_whole_goes_when_its_hash_is_about_to_expire, fresh),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
