/* keys.h -- every Redis key name and raw-hit field name, in one place.
 *
 * All of a site's keys carry the site in a hash tag, fs:{example.com}:..., so
 * that Redis Cluster keeps one site on one slot. The key builders write into a
 * caller's buffer and return the length, or -1 when it does not fit; they never
 * allocate.
 */
#ifndef FAIRSTAT_KEYS_H
#define FAIRSTAT_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define KEYS_AUDIT "fs:audit"                 /* stream of purge/erase records */
/* The consumer group earlier versions' aggregators read fs:{S}:hits through.
 * The fold reads past a cursor instead (fs:{S}:cursor); purge and erasure
 * still clear the group's pending references, so that an upgraded install
 * keeps none pointing at deleted entries. */
#define KEYS_GROUP "fairstat"

/* The salt of UTC day D (fs:salt:YYYYMMDD) is created shortly before D begins
 * (the collector loads tomorrow's) and expires 48 hours after D begins: at any
 * moment the salts that can exist are those of today + KEYS_SALT_FIRST_HELD ..
 * today + KEYS_SALT_LAST_HELD, which is what an erasure must hash under. */
#define KEYS_SALT_FIRST_HELD (-1)
#define KEYS_SALT_LAST_HELD 1
/* When the salt of day (days since 1970-01-01 UTC) expires, ms since the epoch. */
int64_t keys_salt_expires_ms(int64_t day);

/* Fields of an entry in fs:{S}:hits. Short names keep entries small; no field
 * ever holds an IP address, a full User-Agent or a receipt id. t, n, p, v, b,
 * o and dv are always present; the others are left out when empty, and a
 * reader treats an absent field as empty. */
#define HIT_TIME      "t"   /* hit time, ms since the epoch (UTC) */
#define HIT_NAME      "n"   /* event name: "pageview" or a custom name */
#define HIT_PATH      "p"   /* URL path, no query, no fragment */
#define HIT_REFERRER  "r"   /* referrer host, "" when none or self-referral */
#define HIT_UTM_SOURCE   "us"
#define HIT_UTM_MEDIUM   "um"
#define HIT_UTM_CAMPAIGN "uc"
#define HIT_UTM_TERM     "ut"
#define HIT_UTM_CONTENT  "uo"
#define HIT_COUNTRY   "c"   /* ISO 3166-1 alpha-2, "" when unknown */
#define HIT_REGION    "rg"  /* ISO 3166-2 like "GB-ENG", "" when unknown */
#define HIT_BROWSER   "b"   /* browser family, e.g. "Firefox" */
#define HIT_OS        "o"   /* OS family, e.g. "Windows" */
#define HIT_DEVICE    "dv"  /* "desktop" | "mobile" | "tablet" | "other" */
#define HIT_VISITOR   "v"   /* visitor hash (16 hex), see visitor.h */
#define HIT_PROPS     "pr"  /* custom event props as compact JSON, optional */

/* Fields of an entry in fs:{S}:consent. */
#define RECEIPT_ID      "id"   /* receipt id (the cookie's) */
#define RECEIPT_ACTION  "a"    /* "grant" | "deny" | "withdraw" | "forget" */
#define RECEIPT_CHOICE  "an"   /* analytics: "1" | "0" */
#define RECEIPT_POLICY  "pv"   /* policy version */
#define RECEIPT_TIME    "t"    /* ms since the epoch */
/* Since receipt schema 1 (docs/protocol.md, Receipts): */
#define RECEIPT_SCHEMA  "sv"   /* RECEIPT_SCHEMA_VERSION; absent = 0, the fields above only */
#define RECEIPT_METHOD  "m"    /* "banner" | "settings" | "withdrawal" | "forget" */
#define RECEIPT_POLICY_HASH "ps" /* SHA-256 hex of the site's policy text; "" = not configured */
#define RECEIPT_SCHEMA_VERSION "1"

