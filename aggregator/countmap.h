/* countmap.h -- name -> entry, the hash map a breakdown is counted in.
 *
 * A report or a Stats API query reads one day hash per day of its range and
 * sums each member's count over the days; the map merges each day's reply as
 * it arrives, so that one reply is held at a time. report.c and query.c keep
 * different things per row (the stored name, visitors, engagement), so the
 * entries are the caller's struct: its first member is COUNTMAP_KEY (the
 * name and its length, owned by the map); the rest starts zeroed.
 *
 * The entries sit side by side in one array, in the order they were added;
 * the index is a power-of-two array of 8-byte slots (the high half of the
 * name's hash, the entry's position + 1), linear probing, at most half full,
 * grown by doubling from 256. A probe reads the small index and touches an
 * entry only when the hash halves agree, and the names sit in a few large
 * blocks rather than one allocation each: a 30-day report merges ~200,000
 * members, and cache misses, page faults and malloc were most of its time.
 * FNV-1a times a large odd constant, slot from the high bits (Fibonacci
 * hashing). The names come from the aggregates, whose members are bounded
 * per day (aggregator.max_members), so an unseeded hash is fine.
 * Entries move when the map grows: a pointer from countmap_get() is good
 * until the next countmap_get().
 */
#ifndef FAIRSTAT_COUNTMAP_H
#define FAIRSTAT_COUNTMAP_H

#include <stddef.h>

/* The first member of an entry: a NUL-terminated copy of the name, and its
 * hash (kept, so that a probe past another name and a growth never touch the
 * other name's bytes). */
#define COUNTMAP_KEY struct { char *name; size_t len; unsigned long long hash; }

struct countmap_block;

struct countmap {
    unsigned char *entry;       /* n entries of esize bytes, room for room */
    unsigned long long *index;  /* cap slots: hash >> 32 << 32 | position + 1; 0 = empty */
    struct countmap_block *names;
    size_t esize, cap, n, room;
};

/* An empty map of entries of type T (no allocation until the first get). */
#define COUNTMAP_INIT(T) ((struct countmap){NULL, NULL, NULL, sizeof(T), 0, 0, 0})

/* The entry of name[0..len), added (zeroed, with its own copy of the name)
 * when absent; *added (may be NULL) says which. NULL when out of memory. */
void *countmap_get(struct countmap *m, const char *name, size_t len, int *added);

/* The entry of name[0..len), NULL when absent. */
void *countmap_find(const struct countmap *m, const char *name, size_t len);

/* Entry i (i < m->n), in the order they were added, for a walk over every
 * entry; NULL past the end. */
void *countmap_at(const struct countmap *m, size_t i);

/* Frees the names, the entries and the index (not what the caller's
 * entries own). */
void countmap_free(struct countmap *m);

#endif
