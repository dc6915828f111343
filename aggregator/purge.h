/* purge.h -- the retention purge: raw hits, aggregates, receipts, salts.
 *
 * Enforces the policy's time limits relative to a moment as_of (now, or
 * --as-of): raw hits older than retention.raw_max_age go whether counted or
 * not (XTRIM MINID, plus their references in the group's pending list);
 * daily and hourly aggregates whose day is older than retention.aggregates;
 * consent receipts older than retention.consent_receipts; salts past their
 * lifetime (keys_salt_expires_ms). Every real purge leaves one fs:audit
 * record holding counts only. Which key is which, and of what day, is
 * common/keys.h's to say; the time rules are pure functions, exposed for the
 * unit tests.
 */
#ifndef FAIRSTAT_PURGE_H
#define FAIRSTAT_PURGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "clock.h"

struct agg;

/* Purges every site in a->sites (callers run agg_discover() first) as of
 * as_of_ms. dry_run counts without deleting and writes no audit record.
 * When out is not NULL, prints one line per site and one for salts.
 * 0, or -1 with a->err set. */
int purge_run(struct agg *a, int64_t as_of_ms, int dry_run, FILE *out);

/* The stream id below which entries older than max_age_s at as_of_ms lie:
 * "<as_of - max_age in ms>-0" (never below "0-0"). Returns the ms part. */
int64_t purge_minid(int64_t as_of_ms, long max_age_s, char out[32]);

/* First local day, in zone, whose aggregates are kept at as_of_ms. */
int64_t purge_aggregate_cutoff(struct clock_zone *zone, int64_t as_of_ms, long max_age_s);

/* 1 when the salt key "fs:salt:YYYYMMDD" has outlived its lifetime at
 * as_of_ms, 0 when not, -1 when key is not a salt key. */
int purge_salt_expired(const char *key, size_t len, int64_t as_of_ms);

#endif
