/* test_erase.c -- erasing a visitor's buffered hits (erase.h), run in a real Redis.
 *
 * The script is the one both the collector (GET/DELETE /consent) and the
 * aggregator (forget) send; here it is built by erase_command() and its
 * answer read by erase_reply(), exactly as they do.
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
#include "erase.h"
#include "keys.h"
#include "redis_server.h"
#include "visitor.h"

#define SITE "example.com"
#define RECEIPT "receipt-123"
#define NOW 1714600000000LL   /* 2024-05-01T21:46:40Z */
#define RAW_MAX_AGE_MS (24 * 3600 * 1000LL)

static struct redis_server rs;
#define CMD(...) redis_server_cmd(&rs, __VA_ARGS__)

/* The salts "held" by the test: yesterday's and today's, not tomorrow's. */
static int test_salt(void *arg, int64_t day, char *buf, size_t cap)
{
    (void)arg;
    int64_t today = clock_utc_day(NOW);
    if (day != today && day != today - 1) return 0;
    int n = snprintf(buf, cap, "salt-%lld", (long long)day);
    return n;
}

static int failing_salt(void *arg, int64_t day, char *buf, size_t cap)
{
    (void)arg, (void)day, (void)buf, (void)cap;
    return -1;
}

static void hash_for(int64_t day, const char *receipt, char out[VISITOR_HEX_LEN + 1])
{
    char salt[64];
    int n = test_salt(NULL, day, salt, sizeof salt);
    assert_true(n > 0);
    assert_int_equal(visitor_hash(salt, (size_t)n, SITE, strlen(SITE), receipt, strlen(receipt), out), 0);
}


