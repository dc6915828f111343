/* test_keys.c -- the Redis key layout, built and read back (keys.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "dates.h"
#include "keys.h"

#define SITE "example.com"
#define PREFIX "fs:{" SITE "}:"
#define KEY_DAY(k) keys_aggregate_day(k, strlen(k), SITE)

static void built_keys_carry_the_site_in_a_hash_tag(void **state)
{
    (void)state;
    char k[128];
    assert_int_equal(keys_hits(k, sizeof k, SITE), (int)strlen(PREFIX "hits"));
    assert_string_equal(k, PREFIX "hits");
    keys_day(k, sizeof k, SITE, "20240501", "page");
    assert_string_equal(k, PREFIX "d:20240501:page");
    keys_uv(k, sizeof k, SITE, "20240501", "/a");
    assert_string_equal(k, PREFIX "d:20240501:uv:/a");
    keys_hour(k, sizeof k, SITE, "2024050123");
    assert_string_equal(k, PREFIX "h:2024050123");
    assert_int_equal(keys_hits(k, 8, SITE), -1);   /* never truncated */
    size_t exact = strlen(PREFIX "hits") + 1;      /* room for the key and its NUL, and one byte less */
    assert_int_equal(keys_hits(k, exact, SITE), (int)exact - 1);
    assert_string_equal(k, PREFIX "hits");
    assert_int_equal(keys_hits(k, exact - 1, SITE), -1);
    keys_bypage(k, sizeof k, SITE, "20240501", "source");
    assert_string_equal(k, PREFIX "d:20240501:bypage:source");
    assert_int_equal(KEY_DAY(k), day("20240501"));
    keys_prop(k, sizeof k, SITE, "20240501", "plan");
    assert_string_equal(k, PREFIX "d:20240501:prop:plan");
    assert_int_equal(KEY_DAY(k), day("20240501"));   /* purged with the day */
}

static void realtime_keys_name_their_utc_minute_and_expire_ten_minutes_after_it(void **state)
{
    (void)state;
    char k[128];
    int64_t minute = day("20240501") * 1440 + 23 * 60 + 59;
    assert_int_equal(keys_realtime_minute(k, sizeof k, SITE, minute), (int)strlen(PREFIX "rt:202405012359"));
    assert_string_equal(k, PREFIX "rt:202405012359");
    keys_realtime_minute(k, sizeof k, SITE, minute + 1);
    assert_string_equal(k, PREFIX "rt:202405020000");
    keys_realtime_minute(k, sizeof k, SITE, 0);
    assert_string_equal(k, PREFIX "rt:197001010000");
    assert_true(keys_realtime_expires_ms(minute) == (minute + 1) * 60000 + 10 * 60000);
    assert_int_equal(KEY_DAY(k), -1);                 /* expires by itself, never purged */
    assert_int_equal(keys_realtime_minute(k, 20, SITE, minute), -1);
}

static void aggregate_keys_are_dated_by_their_name(void **state)
{
    (void)state;
    char k[128];
    keys_day(k, sizeof k, SITE, "20240501", "page");
    assert_int_equal(KEY_DAY(k), day("20240501"));
    keys_uv(k, sizeof k, SITE, "20240501", NULL);
    assert_int_equal(KEY_DAY(k), day("20240501"));
    keys_uv(k, sizeof k, SITE, "20240501", "/d:20990101:x");
    assert_int_equal(KEY_DAY(k), day("20240501"));
    keys_hour(k, sizeof k, SITE, "2024050123");
    assert_int_equal(KEY_DAY(k), day("20240501"));
}

