/* test_clock.c -- days, hours and timezones for bucketing hits (clock.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "dates.h"

static struct clock_zone *zone(const char *name)
{
    char err[256];
    struct clock_zone *z = clock_zone_new(name, err, sizeof err);
    assert_non_null(z);
    return z;
}

static void expect_buckets(struct clock_zone *z, const char *when, const char *day, const char *hour)
{
    char d[CLOCK_DAY_LEN + 1], h[CLOCK_HOUR_LEN + 1];
    clock_buckets(z, at(when), d, h);
    assert_string_equal(d, day);
    assert_string_equal(h, hour);
}

static void utc_hits_are_filed_under_their_utc_day_and_hour(void **state)
{
    (void)state;
    struct clock_zone *z = zone("UTC");
    expect_buckets(z, "2024-05-01T00:00:00Z", "20240501", "2024050100");
    expect_buckets(z, "2024-05-01T23:59:59.999Z", "20240501", "2024050123");
    expect_buckets(z, "2024-12-31T23:59:59Z", "20241231", "2024123123");
    expect_buckets(z, "2024-02-29T12:00:00Z", "20240229", "2024022912");
    clock_zone_free(z);
}

static void berlin_day_starts_at_local_midnight(void **state)
{
    (void)state;
    struct clock_zone *z = zone("Europe/Berlin");
    /* Winter: UTC+1. 23:30Z is already the next local day. */
    expect_buckets(z, "2024-01-15T22:59:59Z", "20240115", "2024011523");
    expect_buckets(z, "2024-01-15T23:00:00Z", "20240116", "2024011600");
    /* Summer: UTC+2. */
    expect_buckets(z, "2024-07-01T21:59:59Z", "20240701", "2024070123");
    expect_buckets(z, "2024-07-01T22:00:00Z", "20240702", "2024070200");
    clock_zone_free(z);
}

static void berlin_dst_changes_move_the_hour_not_the_day(void **state)
{
    (void)state;
    struct clock_zone *z = zone("Europe/Berlin");
    /* Spring forward 2024-03-31 at 01:00Z: local 02:00 does not exist. */
    expect_buckets(z, "2024-03-31T00:59:59Z", "20240331", "2024033101");
    expect_buckets(z, "2024-03-31T01:00:00Z", "20240331", "2024033103");
    /* Fall back 2024-10-27 at 01:00Z: local 02:00-03:00 happens twice. */
    expect_buckets(z, "2024-10-27T00:30:00Z", "20241027", "2024102702");
    expect_buckets(z, "2024-10-27T01:30:00Z", "20241027", "2024102702");
    expect_buckets(z, "2024-10-27T02:00:00Z", "20241027", "2024102703");
    clock_zone_free(z);
}

static void new_york_evening_is_still_the_previous_day(void **state)
{
    (void)state;
    struct clock_zone *z = zone("America/New_York");
    expect_buckets(z, "2024-03-10T04:59:59Z", "20240309", "2024030923");   /* EST */
    expect_buckets(z, "2024-03-10T07:00:00Z", "20240310", "2024031003");   /* EDT since 07:00Z */
    expect_buckets(z, "2024-11-03T03:59:59Z", "20241102", "2024110223");
    clock_zone_free(z);
}

static void quarter_hour_offsets_are_exact(void **state)
{
    (void)state;
    struct clock_zone *z = zone("Asia/Kathmandu");   /* UTC+5:45 */
    expect_buckets(z, "2024-05-01T18:14:59Z", "20240501", "2024050123");
    expect_buckets(z, "2024-05-01T18:15:00Z", "20240502", "2024050200");
    assert_int_equal(clock_zone_offset(z, at("2024-05-01T00:00:00Z")), 5 * 3600 + 45 * 60);
    clock_zone_free(z);
}

