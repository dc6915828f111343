/* consents.h -- consent receipts for an auditor: `fairstat-aggregator
 * consents`, and the one reader of fs:{S}:consent that it and the report's
 * coverage share.
 *
 * A receipt is what fs:{S}:consent holds per choice (docs/protocol.md,
 * Receipts): who chose nothing identifies (no address, no User-Agent, no
 * visitor hash), only the receipt id the visitor's cookie carries. Entries
 * written before receipt schema 1 lack method and policy hash: they read as
 * schema_version 0 with those fields null (method is known for withdraw and
 * forget from the action).
 *
 * consents_record_json() is the canonical form of one receipt: the export
 * prints it, and an archive can store it as is (it names its site, so a
 * record stands alone outside the stream). consents_read() is the only place
 * that knows where receipts live; an archive of older receipts extends it,
 * and every caller reads the archive with no change.
 */
#ifndef FAIRSTAT_CONSENTS_H
#define FAIRSTAT_CONSENTS_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct agg;

#define CONSENTS_ID_MAX 128         /* a receipt id, as forget accepts it */
#define CONSENTS_FIELD_MAX 72       /* policy version (<= 64), action, method */

struct consent_record {
    char record_id[48];             /* the stream entry id: unique per record */
    char receipt_id[CONSENTS_ID_MAX + 1];
    int64_t t_ms;
    char action[CONSENTS_FIELD_MAX + 1];    /* grant | deny | withdraw | forget */
    int analytics;                  /* 1 | 0 */
    char policy_version[CONSENTS_FIELD_MAX + 1];
    char policy_sha256[65];         /* "" when not recorded */
    char method[CONSENTS_FIELD_MAX + 1];    /* "" when not recorded */
    int schema;                     /* 0: written before receipt schema 1 */
};

/* Called per record, oldest first; returns 0 to go on, -1 to stop (the
 * reader then returns -1 and leaves a->err as the callback set it). rec
 * lives for the call. */
typedef int (*consents_fn)(const struct consent_record *rec, void *arg);

/* A stream entry [id, [field, value, ...]] of fs:{S}:consent as a record.
 * 0, or -1 when it is not a receipt. */
int consents_parse_entry(const redisReply *e, struct consent_record *rec);

/* Every receipt of site with from_ms <= t_ms < to_ms, oldest first. 0, or -1
 * with a->err set. */
int consents_read(struct agg *a, const char *site, int64_t from_ms, int64_t to_ms,
                  consents_fn fn, void *arg);

/* The receipt as a new JSON object (caller owns it), the fields of
 * docs/protocol.md (Receipts); NULL when out of memory. */
json_t *consents_record_json(const char *site, const struct consent_record *rec);

enum consents_format { CONSENTS_JSON, CONSENTS_CSV };

struct consents_opts {
    const char *site;
    int64_t from_day, to_day;       /* in the site's time zone, inclusive; -1 = open */
    const char *receipt;            /* NULL: every receipt */
    enum consents_format format;
};

/* The export: JSON {"receipts":[...]} or CSV with a header row, to out.
 * 0, or -1 with a->err set. */
int consents_run(struct agg *a, const struct consents_opts *o, FILE *out);

#endif