/* XLEN of key (0 when it does not exist). */
static long long xlen(const char *key)
{
    redisReply *r = CMD("XLEN %s", key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static void add_hit(const char *visitor, const char *path)
{
    freeReplyObject(CMD("XADD fs:{" SITE "}:hits * t 1 n pageview p %s v %s", path, visitor));
}

/* Runs the script as the programs do; returns hits, *recorded and
 * *complete as answered. */
static long long erase_c(enum erase_mode mode, const char *receipt, int *recorded, int *complete)
{
    struct erase_request req = {.site = SITE, .receipt = receipt, .now_ms = NOW,
                                .raw_max_age_ms = RAW_MAX_AGE_MS, .mode = mode,
                                .by = ERASE_BY_AGGREGATOR};
    struct erase_call call;
    assert_int_equal(erase_command(&call, &req, test_salt, NULL), 0);
    redisReply *r = redisCommandArgv(rs.rc, call.argc, call.argv, call.len);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("script error: %s", r->str);
    long long hits = -1;
    assert_int_equal(erase_reply(r, &hits, recorded, complete), 0);
    freeReplyObject(r);
    return hits;
}

static long long erase(enum erase_mode mode, const char *receipt, int *recorded)
{
    int complete = -1;
    long long n = erase_c(mode, receipt, recorded, &complete);
    assert_int_equal(complete, 1);     /* these tests' streams are short */
    return n;
}

/* The 8 bytes of a hex visitor hash, as the withdrawn set holds it. */
static void visitor_bin(const char *hex, unsigned char out[8])
{
    for (int i = 0; i < 8; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
}

/* ZSCORE of a binary visitor in the site's withdrawn set; -1 when absent. */
static long long withdrawn_score(const char *hex)
{
    unsigned char bin[8];
    visitor_bin(hex, bin);
    redisReply *r = redisCommand(rs.rc, "ZSCORE fs:{" SITE "}:withdrawn %b", bin, (size_t)8);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* The value of field in the only/last entry of stream, copied into out. */
static int last_field(const char *stream, const char *field, char *out, size_t cap)
{
    redisReply *r = CMD("XREVRANGE %s + - COUNT 1", stream);
    int found = 0;
    if (r->elements == 1) {
        redisReply *f = r->element[0]->element[1];
        for (size_t i = 0; i + 1 < f->elements; i += 2)
            if (strcmp(f->element[i]->str, field) == 0) {
                snprintf(out, cap, "%s", f->element[i + 1]->str);
                found = 1;
            }
    }
    freeReplyObject(r);
    return found;
}

static int setup(void **state)
{
    (void)state;
    return redis_server_start(&rs);
}

static int teardown(void **state)
{
    (void)state;
    redis_server_stop(&rs);
    return 0;
}

static int flush(void **state)
{
    (void)state;
    freeReplyObject(CMD("FLUSHALL"));
    return 0;
}

/* Two hits under yesterday's salt, one under today's, one of another
 * visitor, one under tomorrow's salt (which the test does not hold). */
static void add_mixed_hits(void)
{
    int64_t today = clock_utc_day(NOW);
    char y[VISITOR_HEX_LEN + 1], t[VISITOR_HEX_LEN + 1], other[VISITOR_HEX_LEN + 1];
    hash_for(today - 1, RECEIPT, y);
    hash_for(today, RECEIPT, t);
    hash_for(today, "someone-else", other);
    add_hit(y, "/y1");
    add_hit(other, "/other");
    add_hit(t, "/t1");
    add_hit(y, "/y2");
    add_hit("ffffffffffffffff", "/unknown");
}

static void command_hashes_under_every_salt_held(void **state)
{
    (void)state;
    struct erase_request req = {.site = SITE, .receipt = RECEIPT, .now_ms = NOW,
                                .raw_max_age_ms = RAW_MAX_AGE_MS, .mode = ERASE_COUNT,
                                .by = ERASE_BY_COLLECTOR};
    struct erase_call call;
    assert_int_equal(erase_command(&call, &req, test_salt, NULL), 0);
    assert_int_equal(call.nhashes, 2);
    assert_string_equal(call.argv[0], "EVAL");
    assert_string_equal(call.argv[3 + ERASE_KEY_HITS - 1], "fs:{" SITE "}:hits");
    assert_string_equal(call.argv[3 + ERASE_KEY_CONSENT - 1], "fs:{" SITE "}:consent");
    assert_string_equal(call.argv[3 + ERASE_KEY_AUDIT - 1], KEYS_AUDIT);
    assert_string_equal(call.argv[3 + ERASE_KEY_WITHDRAWN - 1], "fs:{" SITE "}:withdrawn");
    assert_string_equal(call.argv[3 + ERASE_KEY_GEN - 1], "fs:{" SITE "}:withdrawn:gen");
    /* One visit-state key per salt held: yesterday's and today's. */
    assert_string_equal(call.argv[3 + ERASE_KEY_VISITS - 1], "fs:{" SITE "}:v:20240430");
    assert_string_equal(call.argv[3 + ERASE_KEY_VISITS], "fs:{" SITE "}:v:20240501");
    assert_string_equal(call.argv[2], "7");
    int argv0 = 3 + ERASE_NKEYS + call.nhashes;   /* ARGV[1] */
    assert_string_equal(call.argv[argv0 + ERASE_ARG_RECEIPT - 1], RECEIPT);
    assert_string_equal(call.argv[argv0 + ERASE_ARG_ACTION - 1], "withdraw");
    assert_string_equal(call.argv[argv0 + ERASE_ARG_BY - 1], "collector");
    /* (hash, expiry) per salt: a hit of day D lives at most raw_max_age past D's end. */
    assert_int_equal(call.argc, argv0 + ERASE_ARG_HASHES - 1 + 2 * 2);
    char y[VISITOR_HEX_LEN + 1];
    hash_for(clock_utc_day(NOW) - 1, RECEIPT, y);
    assert_string_equal(call.argv[argv0 + ERASE_ARG_HASHES - 1], y);
    char until[32];
    snprintf(until, sizeof until, "%lld",
             (long long)(clock_utc_day(NOW) * CLOCK_DAY_MS + RAW_MAX_AGE_MS + 3600 * 1000LL));
    assert_string_equal(call.argv[argv0 + ERASE_ARG_HASHES], until);
    for (int i = 0; i < call.argc; i++) assert_int_equal(call.len[i], strlen(call.argv[i]));
    /* A salt that cannot be read is an error, not a salt skipped. */
    assert_int_equal(erase_command(&call, &req, failing_salt, NULL), -1);
}

static void count_finds_only_the_receipts_hits_and_writes_nothing(void **state)
{
    (void)state;
    add_mixed_hits();
    int recorded = -1;
    assert_int_equal(erase(ERASE_COUNT, RECEIPT, &recorded), 3);
    assert_int_equal(recorded, 0);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), 5);
    assert_int_equal(xlen("fs:{" SITE "}:consent"), 0);
    assert_int_equal(xlen(KEYS_AUDIT), 0);
}

static void erase_deletes_and_acknowledges_exactly_those_hits(void **state)
{
    (void)state;
    add_mixed_hits();
    /* The aggregator has read every entry but applied none. */
    freeReplyObject(CMD("XGROUP CREATE fs:{" SITE "}:hits %s 0", KEYS_GROUP));
    freeReplyObject(CMD("XREADGROUP GROUP %s me COUNT 100 STREAMS fs:{" SITE "}:hits >", KEYS_GROUP));
    int recorded = -1;
    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, &recorded), 3);
    assert_int_equal(recorded, 1);

    redisReply *r = CMD("XRANGE fs:{" SITE "}:hits - +");
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->element[1]->element[5]->str, "/other");
    assert_string_equal(r->element[1]->element[1]->element[5]->str, "/unknown");
    freeReplyObject(r);
    /* Only the two entries left are still pending: none points at a deleted one. */
    r = CMD("XPENDING fs:{" SITE "}:hits %s", KEYS_GROUP);
    assert_int_equal(r->element[0]->integer, 2);
    freeReplyObject(r);
    /* A second erase finds nothing. */
    assert_int_equal(erase(ERASE_COUNT, RECEIPT, NULL), 0);
}

