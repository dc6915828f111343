/* hll.h -- the registers of a Redis HyperLogLog, computed in the fold.
 *
 * A batch adds thousands of members to a few HyperLogLogs: the site's
 * visitors of the day and of the minute, the top pages' visitors. Sent as
 * PFADD arguments, each member is a 32-byte string that the script's ARGV
 * turns into a Lua string and redis.call turns back: per member that cost
 * Redis more than the PFADD itself (the drain's profile: Lua's string
 * interning was a sixth of Redis's time). For such a key the fold computes
 * the registers its members set, by Redis's own rule (MurmurHash64A with
 * Redis's seed; the low 14 bits pick one of 16,384 registers, the run of
 * zero bits above them sets its value), and sends them as one dense
 * HyperLogLog, which the script merges (PFMERGE takes each register's
 * maximum, as PFADD does): one 12 KB argument instead of a member each.
 *
 * Only where the batch's registers alone need the dense form: more than
 * HLL_SPARSE_MAX_BYTES in Redis's sparse form (Redis's default
 * hll-sparse-max-bytes; a server configured higher would have kept such a
 * key sparse a little longer), or a value over 32 (which the sparse form
 * cannot hold). That is where PFADD makes a new key dense too; for an
 * existing sparse key the merged registers can, in contrived cases, still
 * fit the sparse form that the merge leaves dense (counts are the same;
 * only the key's size differs). A key whose batch is smaller keeps its
 * PFADD, so a page with a few visitors a day stays a small sparse
 * HyperLogLog, in every Redis version.
 */
#ifndef FAIRSTAT_HLL_H
#define FAIRSTAT_HLL_H

#include <stddef.h>
#include <stdint.h>

#define HLL_REGISTERS 16384                     /* 2^14 */
#define HLL_HEADER_BYTES 16                     /* "HYLL", encoding, 3 unused, cached count */
#define HLL_DENSE_BYTES (HLL_HEADER_BYTES + HLL_REGISTERS * 6 / 8)
#define HLL_SPARSE_MAX_BYTES 3000

/* Sets the register the member picks to the value it gives, if higher: as
 * Redis's PFADD does. */
void hll_add(uint8_t reg[HLL_REGISTERS], const void *member, size_t len);

/* Whether Redis would hold these registers densely: their sparse form needs
 * more than HLL_SPARSE_MAX_BYTES, or a value is over 32. */
int hll_needs_dense(const uint8_t reg[HLL_REGISTERS]);

/* The registers as Redis's dense HyperLogLog string (cached count marked
 * stale): HLL_DENSE_BYTES into out. */
void hll_dense(const uint8_t reg[HLL_REGISTERS], unsigned char out[HLL_DENSE_BYTES]);

#endif
