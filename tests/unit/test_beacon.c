/* test_beacon.c -- beacon bodies, pixel queries and URL pieces: what is kept,
 * and that bad input of every kind is refused with the right status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "beacon.h"
#include "url.h"

#define PARSE(s, b) beacon_parse_json((s), strlen(s), (b))

static void long_keys_keep_path_utm_and_referrer_host(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("{\"domain\":\"Example.com\",\"name\":\"pageview\","
                           "\"url\":\"https://www.example.com/pricing?utm_source=news&utm_medium=email"
                           "&utm_campaign=spring%20sale&secret=42#frag\","
                           "\"referrer\":\"https://www.Google.com/search?q=private\"}", &b),
                     BEACON_OK);
    assert_string_equal(b.domain, "example.com");
    assert_string_equal(b.path, "/pricing");
    assert_string_equal(b.host, "example.com");
    assert_string_equal(b.referrer, "google.com");
    assert_string_equal(b.utm[UTM_SOURCE], "news");
    assert_string_equal(b.utm[UTM_MEDIUM], "email");
    assert_string_equal(b.utm[UTM_CAMPAIGN], "spring sale");
    assert_string_equal(b.utm[UTM_TERM], "");
    assert_string_equal(b.props, "");
}

static void short_keys_and_props_work(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("{\"d\":\"example.com\",\"n\":\"Signup\",\"u\":\"https://example.com\","
                           "\"r\":null,\"p\":{\"plan\":\"pro\",\"seats\":3,\"trial\":true}}", &b),
                     BEACON_OK);
    assert_string_equal(b.name, "Signup");
    assert_string_equal(b.path, "/");
    assert_string_equal(b.referrer, "");
    assert_string_equal(b.props, "{\"plan\":\"pro\",\"seats\":3,\"trial\":true}");
}

static void an_engagement_keeps_scroll_depth_and_engaged_time(void **state)
{
    (void)state;
    struct beacon b;
    /* The payload @plausible-analytics/tracker sends on leaving a page. */
    assert_int_equal(PARSE("{\"n\":\"engagement\",\"sd\":73,\"d\":\"example.com\","
                           "\"u\":\"https://example.com/blog\",\"p\":{\"author\":\"ann\"},"
                           "\"e\":45120,\"v\":36,\"h\":1}", &b),
                     BEACON_OK);
    assert_true(b.engagement);
    assert_int_equal(b.scroll_depth, 73);
    assert_int_equal(b.engaged_ms, 45120);
    assert_string_equal(b.path, "/blog");
    assert_int_equal(PARSE("{\"n\":\"engagement\",\"sd\":0,\"e\":0,\"d\":\"example.com\","
                           "\"u\":\"https://example.com/\"}", &b), BEACON_OK);
    assert_true(b.engagement);
    assert_int_equal(PARSE("{\"n\":\"engagement\",\"sd\":100,\"e\":1800000,\"d\":\"example.com\","
                           "\"u\":\"https://example.com/\"}", &b), BEACON_OK);
    assert_int_equal(b.scroll_depth, 100);
    assert_int_equal(b.engaged_ms, 1800000);
    /* On another event sd and e mean nothing, whatever they hold. */
    assert_int_equal(PARSE("{\"n\":\"Signup\",\"sd\":5,\"e\":9,\"d\":\"example.com\","
                           "\"u\":\"https://example.com/\"}", &b), BEACON_OK);
    assert_false(b.engagement);
    assert_int_equal(PARSE("{\"sd\":\"x\",\"e\":-4.5,\"d\":\"example.com\","
                           "\"u\":\"https://example.com/\"}", &b), BEACON_OK);
    assert_false(b.engagement);
    assert_int_equal(b.engaged_ms, 0);
}

/* The tracker can measure a page that shrank (sd over 100) and a tab left
 * open (e over the cap): kept, at the bound. */
static void engagement_numbers_past_their_bound_are_kept_at_it(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("{\"n\":\"engagement\",\"d\":\"example.com\",\"u\":\"https://example.com/\","
                           "\"sd\":130,\"e\":999999999}", &b), BEACON_OK);
    assert_true(b.engagement);
    assert_int_equal(b.scroll_depth, BEACON_SCROLL_MAX);
    assert_int_equal(b.engaged_ms, BEACON_ENGAGED_MAX_MS);
}