static void other_keys_are_never_dated(void **state)
{
    (void)state;
    assert_int_equal(KEY_DAY(PREFIX "hits"), -1);
    assert_int_equal(KEY_DAY(PREFIX "consent"), -1);
    assert_int_equal(KEY_DAY(PREFIX "sess:0123456789abcdef"), -1);
    assert_int_equal(KEY_DAY(PREFIX "d:2024050:page"), -1);      /* short date */
    assert_int_equal(KEY_DAY(PREFIX "d:20241301:page"), -1);     /* month 13 */
    assert_int_equal(KEY_DAY(PREFIX "d:20240501"), -1);          /* no dim */
    assert_int_equal(KEY_DAY(PREFIX "d:20240501:"), -1);         /* empty dim */
    assert_int_equal(KEY_DAY(PREFIX "h:20240501"), -1);          /* no hour */
    assert_int_equal(KEY_DAY(PREFIX "h:2024050123x"), -1);
    assert_int_equal(KEY_DAY("fs:{other.example}:d:20240501:page"), -1);   /* another site */
    assert_int_equal(KEY_DAY("fs:{example.com.evil}:d:20240501:page"), -1);
    assert_int_equal(KEY_DAY("fs:"), -1);
}

static void a_streams_name_gives_back_its_site(void **state)
{
    (void)state;
    char site[64], k[128];
    keys_hits(k, sizeof k, "shop.example.org");
    assert_int_equal(keys_site_of_hits(k, strlen(k), site, sizeof site), 16);
    assert_string_equal(site, "shop.example.org");
    /* A site name holding the key's own punctuation survives the round trip. */
    keys_hits(k, sizeof k, "a}:hits{b");
    assert_int_equal(keys_site_of_hits(k, strlen(k), site, sizeof site), 9);
    assert_string_equal(site, "a}:hits{b");
    static const char *const bad[] = {"fs:{}:hits", "fs:{x}:consent", "fs:x:hits", "fs:{x}:hits:",
                                      "fs:salt:20240501", "fs:{x}:hit"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(keys_site_of_hits(bad[i], strlen(bad[i]), site, sizeof site), -1);
    assert_int_equal(keys_site_of_hits(k, strlen(k), site, 9), -1);   /* no room for the NUL */
    assert_int_equal(keys_site_of_hits("fs:{a\0b}:hits", 13, site, sizeof site), -1);
}

static void patterns_match_what_the_builders_build(void **state)
{
    (void)state;
    char p[128];
    keys_hits_pattern(p, sizeof p);
    assert_string_equal(p, "fs:{*}:hits");
    keys_salt_pattern(p, sizeof p);
    assert_string_equal(p, "fs:salt:*");
    assert_int_equal(keys_aggregates_pattern(p, sizeof p, SITE), (int)strlen(PREFIX "[dh]:*"));
    assert_string_equal(p, PREFIX "[dh]:*");
    /* Glob characters in a site name match only themselves. */
    keys_aggregates_pattern(p, sizeof p, "a*b?[c]\\");
    assert_string_equal(p, "fs:{a\\*b\\?\\[c\\]\\\\}:[dh]:*");
    assert_int_equal(keys_aggregates_pattern(p, 8, SITE), -1);
}

static void salts_live_until_48_hours_after_their_day_began(void **state)
{
    (void)state;
    char k[32];
    keys_salt(k, sizeof k, "20240501");
    assert_int_equal(keys_salt_day(k, strlen(k)), day("20240501"));
    assert_int_equal(keys_salt_expires_ms(day("20240501")), at("2024-05-03T00:00:00Z"));
    /* So at any moment the salts of yesterday, today and tomorrow may exist. */
    assert_true(keys_salt_expires_ms(day("20240501") + KEYS_SALT_FIRST_HELD) > at("2024-05-01T23:59:59Z"));
    assert_true(keys_salt_expires_ms(day("20240501") + KEYS_SALT_FIRST_HELD - 1) <= at("2024-05-01T00:00:00Z"));
    static const char *const bad[] = {"fs:salt:2024050", "fs:salt:2024-05-01", "fs:salt:20240501x",
                                      "fs:salt:20241301", "fs:audit"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(keys_salt_day(bad[i], strlen(bad[i])), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(built_keys_carry_the_site_in_a_hash_tag),
        cmocka_unit_test(realtime_keys_name_their_utc_minute_and_expire_ten_minutes_after_it),
        cmocka_unit_test(aggregate_keys_are_dated_by_their_name),
        cmocka_unit_test(other_keys_are_never_dated),
        cmocka_unit_test(a_streams_name_gives_back_its_site),
        cmocka_unit_test(patterns_match_what_the_builders_build),
        cmocka_unit_test(salts_live_until_48_hours_after_their_day_began),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
