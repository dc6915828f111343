/* query.h -- the Stats API's query engine: Plausible's Stats API v2 over the
 * aggregates.
 *
 * A query goes through three steps, each its own function:
 *
 *   query_parse()    the request body (JSON) -> a validated query, or a 400
 *                    with Plausible's kind of message ("Metric `bounce_rate`
 *                    cannot be queried with dimension `visit:country`: ...");
 *                    pure, no Redis, no clock;
 *   query_resolve()  its date_range -> local days of the site's zone at a
 *                    given time (pure as well);
 *   query_run()      one pipelined read of the day hashes, HyperLogLogs and
 *                    hour hashes the query needs, then (event:page visitors
 *                    only) a second one for the rows shown; the response
 *                    {"results", "meta", "query"} as JSON text.
 *
 * Only what the aggregates hold is answered; anything else is refused at
 * parse time, never estimated. What they hold (docs/aggregator.md,
 * "Statistics kept"): site totals per day (every metric), hour hashes
 * (pageviews, visits, events), one counter per member and day for each
 * breakdown (pageviews for pages, events for event names and property
 * values, visits for the visit dimensions), per-page visitor HyperLogLogs
 * for capped pages, per-page engagement sums (time on page, scroll depth), and
 * per-entry-page cross breakdowns of the visit dimensions (bypage). Rows are
 * ranked with a bounded heap: a limit of 10 over 50,000 pages sorts 10.
 */
#ifndef FAIRSTAT_QUERY_H
#define FAIRSTAT_QUERY_H

#include <stddef.h>
#include <stdint.h>

struct agg;
struct clock_zone;
struct query;

#define QUERY_MAX_LIMIT 10000       /* Plausible's largest page */
#define QUERY_MAX_DAYS 3660         /* ten years */
#define QUERY_MAX_HOUR_DAYS 366     /* time:hour reads 24 hashes a day */
#define QUERY_MAX_OFFSET 100000     /* rows before the page asked for */
#define QUERY_MAX_PAGE_DAYS 20000   /* visitors of filtered pages: HyperLogLogs read at once */

/* Parses and validates a request body of len bytes. NULL with the reason in
 * err (a 400). The query owns copies of everything it keeps; free it with
 * query_free(). */
struct query *query_parse(const char *buf, size_t len, char *err, size_t errlen);
void query_free(struct query *q);

/* The site_id asked for; lives as long as q. */
const char *query_site(const struct query *q);

/* Resolves the date range to local days of zone (borrowed, must outlive q)
 * at now_ms; "all" reaches back retention_days. 0, or -1 with the reason in
 * err (a 400: a range backwards or too long). */
int query_resolve(struct query *q, struct clock_zone *zone, int64_t now_ms, long retention_days,
                  char *err, size_t errlen);
/* The resolved range, days since 1970-01-01 (for tests). */
void query_days(const struct query *q, int64_t *from_day, int64_t *to_day);

/* Runs a resolved query against a->rc (connecting if needed). The response
 * body, malloc'd, for the caller to free; or NULL with *status (503: Redis
 * unreachable, 500: out of memory) and the reason in err. min_visitors: rows
 * of a breakdown with fewer visitors (or, where visitors are not held, a
 * smaller count, which bounds them) fold into "(other)". */
char *query_run(struct agg *a, struct query *q, int min_visitors, int *status, char *err,
                size_t errlen);

#endif
