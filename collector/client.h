/* client.h -- who is asking: the client address behind trusted proxies, and
 * the per-client rate limit.
 *
 * The address feeds the rate limit and the GeoIP lookup and is then
 * forgotten: nothing here stores or logs it. The limiter keeps only a keyed
 * 64-bit hash of it, in memory.
 */
#ifndef FAIRSTAT_CLIENT_H
#define FAIRSTAT_CLIENT_H

#include <sys/socket.h>

#include "cfg.h"
#include "http.h"

/* The client is the peer, unless the peer is one of
 * collector.trusted_proxies: then the right-most X-Forwarded-For entry that
 * is not itself a trusted proxy (an entry that is no address stops the walk
 * at the last good one). */
void client_addr(const struct cfg *cfg, const struct http_request *r, struct sockaddr_storage *out);

/* 1 when the peer at sa is one of collector.trusted_proxies (cfg is a
 * const struct cfg *: the signature is http_limits' exempt callback). */
int client_is_trusted_proxy(const struct sockaddr *sa, void *cfg);

/* A token bucket per client, in a fixed table keyed by a per-process random
 * seed: rate requests per second, bursts of twice that (at least 20). An
 * IPv6 client counts by its /64. One per worker thread; not thread-safe. */
struct client_limit;

/* rate <= 0 limits nothing. NULL when out of memory. */
struct client_limit *client_limit_new(double rate);
void client_limit_free(struct client_limit *l);

/* 1 when the client at sa is over its rate (the request is to be refused),
 * else 0, and the request is counted. */
int client_limited(struct client_limit *l, const struct sockaddr *sa);

#endif
