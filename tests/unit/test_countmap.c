/* test_countmap.c -- the breakdown hash map (countmap.h): entries keyed by
 * name, zeroed when added, found again after the map grows, names owned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "countmap.h"

struct entry {
    COUNTMAP_KEY;
    long long n;
    int flag;
};

static void test_get_adds_once_and_sums(void **state)
{
    (void)state;
    struct countmap m = COUNTMAP_INIT(struct entry);
    assert_null(countmap_find(&m, "a", 1));
    int added = -1;
    struct entry *e = countmap_get(&m, "/a", 2, &added);
    assert_non_null(e);
    assert_int_equal(added, 1);
    assert_int_equal(e->n, 0);
    assert_int_equal(e->flag, 0);
    assert_string_equal(e->name, "/a");
    assert_int_equal(e->len, 2);
    e->n += 3;
    e = countmap_get(&m, "/a", 2, &added);
    assert_int_equal(added, 0);
    e->n += 4;
    assert_int_equal(((struct entry *)countmap_find(&m, "/a", 2))->n, 7);
    assert_int_equal(m.n, 1);
    countmap_free(&m);
    assert_int_equal(m.cap, 0);
}

/* Names are bytes: a NUL inside and a prefix of another name are their own keys. */
static void test_names_are_bytes(void **state)
{
    (void)state;
    struct countmap m = COUNTMAP_INIT(struct entry);
    ((struct entry *)countmap_get(&m, "a\0b", 3, NULL))->n = 1;
    ((struct entry *)countmap_get(&m, "a", 1, NULL))->n = 2;
    ((struct entry *)countmap_get(&m, "", 0, NULL))->n = 3;
    assert_int_equal(((struct entry *)countmap_find(&m, "a\0b", 3))->n, 1);
    assert_int_equal(((struct entry *)countmap_find(&m, "a", 1))->n, 2);
    assert_int_equal(((struct entry *)countmap_find(&m, "", 0))->n, 3);
    assert_null(countmap_find(&m, "a\0", 2));
    countmap_free(&m);
}

/* 10,000 names: the map grows many times, every entry keeps its count, a
 * walk over the slots sees each once, and it stays at most half full. */
static void test_grows_and_walks(void **state)
{
    (void)state;
    struct countmap m = COUNTMAP_INIT(struct entry);
    char name[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 10000; i++) {
            int len = snprintf(name, sizeof name, "/p%d", i);
            struct entry *e = countmap_get(&m, name, (size_t)len, NULL);
            assert_non_null(e);
            e->n += i;
        }
    assert_int_equal(m.n, 10000);
    assert_true(m.n * 2 <= m.cap);
    long long sum = 0;
    size_t seen = 0;
    for (size_t i = 0; i < m.cap; i++) {
        struct entry *e = countmap_at(&m, i);
        if (!e) continue;
        seen++;
        sum += e->n;
        int k = atoi(e->name + 2);
        assert_int_equal(e->n, 2LL * k);
    }
    assert_int_equal(seen, 10000);
    assert_int_equal(sum, 2LL * (9999LL * 10000 / 2));
    assert_int_equal(((struct entry *)countmap_find(&m, "/p1234", 6))->n, 2468);
    assert_null(countmap_find(&m, "/p10000", 7));
    countmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_adds_once_and_sums),
        cmocka_unit_test(test_names_are_bytes),
        cmocka_unit_test(test_grows_and_walks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
