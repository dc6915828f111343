/* test_http.c -- the request parser behind every connection (http_feed):
 * what a request turns into, how pieces and pipelined requests are put
 * together, which repeated header counts, and every limit it enforces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAX_HEADER 1024
#define MAX_BODY 64

#define POST_BEACON "POST /api/event?x=1#frag HTTP/1.1\r\nHost: a\r\n" \
                    "Content-Type: text/plain\r\nCookie: fs_consent=1\r\n" \
                    "Origin: https://example.com\r\nUser-Agent: UA/1\r\n" \
                    "Content-Length: 11\r\n\r\n{\"d\":\"e.c\"}"
#define GET_HEALTH "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"

static int setup(void **state)
{
    *state = http_parse_new(MAX_HEADER, MAX_BODY);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    http_parse_free(*state);
    return 0;
}

/* Feeds all of s at once; *used says how much the request took. */
static int feed(struct http_parse *p, const char *s, size_t *used, struct http_request *req)
{
    return http_feed(p, s, strlen(s), used, req);
}

/* Feeds s one byte at a time until a request or a refusal comes out. */
static int feed_bytes(struct http_parse *p, const char *s, size_t *fed, struct http_request *req)
{
    size_t n = strlen(s), used;
    for (*fed = 0; *fed < n; (*fed)++) {
        int rc = http_feed(p, s + *fed, 1, &used, req);
        if (rc != HTTP_FEED_MORE) {
            (*fed)++;
            return rc;
        }
    }
    return HTTP_FEED_MORE;
}

static void assert_str(struct http_str s, const char *want)
{
    if (!want) {
        assert_null(s.p);
        return;
    }
    assert_non_null(s.p);
    assert_int_equal(s.n, strlen(want));
    assert_memory_equal(s.p, want, s.n);
}

static void a_request_comes_out_with_path_query_headers_and_body(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, POST_BEACON, &used, &req), HTTP_FEED_REQUEST);
    assert_int_equal(used, strlen(POST_BEACON));
    assert_int_equal(req.verb, HTTP_VERB_POST);
    assert_str(req.path, "/api/event");
    assert_str(req.query, "x=1");
    assert_str(req.content_type, "text/plain");
    assert_str(req.cookie, "fs_consent=1");
    assert_str(req.origin, "https://example.com");
    assert_str(req.user_agent, "UA/1");
    assert_str(req.body, "{\"d\":\"e.c\"}");
    assert_str(req.sec_gpc, NULL);
    assert_str(req.forwarded_for, NULL);
    assert_true(req.keep_alive);
    assert_null(req.peer);
}

static void header_names_match_in_any_case_and_unknown_ones_are_skipped(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET /p.gif?d=a HTTP/1.1\r\nCOOKIE: c=1\r\nx-forwarded-FOR: 1.2.3.4\r\n"
                                  "X-Other: ignored\r\nDNT: 1\r\nAccept-Encoding: gzip\r\n\r\n",
                          &used, &req),
                     HTTP_FEED_REQUEST);
    assert_int_equal(req.verb, HTTP_VERB_GET);
    assert_str(req.path, "/p.gif");
    assert_str(req.query, "d=a");
    assert_str(req.cookie, "c=1");
    assert_str(req.forwarded_for, "1.2.3.4");
    assert_str(req.dnt, "1");
    assert_str(req.accept_encoding, "gzip");
    assert_int_equal(req.body.n, 0);
}

static void a_header_name_longer_than_any_known_one_matches_none(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nCookieCookieCookieCookieCookieCookie: c=1\r\n\r\n",
                          &used, &req),
                     HTTP_FEED_REQUEST);
    assert_str(req.cookie, NULL);
}

