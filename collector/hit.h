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
 *   answer  202 from the Redis reply callback, once the hit is stored; when
 *           Redis is down, slow (no reply within collector.redis_timeout) or
 *           refuses the write, the hit goes to the spool (spool.h) and the
 *           202 is sent once its record is written; 503 (with Retry-After
 *           when the spool is full) when it could not be kept anywhere.
 *
 * The spool is replayed from a timer of the worker's loop whenever Redis is
 * up, HIT_SPOOL_TICK_MS apart, chunk by chunk in order; replayed hits carry
 * RAWHIT_F_REPLAYED and their own time (RAWHIT_F_TIME).
 */
#ifndef FAIRSTAT_HIT_H
#define FAIRSTAT_HIT_H

#include <event2/event.h>

#include "http.h"

struct api;

#define HIT_RETRY_AFTER_S 5         /* Retry-After of a 503 when the spool is full */
#define HIT_SPOOL_TICK_MS 100       /* replay step; the spool is fsynced every 1 s */
#define HIT_SEQ_MAX (1u << 24)      /* hits per id epoch (see hit.c's hit_id) */

/* A worker's memory of the beacon path: verified consent cookies with their
 * visitor hash, and today's visitor key. Not thread-safe. */
struct hit_cache;

/* NULL when out of memory. */
struct hit_cache *hit_cache_new(void);
void hit_cache_free(struct hit_cache *h);
/* Forgets every remembered cookie (after a reload: other sites, other keys). */
void hit_cache_clear(struct hit_cache *h);

/* Runs the beacon path for r (the pixel's when pixel is set); answers now or
 * from the Redis callback. cors: the CORS lines for r's Origin, copied. */
void hit_handle(struct api *a, struct http_conn *c, const struct http_request *r,
                const char *cors, int pixel);

/* Opens the worker's spool (collector.spool_dir; nothing when it is empty)
 * and its replay timer on base. 0, or -1 + err. */
int hit_spool_start(struct api *a, struct event_base *base, int worker, char *err, size_t errlen);
/* Stops replaying, fsyncs and closes the spool. */
void hit_spool_stop(struct api *a);

#endif
