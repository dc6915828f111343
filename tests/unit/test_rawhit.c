/* test_rawhit.c -- the packed raw hit (rawhit.h): round trip and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "rawhit.h"

static size_t sample(char *buf, size_t cap, unsigned flags)
{
    struct rawhit h = {.id = 0x0123456789abcdefULL, .flags = flags, .t_ms = 1714564800123LL,
                       .device = RAWHIT_DEVICE_MOBILE};
    assert_int_equal(rawhit_visitor_from_hex("00ff10203040a0b0", 16, h.visitor), 0);
    rawhit_set(&h, RAWHIT_PATH, "/pricing");
    rawhit_set(&h, RAWHIT_BROWSER, "Firefox");
    rawhit_set(&h, RAWHIT_OS, "Linux");
    rawhit_set(&h, RAWHIT_REFERRER, "news.example");
    rawhit_set(&h, RAWHIT_COUNTRY, "GB");
    rawhit_set(&h, RAWHIT_PROPS, "{\"plan\":\"pro\"}");
    return rawhit_encode(&h, buf, cap);
}

#define STR(h, i) ((int)(h).n[i]), (h).s[i]

static void a_hit_comes_back_as_it_was_packed(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR | RAWHIT_F_TIME);
    struct rawhit h;
    assert_int_equal(rawhit_decode(buf, n, &h), 0);
    assert_true(h.id == (0x0123456789abcdefULL & RAWHIT_ID_MASK));   /* 48 bits kept */
    assert_int_equal(h.flags, RAWHIT_F_VISITOR | RAWHIT_F_TIME);
    assert_true(h.t_ms == 1714564800123LL);
    assert_int_equal(h.device, RAWHIT_DEVICE_MOBILE);
    char hex[17];
    rawhit_visitor_to_hex(h.visitor, hex);
    assert_string_equal(hex, "00ff10203040a0b0");
    assert_int_equal(h.n[RAWHIT_PATH], 8);
    assert_memory_equal(h.s[RAWHIT_PATH], "/pricing", 8);
    assert_memory_equal(h.s[RAWHIT_REFERRER], "news.example", 12);
    assert_memory_equal(h.s[RAWHIT_PROPS], "{\"plan\":\"pro\"}", 14);
    assert_int_equal(h.n[RAWHIT_NAME], 0);     /* a pageview */
    assert_int_equal(h.n[RAWHIT_UTM_SOURCE], 0);
    assert_int_equal(h.n[RAWHIT_REGION], 0);
}

static void a_typical_hit_stays_small(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR);
    /* 15 bytes of head, one byte saying which optional strings follow, then
     * only the strings and a length byte each. */
    assert_int_equal(n, RAWHIT_HEAD_LEN + 1 + 1 + 8 + 1 + 7 + 1 + 5 + 1 + 12 + 1 + 2 + 1 + 14);
}

static void the_visitor_sits_where_the_erase_script_reads_it(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR);
    assert_true(n > RAWHIT_VISITOR_AT + RAWHIT_VISITOR_LEN);
    assert_memory_equal(buf + RAWHIT_VISITOR_AT, "\x00\xff\x10\x20\x30\x40\xa0\xb0", 8);
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR | RAWHIT_F_TIME);
    struct rawhit h;
    for (size_t len = 0; len < n; len++) assert_int_equal(rawhit_decode(buf, len, &h), -1);
}

static void bad_heads_and_trailing_bytes_are_refused(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX + 1];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR);
    struct rawhit h;
    buf[n] = 'x';
    assert_int_equal(rawhit_decode(buf, n + 1, &h), -1);    /* trailing byte */
    char good = buf[0];
    buf[0] = (char)((good & 0x3f) | 2 << 6);
    assert_int_equal(rawhit_decode(buf, n, &h), -1);        /* another version */
    buf[0] = (char)((good & ~0x38) | 7 << 3);
    assert_int_equal(rawhit_decode(buf, n, &h), -1);        /* unknown device */
    buf[0] = (char)(good & ~RAWHIT_F_VISITOR);
    assert_int_equal(rawhit_decode(buf, n, &h), -1);        /* a visitor not said present */
    buf[0] = good;
    assert_int_equal(rawhit_decode(buf, n, &h), 0);
}

static void a_present_string_must_not_be_empty_and_lengths_must_fit(void **state)
{
    (void)state;
    /* Head, a referrer said present, then path "", browser "", os "" and an
     * empty referrer. */
    char buf[RAWHIT_HEAD_LEN + 5] = {RAWHIT_VERSION << 6};
    buf[RAWHIT_HEAD_LEN] = 1 << (RAWHIT_REFERRER - RAWHIT_FIRST_OPTIONAL);
    struct rawhit h;
    assert_int_equal(rawhit_decode(buf, sizeof buf, &h), -1);
    buf[RAWHIT_HEAD_LEN] = 0;
    assert_int_equal(rawhit_decode(buf, sizeof buf - 1, &h), 0);   /* three empty strings: fine */
    buf[RAWHIT_HEAD_LEN + 1] = 100;                                 /* path longer than what is left */
    assert_int_equal(rawhit_decode(buf, sizeof buf - 1, &h), -1);
    buf[RAWHIT_HEAD_LEN + 1] = 0;
    buf[RAWHIT_HEAD_LEN] = (char)0x80;                              /* a string that does not exist */
    assert_int_equal(rawhit_decode(buf, sizeof buf - 1, &h), -1);
    /* An overlong time varint, and a non-shortest one. */
    char big[RAWHIT_HEAD_LEN + 16] = {RAWHIT_VERSION << 6 | RAWHIT_F_TIME};
    memset(big + RAWHIT_HEAD_LEN + 1, 0xff, 11);
    assert_int_equal(rawhit_decode(big, RAWHIT_HEAD_LEN + 16, &h), -1);
    char pad[RAWHIT_HEAD_LEN + 6] = {RAWHIT_VERSION << 6 | RAWHIT_F_TIME};
    pad[RAWHIT_HEAD_LEN + 1] = (char)0x81;   /* 1, written in two bytes */
    pad[RAWHIT_HEAD_LEN + 2] = 0;
    assert_int_equal(rawhit_decode(pad, sizeof pad, &h), -1);
}

