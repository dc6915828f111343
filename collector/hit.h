/* hit.h -- the beacon path: POST /api/event and GET /p.gif.
 *
 * A beacon goes through four steps, each one function in hit.c calling the
 * room of its concern:
 *   gate    rate limit (client.h), content type, parse (beacon.h), site and
 *           origin, the browser's GPC and DNT, the consent cookie (consent.h,
 *           revoke.h), bots (ua.h); a refusal is answered 204 before anything
 *           about the hit is written anywhere, logs included
 *   enrich  country and region (geo.h), visitor hash (visitor.h, salt.h);
 *           after it the client address and the User-Agent are forgotten
 *   store   one XADD to fs:{site}:hits (store.h, keys.h)
 *   answer  202 from the Redis reply callback, once the hit is stored; 503
 *           when it could not be.
 */
#ifndef FAIRSTAT_HIT_H
#define FAIRSTAT_HIT_H

#include "http.h"

struct api;

/* A worker's memory of the beacon path: verified consent cookies with their
 * visitor hash, and today's visitor key. Not thread-safe. */
struct hit_cache;

/* NULL when out of memory. */
struct hit_cache *hit_cache_new(void);
void hit_cache_free(struct hit_cache *h);

/* Runs the beacon path for r (the pixel's when pixel is set); answers now or
 * from the Redis callback. cors: the CORS lines for r's Origin, copied. */
void hit_handle(struct api *a, struct http_conn *c, const struct http_request *r,
                const char *cors, int pixel);

#endif
