/* fold.h -- raw hits counted exactly once: the C half and the script.
 *
 * The fold owns the counting of a site's raw hits into aggregates and visits.
 * It reads the site's stream in large ranges past a cursor, and counts each
 * range in C: every hit's day and hour in the site's timezone, the keys it
 * touches (keys.h), the visits it starts or extends. What reaches Redis is the
 * sum: one counter delta per (key, member), one PFADD per HyperLogLog with all
 * its new members (or, where they are thousands, their registers as one
 * HyperLogLog to merge: hll.h), one HSET per day of visit state. That is
 * applied in one atomic step (fold_block: a check, then fold.lua --
 * fold_script -- and plain commands in one MULTI/EXEC) whose cost grows with
 * the distinct keys and members of the batch, not with its hits:
 *
 *   - it checks that the cursor is still where the batch began (no other
 *     aggregator, nor a replay of this one, counted the range meanwhile) and
 *     that no entry was deleted from the stream since it was read (a withdrawal
 *     or a purge: the batch is then read again, without the deleted hits);
 *   - it checks that the withdrawn set (fs:{S}:withdrawn, erase.h) is the one
 *     the batch was counted against: its generation has not moved;
 *   - it adds the deltas (fold.lua), writes the visit states and the
 *     HyperLogLogs' members (plain commands after it in the transaction),
 *     moves the cursor to the batch's last id and trims the stream up to it
 *     (XTRIM MINID, fold.lua).
 *
 * A hit of a withdrawn visitor is never counted: the fold drops it, and the
 * XTRIM deletes it with the rest of the range; one fs:audit record (action
 * "drop") says how many a batch dropped. That is what makes a withdrawal cost
 * O(1) in Redis whatever the backlog (erase.h).
 *
 * Counting, moving the cursor and deleting the raw entries are one
 * transaction, so after any crash either all of a batch happened or none of
 * it. Several
 * aggregators share the sites: each folds a site only while it holds the
 * site's lease (fs:{S}:lease, renewed between turns); the cursor check keeps a hit
 * counted once even when a lease is lost mid-batch.
 *
 * A visit is a visitor's run of pageviews with no gap over FOLD_IDLE_MS.
 * Visitor ids change every UTC day (visitor.h), so visit state lives in one
 * hash per site and UTC day, fs:{S}:v:YYYYMMDD, field = the visitor's 8
 * bytes, expiring once the day is over and idle (or, when folding late, idle
 * after the fold). Visit metrics are filed under the local day the visit
 * began: a first pageview adds a visit and a bounce; the second takes the
 * bounce back; each later pageview moves the exit page and adds the time since
 * the previous one to the duration.
 *
 * Use: fold_reset(), fold_add() for each entry of the range, then the
 * fold_reads() and their answers, then fold_compute() and fold_block(), whose
 * commands are sent. The entries' strings are not copied: what fold_add() was
 * given must live until fold_block()'s commands have been sent.
 */
#ifndef FAIRSTAT_FOLD_H
#define FAIRSTAT_FOLD_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"

#define FOLD_IDLE_MS (30 * 60 * 1000LL)   /* a longer gap ends a visit */
#define FOLD_LEASE_MS 10000               /* a site's lease, renewed when half gone */
#define FOLD_DEDUPE_WINDOW_MS (24 * 3600 * 1000LL)  /* default; retention.raw_max_age */

/* ------------------------------------------------------------------------ */
/* The script's arguments: fold.c writes them, fold.lua reads them           */
/* ------------------------------------------------------------------------ */

/* EVALSHA sha numkeys KEYS... ARGV... (fold_argv). Every other key of the
 * batch follows the two fixed ones, each once; ARGV names a key by its KEYS
 * index. */
enum fold_key {
    FOLD_KEY_STREAM = 1,        /* fs:{S}:hits */
    FOLD_KEY_CURSOR,            /* fs:{S}:cursor: the last id counted */
    FOLD_KEY_WITHDRAWN,         /* fs:{S}:withdrawn: visitors whose hits are dropped */
    FOLD_KEY_GEN,               /* fs:{S}:withdrawn:gen */
    FOLD_KEY_AUDIT,             /* fs:audit */
    FOLD_KEY_MERGE,             /* fs:{S}:pfmerge: a HyperLogLog to merge, within the script */
    FOLD_KEY_FIRST_OTHER
};

