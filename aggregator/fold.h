/* fold.h -- a batch of raw hits counted exactly once: the C half and the script.
 *
 * The fold owns the counting of raw hits into aggregates and visits. It has
 * two halves that share one argument layout, declared below, once:
 *
 *   fold.c    decides, in C, everything that does not depend on state held in
 *             Redis: the day and hour of each hit in the site's timezone, the
 *             names of the keys it touches (via keys.h, the one place that
 *             knows the schema) and the counter updates;
 *   fold.lua  (fold_script) runs once per batch, atomically, and decides what
 *             does depend on state: whether an entry is still pending for the
 *             group and still in the stream -- neither counted before nor
 *             withdrawn or purged since -- and whether a pageview starts a
 *             visit. It counts, acknowledges and deletes in the same step, so
 *             a replayed batch changes nothing.
 *
 * A visit is a visitor's run of pageviews with no gap over FOLD_IDLE_MS. Its
 * state lives in Redis (fs:{S}:sess:<visitor>, with a TTL), read and written
 * only by the script, so that it is the same whichever batch, process or
 * restart sees the next hit. Visit metrics are filed under the day the visit
 * began: a first pageview adds a visit and a bounce; the second takes the
 * bounce back; each later pageview moves the exit page and adds the time
 * since the previous one to the duration.
 */
#ifndef FAIRSTAT_FOLD_H
#define FAIRSTAT_FOLD_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

#define FOLD_IDLE_MS (30 * 60 * 1000LL)   /* a longer gap ends a visit */

/* ------------------------------------------------------------------------ */
/* The script's arguments: fold.c writes them, fold.lua reads them           */
/* ------------------------------------------------------------------------ */

/* EVALSHA sha numkeys KEYS... ARGV... (fold_batch_argv). KEYS[FOLD_KEY_STREAM]
 * is the site's stream; every other key of the batch follows, each once, and
 * an entry names a key by its KEYS index (FOLD_KEY_NONE: no key). */
enum fold_key {
    FOLD_KEY_NONE = 0,
    FOLD_KEY_STREAM = 1,
};

/* ARGV, 1-based as Lua indexes it. */
enum fold_argv {
    FOLD_ARGV_GROUP = 1,        /* consumer group */
    FOLD_ARGV_CONSUMER,         /* consumer name, for XCLAIM */
    FOLD_ARGV_IDLE_MS,          /* FOLD_IDLE_MS */
    FOLD_ARGV_ENTRIES,          /* number of entries that follow */
    FOLD_ARGV_FIRST_ENTRY       /* the first entry's FOLD_E_ID */
};

/* One entry: FOLD_E_HEAD items at these offsets from its first, then
 * FOLD_E_NOPS ops of FOLD_OP_WIDTH items, then FOLD_E_NVISIT visit ops of
 * FOLD_VISIT_WIDTH items; the next entry follows. */
enum fold_entry {
    FOLD_E_ID,                  /* stream entry id */
    FOLD_E_TIME,                /* hit time, ms since the epoch */
    FOLD_E_KIND,                /* FOLD_KIND_PAGEVIEW, _EVENT or _SKIP */
    FOLD_E_SESS,                /* key of the visitor's visit state, or none */
    FOLD_E_TOTALS,              /* key of the day's totals hash */
    FOLD_E_EXIT,                /* key of the day's exit-page hash */
    FOLD_E_PAGE,                /* the path */
    FOLD_E_TTL,                 /* ms the visit state must live (fold_session_ttl_ms) */
    FOLD_E_NOPS,
    FOLD_E_NVISIT,
    FOLD_E_HEAD
};

/* An op applies to every counted hit: FOLD_OP_HINCR (HINCRBY key member 1)
 * or FOLD_OP_PFADD (PFADD key member). */
enum fold_op {
    FOLD_OP_CODE,
    FOLD_OP_KEY,
    FOLD_OP_MEMBER,
    FOLD_OP_WIDTH
};

/* A visit op (HINCRBY key member 1) applies only when the hit starts a
 * visit; they come last so that the script skips them in one step. */
enum fold_visit_op {
    FOLD_VISIT_KEY,
    FOLD_VISIT_MEMBER,
    FOLD_VISIT_WIDTH
};

