/* purge.h -- the retention purge: raw hits, aggregates, receipts, salts.
 *
 * Enforces the policy's time limits relative to a moment as_of (now, or
 * --as-of): raw hits older than retention.raw_max_age go whether counted or
 * not (XTRIM MINID, plus their references in the group's pending list);
 * daily and hourly aggregates whose day is older than retention.aggregates;
 * consent receipts older than retention.consent_receipts; salts older than
 * 48 h. Every real purge leaves one fs:audit record holding counts only.
 * The selection rules are pure functions, exposed for the unit tests.
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

/* The day of an aggregate key "<prefix>d:YYYYMMDD:..." or
 * "<prefix>h:YYYYMMDDHH", where prefix ("fs:{S}:") is prefix_len long, in days
 * since 1970-01-01; -1 for any other key (sessions, streams, junk). */
int64_t purge_key_day(const char *key, size_t len, size_t prefix_len);

/* First local day, in zone, whose aggregates are kept at as_of_ms. */
int64_t purge_aggregate_cutoff(struct clock_zone *zone, int64_t as_of_ms, long max_age_s);

/* 1 when the salt key "fs:salt:YYYYMMDD" is at least 48 h old at as_of_ms
 * (counted from the start of its UTC day, when it was first used), 0 when
 * not, -1 when key is not a salt key. */
int purge_salt_expired(const char *key, size_t len, int64_t as_of_ms);

/* Escapes the glob characters of s ( * ? [ ] \ ) for a SCAN MATCH pattern.
 * The length written, or -1 when out is too small. */
int purge_glob_escape(const char *s, char *out, size_t outlen);

#endif
