/* test_purge.c -- which keys and ids the retention purge selects (purge.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "purge.h"

static int64_t at(const char *rfc3339)
{
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339(rfc3339, &ms), 0);
    return ms;
}

static int64_t day(const char *yyyymmdd)
{
    int64_t d;
    assert_int_equal(clock_parse_day(yyyymmdd, &d), 0);
    return d;
}

#define PREFIX "fs:{example.com}:"
#define KEY_DAY(k) purge_key_day(k, strlen(k), strlen(PREFIX))

static void minid_is_as_of_minus_max_age(void **state)
{
    (void)state;
    char id[32];
    int64_t ms = purge_minid(at("2024-05-03T00:00:00Z"), 24 * 3600, id);
    assert_int_equal(ms, at("2024-05-02T00:00:00Z"));
    assert_string_equal(id, "1714608000000-0");
    /* Never below the first possible id. */
    assert_int_equal(purge_minid(1000, 3600, id), 0);
    assert_string_equal(id, "0-0");
}

static void aggregate_keys_are_dated_by_their_name(void **state)
{
    (void)state;
    assert_int_equal(KEY_DAY(PREFIX "d:20240501:page"), day("20240501"));
    assert_int_equal(KEY_DAY(PREFIX "d:20240501:uv"), day("20240501"));
    assert_int_equal(KEY_DAY(PREFIX "d:20240501:uv:/d:20990101:x"), day("20240501"));
    assert_int_equal(KEY_DAY(PREFIX "h:2024050123"), day("20240501"));
}

static void other_keys_are_never_selected(void **state)
{
    (void)state;
    assert_int_equal(KEY_DAY(PREFIX "hits"), -1);
    assert_int_equal(KEY_DAY(PREFIX "consent"), -1);
    assert_int_equal(KEY_DAY(PREFIX "sess:0123456789abcdef"), -1);
    assert_int_equal(KEY_DAY(PREFIX "d:2024050:page"), -1);      /* short date */
    assert_int_equal(KEY_DAY(PREFIX "d:20241301:page"), -1);     /* month 13 */
    assert_int_equal(KEY_DAY(PREFIX "d:20240501"), -1);          /* no dim */
    assert_int_equal(KEY_DAY(PREFIX "h:20240501"), -1);          /* no hour */
    assert_int_equal(KEY_DAY(PREFIX "h:2024050123x"), -1);
    assert_int_equal(KEY_DAY("fs:"), -1);
}

static void aggregate_cutoff_is_a_local_day(void **state)
{
    (void)state;
    char err[128];
    struct clock_zone *utc = clock_zone_new("UTC", err, sizeof err);
    struct clock_zone *ny = clock_zone_new("America/New_York", err, sizeof err);
    /* 30 days before 2024-05-31T02:00Z is 2024-05-01T02:00Z: in New York still April 30th. */
    assert_int_equal(purge_aggregate_cutoff(utc, at("2024-05-31T02:00:00Z"), 30 * 86400), day("20240501"));
    assert_int_equal(purge_aggregate_cutoff(ny, at("2024-05-31T02:00:00Z"), 30 * 86400), day("20240430"));
    clock_zone_free(utc);
    clock_zone_free(ny);
}

static void salts_go_48_hours_after_their_day_began(void **state)
{
    (void)state;
    const char *k = "fs:salt:20240501";
    assert_int_equal(purge_salt_expired(k, strlen(k), at("2024-05-02T23:59:59Z")), 0);
    assert_int_equal(purge_salt_expired(k, strlen(k), at("2024-05-03T00:00:00Z")), 1);
    assert_int_equal(purge_salt_expired(k, strlen(k), at("2024-05-03T01:00:00Z")), 1);
    const char *bad[] = {"fs:salt:2024050", "fs:salt:2024-05-01", "fs:salt:20240501x", "fs:audit"};
    for (size_t i = 0; i < 4; i++) assert_int_equal(purge_salt_expired(bad[i], strlen(bad[i]), 0), -1);
}

static void site_names_are_escaped_for_scan_match(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(purge_glob_escape("example.com", out, sizeof out), 11);
    assert_string_equal(out, "example.com");
    assert_true(purge_glob_escape("a*b?[c]\\", out, sizeof out) > 0);
    assert_string_equal(out, "a\\*b\\?\\[c\\]\\\\");
    assert_int_equal(purge_glob_escape("toolong", out, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minid_is_as_of_minus_max_age),
        cmocka_unit_test(aggregate_keys_are_dated_by_their_name),
        cmocka_unit_test(other_keys_are_never_selected),
        cmocka_unit_test(aggregate_cutoff_is_a_local_day),
        cmocka_unit_test(salts_go_48_hours_after_their_day_began),
        cmocka_unit_test(site_names_are_escaped_for_scan_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