static void bad_engagement_numbers_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\"sd\":-1,\"e\":10", "\"sd\":50,\"e\":-1", "\"sd\":1234567890,\"e\":10",
        "\"sd\":50.5,\"e\":10", "\"sd\":50,\"e\":1e3", "\"sd\":\"50\",\"e\":10",
        "\"sd\":50", "\"e\":10", "\"sd\":50,\"e\":null", "\"sd\":true,\"e\":10",
        "\"sd\":50,\"e\":99999999999999999999", "\"sd\":[1],\"e\":10",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[300];
        struct beacon b;
        snprintf(body, sizeof body, "{\"n\":\"engagement\",\"d\":\"example.com\","
                 "\"u\":\"https://example.com/\",%s}", bad[i]);
        int rc = PARSE(body, &b);
        if (rc == BEACON_OK) fail_msg("accepted: %s", bad[i]);
        assert_int_not_equal(rc, BEACON_OK);
    }
    struct beacon b;
    /* sd and e twice are duplicates; a pixel cannot carry an engagement. */
    assert_int_equal(PARSE("{\"n\":\"engagement\",\"d\":\"example.com\",\"u\":\"https://example.com/\","
                           "\"sd\":1,\"sd\":2,\"e\":3}", &b), BEACON_BAD_JSON);
    const char *q = "d=example.com&n=engagement&u=https%3A%2F%2Fexample.com%2F";
    assert_int_equal(beacon_parse_query(q, strlen(q), &b), BEACON_BAD_ENGAGEMENT);
}

static void props_sent_as_a_json_string_are_read_as_the_object(void **state)
{
    (void)state;
    struct beacon b;
    /* The older plausible-tracker: props: JSON.stringify({...}). */
    assert_int_equal(PARSE("{\"n\":\"Signup\",\"d\":\"example.com\",\"u\":\"https://example.com/\","
                           "\"p\":\"{\\\"plan\\\":\\\"pro\\\",\\\"seats\\\":3}\"}", &b),
                     BEACON_OK);
    assert_string_equal(b.props, "{\"plan\":\"pro\",\"seats\":3}");
    static const char *const bad[] = {
        "\"p\":\"not json\"", "\"p\":\"[1,2]\"", "\"p\":\"\\\"a string\\\"\"",
        "\"p\":\"{\\\"a\\\":{\\\"b\\\":1}}\"", "\"p\":\"{\\\"a\\\":1}{}\"",
        "\"p\":\"{\\\"a\\\":1,\\\"a\\\":2}\"", "\"p\":\"null\"", "\"p\":\"\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[300];
        snprintf(body, sizeof body, "{\"d\":\"example.com\",\"u\":\"https://example.com/\",%s}", bad[i]);
        int rc = PARSE(body, &b);
        if (rc == BEACON_OK) fail_msg("accepted: %s", bad[i]);
    }
}

static void path_parameters_are_dropped(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("{\"d\":\"example.com\",\"u\":\"https://example.com/cart;jsessionid=ABC123?x=1\"}", &b),
                     BEACON_OK);
    assert_string_equal(b.path, "/cart");
    assert_int_equal(PARSE("{\"d\":\"example.com\",\"u\":\"https://example.com/;sid=1\"}", &b), BEACON_OK);
    assert_string_equal(b.path, "/");
}

static void self_referral_and_non_http_referrers_are_dropped(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("{\"d\":\"example.com\",\"u\":\"https://example.com/a\","
                           "\"r\":\"https://www.example.com/b\"}", &b), BEACON_OK);
    assert_string_equal(b.referrer, "");
    assert_int_equal(PARSE("{\"d\":\"example.com\",\"u\":\"https://example.com/a\","
                           "\"r\":\"android-app://com.google.android.gm\"}", &b), BEACON_OK);
    assert_string_equal(b.referrer, "");
    assert_string_equal(b.name, "pageview");
}

static void malformed_bodies_are_refused(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("{", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("not json", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("[1,2]", &b), BEACON_NOT_OBJECT);
    assert_int_equal(PARSE("\"x\"", &b), BEACON_NOT_OBJECT);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"domain\":\"b.com\",\"u\":\"https://a.com\"}", &b),
                     BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"p\":{\"k\":1,\"k\":2}}", &b),
                     BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"w\":1280,\"x\":[[{}]]}", &b),
                     BEACON_OK);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\"} trailing", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"d\":\"b.com\",\"u\":\"https://a.com\"}", &b),
                     BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"u\":\"https://a.com\"}", &b), BEACON_MISSING);
    assert_int_equal(PARSE("{\"d\":\"a.com\"}", &b), BEACON_MISSING);
    assert_int_equal(PARSE("{\"d\":7,\"u\":\"https://a.com\"}", &b), BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"d\":\"a b\",\"u\":\"https://a.com\"}", &b), BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"ftp://a.com/x\"}", &b), BEACON_BAD_URL);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"/relative\"}", &b), BEACON_BAD_URL);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"n\":\"\"}", &b), BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"p\":[1]}", &b), BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"p\":{\"x\":{\"y\":1}}}", &b),
                     BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com\",\"n\":\"a\\nb\"}", &b),
                     BEACON_BAD_FIELD);
}