static void every_verb_the_router_knows_and_others(void **state)
{
    static const struct {
        const char *line;
        enum http_verb verb;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\n\r\n", HTTP_VERB_HEAD},
        {"OPTIONS /consent HTTP/1.1\r\n\r\n", HTTP_VERB_OPTIONS},
        {"DELETE /consent?domain=a HTTP/1.1\r\n\r\n", HTTP_VERB_DELETE},
        {"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_VERB_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_request req;
        size_t used;
        assert_int_equal(feed(*state, cases[i].line, &used, &req), HTTP_FEED_REQUEST);
        assert_int_equal(req.verb, cases[i].verb);
    }
}

static void a_request_fed_byte_by_byte_equals_one_fed_whole(void **state)
{
    struct http_request req;
    size_t fed;
    assert_int_equal(feed_bytes(*state, POST_BEACON, &fed, &req), HTTP_FEED_REQUEST);
    assert_int_equal(fed, strlen(POST_BEACON));
    assert_str(req.path, "/api/event");
    assert_str(req.query, "x=1");
    assert_str(req.cookie, "fs_consent=1");
    assert_str(req.user_agent, "UA/1");
    assert_str(req.body, "{\"d\":\"e.c\"}");
}

static void pipelined_requests_come_out_one_at_a_time_in_order(void **state)
{
    const char *wire = POST_BEACON GET_HEALTH "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n";
    struct http_request req;
    size_t used, off = 0, n = strlen(wire);

    assert_int_equal(http_feed(*state, wire, n, &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "/api/event");
    off += used;
    assert_true(off < n);
    assert_int_equal(http_feed(*state, wire + off, n - off, &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "/healthz");
    assert_str(req.body, "");
    off += used;
    assert_int_equal(http_feed(*state, wire + off, n - off, &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "/nope");
    assert_false(req.keep_alive);
    assert_int_equal(off + used, n);
}

static void pipelined_requests_fed_byte_by_byte_come_out_in_order(void **state)
{
    struct http_request req;
    size_t fed;
    const char *wire = GET_HEALTH POST_BEACON;
    assert_int_equal(feed_bytes(*state, wire, &fed, &req), HTTP_FEED_REQUEST);
    assert_int_equal(fed, strlen(GET_HEALTH));
    assert_str(req.path, "/healthz");
    assert_int_equal(feed_bytes(*state, wire + fed, &fed, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "/api/event");
    assert_str(req.body, "{\"d\":\"e.c\"}");
}

static void connection_close_and_http_1_0_are_not_kept_alive(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &used, &req),
                     HTTP_FEED_REQUEST);
    assert_false(req.keep_alive);

    struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
    assert_int_equal(feed(p, "GET / HTTP/1.0\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    assert_false(req.keep_alive);
    http_parse_free(p);

    p = http_parse_new(MAX_HEADER, MAX_BODY);
    assert_int_equal(feed(p, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &used, &req),
                     HTTP_FEED_REQUEST);
    assert_true(req.keep_alive);
    http_parse_free(p);
}

/* RFC 9112 9.3: "close" ends the connection whatever else the list says,
 * in HTTP/1.0 too; 6.1: an HTTP/1.0 request with a Transfer-Encoding is
 * treated as badly framed, so the connection MUST close after it. */
static void close_wins_over_keep_alive_and_http_1_0_chunked_closes(void **state)
{
    struct http_request req;
    size_t used;
    (void)state;
    static const char *const heads[] = {
        "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
        "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        "1\r\nx\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        assert_int_equal(feed(p, heads[i], &used, &req), HTTP_FEED_REQUEST);
        assert_int_equal(used, strlen(heads[i]));
        assert_false(req.keep_alive);
        http_parse_free(p);
    }
}

static void any_sec_gpc_or_dnt_line_saying_1_counts(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nSec-GPC: 0\r\nSec-GPC: 1\r\nSec-GPC: 0\r\n"
                                  "DNT: 1\r\nDNT: 0\r\n\r\n", &used, &req),
                     HTTP_FEED_REQUEST);
    assert_str(req.sec_gpc, "1");
    assert_str(req.dnt, "1");
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nSec-GPC: 0\r\nSec-GPC: 0\r\n\r\n", &used, &req),
                     HTTP_FEED_REQUEST);
    assert_str(req.sec_gpc, "0");
}

static void the_last_forwarded_for_and_the_first_of_other_headers_count(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\n"
                                  "X-Forwarded-For: 2.2.2.2\r\nCookie: first=1\r\nCookie: second=1\r\n\r\n",
                          &used, &req),
                     HTTP_FEED_REQUEST);
    assert_str(req.forwarded_for, "2.2.2.2");
    assert_str(req.cookie, "first=1");
}

