/* session.h -- visits (30 minutes idle) and the per-batch apply script.
 *
 * A visit is a visitor's run of pageviews with no gap over SESSION_IDLE_MS.
 * Its state lives in Redis, in the string fs:{S}:sess:<visitor> (first and
 * last hit time, pageviews, the names of the totals and exit hashes of the
 * day the visit began, current exit page; newline-separated, with a TTL), so
 * that it is the same whichever batch, process or restart sees the next hit. The state is read and changed
 * only inside session_script, the Lua script that applies one fold batch
 * (fold.h): it counts a hit only if its entry is still pending for the
 * group and still in the stream -- neither counted before nor withdrawn or
 * purged since -- and acknowledges and deletes every entry of the batch, so a
 * replayed batch changes nothing and counting and deleting are one step.
 *
 * Visit metrics are filed under the day the visit began: a first pageview
 * adds a visit and a bounce; the second takes the bounce back; each later
 * pageview moves the exit page and adds the time since the previous one to
 * the duration.
 */
#ifndef FAIRSTAT_SESSION_H
#define FAIRSTAT_SESSION_H

#include <stdint.h>

#define SESSION_IDLE_MS (30 * 60 * 1000LL)

/* The Lua source; its SHA1 is what the server knows it by. */
extern const char session_script[];

/* How long the session state of a hit at t_ms, folded at now_ms, must live:
 * the idle time counted from when the visit's next hit will be folded, i.e.
 * idle plus the current backlog (an aggregator that was down for an hour
 * still joins the visits it catches up on), capped at max_ms. */
int64_t session_ttl_ms(int64_t idle_ms, int64_t t_ms, int64_t now_ms, int64_t max_ms);

#endif
