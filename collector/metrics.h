/* metrics.h -- per-worker counters and their Prometheus text rendering.
 *
 * Each worker owns one struct metrics and is its only writer; /metrics
 * (served by any worker) sums all of them with relaxed atomic loads, so the
 * hot path pays for a plain increment and nothing else.
 */
#ifndef FAIRSTAT_METRICS_H
#define FAIRSTAT_METRICS_H

#include <stddef.h>

struct http_server;
struct store;
struct spool;

enum metrics_refusal { REFUSED_NO_CONSENT, REFUSED_GPC, REFUSED_DNT, REFUSED_BOT, REFUSED_COUNT };
enum metrics_status { ST_400, ST_403, ST_404, ST_405, ST_408, ST_413, ST_415, ST_429, ST_431,
                      ST_503, ST_COUNT };

struct metrics {
    unsigned long long accepted;
    unsigned long long refused[REFUSED_COUNT];
    unsigned long long rejected[ST_COUNT];
    unsigned long long receipts, withdrawals, erased;
    unsigned long long spooled, spool_full, replayed, spool_expired, spool_corrupt;
    const struct http_server *http;     /* for its own counters */
    const struct store *store;
    const struct spool *spool;          /* NULL: no spool */
};

#define METRIC_INC(x) __atomic_store_n(&(x), (x) + 1, __ATOMIC_RELAXED)
#define METRIC_ADD(x, n) __atomic_store_n(&(x), (x) + (n), __ATOMIC_RELAXED)

/* Registers a worker's metrics; the pointer must stay valid until exit. */
void metrics_register(struct metrics *m);
void metrics_count_status(struct metrics *m, int status);
const char *metrics_refusal_name(enum metrics_refusal r);

/* Renders all workers' sums into buf; returns the length (truncated to len). */
size_t metrics_render(char *buf, size_t len);

#endif
