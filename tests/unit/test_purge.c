/* test_purge.c -- which ids and days the retention purge selects (purge.h).
 *
 * Which key is an aggregate and of what day is tested with keys.h, in
 * test_keys.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "dates.h"
#include "purge.h"

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

static void aggregate_cutoff_is_a_local_day(void **state)
{
    (void)state;
    char err[128];
    struct clock_zone *utc = clock_zone_new("UTC", err, sizeof err);
    struct clock_zone *ny = clock_zone_new("America/New_York", err, sizeof err);
    /* 30 days before 2024-05-31T02:00Z is 2024-05-01T02:00Z: in New York still April 30th. */
    assert_int_equal(purge_aggregate_cutoff(utc, at("2024-05-31T02:00:00Z"), 30 * CLOCK_DAY_S), day("20240501"));
    assert_int_equal(purge_aggregate_cutoff(ny, at("2024-05-31T02:00:00Z"), 30 * CLOCK_DAY_S), day("20240430"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minid_is_as_of_minus_max_age),
        cmocka_unit_test(aggregate_cutoff_is_a_local_day),
        cmocka_unit_test(salts_go_48_hours_after_their_day_began),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