static void encode_refuses_what_does_not_fit(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = sample(buf, sizeof buf, RAWHIT_F_VISITOR);
    assert_int_equal(sample(buf, n - 1, RAWHIT_F_VISITOR), 0);
    assert_int_equal(sample(buf, 10, RAWHIT_F_VISITOR), 0);
}

static size_t engagement(char *buf, size_t cap, unsigned scroll, uint32_t ms)
{
    struct rawhit h = {.id = 7, .flags = RAWHIT_F_VISITOR | RAWHIT_F_TIME, .t_ms = 1714564800123LL,
                       .engagement = 1, .scroll_depth = scroll, .engaged_ms = ms};
    rawhit_set(&h, RAWHIT_PATH, "/blog/post");
    rawhit_set(&h, RAWHIT_BROWSER, "Firefox");
    rawhit_set(&h, RAWHIT_OS, "Linux");
    rawhit_set(&h, RAWHIT_REFERRER, "news.example");
    return rawhit_encode(&h, buf, cap);
}

static void an_engagement_comes_back_with_its_numbers(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    size_t n = engagement(buf, sizeof buf, 73, 45120);
    struct rawhit h;
    assert_int_equal(rawhit_decode(buf, n, &h), 0);
    assert_true(h.engagement);
    assert_int_equal(h.scroll_depth, 73);
    assert_int_equal(h.engaged_ms, 45120);
    assert_true(h.t_ms == 1714564800123LL);
    assert_memory_equal(h.s[RAWHIT_PATH], "/blog/post", 10);
    assert_memory_equal(h.s[RAWHIT_REFERRER], "news.example", 12);
    for (size_t len = 0; len < n; len++) assert_int_equal(rawhit_decode(buf, len, &h), -1);
    /* A hit without the bit reads as before: no engagement. */
    n = sample(buf, sizeof buf, RAWHIT_F_VISITOR);
    assert_int_equal(rawhit_decode(buf, n, &h), 0);
    assert_false(h.engagement);
    assert_int_equal(h.engaged_ms, 0);
}

static void engagement_numbers_out_of_range_are_refused(void **state)
{
    (void)state;
    char buf[RAWHIT_MAX];
    assert_int_equal(engagement(buf, sizeof buf, RAWHIT_SCROLL_MAX + 1, 10), 0);
    assert_int_equal(engagement(buf, sizeof buf, 10, RAWHIT_ENGAGED_MAX_MS + 1), 0);
    assert_true(engagement(buf, sizeof buf, RAWHIT_SCROLL_MAX, RAWHIT_ENGAGED_MAX_MS) > 0);
    /* Hand-made: head, the engagement bit (two varint bytes), scroll 101. */
    char bad[RAWHIT_HEAD_LEN + 7] = {RAWHIT_VERSION << 6};
    bad[RAWHIT_HEAD_LEN] = (char)0x80;
    bad[RAWHIT_HEAD_LEN + 1] = (char)(RAWHIT_P_ENGAGEMENT >> 7);
    bad[RAWHIT_HEAD_LEN + 2] = 101;
    bad[RAWHIT_HEAD_LEN + 3] = 0;     /* engaged 0 ms, then three empty strings */
    struct rawhit h;
    assert_int_equal(rawhit_decode(bad, sizeof bad, &h), -1);
    bad[RAWHIT_HEAD_LEN + 2] = 100;
    assert_int_equal(rawhit_decode(bad, sizeof bad, &h), 0);
    assert_int_equal(h.scroll_depth, 100);
    /* A bit past the engagement bit is still unknown. */
    bad[RAWHIT_HEAD_LEN + 1] = (char)(RAWHIT_P_ENGAGEMENT >> 6);
    assert_int_equal(rawhit_decode(bad, sizeof bad, &h), -1);
}

static void device_names_and_visitor_hex(void **state)
{
    (void)state;
    assert_int_equal(rawhit_device_of("tablet"), RAWHIT_DEVICE_TABLET);
    assert_int_equal(rawhit_device_of("toaster"), RAWHIT_DEVICE_UNKNOWN);
    assert_string_equal(rawhit_device_name(RAWHIT_DEVICE_OTHER), "other");
    assert_string_equal(rawhit_device_name((enum rawhit_device)42), "");
    unsigned char v[RAWHIT_VISITOR_LEN];
    assert_int_equal(rawhit_visitor_from_hex("0123456789ABCDEF", 16, v), -1);   /* lower case only */
    assert_int_equal(rawhit_visitor_from_hex("0123456789abcde", 15, v), -1);
    assert_int_equal(rawhit_visitor_from_hex("0123456789abcdeg", 16, v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_hit_comes_back_as_it_was_packed),
        cmocka_unit_test(a_typical_hit_stays_small),
        cmocka_unit_test(the_visitor_sits_where_the_erase_script_reads_it),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(bad_heads_and_trailing_bytes_are_refused),
        cmocka_unit_test(a_present_string_must_not_be_empty_and_lengths_must_fit),
        cmocka_unit_test(encode_refuses_what_does_not_fit),
        cmocka_unit_test(an_engagement_comes_back_with_its_numbers),
        cmocka_unit_test(engagement_numbers_out_of_range_are_refused),
        cmocka_unit_test(device_names_and_visitor_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