/* ARGV, 1-based as Lua indexes it. Then FOLD_ARGV_NINCR counter groups,
 * FOLD_ARGV_NPF HyperLogLog groups, FOLD_ARGV_NSADD set groups,
 * FOLD_ARGV_NMERGE HyperLogLogs to merge, FOLD_ARGV_NVISIT visit-state groups and FOLD_ARGV_NEXPIRE expiries, each a
 * head laid out as below followed by its items. */
enum fold_argv {
    FOLD_ARGV_EXPECT = 1,       /* the cursor the batch began at; "" for none */
    FOLD_ARGV_LAST,             /* the batch's last id: the new cursor */
    FOLD_ARGV_TRIM,             /* the id after it: XTRIM MINID */
    FOLD_ARGV_ADDED,            /* the stream's entries-added when read */
    FOLD_ARGV_LENGTH,           /* its length when read */
    FOLD_ARGV_GEN,              /* the withdrawn set's generation counted against; "" = none */
    FOLD_ARGV_DROPPED,          /* hits of withdrawn visitors dropped */
    FOLD_ARGV_NOW,              /* ms: stamps the audit record, prunes the withdrawn set */
    FOLD_ARGV_SITE,
    FOLD_ARGV_NINCR,
    FOLD_ARGV_NPF,
    FOLD_ARGV_NSADD,
    FOLD_ARGV_NMERGE,
    FOLD_ARGV_NVISIT,
    FOLD_ARGV_NEXPIRE,
    FOLD_ARGV_FIRST_GROUP
};

/* Counters of one hash: then COUNT (member, delta) pairs; a delta may be
 * negative (a bounce taken back, an exit page moved). */
enum fold_incr_group { FOLD_IG_KEY, FOLD_IG_COUNT, FOLD_IG_HEAD };

/* Members to add to one HyperLogLog (PFADD) or one set (SADD): then COUNT
 * members. */
enum fold_add_group { FOLD_AG_KEY, FOLD_AG_COUNT, FOLD_AG_HEAD };

/* A HyperLogLog to merge into one (PFMERGE): its members of the batch as a
 * dense HyperLogLog (hll.h), where those registers alone need the dense form. */
enum fold_merge_group { FOLD_MG_KEY, FOLD_MG_HLL, FOLD_MG_HEAD };

/* Visit states of one day: then COUNT (visitor, state) pairs; the hash
 * expires at AT (ms). */
enum fold_visit_group { FOLD_VG_KEY, FOLD_VG_AT, FOLD_VG_COUNT, FOLD_VG_HEAD };

/* A key that expires at AT (ms, PEXPIREAT), set after its counts: the
 * realtime HyperLogLogs. */
enum fold_expire_group { FOLD_EG_KEY, FOLD_EG_AT, FOLD_EG_HEAD };

/* Memory per site and day is bounded, decided in C (fold.c keeps what it
 * knows of the capped keys): a breakdown keeps aggregator.max_members
 * members, a count beyond them goes to FOLD_OTHER; the first
 * aggregator.max_page_visitors pages of a day, listed in the set
 * fs:{S}:d:YYYYMMDD:FOLD_PAGE_SET, get a visitor HyperLogLog. */
#define FOLD_OTHER "(other)"
#define FOLD_PAGE_SET "uvpages"

/* The script's reply, 0-based as hiredis indexes it: {status}. */
enum fold_status {
    FOLD_APPLIED = 0,
    FOLD_MOVED,                 /* the cursor is not where the batch began */
    FOLD_DELETED,               /* entries were deleted since the range was read */
    FOLD_WITHDRAWN,             /* a visitor was withdrawn since the batch was counted */
};