int keys_hits(char *buf, size_t len, const char *site);
int keys_consent(char *buf, size_t len, const char *site);
/* fs:{S}:d:YYYYMMDD:<dim> */
int keys_day(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *dim);
/* fs:{S}:d:YYYYMMDD:uv, or fs:{S}:d:YYYYMMDD:uv:<page> when page is not NULL */
int keys_uv(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *page);
/* fs:{S}:d:YYYYMMDD:bypage:<dim>: entry page KEYS_BYPAGE_SEP value -> visits */
int keys_bypage(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *dim);
#define KEYS_BYPAGE_SEP '\x1f'
/* fs:{S}:d:YYYYMMDD:prop:<name>: the values of one event property -> events */
int keys_prop(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *name);
/* fs:{S}:rt:YYYYMMDDHHMM: HyperLogLog of the visitors seen in one UTC minute
 * (minutes since the epoch), kept KEYS_REALTIME_KEEP_MS after the minute ends */
int keys_realtime_minute(char *buf, size_t len, const char *site, int64_t unix_minute);
#define KEYS_REALTIME_KEEP_MS (10 * 60 * 1000LL)
/* When the realtime key of unix_minute expires, ms since the epoch. */
int64_t keys_realtime_expires_ms(int64_t unix_minute);
/* fs:{S}:h:YYYYMMDDHH */
int keys_hour(char *buf, size_t len, const char *site, const char *yyyymmddhh);
/* fs:{S}:cursor: the id of the last raw hit the fold counted */
int keys_cursor(char *buf, size_t len, const char *site);
/* fs:{S}:lease: which aggregator folds the site now */
int keys_lease(char *buf, size_t len, const char *site);
/* fs:{S}:v:YYYYMMDD: visit states of a UTC day, field = visitor (8 bytes) */
int keys_visits(char *buf, size_t len, const char *site, const char *yyyymmdd);
/* fs:{S}:withdrawn: sorted set of withdrawn visitors (8 bytes, visitor.h),
 * score = when the entry may go (ms): the fold drops their hits uncounted */
int keys_withdrawn(char *buf, size_t len, const char *site);
/* fs:{S}:withdrawn:gen: counter raised by every withdrawal (and by a purge
 * that deleted raw hits: fold_block WATCHes it), so that a fold
 * knows in O(1) whether the set changed since it read it */
int keys_withdrawn_gen(char *buf, size_t len, const char *site);
/* fs:{S}:pfmerge: a HyperLogLog the fold's script sets, merges and deletes
 * within one run (aggregator/hll.h); never seen outside it */
int keys_merge(char *buf, size_t len, const char *site);
/* fs:{S}:twins: ids of replayed hits counted; fs:{S}:seq: per hit id epoch,
 * the highest sequence number counted + 1 (aggregator/fold.c, Dedupe) */
int keys_twins(char *buf, size_t len, const char *site);
int keys_seq(char *buf, size_t len, const char *site);
/* fs:salt:YYYYMMDD */
int keys_salt(char *buf, size_t len, const char *yyyymmdd);

/* Reading key names back (SCAN results). Each takes (key, len) as Redis
 * returned it and never reads past len. */

/* SCAN MATCH patterns: every site's raw stream; every salt; one site's
 * aggregates (day hashes, day HyperLogLogs, hour hashes), the site name
 * escaped for glob. Length, or -1 when it does not fit. */
int keys_hits_pattern(char *buf, size_t len);
int keys_salt_pattern(char *buf, size_t len);
int keys_aggregates_pattern(char *buf, size_t len, const char *site);

/* The S of fs:{S}:hits, copied NUL-terminated into site. Its length, or -1
 * when key is not a raw stream's name or S does not fit. */
int keys_site_of_hits(const char *key, size_t len, char *site, size_t cap);
/* The day (days since 1970-01-01) of an aggregate key of site: fs:{S}:d:
 * YYYYMMDD:<dim>... or fs:{S}:h:YYYYMMDDHH. -1 for any other key (sessions,
 * streams, another site's, junk). */
int64_t keys_aggregate_day(const char *key, size_t len, const char *site);
/* The day of fs:salt:YYYYMMDD, or -1 for any other key. */
int64_t keys_salt_day(const char *key, size_t len);

#endif