static void a_chunked_body_is_joined_and_its_trailer_is_not_read(void **state)
{
    struct http_request req;
    size_t fed;
    const char *wire = "POST /api/event HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\nCookie: fs_consent=1\r\n\r\n";
    assert_int_equal(feed_bytes(*state, wire, &fed, &req), HTTP_FEED_REQUEST);
    assert_int_equal(fed, strlen(wire));
    assert_str(req.body, "hello world");
    assert_str(req.cookie, NULL);
}

static void a_chunked_body_over_max_body_is_refused_with_413(void **state)
{
    char wire[512];
    char chunk[MAX_BODY + 2];
    memset(chunk, 'x', sizeof chunk - 1);
    chunk[sizeof chunk - 1] = '\0';
    snprintf(wire, sizeof wire, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
             strlen(chunk), chunk);
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, wire, &used, &req), 413);
}

static void a_content_length_over_max_body_is_refused_before_the_body(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", &used, &req), 413);
}

static void a_body_of_exactly_max_body_is_accepted(void **state)
{
    char wire[256];
    char body[MAX_BODY + 1];
    memset(body, 'b', MAX_BODY);
    body[MAX_BODY] = '\0';
    snprintf(wire, sizeof wire, "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s", MAX_BODY, body);
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, wire, &used, &req), HTTP_FEED_REQUEST);
    assert_int_equal(req.body.n, MAX_BODY);
}

static void headers_over_max_header_are_refused_with_431_kept_or_not(void **state)
{
    char big[MAX_HEADER + 1];
    memset(big, 'x', MAX_HEADER);
    big[MAX_HEADER] = '\0';
    char wire[2 * MAX_HEADER];
    struct http_request req;
    size_t used;

    /* A header the handler never reads counts as much as one it reads. */
    snprintf(wire, sizeof wire, "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
    assert_int_equal(feed(*state, wire, &used, &req), 431);

    struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
    snprintf(wire, sizeof wire, "GET / HTTP/1.1\r\nCookie: %s\r\n\r\n", big);
    assert_int_equal(feed(p, wire, &used, &req), 431);
    http_parse_free(p);

    /* Many small headers add up, names and line ends included. */
    p = http_parse_new(MAX_HEADER, MAX_BODY);
    int rc = HTTP_FEED_MORE;
    assert_int_equal(feed(p, "GET / HTTP/1.1\r\n", &used, &req), HTTP_FEED_MORE);
    for (int i = 0; i < MAX_HEADER && rc == HTTP_FEED_MORE; i++)
        rc = feed(p, "A: b\r\n", &used, &req);
    assert_int_equal(rc, 431);
    http_parse_free(p);
}

static void a_url_over_max_header_is_refused_with_414(void **state)
{
    char wire[2 * MAX_HEADER];
    char path[MAX_HEADER + 1];
    memset(path, 'a', MAX_HEADER);
    path[MAX_HEADER] = '\0';
    snprintf(wire, sizeof wire, "GET /%s HTTP/1.1\r\n\r\n", path);
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, wire, &used, &req), 414);
}

static void a_bad_request_line_is_refused_with_400_and_stays_refused(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "\x01\x02 not http at all\r\n\r\n", &used, &req), 400);
    assert_int_equal(feed(*state, GET_HEALTH, &used, &req), 400);

    static const char *const bad[] = {
        "GET / HTTP/9\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        assert_int_equal(feed(p, bad[i], &used, &req), 400);
        http_parse_free(p);
    }
}

/* RFC 9112: what a lenient parser (Debian's http-parser, which ours
 * replaced) lets through, each refused with 400 before the handler sees
 * it, whole or byte by byte. */
