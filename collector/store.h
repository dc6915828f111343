/* store.h -- the collector's asynchronous Redis connection (hiredis + libevent).
 *
 * One store per worker thread. Commands issued in one turn of the event loop
 * leave in one write: hiredis buffers them and the libevent adapter flushes
 * on the next writable event, so XADDs are pipelined for free.
 *
 * hiredis 0.14 has no command timeout, so a timer here watches the oldest
 * unanswered command: when Redis has not answered for collector.redis_timeout
 * the connection is dropped (every pending callback then gets NULL) and
 * re-opened with backoff. While it is down store_command() refuses at once.
 */
#ifndef FAIRSTAT_STORE_H
#define FAIRSTAT_STORE_H

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cfg.h"

struct store;

/* The base must have been given STORE_PRIORITIES priorities
 * (event_base_priority_init) before any event was added to it: the store
 * flushes Redis writes at the lowest one. Other events keep the default. */
#define STORE_PRIORITIES 3
#define STORE_FLUSH_PRIORITY 2

/* reply is NULL when Redis failed or timed out; it is only valid for the
 * duration of the callback. */
typedef void (*store_cb)(redisReply *reply, void *arg);

struct store_stats {
    unsigned long long sent, replied, failed, reconnects;
    unsigned long long latency_us_sum;
    unsigned long long latency_le[8];   /* cumulative buckets, see STORE_BUCKETS_US */
    long inflight;
    int up;
};
#define STORE_BUCKETS_US {250, 500, 1000, 2500, 5000, 10000, 50000, 250000}

struct store *store_new(struct event_base *base, const struct cfg *c, char *err, size_t errlen);
void store_free(struct store *s);
int store_is_up(const struct store *s);
/* Connected, and Redis answered a PING within collector.redis_timeout (one
 * is sent every quarter of it): what /readyz reports. */
int store_ready(const struct store *s);
/* Counts connections made: changes whenever commands may start going over
 * a new connection (hit.c draws a new hit id epoch then). */
unsigned long long store_generation(const struct store *s);

/* Sends argv. cb is called exactly once, later, unless this returns -1
 * (Redis down now), in which case it is never called. */
int store_command(struct store *s, store_cb cb, void *arg,
                  int argc, const char **argv, const size_t *lens);

/* The same for a command already in RESP form (len bytes at cmd). */
int store_formatted(struct store *s, store_cb cb, void *arg, const char *cmd, size_t len);

/* Writes argv (lengths in lens, or NUL-terminated when lens is NULL) into
 * buf as one RESP command for store_formatted(): on the hot path this is
 * cheaper than hiredis' generic formatter. Returns the length, or 0 when it
 * does not fit in len bytes. */
size_t store_format(char *buf, size_t len, int argc, const char **argv, const size_t *lens);

void store_stats(const struct store *s, struct store_stats *out);

#endif
