/* test_hash.c -- hash_seeded (hash.h), the fold's hash of members and keys:
 * every byte and the length count, the seed changes every value, and the
 * low bits, which pick a table's slot, spread keys that differ in a digit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"

static const uint64_t seed_a = 0x243f6a8885a308d3ull, seed_b = 0x13198a2e03707344ull;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 200,000 paths like a site's, a byte apart or a length apart: no two hash
 * the same, under either seed. */
static void test_distinct_keys_hash_apart(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *h = malloc(2 * N * sizeof *h);
    assert_non_null(h);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < N; i++) {
            char p[32];
            int n = snprintf(p, sizeof p, "/shop/%d", i / 4);
            /* "/shop/7", "/shop/7\0", "/shop/7\0\0", "/shop/7\0\0\0" */
            h[i] = hash_seeded(s ? seed_b : seed_a, p, (size_t)n + (size_t)(i % 4));
        }
        qsort(h, N, sizeof *h, cmp_u64);
        for (int i = 1; i < N; i++) assert_true(h[i] != h[i - 1]);
    }
    free(h);
}

/* Every bit of the input, at every place of a 1-24 byte key, moves the hash. */
static void test_every_input_bit_counts(void **state)
{
    (void)state;
    unsigned char k[24];
    for (size_t n = 1; n <= sizeof k; n++) {
        for (size_t i = 0; i < n; i++) k[i] = (unsigned char)(i * 37 + n);
        uint64_t base = hash_seeded(seed_a, k, n);
        assert_int_equal(hash_seeded(seed_a, k, n), base);
        for (size_t bit = 0; bit < 8 * n; bit++) {
            k[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            assert_true(hash_seeded(seed_a, k, n) != base);
            k[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
    }
}

/* Another seed, other values: a collision found under one seed (a table's
 * slot aimed at) says nothing of another process's. */
static void test_the_seed_changes_every_value(void **state)
{
    (void)state;
    int same = 0;
    for (int i = 0; i < 10000; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "/p/%d", i);
        same += hash_seeded(seed_a, p, (size_t)n) == hash_seeded(seed_b, p, (size_t)n);
    }
    assert_int_equal(same, 0);
}

/* 65,536 keys into 4,096 slots by the low bits: each slot within a few
 * times its share (16), as a random function would put them. */
static void test_low_bits_spread_keys(void **state)
{
    (void)state;
    enum { SLOTS = 4096, KEYS = 65536 };
    static int load[SLOTS];
    memset(load, 0, sizeof load);
    for (int i = 0; i < KEYS; i++) {
        char p[32];
        int n = snprintf(p, sizeof p, "/shop/%d-x", i);
        load[hash_seeded(seed_a, p, (size_t)n) & (SLOTS - 1)]++;
    }
    int most = 0, empty = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (load[i] > most) most = load[i];
        empty += load[i] == 0;
    }
    /* Poisson(16): P(>= 40) ~ 1e-7 a slot; P(0) ~ 1e-7 a slot */
    assert_true(most < 40);
    assert_int_equal(empty, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_keys_hash_apart),
        cmocka_unit_test(test_every_input_bit_counts),
        cmocka_unit_test(test_the_seed_changes_every_value),
        cmocka_unit_test(test_low_bits_spread_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
