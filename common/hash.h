/* hash.h -- FNV-1a, the one non-cryptographic hash of the code base.
 *
 * For in-memory tables only (the fold's key index, the collector's caches,
 * the rate limiter): it is fast and spreads short strings well, and it is
 * not a MAC. Where an attacker chooses the input (cookies, addresses), start
 * from a per-process random seed mixed into HASH_FNV_OFFSET so that nobody
 * can aim collisions at one slot. Anything that must resist forgery or
 * linking is HMAC-SHA256 (consent.h, visitor.h).
 */
#ifndef FAIRSTAT_HASH_H
#define FAIRSTAT_HASH_H

#include <stddef.h>
#include <stdint.h>

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

#endif