static void framing_tricks_are_refused_with_400(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length\t: 1\r\n\r\nx",
        "GET / HTTP/1.1\r\nX Y: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nUser-Agent: a\r\n b\r\n\r\n",          /* obs-fold */
        "GET / HTTP/1.1\r\nUser-Agent: a\r\n\tb\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",                          /* bare LF */
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",                 /* bare CR */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",                           /* empty name */
        "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",                  /* CTL in a value */
        "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n",
        "GET / HTTP/9.9\r\nHost: a\r\n\r\n",                       /* unknown major */
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/0.9\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_request req;
        size_t used;
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        if (feed(p, bad[i], &used, &req) != 400) fail_msg("not refused whole: %s", bad[i]);
        assert_int_equal(feed(p, GET_HEALTH, &used, &req), 400);  /* spent */
        http_parse_free(p);
        p = http_parse_new(MAX_HEADER, MAX_BODY);
        if (feed_bytes(p, bad[i], &used, &req) != 400) fail_msg("not refused bytewise: %s", bad[i]);
        http_parse_free(p);
    }
}

static void tabs_in_values_obs_text_empty_lines_before_and_http_1_0_pass(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "\r\n\r\nGET / HTTP/1.1\r\nUser-Agent:\tA\t\xc3\xa9\r\n\r\n",
                          &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.user_agent, "A\t\xc3\xa9");
    struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
    assert_int_equal(feed(p, "GET / HTTP/1.0\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    http_parse_free(p);
    p = http_parse_new(MAX_HEADER, MAX_BODY);
    assert_int_equal(feed(p, "GET / HTTP/1.7\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    http_parse_free(p);
}

/* A body may hold any bytes, CR and LF included: the head rules stop at
 * the empty line, and start again with the next request. */
static void a_body_with_bare_lf_passes_and_the_next_head_is_checked_again(void **state)
{
    struct http_request req;
    size_t used;
    const char *wire = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\na\nb c"
                       "GET / HTTP/1.1\nHost: a\r\n\r\n";
    assert_int_equal(feed(*state, wire, &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.body, "a\nb c");
    assert_int_equal(http_feed(*state, wire + used, strlen(wire + used), &used, &req), 400);
}

static void a_half_sent_request_waits_for_more(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", &used, &req),
                     HTTP_FEED_MORE);
    assert_int_equal(http_feed(*state, "", 0, &used, &req), HTTP_FEED_MORE);
    assert_int_equal(feed(*state, "cde", &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.body, "abcde");
}

static void refused_whole_and_bytewise(const char *const *bad, size_t n, int status)
{
    for (size_t i = 0; i < n; i++) {
        struct http_request req;
        size_t used;
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        int rc = feed(p, bad[i], &used, &req);
        if (rc != status) fail_msg("whole: %d, not %d: %s", rc, status, bad[i]);
        http_parse_free(p);
        p = http_parse_new(MAX_HEADER, MAX_BODY);
        rc = feed_bytes(p, bad[i], &used, &req);
        if (rc != status) fail_msg("bytewise: %d, not %d: %s", rc, status, bad[i]);
        http_parse_free(p);
    }
}

/* A method is a token (RFC 9110 9.1): one the router does not know comes
 * out as HTTP_VERB_OTHER, for a 405; a method that is not a token is a 400. */
static void an_unknown_method_token_comes_out_as_other(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "PROPFIND /api/event HTTP/1.1\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    assert_int_equal(req.verb, HTTP_VERB_OTHER);
    assert_str(req.path, "/api/event");
    static const char *const bad[] = {"GE/T / HTTP/1.1\r\n\r\n", "GET\t/ HTTP/1.1\r\n\r\n", "G(T / HTTP/1.1\r\n\r\n"};
    refused_whole_and_bytewise(bad, sizeof bad / sizeof *bad, 400);
}

static void the_request_line_is_method_sp_target_sp_http_1_d(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "OPTIONS * HTTP/1.1\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "*");
    struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
    assert_int_equal(feed(p, "GET http://a.test/x?y=1 HTTP/1.1\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.path, "http://a.test/x");
    assert_str(req.query, "y=1");
    http_parse_free(p);
    static const char *const bad[] = {
        "GET  / HTTP/1.1\r\n\r\n",          /* two spaces */
        "GET / HTTP/1.1 \r\n\r\n",
        "GET /  HTTP/1.1\r\n\r\n",
        "GET / HTUP/1.1\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET / HTTP/1.x\r\n\r\n",
        "GET / HTTP/1.10\r\n\r\n",
        "GET nt HTTP/1.1\r\n\r\n",          /* not a request target */
        "GET ,/ HTTP/1.1\r\n\r\n",
        "GET ** HTTP/1.1\r\n\r\n",
        "GET /a\x01 HTTP/1.1\r\n\r\n",
        "GET /a\x7f HTTP/1.1\r\n\r\n",
        "GET /\r\n\r\n",                    /* HTTP/0.9 */
    };
    refused_whole_and_bytewise(bad, sizeof bad / sizeof *bad, 400);
}

/* RFC 9110 5.5: the whitespace around a value is not part of it; a line
 * with no value at all is as if absent. */
static void a_value_is_trimmed_and_an_empty_one_counts_as_absent(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "GET / HTTP/1.1\r\nUser-Agent: \t A\tb \t\r\nOrigin:  \r\n"
                                  "Origin: https://a.test\r\nCookie:\r\n\r\n", &used, &req),
                     HTTP_FEED_REQUEST);
    assert_str(req.user_agent, "A\tb");
    assert_str(req.origin, "https://a.test");
    assert_str(req.cookie, NULL);
}

/* The long runs of a value and a target are checked eight bytes at a time:
 * a TAB or a forbidden byte anywhere in a word is still seen. */
static void a_forbidden_byte_is_seen_wherever_it_falls_in_a_long_value(void **state)
{
    (void)state;
    for (size_t at = 0; at < 24; at++) {
        char v[32], wire[128];
        memset(v, 'a', 24);
        v[24] = '\0';
        struct http_request req;
        size_t used;
        v[at] = '\t';
        snprintf(wire, sizeof wire, "GET /%s HTTP/1.1\r\nUser-Agent: %s\r\n\r\n", "x", v);
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        assert_int_equal(feed(p, wire, &used, &req), HTTP_FEED_REQUEST);
        assert_int_equal(req.user_agent.n, at == 0 || at == 23 ? 23 : 24);
        http_parse_free(p);
        static const char bytes[] = {'\x7f', '\x01', '\n', '\0'};
        for (size_t b = 0; b < sizeof bytes; b++) {
            v[at] = bytes[b];
            memcpy(wire, "GET / HTTP/1.1\r\nX-A: ", 21);
            memcpy(wire + 21, v, 24);
            memcpy(wire + 45, "\r\n\r\n", 4);
            p = http_parse_new(MAX_HEADER, MAX_BODY);
            assert_int_equal(http_feed(p, wire, 49, &used, &req), 400);
            http_parse_free(p);
            memcpy(wire, "GET /", 5);
            memcpy(wire + 5, v, 24);
            memcpy(wire + 29, " HTTP/1.1\r\n\r\n", 13);
            p = http_parse_new(MAX_HEADER, MAX_BODY);
            assert_int_equal(http_feed(p, wire, 42, &used, &req), 400);
            http_parse_free(p);
        }
    }
}

static void chunked_framing_is_read_strictly(void **state)
{
    struct http_request req;
    size_t used;
    assert_int_equal(feed(*state, "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
                                  "3;name=\"v\"\r\nabc\r\n0\r\n\r\n", &used, &req), HTTP_FEED_REQUEST);
    assert_str(req.body, "abc");
    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r1\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x01\r\nabc\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",   /* 2^64 */
        "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nabcde",
        "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nabcde",
    };
    refused_whole_and_bytewise(bad, sizeof bad / sizeof *bad, 400);
    static const char *const large[] = {
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
    };
    refused_whole_and_bytewise(large, sizeof large / sizeof *large, 413);
}

/* max_header holds every byte of the request line and the header lines,
 * their CRLFs and the empty line included: a head of exactly that passes,
 * one byte more is a 431. */
static void a_head_of_exactly_max_header_bytes_passes_and_one_more_is_431(void **state)
{
    (void)state;
    for (int extra = 0; extra <= 1; extra++) {
        char wire[MAX_HEADER + 64];
        const char *start = "GET / HTTP/1.1\r\nX-Pad: ";
        size_t n = strlen(start);
        memcpy(wire, start, n);
        size_t pad = MAX_HEADER - n - 4 + (size_t)extra;
        memset(wire + n, 'p', pad);
        memcpy(wire + n + pad, "\r\n\r\n", 5);
        assert_int_equal(strlen(wire), MAX_HEADER + (size_t)extra);
        struct http_request req;
        size_t used;
        struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
        assert_int_equal(feed(p, wire, &used, &req), extra ? 431 : HTTP_FEED_REQUEST);
        http_parse_free(p);
        p = http_parse_new(MAX_HEADER, MAX_BODY);
        assert_int_equal(feed_bytes(p, wire, &used, &req), extra ? 431 : HTTP_FEED_REQUEST);
        http_parse_free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(an_unknown_method_token_comes_out_as_other, setup, teardown),
        cmocka_unit_test_setup_teardown(the_request_line_is_method_sp_target_sp_http_1_d, setup, teardown),
        cmocka_unit_test_setup_teardown(a_value_is_trimmed_and_an_empty_one_counts_as_absent, setup, teardown),
        cmocka_unit_test(a_forbidden_byte_is_seen_wherever_it_falls_in_a_long_value),
        cmocka_unit_test_setup_teardown(chunked_framing_is_read_strictly, setup, teardown),
        cmocka_unit_test(a_head_of_exactly_max_header_bytes_passes_and_one_more_is_431),
        cmocka_unit_test_setup_teardown(a_request_comes_out_with_path_query_headers_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(header_names_match_in_any_case_and_unknown_ones_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(a_header_name_longer_than_any_known_one_matches_none, setup, teardown),
        cmocka_unit_test_setup_teardown(every_verb_the_router_knows_and_others, setup, teardown),
        cmocka_unit_test_setup_teardown(a_request_fed_byte_by_byte_equals_one_fed_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined_requests_come_out_one_at_a_time_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(pipelined_requests_fed_byte_by_byte_come_out_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_close_and_http_1_0_are_not_kept_alive, setup, teardown),
        cmocka_unit_test(close_wins_over_keep_alive_and_http_1_0_chunked_closes),
        cmocka_unit_test_setup_teardown(any_sec_gpc_or_dnt_line_saying_1_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(the_last_forwarded_for_and_the_first_of_other_headers_count, setup, teardown),
        cmocka_unit_test_setup_teardown(a_chunked_body_is_joined_and_its_trailer_is_not_read, setup, teardown),
        cmocka_unit_test_setup_teardown(a_chunked_body_over_max_body_is_refused_with_413, setup, teardown),
        cmocka_unit_test_setup_teardown(a_content_length_over_max_body_is_refused_before_the_body, setup, teardown),
        cmocka_unit_test_setup_teardown(a_body_of_exactly_max_body_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(headers_over_max_header_are_refused_with_431_kept_or_not, setup, teardown),
        cmocka_unit_test_setup_teardown(a_url_over_max_header_is_refused_with_414, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_request_line_is_refused_with_400_and_stays_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(a_half_sent_request_waits_for_more, setup, teardown),
        cmocka_unit_test(framing_tricks_are_refused_with_400),
        cmocka_unit_test_setup_teardown(tabs_in_values_obs_text_empty_lines_before_and_http_1_0_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(a_body_with_bare_lf_passes_and_the_next_head_is_checked_again, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
