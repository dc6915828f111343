/* archive.h -- the encrypted, chained archive of consent receipts.
 *
 * Receipts must be kept for retention.consent_receipts (years); Redis holds
 * them for retention.consent_hot only. `fairstat-aggregator archive` (and the
 * daemon on aggregator.archive_interval) moves older ones into append-only
 * files under archive.dir: one file per site and month of the receipt's
 * stream id, SITE.YYYY-MM.fsa (the site percent-encoded where it is not
 * [A-Za-z0-9._-]). Each record is consents_record_json() encrypted with
 * AES-256-GCM; the additional data binds it to its file, its index and the
 * SHA-256 of the record before it, so an altered, removed or reordered
 * record fails to authenticate. Each batch ends with a signed head (HMAC
 * under a key derived from the archive key) holding the file's name, record
 * count, last record hash and the hash of the previous file's final head: a
 * swapped or removed file breaks that chain. The byte layout is in
 * docs/protocol.md (Archive).
 *
 * Order of work, for crash safety: records and head are appended and
 * fsync'ed (file, then directory) before the same ids are XDEL'ed from
 * Redis. A crash before the head leaves an unsealed tail the next run cuts
 * off (those receipts are still in Redis); a crash after it leaves
 * receipts both archived and in Redis, which the next run deletes without
 * writing them again (dedupe by record id: stream ids only grow, so
 * "archived" is "id <= the last head's last_id") and which consents_read()
 * shows once.
 *
 * Purge removes whole files whose newest receipt is older than
 * retention.consent_receipts, oldest first; it first writes SITE.purged, a
 * signed marker naming the last purged file and its head hash, which the
 * oldest remaining file's head chains on.
 *
 * Keys: archive.key = file:PATH, lines KEYID:BASE64 of 32 bytes; the first
 * is the one that writes, every line decrypts (rotation by key id).
 */
#ifndef FAIRSTAT_ARCHIVE_H
#define FAIRSTAT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "consents.h"

struct agg;
struct cfg;
struct archive;                         /* opaque: directory and keys */

#define ARCHIVE_ERRLEN 512
#define ARCHIVE_MAX_KEYS 32
#define ARCHIVE_KEYID_MAX 32

/* Opens the archive at dir with the key file at key_path (no "file:").
 * NULL with one line in err when a key line is malformed or the directory
 * cannot be created (0700). */
struct archive *archive_open(const char *dir, const char *key_path, char *err, size_t errlen);
void archive_free(struct archive *ar);
/* The last error, one line naming the file and record where one is at fault. */
const char *archive_error(const struct archive *ar);

/* archive_open() from cfg: 0 and *out NULL when archive.dir is empty, 0
 * and *out set, or -1 with err set (archive.dir without archive.key too). */
int archive_from_cfg(const struct cfg *cfg, struct archive **out, char *err, size_t errlen);

/* Appends recs[0..n) (oldest first) of site, sealing every file touched and
 * fsync'ing it and the directory. Records with id <= the last archived id
 * are skipped (already there). *written counts those appended. 0 or -1. */
int archive_append(struct archive *ar, const char *site, const struct consent_record *recs,
                   size_t n, size_t *written);

/* The id of the newest archived record of site into out ("" when none).
 * 0 or -1. */
int archive_last_id(struct archive *ar, const char *site, char out[48]);

/* Calls fn for every archived record of site with from_ms <= t_ms < to_ms,
 * oldest first, after checking every file's chain. 0, or -1 (error set;
 * fn's -1 stops it too). */
int archive_read(struct archive *ar, const char *site, int64_t from_ms, int64_t to_ms,
                 consents_fn fn, void *arg);

/* Checks every file of every site. 0 when all hold, else -1 with one line
 * per break printed to out (file and record index) and the first in the
 * error. *files and *records count what was checked. */
int archive_verify(struct archive *ar, FILE *out, long *files, long *records);

/* Deletes site's files whose every record is older than cutoff_ms, after
 * writing the purge marker. dry counts only. 0 or -1. */
int archive_purge_site(struct archive *ar, const char *site, int64_t cutoff_ms, int dry,
                       long *files, long *records);

/* Compares two stream ids "ms-seq": <0, 0, >0. */
int archive_id_cmp(const char *a, const char *b);

/* With Redis: `archive` (moves receipts older than retention.consent_hot
 * at as_of_ms from every site in a->sites), the daemon's timer and purge.
 * Each is a no-op returning 0 when archive.dir is empty. 0 or -1, a->err. */
int archive_run(struct agg *a, int64_t as_of_ms, FILE *out);
int archive_run_verify(struct agg *a, FILE *out);
int archive_run_purge(struct agg *a, int64_t as_of_ms, int dry, FILE *out);

#endif