/* What luagen (common/build.mk) writes into fold.lua as `local NAME = value`. */
#define FOLD_LUA_INTS(X)                                                                   \
    X(FOLD_KEY_STREAM) X(FOLD_KEY_CURSOR) X(FOLD_KEY_WITHDRAWN) X(FOLD_KEY_GEN)            \
    X(FOLD_KEY_AUDIT) X(FOLD_KEY_MERGE)                                                    \
    X(FOLD_ARGV_EXPECT) X(FOLD_ARGV_LAST) X(FOLD_ARGV_TRIM) X(FOLD_ARGV_ADDED)             \
    X(FOLD_ARGV_LENGTH) X(FOLD_ARGV_GEN) X(FOLD_ARGV_DROPPED) X(FOLD_ARGV_NOW)             \
    X(FOLD_ARGV_SITE) X(FOLD_ARGV_NINCR) X(FOLD_ARGV_NPF) X(FOLD_ARGV_NSADD)             \
    X(FOLD_ARGV_NMERGE) X(FOLD_ARGV_NVISIT) X(FOLD_ARGV_NEXPIRE) X(FOLD_ARGV_FIRST_GROUP)                      \
    X(FOLD_IG_KEY) X(FOLD_IG_COUNT) X(FOLD_IG_HEAD)                                        \
    X(FOLD_AG_KEY) X(FOLD_AG_COUNT) X(FOLD_AG_HEAD)                                        \
    X(FOLD_MG_KEY) X(FOLD_MG_HLL) X(FOLD_MG_HEAD)                                          \
    X(FOLD_VG_KEY) X(FOLD_VG_AT) X(FOLD_VG_COUNT) X(FOLD_VG_HEAD)                          \
    X(FOLD_EG_KEY) X(FOLD_EG_AT) X(FOLD_EG_HEAD)                                           \
    X(FOLD_APPLIED) X(FOLD_MOVED) X(FOLD_DELETED) X(FOLD_WITHDRAWN)
#define FOLD_LUA_STRINGS(X)

/* fold.lua, with the constants above prepended; sent by its text inside
 * fold_block()'s transaction (or by its SHA1, fold_argv()). */
extern const char fold_script[];

/* ------------------------------------------------------------------------ */
/* Aggregates                                                                */
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
    FOLD_ENGAGED,               /* page -> engaged ms of its engagement events */
    FOLD_SCROLL,                /* page -> sum of their scroll depths (percent) */
    FOLD_ENGAGEMENTS,           /* page -> engagement events */
    FOLD_PROPS,                 /* event property name -> events carrying it */
    FOLD_UV,
    FOLD_NDIMS
};

/* "totals", "page", ... "uv": the <dim> part of the key. */
extern const char *const fold_dim_names[FOLD_NDIMS];

/* Event properties: the day's first FOLD_MAX_PROP_NAMES names (in FOLD_PROPS,
 * the rest count as FOLD_OTHER there and keep no values), each with its
 * values -> events in fs:{S}:d:YYYYMMDD:prop:<name> (keys_prop), capped at
 * max_members like the other breakdowns. */
#define FOLD_MAX_PROP_NAMES 100

/* The visit-level breakdowns, FOLD_BYPAGE_FIRST..FOLD_BYPAGE_LAST (source,
 * the UTM fields, country, region, browser, OS, device), are also counted per
 * entry page, for "one page's sources": fs:{S}:d:YYYYMMDD:bypage:<dim>
 * (keys_bypage), member = entry path KEYS_BYPAGE_SEP value -> visits, capped
 * at max_members (the rest counts as FOLD_OTHER, the whole member). */
#define FOLD_BYPAGE_FIRST FOLD_SOURCE
#define FOLD_BYPAGE_LAST FOLD_DEVICE

#define FOLD_DIRECT "(direct)"
#define FOLD_UNKNOWN "(unknown)"
#define FOLD_MAX_PATH 1024      /* longer paths are cut, so one hit never fails a batch */

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

struct fold;

/* The fold of site, bucketing in zone (borrowed: must outlive it), keeping
 * at most max_members members per breakdown and day and max_page_visitors
 * per-page visitor counts per day (aggregator.max_members,
 * aggregator.max_page_visitors). NULL when out of memory or the site's key
 * names do not fit. */
