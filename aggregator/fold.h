/* fold.h -- turns a batch of raw hits into one call of the apply script.
 *
 * The aggregator reads up to aggregator.batch entries of one site's stream
 * and hands each to fold_batch_add(). The fold decides, in C, everything that
 * does not depend on state held in Redis: the day and hour of the hit in the
 * site's timezone, the names of the keys it touches (via keys.h, the one
 * place that knows the schema) and the counter updates. What does depend on
 * state -- whether the entry is still unacknowledged and still in the stream,
 * and whether it starts a new visit -- is decided by the script (session.h)
 * in the same atomic step that deletes the raw entry.
 *
 * fold_batch_argv() returns the EVALSHA command:
 *
 *   EVALSHA sha numkeys KEYS... ARGV...
 *   KEYS[1]   the stream; KEYS[2..] every other key of the batch, each once
 *   ARGV[1]   consumer group      ARGV[2] consumer name
 *   ARGV[3]   session idle ms     ARGV[4] number of entries, then per entry:
 *             id, t (ms), kind, sess, totals, exit, page, ttl_ms, nops, nvisit,
 *             nops x (op, key index, member), nvisit x (key index, member)
 *
 * kind is "P" (pageview), "E" (custom event) or "X" (unusable: delete, count
 * nothing). sess/totals/exit are KEYS indexes (0 = none) of the visitor's
 * session state and the day's totals and exit-page hashes. The nops ops apply
 * to every counted hit: op is "h" (HINCRBY key member 1) or "p" (PFADD key
 * member). The nvisit ones (HINCRBY key member 1) only when the hit starts a
 * visit; they come last so that the script skips them in one step.
 */
#ifndef FAIRSTAT_FOLD_H
#define FAIRSTAT_FOLD_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

/* The per-day hashes fs:{S}:d:YYYYMMDD:<dim>; FOLD_UV is the HyperLogLog. */
enum fold_dim {
    FOLD_TOTALS,                /* pageviews, visits, bounces, duration_ms, events */
    FOLD_PAGE,                  /* page -> pageviews */
    FOLD_ENTRY,                 /* page -> visits that began there */
    FOLD_EXIT,                  /* page -> visits that (so far) ended there */
    FOLD_SOURCE,                /* referrer host or "(direct)" -> visits */
    FOLD_UTM_SOURCE,
    FOLD_UTM_MEDIUM,
    FOLD_UTM_CAMPAIGN,
    FOLD_UTM_TERM,
    FOLD_UTM_CONTENT,
    FOLD_COUNTRY,
    FOLD_REGION,
    FOLD_BROWSER,
    FOLD_OS,
    FOLD_DEVICE,
    FOLD_EVENT,                 /* custom event name -> count */
    FOLD_UV,
    FOLD_NDIMS
};

/* "totals", "page", ... "uv": the <dim> part of the key. */
extern const char *const fold_dim_names[FOLD_NDIMS];

#define FOLD_DIRECT "(direct)"
#define FOLD_UNKNOWN "(unknown)"
#define FOLD_MAX_PATH 1024      /* longer paths are cut, so one hit never fails a batch */

struct fold_batch;

/* A batch for site's stream, bucketing in zone (borrowed: must outlive the
 * batch). Session hashes live at most max_ttl_ms (retention.raw_max_age plus
 * the idle time: no raw hit, hence no visit, is older). NULL when out of
 * memory. */
struct fold_batch *fold_batch_new(const char *site, struct clock_zone *zone, int64_t max_ttl_ms);
void fold_batch_free(struct fold_batch *b);
/* Empties the batch, keeping its memory. */
void fold_batch_reset(struct fold_batch *b);

/* Adds the stream entry id with fields fv[0..nfv) (name, value, name, ...;
 * lengths in fvlen). now_ms is the time of the fold, used for the session
 * TTL. The strings are copied. 0, or -1 when out of memory. Malformed
 * entries are added as kind "X" so that they are still acknowledged and
 * deleted. */
int fold_batch_add(struct fold_batch *b, const char *id, size_t idlen,
                   const char *const *fv, const size_t *fvlen, size_t nfv, int64_t now_ms);

size_t fold_batch_entries(const struct fold_batch *b);

/* The EVALSHA command for this batch, laid out as above. *argv and *argvlen
 * point into b and live until the next call on b. 0, or -1 when out of
 * memory. */
int fold_batch_argv(struct fold_batch *b, const char *sha, const char *group,
                    const char *consumer, int64_t idle_ms,
                    const char ***argv, const size_t **argvlen, size_t *argc);

#endif
