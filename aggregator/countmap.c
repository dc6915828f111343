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

/* Names are copied into blocks of NAME_BLOCK bytes (a longer name gets a
 * block of its own), freed together with the map. */
enum { NAME_BLOCK = 64 * 1024 };

struct countmap_block {
    struct countmap_block *next;
    size_t used, size;
    char bytes[];
};

static unsigned char *entry_at(const struct countmap *m, size_t i)
{
    return m->entry + i * m->esize;
}

/* The key at the start of an entry. Read and written with memcpy: the
 * entry is the caller's struct, whose first member has this layout. */
static struct key key_of(const unsigned char *e)
{
    struct key k;
    memcpy(&k, e, sizeof k);
    return k;
}

/* FNV-1a's low bits mix poorly (a product's low bits see only the low bits
 * of its factors): slots are taken from the high bits of the hash times a
 * large odd constant instead (Fibonacci hashing). */
static unsigned long long hash_of(const char *name, size_t len)
{
    return hash_fnv1a(HASH_FNV_OFFSET, name, len) * 0x9e3779b97f4a7c15ULL;
}

#define TAG(h) ((h) & 0xffffffff00000000ULL)

static size_t first_slot(const struct countmap *m, unsigned long long h)
{
    return (size_t)(h >> (64 - __builtin_ctzll((unsigned long long)m->cap)));
}

/* The slot holding name, or the empty slot where it would go. */
static size_t probe(const struct countmap *m, unsigned long long h, const char *name, size_t len)
{
    size_t j = first_slot(m, h);
    for (;;) {
        unsigned long long s = m->index[j];
        if (!s) return j;
        if (TAG(s) == TAG(h)) {
            struct key k = key_of(entry_at(m, (size_t)(s & 0xffffffffULL) - 1));
            if (k.hash == h && k.len == len && memcmp(k.name, name, len) == 0) return j;
        }
        j = (j + 1) & (m->cap - 1);
    }
}

static int grow_index(struct countmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    unsigned long long *index = calloc(cap, sizeof *index);
    if (!index) return -1;
    free(m->index);
    m->index = index;
    m->cap = cap;
    for (size_t i = 0; i < m->n; i++) {
        unsigned long long h = key_of(entry_at(m, i)).hash;
        size_t j = first_slot(m, h);
        while (index[j]) j = (j + 1) & (cap - 1);
        index[j] = TAG(h) | (i + 1);
    }
    return 0;
}

static char *copy_name(struct countmap *m, const char *name, size_t len)
{
    struct countmap_block *b = m->names;
    if (!b || b->size - b->used < len + 1) {
        size_t size = len + 1 > NAME_BLOCK ? len + 1 : NAME_BLOCK;
        struct countmap_block *nb = malloc(sizeof *nb + size);
        if (!nb) return NULL;
        nb->used = 0;
        nb->size = size;
        /* A block of one long name goes second, so that the current block
         * keeps its room. */
        if (b && size > NAME_BLOCK) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            m->names = nb;
        }
        b = nb;
    }
    char *copy = b->bytes + b->used;
    memcpy(copy, name, len);
    copy[len] = '\0';
    b->used += len + 1;
    return copy;
}

void *countmap_get(struct countmap *m, const char *name, size_t len, int *added)
{
    if (m->n >= 0xffffffffULL - 1) return NULL;    /* positions are 32 bits */
    if ((m->n + 1) * 2 > m->cap && grow_index(m) < 0) return NULL;
    unsigned long long h = hash_of(name, len);
    size_t j = probe(m, h, name, len);
    if (m->index[j]) {
        if (added) *added = 0;
        return entry_at(m, (size_t)(m->index[j] & 0xffffffffULL) - 1);
    }
    if (m->n == m->room) {
        size_t room = m->room ? m->room * 2 : 64;
        unsigned char *e = realloc(m->entry, room * m->esize);
        if (!e) return NULL;
        m->entry = e;
        m->room = room;
    }
    struct key k = {copy_name(m, name, len), len, h};
    if (!k.name) return NULL;
    unsigned char *e = entry_at(m, m->n);
    memset(e, 0, m->esize);
    memcpy(e, &k, sizeof k);
    m->index[j] = TAG(h) | (m->n + 1);
    m->n++;
    if (added) *added = 1;
    return e;
}

void *countmap_find(const struct countmap *m, const char *name, size_t len)
{
    if (!m->cap) return NULL;
    size_t j = probe(m, hash_of(name, len), name, len);
    return m->index[j] ? entry_at(m, (size_t)(m->index[j] & 0xffffffffULL) - 1) : NULL;
}

void *countmap_at(const struct countmap *m, size_t i)
{
    return i < m->n ? entry_at(m, i) : NULL;
}

void countmap_free(struct countmap *m)
{
    while (m->names) {
        struct countmap_block *next = m->names->next;
        free(m->names);
        m->names = next;
    }
    free(m->entry);
    free(m->index);
    m->entry = NULL;
    m->index = NULL;
    m->cap = m->n = m->room = 0;
}