struct fold *fold_new(const char *site, struct clock_zone *zone, int max_members,
                      int max_page_visitors);
void fold_free(struct fold *f);

/* Empties the batch, keeping its memory. */
void fold_reset(struct fold *f);

/* Adds the stream entry id with fields fv[0..nfv) (name, value, name, ...;
 * lengths in fvlen): a packed raw hit (rawhit.h), or the field-per-value
 * entry of earlier versions. Not copied (see above). An entry that is neither
 * is counted as skipped and trimmed with the rest. 0, or -1 when out of
 * memory or id is not a stream id. */
int fold_add(struct fold *f, const char *id, size_t idlen, const char *const *fv,
             const size_t *fvlen, size_t nfv);

/* The withdrawn set's generation as read with the batch (GET
 * fs:{S}:withdrawn:gen; len 0 for none). When it is not the one the fold's
 * copy of the set was loaded at, fold_reads() reads the set again. 0, or -1
 * when it does not fit. */
int fold_withdrawn_gen(struct fold *f, const char *gen, size_t len);

size_t fold_entries(const struct fold *f);
/* Hits of withdrawn visitors the batch dropped (after fold_compute). */
size_t fold_dropped(const struct fold *f);
/* Hits of the last fold_compute() not counted: counted before under their
 * id (a replay, or the original of one). */
size_t fold_duplicates(const struct fold *f);

/* How long the record of possibly twinned ids is kept (fs:{S}:twins,
 * fs:{S}:seq): retention.raw_max_age, past which a spooled hit is dropped. */
void fold_set_dedupe_window(struct fold *f, int64_t ms);
/* How long aggregates are kept (retention.aggregates): every aggregate key a
 * batch writes (fs:{S}:d:..., fs:{S}:h:...) expires that long after its day,
 * plus a day for time zones, so no key outlives retention even without a
 * purge. 0 (the default) sets no expiry. */
void fold_set_retention(struct fold *f, int64_t aggregates_ms);
/* Entries that were not raw hits. */
size_t fold_skipped(const struct fold *f);

/* What the batch must read from Redis before it can be counted: the visit
 * states of its visitors (HMGET, one per UTC day), what this process does
 * not know yet of the capped keys it touches (HKEYS / SMEMBERS) and, when its
 * generation moved, the withdrawn set (ZRANGE). *n reads;
 * fold_read() lays read i out as argv[0..argc) with lengths (valid until the
 * next call on f), and the elements of its array reply go to
 * fold_read_answer() (vals[j] NULL for a nil). Send them all, then answer
 * them in order. 0, or -1 when out of memory. */
int fold_reads(struct fold *f, size_t *n);
int fold_read(struct fold *f, size_t i, int *argc, const char *const **argv, const size_t **lens);
int fold_read_answer(struct fold *f, size_t i, size_t n, const char *const *vals, const size_t *lens);

/* Forgets what this process knew of the capped keys (and the kept visit
 * states, below): after a batch that was not applied (its decisions were not
 * written), or a lost connection. */
void fold_forget(struct fold *f);

/* Reads sent before the previous batch is applied (run.c pipelines them:
 * Redis answers the next batch's reads while the aggregator counts, then
 * applies the previous batch while the aggregator counts the next).
 * fold_keep_visits(), after fold_block(), keeps the visit states the batch
 * writes; with fold_overlay(f, 1), the following fold_read_answer()s take a
 * kept state over what Redis answered. Only visit states are laid over:
 * fold_reads_after_apply() (after fold_reads()) says 1 when the batch also
 * reads what a batch writes otherwise, and its reads must then follow the
 * previous batch's apply: the dedupe records of replayed hits, or the
 * members of a capped key the previous batch wrote without having it loaded
 * (a visit's exit page on a day before the batch's: loaded early, the key
 * would miss that batch's members, and a moved exit page would be taken
 * from "(other)" instead of from the page). A capped key a batch had loaded
 * is not read again: the fold keeps its members up to date itself.
 * fold_keep_visits: 0, or -1 when out of memory. */
int fold_keep_visits(struct fold *f);

