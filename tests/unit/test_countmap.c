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

/* Names longer than a block of names (64 KiB) and short ones after them:
 * each kept whole, the short ones still packed. */
static void test_long_names(void **state)
{
    (void)state;
    struct countmap m = COUNTMAP_INIT(struct entry);
    size_t big = 200 * 1024;
    char *name = malloc(big);
    assert_non_null(name);
    for (int i = 0; i < 3; i++) {
        memset(name, 'a' + i, big);
        ((struct entry *)countmap_get(&m, name, big - (size_t)i, NULL))->n = i + 1;
        ((struct entry *)countmap_get(&m, name, (size_t)i + 1, NULL))->n = 10 + i;
    }
    for (int i = 0; i < 3; i++) {
        memset(name, 'a' + i, big);
        struct entry *e = countmap_find(&m, name, big - (size_t)i);
        assert_non_null(e);
        assert_int_equal(e->n, i + 1);
        assert_int_equal(e->len, big - (size_t)i);
        assert_int_equal(e->name[e->len - 1], 'a' + i);
        assert_int_equal(e->name[e->len], '\0');
        e = countmap_find(&m, name, (size_t)i + 1);
        assert_non_null(e);
        assert_int_equal(e->n, 10 + i);
    }
    assert_int_equal(m.n, 6);
    free(name);
    countmap_free(&m);
}

/* 10,000 names: the map grows many times, every entry keeps its count, a
 * walk sees each once in the order they were added, and it stays at most
 * half full. */
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
    for (size_t i = 0; i < m.n; i++) {
        struct entry *e = countmap_at(&m, i);
        assert_non_null(e);
        seen++;
        sum += e->n;
        int k = atoi(e->name + 2);
        assert_int_equal(k, (int)i);
        assert_int_equal(e->n, 2LL * k);
    }
    assert_null(countmap_at(&m, m.n));
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
        cmocka_unit_test(test_long_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
