/* test_fold_script.c -- fold.lua in a real Redis: what a batch counts, once.
 *
 * Each test queues raw hits with XADD, reads them with XREADGROUP as the
 * daemon does, folds them with fold_batch_add()/fold_batch_argv() and runs the
 * embedded fold_script by its SHA1; then it reads back the aggregate keys and
 * the stream. Hit times are fixed (2024-05-01, UTC); the stream ids are the
 * server's. Also here: how long visit state lives (fold_session_ttl_ms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "fold.h"
#include "keys.h"
#include "redis_server.h"

#define SITE "example.com"
#define GROUP "fairstat"
#define CONSUMER "test-1"
#define DAY "20240501"
#define T0 1714564800000LL      /* 2024-05-01T12:00:00Z */
#define MIN (60 * 1000LL)
#define VISITOR "0123456789abcdef"

static struct redis_server rs;
#define CMD(...) redis_server_cmd(&rs, __VA_ARGS__)
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

static long long pending(const char *site)
{
    redisReply *r = CMD("XPENDING %s %s", stream_key(site), GROUP);
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

static void create_group(const char *site)
{
    freeReplyObject(CMD("XGROUP CREATE %s %s 0 MKSTREAM", stream_key(site), GROUP));
}

/* Queues a raw hit (kv: field, value, ..., NULL) on site's stream. */
static void xadd(const char *site, const char *const *kv)
{
    const char *argv[40] = {"XADD", stream_key(site), "*"};
    int argc = 3;
    for (; *kv; kv++) argv[argc++] = *kv;
    redisReply *r = redisCommandArgv(rs.rc, argc, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
}

static void pageview(int64_t t, const char *path, const char *visitor)
{
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)t);
    const char *kv[] = {HIT_TIME, ts, HIT_NAME, "pageview", HIT_PATH, path, HIT_REFERRER, "news.example",
                        HIT_COUNTRY, "DE", HIT_BROWSER, "Firefox", HIT_OS, "Linux", HIT_DEVICE, "desktop",
                        HIT_VISITOR, visitor, NULL};
    xadd(SITE, kv);
}

/* ------------------------------------------------------------------------ */
/* The fold, as run.c drives it                                              */
/* ------------------------------------------------------------------------ */

/* Reads every new entry of site's stream for the group into a fresh batch b.
 * now_ms is the time of the fold. Returns the number of entries read. */
static size_t read_batch(struct fold_batch *b, const char *site, int64_t now_ms)
{
    fold_batch_reset(b);
    redisReply *r = CMD("XREADGROUP GROUP %s %s COUNT 1000 STREAMS %s >", GROUP, CONSUMER,
                        stream_key(site));
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return 0;
    }
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    const redisReply *entries = r->element[0]->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i], *f = e->element[1];
        const char *fv[64];
        size_t fvlen[64];
        assert_true(f->elements <= 64);
        for (size_t k = 0; k < f->elements; k++) {
            fv[k] = f->element[k]->str;
            fvlen[k] = f->element[k]->len;
        }
        assert_int_equal(fold_batch_add(b, e->element[0]->str, e->element[0]->len, fv, fvlen,
                                        f->elements, now_ms), 0);
    }
    size_t n = entries->elements;
    freeReplyObject(r);
    assert_int_equal(fold_batch_entries(b), n);
    return n;
}

struct result {
    long long counted, skipped;
};

/* Runs the script on b; b can be applied again (a replay). */
static struct result apply(struct fold_batch *b)
{
    const char **argv;
    const size_t *len;
    size_t argc;
    assert_int_equal(fold_batch_argv(b, sha, GROUP, CONSUMER, &argv, &len, &argc), 0);
    redisReply *r = redisCommandArgv(rs.rc, (int)argc, argv, len);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("fold script: %s", r->str);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, FOLD_REPLY_LEN);
    struct result res = {r->element[FOLD_REPLY_COUNTED]->integer,
                         r->element[FOLD_REPLY_SKIPPED]->integer};
    freeReplyObject(r);
    return res;
}