/* The visit cache (fold.c, "The visit cache"): the states of the UTC days
 * whose visit hash the fold knows whole, kept as batches write them, so that
 * a batch reads none of those days. *used counts the states every fold
 * sharing it holds; a day that would take it past limit is read per batch.
 * Off (limit 0) until set. fold_keep_visits() must follow every batch's
 * fold_block(), and fold_forget() every batch not applied. */
void fold_set_visit_cache(struct fold *f, size_t *used, size_t limit);
void fold_overlay(struct fold *f, int on);
int fold_reads_after_apply(const struct fold *f);

/* Counts the batch (visits included) as of now_ms (the visit state's expiry
 * depends on it, and so do the realtime HyperLogLogs: a hit whose minute's
 * key would already have expired, KEYS_REALTIME_KEEP_MS after the minute,
 * writes none). 0, or -1 when out of memory. */
int fold_compute(struct fold *f, int64_t now_ms);

/* The EVALSHA of fold_script (by its sha) applying the batch, which began
 * after cursor expect ("" for none) and was read when the stream had added
 * entries in all and held length, the whole batch as the script's ARGV
 * (laid out as above): the one-script form of fold_block(), which the
 * aggregator sends; the unit tests count its arguments. *argv and *argvlen point
 * into f and live until the next call on f. 0, or -1 when out of memory. */
int fold_argv(struct fold *f, const char *sha, const char *expect, long long added,
              long long length, const char ***argv, const size_t **argvlen, size_t *argc);

/* The batch's apply as one block of commands, written at once (after
 * fold_compute; the batch began after cursor expect and was read when the
 * stream had added entries in all and held length):
 *
 *   FOLD_CMD_WATCH   WATCH of the cursor and the withdrawn generation;
 *   FOLD_CMD_CHECK   EVAL of a small script: fold.lua's checks, answering
 *                    {FOLD_APPLIED} (passed) or the refusal's status, after
 *                    writing the cursor (its own value) so that EXEC runs
 *                    nothing;
 *   FOLD_CMD_MULTI
 *   FOLD_CMD_SCRIPT  EVAL of fold_script (by its text: a script flushed
 *                    since would otherwise fail alone inside the
 *                    transaction), the visit states, the PFADDs and the
 *                    expiries left out of its ARGV;
 *   then, as plain commands (Redis takes their arguments for a fraction of
 *   what the script's ARGV costs it): per day of visit states the batch
 *   changed, HSET of the visitors' states and PEXPIREAT of the hash; per
 *   HyperLogLog not merged, PFADD of its new members; the expiries
 *   (PEXPIREAT), after the writes they are for;
 *   and EXEC, the block's last: the script's reply and the plain commands',
 *   or nil when a watched key moved after WATCH -- the check's refusal, or
 *   another client's write -- and nothing ran.
 *
 * The plain commands run only if the check passed and nothing touched the
 * cursor or the generation since; an erasure and a purge that deleted raw
 * hits raise the generation, so a visit state is never written back after
 * them. The script checks again inside EXEC; where only entries deleted
 * between the check and EXEC by something that does not raise the
 * generation (an XDEL by hand) make it refuse, the batch's visit states are
 * written though its counts are not: read again, those visitors' hits
 * extend the states written ahead instead of starting visits, so what is
 * counted per visit (visits, bounces, entry and exit pages, the visit's
 * source, UTM, place and device, duration) misses those visits, while
 * pageviews, page counts, events and the HyperLogLogs stay exact (a PFADD
 * again changes nothing). *ncmds = the block's commands, fold_block_cmd()
 * each; they point into f until the next call on f. 0, or -1 when out of
 * memory. */
enum fold_cmd { FOLD_CMD_WATCH, FOLD_CMD_CHECK, FOLD_CMD_MULTI, FOLD_CMD_SCRIPT };
int fold_block(struct fold *f, const char *expect, long long added, long long length, size_t *ncmds);
void fold_block_cmd(const struct fold *f, size_t i, int *argc, const char *const **argv,
                    const size_t **lens);

/* The batch's last stream id (the cursor once applied), or "" when empty. */
const char *fold_last_id(const struct fold *f);

#endif
