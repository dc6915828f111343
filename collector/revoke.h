/* revoke.h -- receipts that were withdrawn or erased, so that a copy of
 * their cookie is refused like no cookie at all.
 *
 * Withdrawal clears the cookie in the browser, but a signed cookie stays
 * valid until it expires: another tab, a replayed request or a failed clear
 * would still count. Every withdrawal and erasure leaves a receipt in
 * fs:{site}:consent (a = withdraw | forget), written by any collector or by
 * `fairstat-aggregator forget`; the main thread reads those streams
 * incrementally every two seconds, and the workers consult the set in
 * memory. Entries expire with the cookies they stand for
 * (consent.max_age_days). Thread-safe.
 */
#ifndef FAIRSTAT_REVOKE_H
#define FAIRSTAT_REVOKE_H

#include <stddef.h>

#include "cfg.h"

/* Reads new withdrawals of every configured site (the last max_age_days on
 * the first call). 0, or -1 with a message in err. Main thread only. */
int revoke_refresh(const struct cfg *c, char *err, size_t errlen);

/* After a reload from old (whose sites table is old_sites) to c: keeps the
 * read position of every site still configured, new sites start as on the
 * first refresh. Call before old is freed, then refresh with c. 0, or -1
 * when out of memory (nothing changed). Main thread only. */
struct sites;
int revoke_rebind(const struct cfg *old, const struct sites *old_sites, const struct cfg *c);

/* Records a withdrawal this process made, effective at once. */
void revoke_add(const char *site, const char *receipt, long long expires_s);

/* 1 when (site, receipt) was withdrawn or erased. */
int revoke_contains(const char *site, const char *receipt, long long now_s);

/* Changes whenever the set grows: a cached "granted" verdict older than the
 * current generation must be checked again. */
unsigned revoke_generation(void);

#endif
