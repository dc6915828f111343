/* visitor.h -- the anonymous visitor id: a keyed hash that changes every day.
 *
 * visitor = first 8 bytes, in hex, of HMAC-SHA256(key = daily salt,
 * message = site "\n" receipt id). The salt is random per UTC day, lives only
 * in Redis under fs:salt:YYYYMMDD and expires after 48 hours, so yesterday's
 * ids cannot be linked to today's once it is gone. The collector computes it
 * per hit; DELETE /consent and `forget` recompute it for the salts still held
 * to find a visitor's buffered hits.
 */
#ifndef FAIRSTAT_VISITOR_H
#define FAIRSTAT_VISITOR_H

#include <stddef.h>

#define VISITOR_HEX_LEN 16

/* Writes VISITOR_HEX_LEN hex chars and a NUL to out. 0 on success, -1 on a
 * crypto failure. */
int visitor_hash(const void *salt, size_t saltlen, const char *site, size_t sitelen,
                 const char *receipt, size_t receiptlen, char out[VISITOR_HEX_LEN + 1]);


/* The same hash with the salt's key schedule done once: for the collector's
 * hot path. One visitor_key per thread; not thread-safe. */
struct visitor_key;
struct visitor_key *visitor_key_new(const void *salt, size_t saltlen);
void visitor_key_free(struct visitor_key *k);
int visitor_key_hash(struct visitor_key *k, const char *site, size_t sitelen,
                     const char *receipt, size_t receiptlen, char out[VISITOR_HEX_LEN + 1]);

#endif
