/* sites.h -- the configured sites and their origins, found by hashing.
 *
 * Every beacon and every consent request names its site, and most carry an
 * Origin: with thousands of [site] sections a scan of the config per request
 * would make a hit cost grow with the number of sites. These tables are
 * built once from the config and only read afterwards, so one instance may
 * be shared by every worker thread.
 */
#ifndef FAIRSTAT_SITES_H
#define FAIRSTAT_SITES_H

#include <stddef.h>

#include "cfg.h"

struct sites;

/* NULL when out of memory. c must outlive the tables. */
struct sites *sites_new(const struct cfg *c);
void sites_free(struct sites *s);

/* The site named exactly name[0..len), or NULL. Lives as long as the cfg. */
const struct cfg_site *sites_find(const struct sites *s, const char *name, size_t len);

/* 1 when some site allows origin[0..len) (compared without regard to case,
 * as api.c always did). */
int sites_origin_known(const struct sites *s, const char *origin, size_t len);

#endif
