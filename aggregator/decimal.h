/* decimal.h -- integers written in decimal without printf, for the numbers
 * the drain writes per argument and per visit state (format_argv's lengths,
 * fold's visit states and deltas): snprintf was a visible share of it. */
#ifndef FAIRSTAT_DECIMAL_H
#define FAIRSTAT_DECIMAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes v in decimal at p (room for 20 characters); their number. Two
 * digits a table lookup, eight a 64-bit division. */
static inline size_t decimal_u64(char *p, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char d[20];
    size_t n = sizeof d;
    uint32_t w;
    while (v >= 100000000) {
        w = (uint32_t)(v % 100000000);
        v /= 100000000;
        for (int j = 0; j < 4; j++, w /= 100) memcpy(d + (n -= 2), pairs + 2 * (w % 100), 2);
    }
    for (w = (uint32_t)v; w >= 100; w /= 100) memcpy(d + (n -= 2), pairs + 2 * (w % 100), 2);
    if (w >= 10) memcpy(d + (n -= 2), pairs + 2 * w, 2);
    else d[--n] = (char)('0' + w);
    memcpy(p, d + n, sizeof d - n);
    return sizeof d - n;
}

/* decimal_u64() of a signed v (room for 20 characters). */
static inline size_t decimal_i64(char *p, int64_t v)
{
    if (v >= 0) return decimal_u64(p, (uint64_t)v);
    *p = '-';
    return 1 + decimal_u64(p + 1, 0 - (uint64_t)v);
}

#endif