/* Reads, folds and applies everything new on SITE, folding at now_ms. */
static struct result fold_all(int64_t now_ms)
{
    struct fold_batch *b = fold_batch_new(SITE, utc, CLOCK_DAY_MS + FOLD_IDLE_MS);
    assert_non_null(b);
    read_batch(b, SITE, now_ms);
    struct result res = apply(b);
    fold_batch_free(b);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Exactly once                                                              */
/* ------------------------------------------------------------------------ */

static void counts_a_batch_once_and_deletes_its_raw_entries(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/b", "00000000000000a2");
    pageview(T0 + 2 * MIN, "/a", "00000000000000a3");

    struct result res = fold_all(T0 + 2 * MIN);

    assert_int_equal(res.counted, 3);
    assert_int_equal(res.skipped, 0);
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
    assert_int_equal(visitors(NULL), 3);
    assert_int_equal(visitors("/a"), 2);
    char hour[256];
    assert_true(keys_hour(hour, sizeof hour, SITE, DAY "12") > 0);
    assert_int_equal(integer(CMD("HGET %s pageviews", hour)), 3);
    assert_int_equal(stream_length(SITE), 0);
    assert_int_equal(pending(SITE), 0);
}

static void a_replayed_batch_counts_nothing(void **state)
{
    (void)state;
    pageview(T0, "/a", "00000000000000a1");
    pageview(T0 + MIN, "/a", "00000000000000a2");
    struct fold_batch *b = fold_batch_new(SITE, utc, CLOCK_DAY_MS + FOLD_IDLE_MS);
    read_batch(b, SITE, T0 + MIN);
    struct result first = apply(b);

    /* A crash between the script and the reply: the same batch again. */
    struct result again = apply(b);

    assert_int_equal(first.counted, 2);
    assert_int_equal(again.counted, 0);
    assert_int_equal(again.skipped, 2);
    assert_int_equal(count("totals", "pageviews"), 2);
    assert_int_equal(count("totals", "visits"), 2);
    assert_int_equal(count("page", "/a"), 2);
    assert_int_equal(stream_length(SITE), 0);
    fold_batch_free(b);
}

static void an_entry_deleted_after_it_was_read_is_not_counted(void **state)
{
    (void)state;
    pageview(T0, "/kept", "00000000000000a1");
    pageview(T0 + MIN, "/withdrawn", "00000000000000a2");
    struct fold_batch *b = fold_batch_new(SITE, utc, CLOCK_DAY_MS + FOLD_IDLE_MS);
    assert_int_equal(read_batch(b, SITE, T0 + MIN), 2);
    /* Withdrawn (DELETE /consent, forget) or purged while the batch was in hand. */
    redisReply *r = CMD("XREVRANGE %s + - COUNT 1", stream_key(SITE));
    freeReplyObject(CMD("XDEL %s %s", stream_key(SITE), r->element[0]->element[0]->str));
    freeReplyObject(r);

    struct result res = apply(b);

    assert_int_equal(res.counted, 1);
    assert_int_equal(res.skipped, 1);
    assert_int_equal(count("page", "/kept"), 1);
    assert_int_equal(count("page", "/withdrawn"), 0);
    assert_int_equal(count("totals", "pageviews"), 1);
    assert_int_equal(visitors(NULL), 1);
    assert_int_equal(pending(SITE), 0);
    fold_batch_free(b);
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
    char sess[256];
    assert_true(keys_sess(sess, sizeof sess, SITE, VISITOR) > 0);
    long long ttl = integer(CMD("PTTL %s", sess));
    assert_true(ttl > 0 && ttl <= FOLD_IDLE_MS);
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

static void a_straggler_older_than_the_visit_is_its_own_visit(void **state)
{
    (void)state;
    int64_t visit = T0 + 2 * 60 * MIN;
    pageview(visit, "/now", VISITOR);
    fold_all(visit);

    /* Reclaimed late: a hit from long before the current visit began. */
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
/* Events and unusable entries                                               */
/* ------------------------------------------------------------------------ */

static void custom_events_count_events_not_pageviews(void **state)
{
    (void)state;
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", T0);
    const char *kv[] = {HIT_TIME, ts, HIT_NAME, "signup", HIT_PATH, "/join", HIT_VISITOR, VISITOR,
                        HIT_PROPS, "{\"plan\":\"pro\"}", NULL};
    xadd(SITE, kv);
    xadd(SITE, kv);

    struct result res = fold_all(T0);

    assert_int_equal(res.counted, 2);
    assert_int_equal(count("totals", "events"), 2);
    assert_int_equal(count("event", "signup"), 2);
    assert_int_equal(count("totals", "pageviews"), 0);
    assert_int_equal(count("totals", "visits"), 0);
    assert_int_equal(members("page"), 0);
    assert_int_equal(members("entry"), 0);
    assert_int_equal(visitors(NULL), 1);
    char sess[256];
    assert_true(keys_sess(sess, sizeof sess, SITE, VISITOR) > 0);
    assert_int_equal(integer(CMD("EXISTS %s", sess)), 0);
}

static void a_malformed_entry_is_acked_and_deleted_and_counted_as_skipped(void **state)
{
    (void)state;
    /* A site whose stream key fits but whose day keys do not: its hits are
     * folded as FOLD_KIND_SKIP. */
    char site[600];
    memset(site, 's', 490);
    strcpy(site + 490, ".example");
    create_group(site);
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", T0);
    const char *kv[] = {HIT_TIME, ts, HIT_PATH, "/", HIT_VISITOR, VISITOR, NULL};
    xadd(site, kv);
    struct fold_batch *b = fold_batch_new(site, utc, CLOCK_DAY_MS + FOLD_IDLE_MS);
    assert_non_null(b);
    assert_int_equal(read_batch(b, site, T0), 1);

    struct result res = apply(b);

    assert_int_equal(res.counted, 0);
    assert_int_equal(res.skipped, 1);
    assert_int_equal(stream_length(site), 0);
    assert_int_equal(pending(site), 0);
    /* Nothing but the stream itself was written. */
    assert_int_equal(integer(CMD("DBSIZE")), 2);
    fold_batch_free(b);
}

/* ------------------------------------------------------------------------ */
/* How long visit state lives                                                */
/* ------------------------------------------------------------------------ */

static void live_hit_keeps_state_for_the_idle_time(void **state)
{
    (void)state;
    assert_int_equal(fold_session_ttl_ms(FOLD_IDLE_MS, 1000 * MIN, 1000 * MIN, CLOCK_DAY_MS), 30 * MIN);
    /* A hit from the near future (clock skew) does not shorten it. */
    assert_int_equal(fold_session_ttl_ms(FOLD_IDLE_MS, 1001 * MIN, 1000 * MIN, CLOCK_DAY_MS), 30 * MIN);
}

static void backlog_extends_state_by_the_lag(void **state)
{
    (void)state;
    /* Folded an hour late: the next hit of the visit is also an hour late. */
    assert_int_equal(fold_session_ttl_ms(FOLD_IDLE_MS, 1000 * MIN, 1060 * MIN, CLOCK_DAY_MS), 90 * MIN);
}

static void state_never_outlives_the_raw_retention(void **state)
{
    (void)state;
    assert_int_equal(fold_session_ttl_ms(FOLD_IDLE_MS, 0, 10 * CLOCK_DAY_MS, CLOCK_DAY_MS + 30 * MIN),
                     CLOCK_DAY_MS + 30 * MIN);
}

static void ttl_is_never_zero(void **state)
{
    (void)state;
    assert_true(fold_session_ttl_ms(0, 5, 5, CLOCK_DAY_MS) >= 1000);
}

/* ------------------------------------------------------------------------ */

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

/* Each test starts from an empty database with the group on SITE's stream. */
static int fresh(void **state)
{
    (void)state;
    freeReplyObject(CMD("FLUSHALL"));
    create_group(SITE);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(counts_a_batch_once_and_deletes_its_raw_entries, fresh),
        cmocka_unit_test_setup(a_replayed_batch_counts_nothing, fresh),
        cmocka_unit_test_setup(an_entry_deleted_after_it_was_read_is_not_counted, fresh),
        cmocka_unit_test_setup(second_pageview_takes_back_the_bounce_adds_duration_and_moves_the_exit, fresh),
        cmocka_unit_test_setup(a_pageview_after_the_idle_time_starts_a_new_visit, fresh),
        cmocka_unit_test_setup(a_straggler_older_than_the_visit_is_its_own_visit, fresh),
        cmocka_unit_test_setup(custom_events_count_events_not_pageviews, fresh),
        cmocka_unit_test_setup(a_malformed_entry_is_acked_and_deleted_and_counted_as_skipped, fresh),
        cmocka_unit_test(live_hit_keeps_state_for_the_idle_time),
        cmocka_unit_test(backlog_extends_state_by_the_lag),
        cmocka_unit_test(state_never_outlives_the_raw_retention),
        cmocka_unit_test(ttl_is_never_zero),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
