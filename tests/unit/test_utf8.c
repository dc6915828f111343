/* test_utf8.c -- the strict UTF-8 validator (common/utf8.c): every class of
 * ill-formed sequence RFC 3629 names, the edges of every valid range, and
 * JSON escapes that would decode to lone surrogates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "utf8.h"

#define VALID(s) utf8_valid(s, sizeof s - 1)

static void ascii_and_the_edges_of_each_length_are_valid(void **state)
{
    (void)state;
    assert_true(VALID(""));
    assert_true(VALID("plain /path?q=1"));
    assert_true(VALID("a\0b"));                         /* NUL is UTF-8; callers refuse it */
    assert_true(VALID("\xc2\x80"));                     /* U+0080 */
    assert_true(VALID("\xdf\xbf"));                     /* U+07FF */
    assert_true(VALID("\xe0\xa0\x80"));                 /* U+0800 */
    assert_true(VALID("\xed\x9f\xbf"));                 /* U+D7FF, below the surrogates */
    assert_true(VALID("\xee\x80\x80"));                 /* U+E000, above them */
    assert_true(VALID("\xef\xbf\xbf"));                 /* U+FFFF */
    assert_true(VALID("\xf0\x90\x80\x80"));             /* U+10000 */
    assert_true(VALID("\xf4\x8f\xbf\xbf"));             /* U+10FFFF */
    assert_true(VALID("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
}

static void overlongs_surrogates_and_out_of_range_are_not(void **state)
{
    (void)state;
    assert_false(VALID("\xc0\xaf"));                    /* overlong '/' */
    assert_false(VALID("\xc1\xbf"));
    assert_false(VALID("\xe0\x80\xaf"));
    assert_false(VALID("\xe0\x9f\xbf"));                /* overlong U+07FF */
    assert_false(VALID("\xf0\x80\x80\xaf"));
    assert_false(VALID("\xf0\x8f\xbf\xbf"));            /* overlong U+FFFF */
    assert_false(VALID("\xed\xa0\x80"));                /* U+D800 */
    assert_false(VALID("\xed\xbf\xbf"));                /* U+DFFF */
    assert_false(VALID("\xf4\x90\x80\x80"));            /* U+110000 */
    assert_false(VALID("\xf5\x80\x80\x80"));
    assert_false(VALID("\xff"));
    assert_false(VALID("\xfe\xff"));
}

static void lone_and_truncated_continuations_are_not(void **state)
{
    (void)state;
    assert_false(VALID("\x80"));
    assert_false(VALID("a\xbf"));
    assert_false(VALID("\xc3"));                        /* truncated at the end */
    assert_false(VALID("\xe2\x82"));
    assert_false(VALID("\xf0\x9f\x98"));
    assert_false(VALID("\xc3z"));                       /* not a continuation */
    assert_false(VALID("\xe2\x28\xa1"));
    assert_false(VALID("\xf0\x9f\x98\x28"));
    /* The length is the bound, not a NUL. */
    assert_false(utf8_valid("\xc3\xa9", 1));
    assert_true(utf8_valid("\xc3\xa9", 2));
}

#define ESC(s) utf8_json_escapes_valid(s, sizeof s - 1)

static void json_escapes_must_not_leave_a_surrogate_alone(void **state)
{
    (void)state;
    assert_true(ESC("{\"a\":\"\\u0041\\n\\\\u\"}"));  /* "\\u" is a backslash, then u */
    assert_true(ESC("\"\\ud83d\\ude00\""));
    assert_true(ESC("\"\\uD83D\\uDE00\""));
    assert_false(ESC("\"\\ud800\""));
    assert_false(ESC("\"\\udbff x\""));
    assert_false(ESC("\"\\udc00\""));
    assert_false(ESC("\"\\ud800\\u0041\""));
    assert_false(ESC("\"\\ud800\\ud800\""));
    assert_false(ESC("\"\\ud800\\n\""));
    assert_false(utf8_json_escapes_valid("\\ud800\\udc00", 11));   /* pair cut by len */
    assert_true(ESC("\"\\u12\""));                     /* broken: the JSON parser refuses it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ascii_and_the_edges_of_each_length_are_valid),
        cmocka_unit_test(overlongs_surrogates_and_out_of_range_are_not),
        cmocka_unit_test(lone_and_truncated_continuations_are_not),
        cmocka_unit_test(json_escapes_must_not_leave_a_surrogate_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
