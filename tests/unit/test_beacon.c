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
#define BODY(rest) "{\"d\":\"a.com\",\"u\":\"https://a.com/\"" rest "}"

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
    assert_int_equal(PARSE(" \n ", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("]", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("-", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("\"open", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("12", &b), BEACON_NOT_OBJECT);
    assert_int_equal(PARSE("null", &b), BEACON_NOT_OBJECT);
    assert_int_equal(PARSE("[", &b), BEACON_NOT_OBJECT);
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
    assert_int_equal(beacon_parse_json(bad, sizeof bad - 1, &b), BEACON_BAD_UTF8);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com/\\u0000x\"}", &b), BEACON_BAD_JSON);
    const char nul[] = "{\"d\":\"a.com\",\0\"u\":\"https://a.com\"}";
    assert_int_equal(beacon_parse_json(nul, sizeof nul - 1, &b), BEACON_BAD_JSON);
}

/* yajl checks only the shape of UTF-8; every one of these would have been
 * stored. Raw bytes, \u escapes, in every field and in props. */
static void overlong_surrogate_and_out_of_range_utf8_are_refused(void **state)
{
    (void)state;
    struct beacon b;
    static const char *const bad[] = {
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\xc0\xaf\"}",             /* overlong '/' */
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\xe0\x80\xaf\"}",
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\xed\xa0\x80\"}",         /* surrogate D800 */
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\xf4\x90\x80\x80\"}",     /* U+110000 */
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\\ud800\"}",               /* lone high */
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\\udc00\"}",               /* lone low */
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\\ud800\\u0041\"}",
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\",\"n\":\"\\udbff\"}",
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\",\"r\":\"https://b.com/\xc1\xbf\"}",
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\",\"p\":{\"k\":\"\\udfff\"}}",
        "{\"d\":\"a.com\",\"u\":\"https://a.com/\",\"p\":{\"\xc0\x80\":\"v\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (beacon_parse_json(bad[i], strlen(bad[i]), &b) != BEACON_BAD_UTF8) fail_msg("passed: %s", bad[i]);
    /* A pair is one code point (U+1F600), and passes. */
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com/\\ud83d\\ude00\",\"n\":\"\xc3\xa9\"}", &b),
                     BEACON_OK);
    assert_string_equal(b.path, "/\xf0\x9f\x98\x80");
}

