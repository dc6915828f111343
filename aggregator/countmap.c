/* countmap.c -- name -> entry hash map for breakdowns (countmap.h). */
#include "countmap.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct key {
    char *name;
    size_t len;
    unsigned long long hash;
};

/* The key at the start of an entry. Read and written with memcpy: the
 * entry is the caller's struct, whose first member has this layout. */
static struct key key_at(const struct countmap *m, size_t i)
{
    struct key k;
    memcpy(&k, m->slot + i * m->esize, sizeof k);
    return k;
}

/* FNV-1a's low bits mix poorly (a product's low bits see only the low bits
 * of its factors): the slot is taken from the high bits of the hash times a
 * large odd constant instead (Fibonacci hashing). */
static unsigned long long hash_of(const char *name, size_t len)
{
    return hash_fnv1a(HASH_FNV_OFFSET, name, len) * 0x9e3779b97f4a7c15ULL;
}

static size_t probe(const struct countmap *m, unsigned long long h, const char *name, size_t len)
{
    size_t j = (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)m->cap)));
    for (;;) {
        struct key k = key_at(m, j);
        if (!k.name || (k.hash == h && k.len == len && memcmp(k.name, name, len) == 0)) return j;
        j = (j + 1) & (m->cap - 1);
    }
}

/* A slot for a name known to be absent (growing): no name compared. */
static size_t free_slot(const struct countmap *m, unsigned long long h)
{
    size_t j = (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)m->cap)));
    while (key_at(m, j).name) j = (j + 1) & (m->cap - 1);
    return j;
}

static int grow(struct countmap *m)
{
    struct countmap g = {NULL, m->esize, m->cap ? m->cap * 2 : 256, m->n};
    g.slot = calloc(g.cap, g.esize);
    if (!g.slot) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        struct key k = key_at(m, i);
        if (k.name) memcpy(g.slot + free_slot(&g, k.hash) * g.esize, m->slot + i * m->esize, m->esize);
    }
    free(m->slot);
    *m = g;
    return 0;
}

void *countmap_get(struct countmap *m, const char *name, size_t len, int *added)
{
    if ((m->n + 1) * 2 > m->cap && grow(m) < 0) return NULL;
    unsigned long long h = hash_of(name, len);
    size_t j = probe(m, h, name, len);
    unsigned char *e = m->slot + j * m->esize;
    int fresh = !key_at(m, j).name;
    if (fresh) {
        struct key k = {malloc(len + 1), len, h};
        if (!k.name) return NULL;
        memcpy(k.name, name, len);
        k.name[len] = '\0';
        memcpy(e, &k, sizeof k);
        m->n++;
    }
    if (added) *added = fresh;
    return e;
}

void *countmap_find(const struct countmap *m, const char *name, size_t len)
{
    if (!m->cap) return NULL;
    size_t j = probe(m, hash_of(name, len), name, len);
    return key_at(m, j).name ? m->slot + j * m->esize : NULL;
}

void *countmap_at(const struct countmap *m, size_t i)
{
    return key_at(m, i).name ? m->slot + i * m->esize : NULL;
}

void countmap_free(struct countmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(key_at(m, i).name);
    free(m->slot);
    m->slot = NULL;
    m->cap = m->n = 0;
}
