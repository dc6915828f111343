/* test_rows.c -- the rules breakdown rows follow on their way out (rows.h):
 * small-count protection, names that are not UTF-8, terminal escaping; and
 * the report's named periods (report_period). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "report.h"
#include "rows.h"

/* ------------------------------------------------------------ escaping */

static void expect_term(const char *in, size_t len, const char *want)
{
    char out[256];
    assert_int_equal(rows_term_escape(in, len, out, sizeof out), len);
    assert_string_equal(out, want);
}
#define TERM(lit, want) expect_term(lit, sizeof lit - 1, want)

static void printable_text_passes_unchanged(void **state)
{
    (void)state;
    TERM("/blog/caf\xc3\xa9?q=1 \\x41", "/blog/caf\xc3\xa9?q=1 \\x41");
    TERM("\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
    TERM("", "");
}

static void every_c0_control_and_del_is_escaped_as_hex(void **state)
{
    (void)state;
    for (unsigned c = 0; c < 0x20; c++) {
        char in[3] = {'a', (char)c, 'b'}, want[16];
        snprintf(want, sizeof want, "a\\x%02xb", c);
        expect_term(in, 3, want);
    }
    TERM("\x7f", "\\x7f");
    TERM("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m");
}

static void every_c1_control_is_escaped_as_a_code_point(void **state)
{
    (void)state;
    for (unsigned c = 0x80; c <= 0x9f; c++) {
        char in[2] = {(char)0xc2, (char)c}, want[16];
        snprintf(want, sizeof want, "\\u%04x", c);
        expect_term(in, 2, want);
    }
    TERM("\xc2\xa0", "\xc2\xa0");   /* U+00A0, the first after C1, is shown */
}

static void bidi_controls_and_line_separators_are_escaped(void **state)
{
    (void)state;
    static const unsigned cps[] = {0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c,
                                   0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        unsigned cp = cps[i];
        char in[3], want[16];
        if (cp < 0x800) {
            in[0] = (char)(0xc0 | (cp >> 6)), in[1] = (char)(0x80 | (cp & 0x3f));
            expect_term(in, 2, (snprintf(want, sizeof want, "\\u%04x", cp), want));
        } else {
            in[0] = (char)(0xe0 | (cp >> 12)), in[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            in[2] = (char)(0x80 | (cp & 0x3f));
            expect_term(in, 3, (snprintf(want, sizeof want, "\\u%04x", cp), want));
        }
    }
    TERM("/a\xe2\x80\xae" "fdp.exe", "/a\\u202efdp.exe");
    TERM("\xe2\x80\x8d", "\xe2\x80\x8d");   /* ZWJ (emoji sequences) is no control */
    TERM("\xe2\x81\xa5", "\xe2\x81\xa5");   /* U+2065, between the ranges */
}

static void bytes_that_are_not_utf8_are_escaped_as_hex(void **state)
{
    (void)state;
    TERM("/a\xff", "/a\\xff");
    TERM("\xc3", "\\xc3");                  /* cut sequence */
    TERM("\xc0\xaf", "\\xc0\\xaf");         /* overlong '/' */
    TERM("\xed\xa0\x80", "\\xed\\xa0\\x80"); /* surrogate */
    TERM("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80");   /* past U+10FFFF */
    TERM("\x80x", "\\x80x");                /* lone continuation */
}

static void a_nul_is_escaped_not_an_end(void **state)
{
    (void)state;
    expect_term("a\0b", 3, "a\\x00b");
}

static void escaping_stops_before_what_does_not_fit(void **state)
{
    (void)state;
    char out[6];
    /* "ab" + "\x1b" (4) = 6 bytes + NUL: the escape does not fit whole. */
    assert_int_equal(rows_term_escape("ab\x1b", 3, out, sizeof out), 2);
    assert_string_equal(out, "ab");
    /* A 3-byte character is not cut either. */
    assert_int_equal(rows_term_escape("abcd\xe2\x82\xac", 7, out, sizeof out), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(rows_term_escape("abc", 3, out, 1), 0);
    assert_string_equal(out, "");
}

/* -------------------------------------------------------------- json names */

static void valid_utf8_names_are_kept_as_they_are(void **state)
{
    (void)state;
    size_t n;
    int oom;
    assert_null(rows_json_name("/caf\xc3\xa9", 6, &n, &oom));
    assert_int_equal(oom, 0);
    assert_null(rows_json_name("a\0b", 3, &n, &oom));
    assert_true(rows_utf8_valid("\xf4\x8f\xbf\xbf", 4));
    assert_false(rows_utf8_valid("\xf4\x90\x80\x80", 4));
}

static void invalid_bytes_become_hex_escapes_and_distinct_names_stay_distinct(void **state)
{
    (void)state;
    size_t n1, n2;
    int oom;
    char *a = rows_json_name("/a\xff\xc3\xa9", 5, &n1, &oom);
    char *b = rows_json_name("/a\xfe\xc3\xa9", 5, &n2, &oom);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, "/a\\xff\xc3\xa9");
    assert_int_equal(n1, strlen(a));
    assert_string_equal(b, "/a\\xfe\xc3\xa9");
    assert_true(rows_utf8_valid(a, n1));
    free(a);
    free(b);
}

/* ------------------------------------------------------------ small counts */

/* A row, and the fate rows_fold_next() must give it. */
struct in {
    const char *name;
    long long n, visitors;
    enum rows_fate want;
};

static void walk(struct rows_fold *f, const struct in *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum rows_fate got = rows_fold_next(f, rows[i].name, strlen(rows[i].name), rows[i].n, rows[i].visitors);
        if (got != rows[i].want) fail_msg("row %zu (%s): fate %d, want %d", i, rows[i].name, got, rows[i].want);
    }
}

static void off_shows_every_row_up_to_the_limit(void **state)
{
    (void)state;
    struct in rows[] = {{"/a", 5, -1, ROWS_SHOW}, {"/b", 1, -1, ROWS_SHOW}, {"/c", 1, -1, ROWS_CUT}};
    struct rows_fold f;
    rows_fold_init(&f, 0, 2);
    walk(&f, rows, 3);
    assert_int_equal(f.cut_n, 1);
    assert_int_equal(rows_fold_other(&f, 0), 0);
    assert_int_equal(rows_fold_other(&f, 1), 1);
}

static void rows_under_k_fold_into_other_and_keep_the_sum(void **state)
{
    (void)state;
    /* visitors known (pages): 3 >= 2 shown, 1 hidden whatever its pageviews;
     * visitors unknown: count is the bound. */
    struct in rows[] = {{"/many-views-one-visitor", 9, 1, ROWS_HIDE}, {"/a", 4, 3, ROWS_SHOW},
                        {"/null-visitors", 3, -1, ROWS_SHOW}, {"/b", 1, -1, ROWS_HIDE},
                        {"(other)", 2, -1, ROWS_OTHER_ROW}, {"/c", 1, 1, ROWS_HIDE}};
    struct rows_fold f;
    rows_fold_init(&f, 2, 10);
    walk(&f, rows, 6);
    assert_int_equal(f.hidden, 3);
    assert_int_equal(f.hidden_n, 11);
    assert_int_equal(f.other_n, 2);
    /* shown 4 + 3 = 7, other 13: 20, the sum of every row */
    assert_int_equal(rows_fold_other(&f, 1), 13);
}

static void hidden_rows_do_not_use_up_the_limit(void **state)
{
    (void)state;
    struct in rows[] = {{"/x", 1, -1, ROWS_HIDE}, {"/a", 5, -1, ROWS_SHOW}, {"/b", 3, -1, ROWS_SHOW},
                        {"/c", 2, -1, ROWS_CUT}};
    struct rows_fold f;
    rows_fold_init(&f, 2, 2);
    walk(&f, rows, 4);
    assert_int_equal(rows_fold_other(&f, 0), 1);
    assert_int_equal(rows_fold_other(&f, 1), 3);
}

static void below_min_uses_visitors_when_counted_else_the_count(void **state)
{
    (void)state;
    assert_false(rows_below_min(0, 0, 0));
    assert_true(rows_below_min(2, 1, 100));
    assert_false(rows_below_min(2, 2, 2));
    assert_true(rows_below_min(2, -1, 1));
    assert_false(rows_below_min(2, -1, 2));
}

/* ----------------------------------------------------------------- periods */

static int64_t d(const char *s)
{
    int64_t days;
    assert_int_equal(clock_parse_day(s, &days), 0);
    return days;
}

static void expect_period(const char *name, const char *today, const char *from, const char *to)
{
    int64_t f, t;
    assert_int_equal(report_period(name, d(today), &f, &t), 0);
    assert_int_equal(f, d(from));
    assert_int_equal(t, d(to));
}

static void named_periods_end_today(void **state)
{
    (void)state;
    expect_period("day", "2024-03-01", "2024-03-01", "2024-03-01");
    expect_period("7d", "2024-03-01", "2024-02-24", "2024-03-01");
    expect_period("30d", "2024-03-01", "2024-02-01", "2024-03-01");
    expect_period("month", "2024-03-01", "2024-03-01", "2024-03-01");
    expect_period("month", "2024-02-29", "2024-02-01", "2024-02-29");
    expect_period("12mo", "2024-03-15", "2023-04-01", "2024-03-15");
    expect_period("12mo", "2024-12-31", "2024-01-01", "2024-12-31");
    expect_period("12mo", "2024-01-01", "2023-02-01", "2024-01-01");
    int64_t f, t;
    assert_int_equal(report_period("6mo", 0, &f, &t), -1);
    assert_int_equal(report_period("", 0, &f, &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(printable_text_passes_unchanged),
        cmocka_unit_test(every_c0_control_and_del_is_escaped_as_hex),
        cmocka_unit_test(every_c1_control_is_escaped_as_a_code_point),
        cmocka_unit_test(bidi_controls_and_line_separators_are_escaped),
        cmocka_unit_test(bytes_that_are_not_utf8_are_escaped_as_hex),
        cmocka_unit_test(a_nul_is_escaped_not_an_end),
        cmocka_unit_test(escaping_stops_before_what_does_not_fit),
        cmocka_unit_test(valid_utf8_names_are_kept_as_they_are),
        cmocka_unit_test(invalid_bytes_become_hex_escapes_and_distinct_names_stay_distinct),
        cmocka_unit_test(off_shows_every_row_up_to_the_limit),
        cmocka_unit_test(rows_under_k_fold_into_other_and_keep_the_sum),
        cmocka_unit_test(hidden_rows_do_not_use_up_the_limit),
        cmocka_unit_test(below_min_uses_visitors_when_counted_else_the_count),
        cmocka_unit_test(named_periods_end_today),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