static void the_pixel_refuses_invalid_utf8_after_percent_decoding(void **state)
{
    (void)state;
    struct beacon b;
    static const char *const bad[] = {
        "d=a.com&u=https%3A%2F%2Fa.com%2F%C0%AF",
        "d=a.com&u=https%3A%2F%2Fa.com%2F%FF",
        "d=a.com&u=https%3A%2F%2Fa.com%2F%ED%A0%80",
        "d=a.com&u=https%3A%2F%2Fa.com%2F&n=%E9t%E9",
        "d=a.com&u=https%3A%2F%2Fa.com%2F&r=https%3A%2F%2Fb.com%2F%80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (beacon_parse_query(bad[i], strlen(bad[i]), &b) != BEACON_BAD_UTF8) fail_msg("passed: %s", bad[i]);
    const char *ok = "d=a.com&u=https%3A%2F%2Fa.com%2F%C3%A9%3Futm_source%3D%25E9t%25E9%26utm_medium%3D%25C3%25A9";
    assert_int_equal(beacon_parse_query(ok, strlen(ok), &b), BEACON_OK);
    assert_string_equal(b.path, "/\xc3\xa9");
    assert_string_equal(b.utm[UTM_SOURCE], "");         /* Latin-1 tag dropped */
    assert_string_equal(b.utm[UTM_MEDIUM], "\xc3\xa9");
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
    /* A props string is decoded whole before it is parsed, into 8 KB. */
    memset(big, ' ', 5000);
    snprintf(buf, 8192, BODY(",\"p\":\"{\\\"k\\\":1%s}\""), big);
    assert_int_equal(PARSE(buf, &b), BEACON_OK);
    assert_string_equal(b.props, "{\"k\":1}");
    big = realloc(big, 9000);
    memset(big, ' ', 8200), big[8200] = '\0';
    buf = realloc(buf, 10000);
    snprintf(buf, 10000, BODY(",\"p\":\"{\\\"k\\\":1%s}\""), big);
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

/* ------------------------------------------------------------------------ */
/* The hand-written JSON parser (collector/json.c): what yajl answered       */
/* ------------------------------------------------------------------------ */

static void vertical_tab_and_form_feed_count_as_whitespace(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE("\v\f {\v\"d\"\f:\"a.com\" ,\r\n\t\"u\":\"https://a.com/\"}\v", &b), BEACON_OK);
    assert_int_equal(PARSE("{\"d\":\"a.com\",\"u\":\"https://a.com/\"}\x1c", &b), BEACON_BAD_JSON);
}

static void after_the_object_only_whitespace_or_an_open_string_may_follow(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE(BODY("") " \n", &b), BEACON_OK);
    /* yajl's lexer is still waiting for the string's end: no garbage yet */
    assert_int_equal(PARSE(BODY("") " \"abc", &b), BEACON_OK);
    static const char *const bad[] = {
        BODY("") "\"abc\"", BODY("") "{}", BODY("") "1", BODY("") "tru", BODY("") "\"a\\",
        BODY("") "\"\\u12", BODY("") "\"a\x01", BODY("") ",", BODY("") "]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (PARSE(bad[i], &b) != BEACON_BAD_JSON) fail_msg("accepted: %s", bad[i]);
}

static void numbers_follow_the_json_grammar(void **state)
{
    (void)state;
    struct beacon b;
    static const char *const bad[] = {
        BODY(",\"x\":01"), BODY(",\"x\":-"), BODY(",\"x\":1."), BODY(",\"x\":1e"), BODY(",\"x\":1e+"),
        BODY(",\"x\":.5"), BODY(",\"x\":+1"), BODY(",\"x\":1.5.2"), BODY(",\"x\":0x10"), BODY(",\"x\":-a"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (PARSE(bad[i], &b) != BEACON_BAD_JSON) fail_msg("accepted: %s", bad[i]);
    /* props keep a number's text as sent, however long */
    assert_int_equal(PARSE(BODY(",\"p\":{\"a\":-0,\"b\":1E+2,\"c\":-4.5e-10,\"d\":123456789012345678901234567890}"), &b),
                     BEACON_OK);
    assert_string_equal(b.props, "{\"a\":-0,\"b\":1E+2,\"c\":-4.5e-10,\"d\":123456789012345678901234567890}");
}

static void props_strings_are_written_back_as_yajl_gen_wrote_them(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE(BODY(",\"p\":{ \"a/b\" : \"\\u0001\\u001F\\n\\t\\r\\b\\f\\\"\\\\\\/\\u00e9\xe2\x82\xac\x7f\","
                                "\"n\":null,\"t\":true,\"f\":false,\"z\":\"\\u0000\"}"), &b),
                     BEACON_OK);
    assert_string_equal(b.props, "{\"a/b\":\"\\u0001\\u001F\\n\\t\\r\\b\\f\\\"\\\\/\xc3\xa9\xe2\x82\xac\x7f\","
                                 "\"n\":null,\"t\":true,\"f\":false,\"z\":\"\\u0000\"}");
    /* an empty object stores no props */
    assert_int_equal(PARSE(BODY(",\"p\":{}"), &b), BEACON_OK);
    assert_string_equal(b.props, "");
}

static void props_bounds_hold_at_their_edge(void **state)
{
    (void)state;
    struct beacon b;
    char body[4096], props[3000], v[300];
    /* a key of 64 bytes and a string value of 256 pass, one byte more does not */
    static const struct { const char *fmt; int len, rc; } edge[] = {
        {BODY(",\"p\":{\"%s\":1}"), 64, BEACON_OK}, {BODY(",\"p\":{\"%s\":1}"), 65, BEACON_BAD_FIELD},
        {BODY(",\"p\":{\"k\":\"%s\"}"), 256, BEACON_OK}, {BODY(",\"p\":{\"k\":\"%s\"}"), 257, BEACON_TOO_LONG},
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        memset(v, 'x', (size_t)edge[i].len), v[edge[i].len] = '\0';
        snprintf(body, sizeof body, edge[i].fmt, v);
        assert_int_equal(PARSE(body, &b), edge[i].rc);
    }
    /* BEACON_PROPS_KEYS keys, then one more */
    size_t n = 0;
    for (int i = 0; i < BEACON_PROPS_KEYS; i++) n += (size_t)snprintf(props + n, sizeof props - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    snprintf(body, sizeof body, BODY(",\"p\":{%s}"), props);
    assert_int_equal(PARSE(body, &b), BEACON_OK);
    snprintf(body, sizeof body, BODY(",\"p\":{%s,\"kx\":1}"), props);
    assert_int_equal(PARSE(body, &b), BEACON_TOO_LONG);
    /* the written object: exactly BEACON_PROPS_MAX bytes pass, one more is too long */
    memset(v, 'v', 256), v[256] = '\0';
    for (size_t extra = 0; extra < 2; extra++) {
        /* {"a":"v*256","b":"v*256","c":"v*256","d":"x*N"}: braces, 4 keys with
         * their colons, 3 commas, 3 values of 258 bytes, then N + 2 */
        size_t fill = BEACON_PROPS_MAX - (2 + 4 * 4 + 3 + 3 * 258 + 2) + extra;
        char w[300];
        memset(w, 'x', fill), w[fill] = '\0';
        snprintf(body, sizeof body, BODY(",\"p\":{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\"}"), v, v, v, w);
        assert_int_equal(PARSE(body, &b), extra ? BEACON_TOO_LONG : BEACON_OK);
        if (!extra) assert_int_equal(strlen(b.props), BEACON_PROPS_MAX);
    }
}

/* Inside a props string no check ran before the parser: its escapes decode
 * as yajl decoded them. */
static void surrogate_escapes_in_a_props_string_decode_as_yajl_did(void **state)
{
    (void)state;
    struct beacon b;
    assert_int_equal(PARSE(BODY(",\"p\":\"{\\\"k\\\":\\\"\\\\uD800x\\\"}\""), &b), BEACON_OK);
    assert_string_equal(b.props, "{\"k\":\"?x\"}");
    /* a high surrogate takes the next \u escape, whatever it is: U+10041 */
    assert_int_equal(PARSE(BODY(",\"p\":\"{\\\"k\\\":\\\"\\\\uD800\\\\u0041\\\"}\""), &b), BEACON_OK);
    assert_string_equal(b.props, "{\"k\":\"\xf0\x90\x81\x81\"}");
    assert_int_equal(PARSE(BODY(",\"p\":\"{\\\"k\\\":\\\"\\\\uDC00\\\"}\""), &b), BEACON_BAD_UTF8);
    char body[800], v[400];
    memset(v, 'v', 300), strcpy(v + 300, "\\\\uDC00");
    snprintf(body, sizeof body, BODY(",\"p\":\"{\\\"k\\\":\\\"%s\\\"}\""), v);
    assert_int_equal(PARSE(body, &b), BEACON_BAD_UTF8);        /* past the value's bound, still seen */
}

static void nesting_under_an_unknown_key_stops_at_16_levels(void **state)
{
    (void)state;
    struct beacon b;
    char body[200];
    /* the beacon object is level 1: 15 arrays inside it pass, 16 do not */
    snprintf(body, sizeof body, BODY(",\"x\":%.15s1%.15s"), "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]");
    assert_int_equal(PARSE(body, &b), BEACON_OK);
    snprintf(body, sizeof body, BODY(",\"x\":%.16s1%.16s"), "[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]");
    assert_int_equal(PARSE(body, &b), BEACON_BAD_FIELD);
    snprintf(body, sizeof body, BODY(",\"x\":{\"y\":[{\"z\":[true,null,\"s\",{}]}]}"));
    assert_int_equal(PARSE(body, &b), BEACON_OK);
}

static void the_first_error_in_the_body_decides(void **state)
{
    (void)state;
    struct beacon b;
    /* a field refused before a syntax error, and the other way round */
    assert_int_equal(PARSE("{\"analytics_storage\":\"maybe\",\"x\":tru}", &b), BEACON_BAD_FIELD);
    assert_int_equal(PARSE("{\"x\":tru,\"analytics_storage\":\"maybe\"}", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"p\":{\"k\":1,\"k\":2},\"n\":\"\\udc00\"}", &b), BEACON_BAD_UTF8);  /* checked up front */
    assert_int_equal(PARSE("{\"p\":{\"k\":1,\"k\":2},\"p\":1", &b), BEACON_BAD_JSON);
    assert_int_equal(PARSE("{\"tc\":\"a b\",\"d\":\"a.com\",\"d\":\"b.com\"}", &b), BEACON_BAD_FIELD);
}

static void the_consent_body_is_parsed_by_the_same_rules(void **state)
{
    (void)state;
    static const struct { const char *body; int rc; } cases[] = {
        {"\f{\"domain\":\"Example.com\",\"analytics\":false,\"x\":[{}]} \"open", BEACON_OK},
        {"{\"domain\":\"example.com\",\"analytics\":true} {}", BEACON_BAD_JSON},
        {"{\"domain\":\"example.com\",\"analytics\":true,\"x\":01}", BEACON_BAD_JSON},
        {"{\"analytics\":1,\"domain\":\"example.com\",\"x\":tru}", BEACON_BAD_FIELD},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char domain[BEACON_DOMAIN_MAX + 1];
        int analytics = -1;
        int rc = beacon_parse_consent(cases[i].body, strlen(cases[i].body), domain, &analytics);
        if (rc != cases[i].rc) fail_msg("%s: %d, not %d", cases[i].body, rc, cases[i].rc);
        if (rc == BEACON_OK && (strcmp(domain, "example.com") != 0 || analytics != 0))
            fail_msg("%s: %s, %d", cases[i].body, domain, analytics);
    }
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
        cmocka_unit_test(overlong_surrogate_and_out_of_range_utf8_are_refused),
        cmocka_unit_test(the_pixel_refuses_invalid_utf8_after_percent_decoding),
        cmocka_unit_test(pixel_query_is_parsed_like_the_body),
        cmocka_unit_test(consent_body_needs_domain_and_boolean),
        cmocka_unit_test(url_helpers_respect_bounds),
        cmocka_unit_test(vertical_tab_and_form_feed_count_as_whitespace),
        cmocka_unit_test(after_the_object_only_whitespace_or_an_open_string_may_follow),
        cmocka_unit_test(numbers_follow_the_json_grammar),
        cmocka_unit_test(props_strings_are_written_back_as_yajl_gen_wrote_them),
        cmocka_unit_test(props_bounds_hold_at_their_edge),
        cmocka_unit_test(surrogate_escapes_in_a_props_string_decode_as_yajl_did),
        cmocka_unit_test(nesting_under_an_unknown_key_stops_at_16_levels),
        cmocka_unit_test(the_first_error_in_the_body_decides),
        cmocka_unit_test(the_consent_body_is_parsed_by_the_same_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