static void erase_writes_the_receipt_and_an_audit_record_of_counts_only(void **state)
{
    (void)state;
    add_mixed_hits();
    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, NULL), 3);
    char v[128];
    assert_true(last_field("fs:{" SITE "}:consent", RECEIPT_ID, v, sizeof v));
    assert_string_equal(v, RECEIPT);
    assert_true(last_field("fs:{" SITE "}:consent", RECEIPT_ACTION, v, sizeof v));
    assert_string_equal(v, "forget");
    assert_true(last_field("fs:{" SITE "}:consent", RECEIPT_TIME, v, sizeof v));
    assert_string_equal(v, "1714600000000");

    assert_int_equal(xlen(KEYS_AUDIT), 1);
    const char *want[][2] = {{"action", "forget"}, {"by", "aggregator"}, {"site", SITE},
                             {"hits", "3"}, {"t", "1714600000000"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_true(last_field(KEYS_AUDIT, want[i][0], v, sizeof v));
        assert_string_equal(v, want[i][1]);
    }
    /* Nothing else: no receipt id, no visitor hash. */
    redisReply *r = CMD("XRANGE %s - +", KEYS_AUDIT);
    redisReply *f = r->element[0]->element[1];
    assert_int_equal(f->elements, 2 * (sizeof want / sizeof want[0]));
    char y[VISITOR_HEX_LEN + 1];
    hash_for(clock_utc_day(NOW) - 1, RECEIPT, y);
    for (size_t i = 0; i < f->elements; i++) {
        assert_null(strstr(f->element[i]->str, RECEIPT));
        assert_null(strstr(f->element[i]->str, y));
    }
    freeReplyObject(r);
}

static void always_records_even_without_hits(void **state)
{
    (void)state;
    int recorded = -1;
    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, &recorded), 0);
    assert_int_equal(recorded, 1);
    assert_int_equal(xlen("fs:{" SITE "}:consent"), 1);
    assert_int_equal(xlen(KEYS_AUDIT), 1);
}

