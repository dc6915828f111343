/* test_geo.c -- geo.c against MaxMind's test databases (tests/data/geoip).
 *
 * Known answers come from that folder's README; the corrupt databases must
 * give an open error or unknown answers, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "geo.h"

#define GEO_DIR "tests/data/geoip/"   /* tests run from the repository root */
#define CITY GEO_DIR "GeoIP2-City-Test.mmdb"
#define COUNTRY GEO_DIR "GeoLite2-Country-Test.mmdb"
#define GEOIP2_COUNTRY "country.iso_code"
#define GEOIP2_REGION "subdivisions.0.iso_code"

/* Looks ip up in g; fills country and region. */
static void lookup(const struct geo *g, const char *ip, char country[3], char region[16])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    /* Poison the outputs: geo_lookup must always write them. */
    memset(country, 'X', 3);
    memset(region, 'X', 16);
    geo_lookup(g, (struct sockaddr *)&ss, country, region);
    assert_non_null(memchr(country, '\0', 3));
    assert_non_null(memchr(region, '\0', 16));
}

static struct geo *open_ok(const char *path, const char *cp, const char *rp)
{
    char err[256] = "";
    struct geo *g = geo_open(path, cp, rp, err, sizeof err);
    if (!g) fail_msg("geo_open(%s): %s", path, err);
    return g;
}

static void expect(const struct geo *g, const char *ip, const char *country,
                   const char *region)
{
    char c[3], r[16];
    lookup(g, ip, c, r);
    assert_string_equal(c, country);
    assert_string_equal(r, region);
}

/* ------------------------------------------------------------------------ */

static void test_city_database_gives_country_and_region(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "81.2.69.142", "GB", "GB-ENG");
    expect(g, "89.160.20.112", "SE", "SE-E");
    expect(g, "216.160.83.56", "US", "US-WA");
    expect(g, "175.16.199.0", "CN", "CN-22");
    geo_close(g);
}

static void test_ipv6_address_is_looked_up(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "2001:218::1", "JP", "");
    geo_close(g);
}

static void test_ipv4_mapped_ipv6_is_looked_up_as_ipv4(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "::ffff:81.2.69.142", "GB", "GB-ENG");
    geo_close(g);
}

static void test_address_not_in_database_is_unknown(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "1.1.1.1", "", "");
    expect(g, "10.0.0.1", "", "");
    expect(g, "::1", "", "");
    geo_close(g);
}

static void test_country_database_has_no_region(void **state)
{
    (void)state;
    struct geo *g = open_ok(COUNTRY, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "81.2.69.142", "GB", "");
    expect(g, "2001:218::1", "JP", "");
    geo_close(g);
}

static void test_empty_region_path_skips_region(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, "");
    expect(g, "81.2.69.142", "GB", "");
    geo_close(g);
    g = open_ok(CITY, GEOIP2_COUNTRY, NULL);
    expect(g, "81.2.69.142", "GB", "");
    geo_close(g);
}

static void test_empty_database_path_always_answers_unknown(void **state)
{
    (void)state;
    struct geo *g = open_ok("", GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "81.2.69.142", "", "");
    expect(g, "2001:218::1", "", "");
    geo_close(g);
    g = open_ok(NULL, NULL, NULL);
    expect(g, "81.2.69.142", "", "");
    geo_close(g);
}

static void test_paths_that_do_not_fit_the_data_answer_unknown(void **state)
{
    (void)state;
    /* Indexing into a map, a string, a missing key, a map where a string is due. */
    static const char *paths[] = {
        "country.0.x.y", "country.iso_code.0", "nosuchkey", "country",
        "subdivisions.99.iso_code", "subdivisions.-1.iso_code", "location.latitude",
        "country_code",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct geo *g = open_ok(CITY, paths[i], paths[i]);
        expect(g, "81.2.69.142", "", "");
        geo_close(g);
    }
}

/* The ip-location-db schema: a top-level country_code and no region. The
 * database comes from the pinned npm package (CC0), installed by make deps. */
#define IPLOC "node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb"

static void test_ip_location_db_schema_with_top_level_country_code(void **state)
{
    (void)state;
    struct geo *g = open_ok(IPLOC, "country_code", "");
    expect(g, "81.2.69.142", "GB", "");
    expect(g, "10.0.0.1", "", "");
    geo_close(g);
    /* The GeoIP2 paths do not fit this schema: unknown, not a crash. */
    g = open_ok(IPLOC, GEOIP2_COUNTRY, GEOIP2_REGION);
    expect(g, "81.2.69.142", "", "");
    geo_close(g);
}