/* The script's reply: an array of two integers, 0-based as hiredis indexes it. */
enum fold_reply {
    FOLD_REPLY_COUNTED,         /* entries counted */
    FOLD_REPLY_SKIPPED,         /* already counted, withdrawn, purged or unusable */
    FOLD_REPLY_LEN
};

#define FOLD_KIND_PAGEVIEW "P"
#define FOLD_KIND_EVENT "E"
#define FOLD_KIND_SKIP "X"      /* unusable: acknowledge and delete, count nothing */
#define FOLD_OP_HINCR "h"
#define FOLD_OP_PFADD "p"

/* What luagen (common/build.mk) writes into fold.lua as `local NAME = value`. */
#define FOLD_LUA_INTS(X)                                                                   \
    X(FOLD_KEY_NONE) X(FOLD_KEY_STREAM)                                                    \
    X(FOLD_ARGV_GROUP) X(FOLD_ARGV_CONSUMER) X(FOLD_ARGV_IDLE_MS) X(FOLD_ARGV_ENTRIES)     \
    X(FOLD_ARGV_FIRST_ENTRY)                                                               \
    X(FOLD_E_ID) X(FOLD_E_TIME) X(FOLD_E_KIND) X(FOLD_E_SESS) X(FOLD_E_TOTALS)             \
    X(FOLD_E_EXIT) X(FOLD_E_PAGE) X(FOLD_E_TTL) X(FOLD_E_NOPS) X(FOLD_E_NVISIT)            \
    X(FOLD_E_HEAD)                                                                         \
    X(FOLD_OP_CODE) X(FOLD_OP_KEY) X(FOLD_OP_MEMBER) X(FOLD_OP_WIDTH)                      \
    X(FOLD_VISIT_KEY) X(FOLD_VISIT_MEMBER) X(FOLD_VISIT_WIDTH)                             \
    X(FOLD_REPLY_COUNTED) X(FOLD_REPLY_SKIPPED) X(FOLD_REPLY_LEN)
#define FOLD_LUA_STRINGS(X)                                                                \
    X(FOLD_KIND_PAGEVIEW) X(FOLD_KIND_EVENT) X(FOLD_KIND_SKIP) X(FOLD_OP_HINCR) X(FOLD_OP_PFADD)

/* fold.lua, with the constants above prepended; SCRIPT LOAD it and call it
 * by its SHA1. */
extern const char fold_script[];

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

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
 * batch). Visit states live at most max_ttl_ms (retention.raw_max_age plus
 * FOLD_IDLE_MS: no raw hit, hence no visit, is older). NULL when out of
 * memory. */
struct fold_batch *fold_batch_new(const char *site, struct clock_zone *zone, int64_t max_ttl_ms);
void fold_batch_free(struct fold_batch *b);
/* Empties the batch, keeping its memory. */
void fold_batch_reset(struct fold_batch *b);

/* Adds the stream entry id with fields fv[0..nfv) (name, value, name, ...;
 * lengths in fvlen). now_ms is the time of the fold, used for the visit
 * state's TTL. The strings are copied. 0, or -1 when out of memory. An entry
 * whose keys cannot be built is added as FOLD_KIND_SKIP so that it is still
 * acknowledged and deleted. */
int fold_batch_add(struct fold_batch *b, const char *id, size_t idlen,
                   const char *const *fv, const size_t *fvlen, size_t nfv, int64_t now_ms);

size_t fold_batch_entries(const struct fold_batch *b);

/* The EVALSHA of fold_script (by its sha) for this batch, laid out as above.
 * *argv and *argvlen point into b and live until the next call on b. 0, or
 * -1 when out of memory. */
int fold_batch_argv(struct fold_batch *b, const char *sha, const char *group,
                    const char *consumer, const char ***argv, const size_t **argvlen,
                    size_t *argc);

/* How long the visit state of a hit at t_ms, folded at now_ms, must live:
 * the idle time counted from when the visit's next hit will be folded, i.e.
 * idle plus the current backlog (an aggregator that was down for an hour
 * still joins the visits it catches up on), capped at max_ms; at least 1 s. */
int64_t fold_session_ttl_ms(int64_t idle_ms, int64_t t_ms, int64_t now_ms, int64_t max_ms);

#endif