static void if_known_writes_nothing_for_an_unknown_receipt_without_hits(void **state)
{
    (void)state;
    add_mixed_hits();
    freeReplyObject(CMD("XADD fs:{" SITE "}:consent * id %s a grant an 1 t 1", "someone-else"));
    int recorded = -1;
    assert_int_equal(erase(ERASE_IF_KNOWN, "never-issued", &recorded), 0);
    assert_int_equal(recorded, 0);
    assert_int_equal(xlen("fs:{" SITE "}:consent"), 1);
    assert_int_equal(xlen(KEYS_AUDIT), 0);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), 5);
}

static void if_known_records_a_receipt_issued_here_without_hits(void **state)
{
    (void)state;
    /* Issued long ago: more than a page of other receipts after it. */
    freeReplyObject(CMD("XADD fs:{" SITE "}:consent * id %s a grant an 1 t 1", RECEIPT));
    for (int i = 0; i < ERASE_PAGE + 10; i++)
        freeReplyObject(CMD("XADD fs:{" SITE "}:consent * id other-%d a grant an 1 t 1", i));
    int recorded = -1;
    assert_int_equal(erase(ERASE_IF_KNOWN, RECEIPT, &recorded), 0);
    assert_int_equal(recorded, 1);
    assert_int_equal(xlen(KEYS_AUDIT), 1);
}

static void if_known_records_where_hits_were_found(void **state)
{
    (void)state;
    add_mixed_hits();
    int recorded = -1;
    assert_int_equal(erase(ERASE_IF_KNOWN, RECEIPT, &recorded), 3);
    assert_int_equal(recorded, 1);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), 2);
    assert_int_equal(xlen(KEYS_AUDIT), 1);
}

static void a_stream_up_to_the_scan_is_found_whole(void **state)
{
    (void)state;
    char mine[VISITOR_HEX_LEN + 1];
    hash_for(clock_utc_day(NOW), RECEIPT, mine);
    for (int i = 0; i < ERASE_SCAN; i++) add_hit(i % 3 == 0 ? mine : "0000000000000000", "/");
    int n = (ERASE_SCAN + 2) / 3, complete = -1;
    assert_int_equal(erase_c(ERASE_ALWAYS, RECEIPT, NULL, &complete), n);
    assert_int_equal(complete, 1);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), ERASE_SCAN - n);
}

/* A backlog past ERASE_SCAN is not walked: the newest entries are looked at,
 * the answer says the count is not complete, and the visitor goes to the
 * withdrawn set, whose hits the fold drops (test_fold_script.c). */
static void a_backlog_past_the_scan_is_left_to_the_fold(void **state)
{
    (void)state;
    char mine[VISITOR_HEX_LEN + 1];
    hash_for(clock_utc_day(NOW), RECEIPT, mine);
    int total = 3 * ERASE_SCAN;
    for (int i = 0; i < total; i++) add_hit(i % 3 == 0 ? mine : "0000000000000000", "/");
    int complete = -1;
    /* Among the newest ERASE_SCAN entries (i = total - ERASE_SCAN .. total - 1). */
    int newest = 0;
    for (int i = total - ERASE_SCAN; i < total; i++) newest += i % 3 == 0;
    assert_int_equal(erase_c(ERASE_COUNT, RECEIPT, NULL, &complete), newest);
    assert_int_equal(complete, 0);
    assert_int_equal(erase_c(ERASE_ALWAYS, RECEIPT, NULL, &complete), newest);
    assert_int_equal(complete, 0);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), total - newest);
    assert_true(withdrawn_score(mine) > NOW);
}