static void bad_utf8_and_nul_are_refused(void **state)
{
    (void)state;
    struct beacon b;
    const char bad[] = "{\"d\":\"a.com\",\"u\":\"https://a.com/\xff\xfe\"}";
    assert_int_equal(beacon_parse_json(bad, sizeof bad - 1, &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com/\\u0000x\"}", &b), BEACON_BAD_JSON);
    const char nul[] = "{\"d\":\"a.com\",\0\"u\":\"https://a.com\"}";
    assert_int_equal(beacon_parse_json(nul, sizeof nul - 1, &b), BEACON_BAD_JSON);
}

static void overlong_fields_are_refused(void **state)
{
    (void)state;
    struct beacon b;
    char *buf = malloc(8192);
    char *big = malloc(6000);
    memset(big, 'a', 5000);
    big[5000] = '\0';
    snprintf(buf, 8192, "{\"d\":\"a.com\",\"u\":\"https://a.com/%s\"}", big);
    assert_int_equal(PARSE(buf, &b), BEACON_TOO_LONG);
    big[300] = '\0';
    snprintf(buf, 8192, "{\"d\":\"%s.com\",\"u\":\"https://a.com/\"}", big);
    assert_int_equal(PARSE(buf, &b), BEACON_TOO_LONG);
    big[200] = '\0';
    snprintf(buf, 8192, "{\"d\":\"a.com\",\"n\":\"%s\",\"u\":\"https://a.com/\"}", big);
    assert_int_equal(PARSE(buf, &b), BEACON_TOO_LONG);
    free(big);
    free(buf);
}

static void pixel_query_is_parsed_like_the_body(void **state)
{
    (void)state;
    struct beacon b;
    const char *q = "d=example.com&u=https%3A%2F%2Fexample.com%2Fdocs%3Futm_source%3Dx&r=https%3A%2F%2Fduckduckgo.com%2F";
    assert_int_equal(beacon_parse_query(q, strlen(q), &b), BEACON_OK);
    assert_string_equal(b.path, "/docs");
    assert_string_equal(b.utm[UTM_SOURCE], "x");
    assert_string_equal(b.referrer, "duckduckgo.com");
    assert_int_equal(beacon_parse_query("u=https%3A%2F%2Fa.com", 21, &b), BEACON_MISSING);
    assert_int_equal(beacon_parse_query("d=a.com&u=%zz", 13, &b), BEACON_TOO_LONG);
    assert_int_equal(beacon_parse_query("", 0, &b), BEACON_MISSING);
}

static void consent_body_needs_domain_and_boolean(void **state)
{
    (void)state;
    char d[BEACON_DOMAIN_MAX + 1];
    int a = -1;
    const char *ok = "{\"domain\":\"example.com\",\"analytics\":false}";
    assert_int_equal(beacon_parse_consent(ok, strlen(ok), d, &a), BEACON_OK);
    assert_string_equal(d, "example.com");
    assert_int_equal(a, 0);
    const char *s = "{\"domain\":\"example.com\",\"analytics\":\"yes\"}";
    assert_int_equal(beacon_parse_consent(s, strlen(s), d, &a), BEACON_BAD_FIELD);
    const char *m = "{\"domain\":\"example.com\"}";
    assert_int_equal(beacon_parse_consent(m, strlen(m), d, &a), BEACON_MISSING);
    assert_int_equal(beacon_parse_consent("{", 1, d, &a), BEACON_BAD_JSON);
}