static void alternating_zones_do_not_leak_into_each_other(void **state)
{
    (void)state;
    struct clock_zone *b = zone("Europe/Berlin"), *t = zone("Asia/Tokyo"), *u = zone("UTC");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(clock_zone_offset(b, at("2024-07-01T12:00:00Z")), 7200);
        assert_int_equal(clock_zone_offset(t, at("2024-07-01T12:00:00Z")), 9 * 3600);
        assert_int_equal(clock_zone_offset(u, at("2024-07-01T12:00:00Z")), 0);
        assert_int_equal(clock_zone_offset(b, at("2024-01-01T12:00:00Z")), 3600);
    }
    clock_zone_free(b);
    clock_zone_free(t);
    clock_zone_free(u);
}

static void unknown_zone_is_refused_not_treated_as_utc(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(clock_zone_new("Mars/Olympus_Mons", err, sizeof err));
    assert_non_null(strstr(err, "Mars/Olympus_Mons"));
    assert_null(clock_zone_new("../../etc/passwd", err, sizeof err));
    assert_null(clock_zone_new("/etc/localtime", err, sizeof err));
}

static void civil_dates_round_trip(void **state)
{
    (void)state;
    assert_int_equal(clock_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(clock_days_from_civil(2000, 3, 1), 11017);
    for (int64_t d = -1000; d < 80000; d += 7) {
        int64_t y;
        unsigned m, dd;
        clock_civil_from_days(d, &y, &m, &dd);
        assert_int_equal(clock_days_from_civil(y, m, dd), d);
    }
    char buf[11];
    clock_format_day(clock_days_from_civil(2024, 2, 29), buf);
    assert_string_equal(buf, "20240229");
    clock_format_day_dashed(clock_days_from_civil(2024, 12, 31), buf);
    assert_string_equal(buf, "2024-12-31");
}

static void day_parser_accepts_real_dates_only(void **state)
{
    (void)state;
    int64_t d;
    assert_int_equal(clock_parse_day("2024-02-29", &d), 0);
    assert_int_equal(d, clock_days_from_civil(2024, 2, 29));
    assert_int_equal(clock_parse_day("20240229", &d), 0);
    assert_int_equal(clock_parse_day("2023-02-29", &d), -1);
    assert_int_equal(clock_parse_day("2024-13-01", &d), -1);
    assert_int_equal(clock_parse_day("2024-1-01", &d), -1);
    assert_int_equal(clock_parse_day("2024-01-01x", &d), -1);
    assert_int_equal(clock_parse_day("", &d), -1);
}

static void rfc3339_offsets_and_fractions(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339("1970-01-01T00:00:00Z", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(clock_parse_rfc3339("2024-03-31T03:30:00.25+02:00", &ms), 0);
    assert_int_equal(ms, at("2024-03-31T01:30:00.250Z"));
    assert_int_equal(clock_parse_rfc3339("2024-03-31", &ms), 0);
    assert_int_equal(ms, at("2024-03-31T00:00:00Z"));
    assert_int_equal(clock_parse_rfc3339("2024-03-31T01:30:00", &ms), -1);   /* no zone */
    assert_int_equal(clock_parse_rfc3339("2024-03-31T25:00:00Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2024-03-31T01:30:00Zjunk", &ms), -1);
    char buf[32];
    clock_format_rfc3339(at("2024-03-31T01:30:00Z"), buf);
    assert_string_equal(buf, "2024-03-31T01:30:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utc_hits_are_filed_under_their_utc_day_and_hour),
        cmocka_unit_test(berlin_day_starts_at_local_midnight),
        cmocka_unit_test(berlin_dst_changes_move_the_hour_not_the_day),
        cmocka_unit_test(new_york_evening_is_still_the_previous_day),
        cmocka_unit_test(quarter_hour_offsets_are_exact),
        cmocka_unit_test(alternating_zones_do_not_leak_into_each_other),
        cmocka_unit_test(unknown_zone_is_refused_not_treated_as_utc),
        cmocka_unit_test(civil_dates_round_trip),
        cmocka_unit_test(day_parser_accepts_real_dates_only),
        cmocka_unit_test(rfc3339_offsets_and_fractions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
