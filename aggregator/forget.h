/* forget.h -- erasure: a visitor's buffered hits, found by receipt id.
 *
 * The raw hits hold no receipt id, only the daily visitor hash of
 * (site, receipt) under that day's salt (visitor.h). forget erases, site by
 * site, the stream entries carrying the hash under any salt still held, in
 * the same atomic step as the collector's DELETE /consent (common/erase.h);
 * aggregates are anonymous counts and stay. The receipt is marked withdrawn
 * ("a=forget") in each site's consent stream where it was issued or had hits
 * (every time on --site), and fs:audit gets one record per such site with
 * counts only -- never the id.
 */
#ifndef FAIRSTAT_FORGET_H
#define FAIRSTAT_FORGET_H

#include <stdio.h>

struct agg;

/* Erases receipt's buffered hits on site (NULL: every site in a->sites).
 * Prints one summary line to out. 0, or -1 with a->err set. */
int forget_run(struct agg *a, const char *receipt, const char *site, FILE *out);

/* 1 when id looks like a receipt id we could have issued (1..128 printable
 * ASCII characters, no spaces), else 0. */
int forget_receipt_ok(const char *id);

#endif