static void test_country_must_be_two_letters(void **state)
{
    (void)state;
    /* city.names.en is a UTF-8 string, but "London" is no country code; the
     * continent code ("EU") is two letters and passes. */
    struct geo *g = open_ok(CITY, "city.names.en", "");
    expect(g, "81.2.69.142", "", "");
    geo_close(g);
    g = open_ok(CITY, "continent.code", "");
    expect(g, "81.2.69.142", "EU", "");
    geo_close(g);
}

static void test_malformed_paths_are_refused_at_open(void **state)
{
    (void)state;
    static const char *paths[] = {
        "country..iso_code", ".country", "country.", ".", "a.b.c.d.e.f.g.h.i",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char err[256] = "";
        assert_null(geo_open(CITY, paths[i], "", err, sizeof err));
        assert_true(strstr(err, "country_path") != NULL);
        assert_null(geo_open(CITY, GEOIP2_COUNTRY, paths[i], err, sizeof err));
        assert_true(strstr(err, "region_path") != NULL);
    }
}

static void test_missing_file_is_an_open_error(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(geo_open(GEO_DIR "no-such-file.mmdb", GEOIP2_COUNTRY, "", err, sizeof err));
    assert_true(strstr(err, "no-such-file.mmdb") != NULL);
    assert_null(geo_open(GEO_DIR "README.md", GEOIP2_COUNTRY, "", err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(geo_open(GEO_DIR, GEOIP2_COUNTRY, "", err, sizeof err));
}

static void test_corrupt_databases_refuse_or_degrade(void **state)
{
    (void)state;
    static const char *files[] = {
        GEO_DIR "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        GEO_DIR "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
    };
    static const char *ips[] = {
        "81.2.69.142", "89.160.20.112", "216.160.83.56", "175.16.199.0", "2001:218::1",
        "1.1.1.1", "::", "255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    };
    for (size_t f = 0; f < 2; f++) {
        char err[256] = "";
        struct geo *g = geo_open(files[f], GEOIP2_COUNTRY, GEOIP2_REGION, err, sizeof err);
        printf("    %s: %s\n", files[f] + strlen(GEO_DIR), g ? "opens" : err);
        if (!g) {
            assert_true(err[0] != '\0');
            continue;
        }
        for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++) {
            char c[3], r[16];
            lookup(g, ips[i], c, r);
            /* Whatever it answers must still be well-formed. */
            assert_true(c[0] == '\0' || strlen(c) == 2);
        }
        geo_close(g);
    }
}

static void test_unsupported_address_family_is_unknown(void **state)
{
    (void)state;
    struct geo *g = open_ok(CITY, GEOIP2_COUNTRY, GEOIP2_REGION);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    char c[3] = "XX", r[16] = "XX";
    geo_lookup(g, (struct sockaddr *)&ss, c, r);
    assert_string_equal(c, "");
    assert_string_equal(r, "");
    geo_lookup(g, NULL, c, r);
    assert_string_equal(c, "");
    geo_lookup(NULL, (struct sockaddr *)&ss, c, r);
    assert_string_equal(c, "");
    geo_close(g);
    geo_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_city_database_gives_country_and_region),
        cmocka_unit_test(test_ipv6_address_is_looked_up),
        cmocka_unit_test(test_ipv4_mapped_ipv6_is_looked_up_as_ipv4),
        cmocka_unit_test(test_address_not_in_database_is_unknown),
        cmocka_unit_test(test_country_database_has_no_region),
        cmocka_unit_test(test_empty_region_path_skips_region),
        cmocka_unit_test(test_empty_database_path_always_answers_unknown),
        cmocka_unit_test(test_paths_that_do_not_fit_the_data_answer_unknown),
        cmocka_unit_test(test_ip_location_db_schema_with_top_level_country_code),
        cmocka_unit_test(test_country_must_be_two_letters),
        cmocka_unit_test(test_malformed_paths_are_refused_at_open),
        cmocka_unit_test(test_missing_file_is_an_open_error),
        cmocka_unit_test(test_corrupt_databases_refuse_or_degrade),
        cmocka_unit_test(test_unsupported_address_family_is_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