static void withdrawal_marks_the_visitor_and_forgets_its_visits(void **state)
{
    (void)state;
    int64_t today = clock_utc_day(NOW);
    char y[VISITOR_HEX_LEN + 1], t[VISITOR_HEX_LEN + 1], other[VISITOR_HEX_LEN + 1];
    hash_for(today - 1, RECEIPT, y);
    hash_for(today, RECEIPT, t);
    hash_for(today, "someone-else", other);
    unsigned char tb[8], ob[8];
    visitor_bin(t, tb);
    visitor_bin(other, ob);
    freeReplyObject(redisCommand(rs.rc, "HSET fs:{" SITE "}:v:20240501 %b state %b state", tb,
                                 (size_t)8, ob, (size_t)8));
    /* COUNT changes nothing. */
    assert_int_equal(erase(ERASE_COUNT, RECEIPT, NULL), 0);
    assert_int_equal(withdrawn_score(t), -1);

    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, NULL), 0);
    assert_int_equal(withdrawn_score(y), today * CLOCK_DAY_MS + RAW_MAX_AGE_MS + 3600 * 1000LL);
    assert_int_equal(withdrawn_score(t), (today + 1) * CLOCK_DAY_MS + RAW_MAX_AGE_MS + 3600 * 1000LL);
    assert_int_equal(withdrawn_score(other), -1);
    redisReply *r = CMD("GET fs:{" SITE "}:withdrawn:gen");
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    /* The visitor's visit state is gone, the other visitor's is not. */
    r = CMD("HLEN fs:{" SITE "}:v:20240501");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(rs.rc, "HEXISTS fs:{" SITE "}:v:20240501 %b", ob, (size_t)8);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
}

static void a_missing_stream_or_group_is_no_error(void **state)
{
    (void)state;
    /* No stream at all. */
    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, NULL), 0);
    /* A stream the aggregator has never read: no group to acknowledge for. */
    add_mixed_hits();
    assert_int_equal(erase(ERASE_ALWAYS, RECEIPT, NULL), 3);
    assert_int_equal(xlen("fs:{" SITE "}:hits"), 2);
}

static void reply_parser_refuses_what_the_script_does_not_send(void **state)
{
    (void)state;
    long long hits = 0;
    int recorded = 0;
    int complete = 0;
    assert_int_equal(erase_reply(NULL, &hits, &recorded, &complete), -1);
    redisReply *r = redisCommand(rs.rc, "PING");
    assert_int_equal(erase_reply(r, &hits, &recorded, &complete), -1);
    freeReplyObject(r);
    r = redisCommand(rs.rc, "EVAL %s 0", "return {1}");
    assert_int_equal(erase_reply(r, &hits, &recorded, &complete), -1);
    freeReplyObject(r);
    r = redisCommand(rs.rc, "EVAL %s 0", "return {7, 1}");
    assert_int_equal(erase_reply(r, &hits, &recorded, &complete), -1);
    freeReplyObject(r);
    r = redisCommand(rs.rc, "EVAL %s 0", "return {7, 1, 1}");
    assert_int_equal(erase_reply(r, &hits, &recorded, &complete), 0);
    assert_int_equal(hits, 7);
    assert_int_equal(recorded, 1);
    assert_int_equal(complete, 1);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(command_hashes_under_every_salt_held),
        cmocka_unit_test_setup(count_finds_only_the_receipts_hits_and_writes_nothing, flush),
        cmocka_unit_test_setup(erase_deletes_and_acknowledges_exactly_those_hits, flush),
        cmocka_unit_test_setup(erase_writes_the_receipt_and_an_audit_record_of_counts_only, flush),
        cmocka_unit_test_setup(always_records_even_without_hits, flush),
        cmocka_unit_test_setup(if_known_writes_nothing_for_an_unknown_receipt_without_hits, flush),
        cmocka_unit_test_setup(if_known_records_a_receipt_issued_here_without_hits, flush),
        cmocka_unit_test_setup(if_known_records_where_hits_were_found, flush),
        cmocka_unit_test_setup(a_stream_up_to_the_scan_is_found_whole, flush),
        cmocka_unit_test_setup(a_backlog_past_the_scan_is_left_to_the_fold, flush),
        cmocka_unit_test_setup(withdrawal_marks_the_visitor_and_forgets_its_visits, flush),
        cmocka_unit_test_setup(a_missing_stream_or_group_is_no_error, flush),
        cmocka_unit_test(reply_parser_refuses_what_the_script_does_not_send),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