static void url_helpers_respect_bounds(void **state)
{
    (void)state;
    struct url_parts u;
    char out[8];
    assert_int_equal(url_split("https://user:pw@host.example:8443/p/a?x=1#f", 43, &u), 0);
    assert_int_equal(u.host.n, 12);
    assert_memory_equal(u.host.p, "host.example", 12);
    assert_int_equal(u.path.n, 4);
    assert_int_equal(u.query.n, 3);
    assert_int_equal(url_split("https://[2001:db8::1]:80/", 25, &u), 0);
    assert_memory_equal(u.host.p, "[2001:db8::1]", 13);
    assert_int_equal(url_split("https://", 8, &u), -1);
    assert_int_equal(url_split("https://[::1", 12, &u), -1);
    /* A '%' at the very end of the buffer must not be read past. */
    assert_int_equal(url_decode("ab%4", 4, 0, out, sizeof out), -1);
    assert_int_equal(url_decode("ab%", 3, 0, out, sizeof out), -1);
    assert_int_equal(url_decode("%0a", 3, 0, out, sizeof out), -1);
    assert_int_equal(url_decode("toolongvalue", 12, 0, out, sizeof out), -1);
    assert_int_equal(url_decode("a+b%41", 6, 1, out, sizeof out), 4);
    assert_string_equal(out, "a bA");
    assert_int_equal(url_query_get("a=1&b=2", 7, "b", out, sizeof out), 1);
    assert_int_equal(url_query_get("a=1&bb=2", 8, "b", out, sizeof out), -1);
    assert_int_equal(url_host_norm("WWW.Example.COM.", 16, out, sizeof out), -1); /* too long for 8 */
    char host[64];
    assert_int_equal(url_host_norm("WWW.Example.COM.", 16, host, sizeof host), 11);
    assert_string_equal(host, "example.com");
    assert_int_equal(url_host_norm("ex ample", 8, host, sizeof host), -1);
}

static void consent_signals_of_the_page_are_parsed_and_bounded(void **state)
{
    (void)state;
    static struct beacon b;
    const char ok[] = "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"tc\":\"CP99dOAP-ARZQ.IAAA\","
                      "\"analytics_storage\":\"denied\"}";
    assert_int_equal(beacon_parse_json(ok, strlen(ok), &b), BEACON_OK);
    assert_string_equal(b.tc, "CP99dOAP-ARZQ.IAAA");
    assert_int_equal(b.tc_len, 18);
    assert_int_equal(b.analytics_storage, 0);
    const char plain[] = "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"analytics_storage\":\"granted\"}";
    assert_int_equal(beacon_parse_json(plain, strlen(plain), &b), BEACON_OK);
    assert_int_equal(b.tc_len, 0);
    assert_string_equal(b.tc, "");
    assert_int_equal(b.analytics_storage, 1);
    const char none[] = "{\"d\":\"a.test\",\"u\":\"https://a.test/\"}";
    assert_int_equal(beacon_parse_json(none, strlen(none), &b), BEACON_OK);
    assert_int_equal(b.analytics_storage, -1);
    static const char *const bad[] = {
        "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"analytics_storage\":\"maybe\"}",
        "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"analytics_storage\":false}",
        "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"tc\":\"CP99 dOAP\"}",
        "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"tc\":1}",
        "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"tc\":\"A\",\"tc\":\"B\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_not_equal(beacon_parse_json(bad[i], strlen(bad[i]), &b), BEACON_OK);
    static char big[BEACON_TC_MAX + 128];
    int n = snprintf(big, sizeof big, "{\"d\":\"a.test\",\"u\":\"https://a.test/\",\"tc\":\"");
    memset(big + n, 'A', BEACON_TC_MAX + 1);
    strcpy(big + n + BEACON_TC_MAX + 1, "\"}");
    assert_int_equal(beacon_parse_json(big, strlen(big), &b), BEACON_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(consent_signals_of_the_page_are_parsed_and_bounded),
        cmocka_unit_test(long_keys_keep_path_utm_and_referrer_host),
        cmocka_unit_test(short_keys_and_props_work),
        cmocka_unit_test(self_referral_and_non_http_referrers_are_dropped),
        cmocka_unit_test(path_parameters_are_dropped),
        cmocka_unit_test(an_engagement_keeps_scroll_depth_and_engaged_time),
        cmocka_unit_test(engagement_numbers_past_their_bound_are_kept_at_it),
        cmocka_unit_test(bad_engagement_numbers_are_refused),
        cmocka_unit_test(props_sent_as_a_json_string_are_read_as_the_object),
        cmocka_unit_test(malformed_bodies_are_refused),
        cmocka_unit_test(bad_utf8_and_nul_are_refused),
        cmocka_unit_test(overlong_fields_are_refused),
        cmocka_unit_test(pixel_query_is_parsed_like_the_body),
        cmocka_unit_test(consent_body_needs_domain_and_boolean),
        cmocka_unit_test(url_helpers_respect_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
