/* spool.h -- hits kept on local disk while Redis cannot take them.
 *
 * One spool per worker thread, owning the files of its directory whose
 * worker number is its own modulo collector.threads (so files left by a
 * run with more threads are replayed too). Files are append-only, 0600 in a
 * 0700 directory, named w<worker>-<seq>.spool; each record is
 *
 *   u32 length of the payload, u32 CRC32C of the payload   (little-endian)
 *   payload: u8 SPOOL_VERSION, u8 flags (SPOOL_F_*), u64 the hit's time (ms),
 *            u8 site length, the site, the packed raw hit (rawhit.h)
 *
 * spool_append() returns once the record is in the file (write(2)): it then
 * survives a crash of the process; spool_sync(), called at least every
 * second and at shutdown, makes it survive a crash of the machine too.
 *
 * Replay reads the oldest file from its position (w<worker>-<seq>.pos, the
 * offset of the first record not yet acknowledged, written and fsynced by
 * spool_replay_commit()). A file is deleted once its last record is
 * acknowledged and that position made durable. A record that is torn (the
 * tail of a file written when the process died) or fails its checksum is
 * skipped and counted, never fatal; a missing or unreadable position file
 * means "from the start" (the fold counts a replayed hit once, whatever
 * happens: see docs/aggregator.md, Exactly once).
 */
#ifndef FAIRSTAT_SPOOL_H
#define FAIRSTAT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_VERSION 1
#define SPOOL_SITE_MAX 255

enum {
    SPOOL_F_AMBIGUOUS = 1,      /* its write to Redis timed out: it may have landed */
};

struct spool;

struct spool_stats {
    unsigned long long appended, replayed, corrupt, expired;
    unsigned long long bytes;   /* on disk, not yet replayed */
    unsigned long long files;
};

/* A record read back; the pointers live until the next spool_replay_*() call. */
struct spool_rec {
    unsigned flags;
    int64_t t_ms;
    const char *site;
    size_t site_len;
    const char *hit;
    size_t hit_len;
};

/* Opens (creating it 0700 when missing) dir for worker of nworkers, bounded
 * at max_bytes for this worker. NULL + err when dir cannot be used. */
struct spool *spool_open(const char *dir, int worker, int nworkers, size_t max_bytes,
                         char *err, size_t errlen);
/* Syncs and closes. */
void spool_close(struct spool *s);

/* 0 written; SPOOL_FULL when it would pass max_bytes; SPOOL_IO on a write
 * error (logged; the file is closed and the next append opens another). */
enum { SPOOL_OK = 0, SPOOL_FULL = -1, SPOOL_IO = -2 };
int spool_append(struct spool *s, unsigned flags, int64_t t_ms, const char *site, size_t site_len,
                 const char *hit, size_t hit_len);

/* fdatasync of what was appended since the last call (and of the directory
 * after a new file). 0, or -1 (logged). */
int spool_sync(struct spool *s);

/* Is anything waiting to be replayed? */
int spool_pending(const struct spool *s);

/* Reads up to max records past the oldest file's position into out; *n of
 * them (0 when nothing waits). Until spool_replay_commit() or _abort() the
 * same records are given again. 0, or -1 on an I/O error (logged). */
int spool_replay_begin(struct spool *s, struct spool_rec *out, size_t max, size_t *n);
/* The records of the last begin were acknowledged: the position moves past
 * them and is fsynced; a file read to its end is deleted. 0, or -1. */
int spool_replay_commit(struct spool *s);
void spool_replay_abort(struct spool *s);

void spool_stats(const struct spool *s, struct spool_stats *out);

/* CRC32C (Castagnoli) of buf, as the records carry it. */
uint32_t spool_crc32c(const void *buf, size_t len);

/* Parses one record at buf (len bytes available). The record's total length
 * (header included), 0 when buf holds only part of a record (torn), or -1
 * when it is corrupt (bad checksum or layout); *skip then says how far to go
 * on (the whole len when the length itself cannot be trusted). Exposed for
 * the tests and the fuzz target. */
long spool_parse(const char *buf, size_t len, struct spool_rec *out, size_t *skip);

#endif
