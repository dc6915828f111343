/* salt.h -- the daily random salts behind the visitor hash (see visitor.h).
 *
 * Salts live in Redis only, at fs:salt:YYYYMMDD (UTC days), created with
 * SET NX by whichever collector gets there first and expiring 48 hours after
 * their day begins. The main thread keeps yesterday's, today's and
 * tomorrow's in memory, refreshed every minute over a synchronous
 * connection, so a worker never waits for Redis to learn a salt and midnight
 * finds tomorrow's already loaded. Thread-safe.
 */
#ifndef FAIRSTAT_SALT_H
#define FAIRSTAT_SALT_H

#include <stdint.h>

#include "cfg.h"

#define SALT_HEX_LEN 32

/* Loads the salts once. 0, or -1 with a message in err (Redis unreachable). */
int salt_refresh(const struct cfg *c, char *err, size_t errlen);

/* Copies the salt of `day` (days since 1970-01-01 UTC, clock_utc_day()).
 * 0, or -1 when that salt is not loaded. */
int salt_get(int64_t day, char out[SALT_HEX_LEN + 1]);

#endif
