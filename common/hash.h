/* hash.h -- the non-cryptographic hashes of the code base: FNV-1a, a
 * word-at-a-time hash for longer keys (cookies, User-Agents), and a seeded
 * one a word a multiply for the fold's members and keys (hash_seeded).
 *
 * For in-memory tables only (the fold's key index, the collector's caches,
 * the rate limiter): they are fast and spread strings well, and they are
 * not MACs. Where an attacker chooses the input (cookies, addresses), start
 * from a per-process random seed mixed into HASH_FNV_OFFSET so that nobody
 * can aim collisions at one slot. Anything that must resist forgery or
 * linking is HMAC-SHA256 (consent.h, visitor.h).
 */
#ifndef FAIRSTAT_HASH_H
#define FAIRSTAT_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_FNV_OFFSET 0xcbf29ce484222325ULL
#define HASH_FNV_PRIME 0x100000001b3ULL

/* Continues the hash h over n bytes at p: chain calls to hash several
 * fields, starting from HASH_FNV_OFFSET (or a seeded value). */
static inline uint64_t hash_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * HASH_FNV_PRIME;
    return h;
}

/* Eight bytes per multiply and shift, for keys of a hundred bytes or more
 * read on every hit, where FNV-1a's byte loop showed in the profile (a
 * cookie: ~500 instructions). 0 is never returned: a table may mark an
 * empty slot with it. */
static inline uint64_t hash_words(uint64_t seed, const void *p, size_t n)
{
    const unsigned char *b = p;
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h = seed ^ ((uint64_t)n * k), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    w = 0;
    memcpy(&w, b + i, n - i);
    h = (h ^ w) * k;
    h ^= h >> 32;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* The 128-bit product of a and b, its halves folded by xor. */
static inline uint64_t hash_mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)(r >> 64) ^ (uint64_t)r;
}

/* Eight bytes per 128-bit multiply, the seed in every one: for short keys
 * a visitor chooses (paths, referrers), hashed several times a hit, where
 * FNV-1a's byte loop (a multiply a byte) was a tenth of the fold. Without
 * the seed, a word's product cannot be aimed (unlike hash_words, whose
 * first multiply is the same for every seed but for an xor). */
static inline uint64_t hash_seeded(uint64_t seed, const void *p, size_t n)
{
    const unsigned char *b = p;
    const uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xc4ceb9fe1a85ec53ull;
    uint64_t h = seed ^ ((uint64_t)n * k2), w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, b + i, 8);
        h = hash_mum(w ^ seed ^ k1, h ^ k2);
    }
    w = 0;
    memcpy(&w, b + i, n - i);
    h = hash_mum(w ^ seed ^ k1, h ^ k2);
    return hash_mum(h ^ seed, k1);
}

#endif
