/* hll.c -- Redis's HyperLogLog registers (hll.h). */
#include "hll.h"

#include <string.h>

#define HLL_P 14
#define HLL_Q (64 - HLL_P)
#define HLL_SEED 0xadc83b19u            /* the seed Redis hashes members with */
#define SPARSE_VAL_MAX 32               /* the largest value a sparse VAL opcode holds */
#define SPARSE_VAL_RUN 4                /* ... and its longest run */
#define SPARSE_ZERO_RUN 64              /* the longest run of the one-byte ZERO opcode */

/* MurmurHash64A (Austin Appleby, public domain), as Redis uses it: the
 * input read as little-endian 64-bit words, the tail byte by byte. */
static uint64_t murmur64a(const unsigned char *p, size_t len, uint32_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ ((uint64_t)len * m);
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++, p += 8) {
        uint64_t k = 0;
        for (int b = 7; b >= 0; b--) k = k << 8 | p[b];
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    size_t tail = len & 7;
    if (tail) {
        for (size_t b = tail; b-- > 0;) h ^= (uint64_t)p[b] << (8 * b);
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

/* The register a member sets and the value it sets it to, as Redis's PFADD. */
static void hll_member(const void *member, size_t len, uint32_t *index, uint8_t *value)
{
    uint64_t h = murmur64a(member, len, HLL_SEED);
    *index = (uint32_t)(h & (HLL_REGISTERS - 1));
    h >>= HLL_P;
    h |= 1ULL << HLL_Q;                 /* the run ends by bit Q: value <= Q + 1 */
    uint8_t v = 1;
    while (!(h & 1)) {
        v++;
        h >>= 1;
    }
    *value = v;
}

void hll_add(uint8_t reg[HLL_REGISTERS], const void *member, size_t len)
{
    uint32_t i;
    uint8_t v;
    hll_member(member, len, &i, &v);
    if (v > reg[i]) reg[i] = v;
}

/* The shortest sparse form: runs of zeros as ZERO (1 byte, up to 64) or
 * XZERO (2 bytes, up to 16,384), runs of one value as VAL bytes of up to 4.
 * Redis's own, built register by register, is never shorter. */
int hll_needs_dense(const uint8_t reg[HLL_REGISTERS])
{
    size_t bytes = HLL_HEADER_BYTES;
    for (size_t i = 0; i < HLL_REGISTERS;) {
        size_t j = i + 1;
        while (j < HLL_REGISTERS && reg[j] == reg[i]) j++;
        size_t run = j - i;
        if (reg[i] == 0) {
            bytes += run <= SPARSE_ZERO_RUN ? 1 : 2;
        } else {
            if (reg[i] > SPARSE_VAL_MAX) return 1;
            bytes += (run + SPARSE_VAL_RUN - 1) / SPARSE_VAL_RUN;
        }
        if (bytes > HLL_SPARSE_MAX_BYTES) return 1;
        i = j;
    }
    return 0;
}

/* Six bits a register, the first in the low bits of the first byte. */
void hll_dense(const uint8_t reg[HLL_REGISTERS], unsigned char out[HLL_DENSE_BYTES])
{
    memset(out, 0, HLL_DENSE_BYTES);
    memcpy(out, "HYLL", 4);             /* encoding 0: dense */
    out[15] = 0x80;                     /* the cached count is stale */
    unsigned char *p = out + HLL_HEADER_BYTES;
    for (size_t i = 0; i < HLL_REGISTERS; i++) {
        size_t bit = i * 6, byte = bit / 8, shift = bit % 8;
        unsigned v = reg[i] & 63u;
        p[byte] |= (unsigned char)(v << shift);
        if (shift > 2) p[byte + 1] |= (unsigned char)(v >> (8 - shift));
    }
}
