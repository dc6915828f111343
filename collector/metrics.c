/* metrics.c -- sums the workers' counters into Prometheus text (metrics.h). */
#include "metrics.h"
#include "http.h"
#include "spool.h"
#include "store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#define MAX_WORKERS 256

static struct metrics *workers[MAX_WORKERS];
static int n_workers;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const refusal_names[REFUSED_COUNT] = {"no-consent", "gpc", "dnt", "bot"};
static const int status_codes[ST_COUNT] = {400, 403, 404, 405, 408, 413, 415, 429, 431, 503};

const char *metrics_refusal_name(enum metrics_refusal r)
{
    return refusal_names[r];
}

void metrics_register(struct metrics *m)
{
    pthread_mutex_lock(&lock);
    if (n_workers < MAX_WORKERS) workers[n_workers++] = m;
    pthread_mutex_unlock(&lock);
}

void metrics_count_status(struct metrics *m, int status)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (status_codes[i] == status) {
            METRIC_INC(m->rejected[i]);
            return;
        }
    }
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

struct out {
    char *buf;
    size_t len, used;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
    if (o->used >= o->len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n > 0) o->used += (size_t)n;
    if (o->used > o->len) o->used = o->len;
}

size_t metrics_render(char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    unsigned long long accepted = 0, refused[REFUSED_COUNT] = {0}, rejected[ST_COUNT] = {0};
    unsigned long long receipts = 0, withdrawals = 0, erased = 0;
    unsigned long long spooled = 0, spool_full = 0, replayed = 0, expired = 0, corrupt = 0;
    unsigned long long spool_bytes = 0, spool_files = 0;
    int ready = 1;
    struct store_stats st, sum = {0};
    struct http_stats hs, hsum = {0};
    long conns = 0;
    int up = 1;

    pthread_mutex_lock(&lock);
    for (int w = 0; w < n_workers; w++) {
        struct metrics *m = workers[w];
        accepted += LOAD(m->accepted);
        for (int i = 0; i < REFUSED_COUNT; i++) refused[i] += LOAD(m->refused[i]);
        for (int i = 0; i < ST_COUNT; i++) rejected[i] += LOAD(m->rejected[i]);
        receipts += LOAD(m->receipts);
        withdrawals += LOAD(m->withdrawals);
        erased += LOAD(m->erased);
        spooled += LOAD(m->spooled);
        spool_full += LOAD(m->spool_full);
        replayed += LOAD(m->replayed);
        expired += LOAD(m->spool_expired);
        corrupt += LOAD(m->spool_corrupt);
        if (m->spool) {
            struct spool_stats ss;
            spool_stats(m->spool, &ss);
            spool_bytes += ss.bytes;
            spool_files += ss.files;
            corrupt += ss.corrupt;
        }
        /* Racy snapshots of the other workers' structs: counters only grow,
         * so a torn read costs at most one scrape's accuracy. */
        if (m->store) {
            store_stats(m->store, &st);
            sum.sent += st.sent;
            sum.replied += st.replied;
            sum.failed += st.failed;
            sum.reconnects += st.reconnects;
            sum.latency_us_sum += st.latency_us_sum;
            for (int i = 0; i < 8; i++) sum.latency_le[i] += st.latency_le[i];
            sum.inflight += st.inflight;
            up &= st.up;
            ready &= store_ready(m->store);
        }
        if (m->http) {
            http_server_stats(m->http, &hs);
            hsum.requests += hs.requests;
            hsum.timeouts += hs.timeouts;
            hsum.refused_connections += hs.refused_connections;
            hsum.bad_requests += hs.bad_requests;
            hsum.too_large += hs.too_large;
            hsum.header_too_large += hs.header_too_large;
            conns += http_server_connections(m->http);
        }
    }
    pthread_mutex_unlock(&lock);

    /* Requests the HTTP layer refused before any handler saw them count
     * under their status like the handler's own rejections. */
    rejected[ST_400] += hsum.bad_requests;
    rejected[ST_408] += hsum.timeouts;
    rejected[ST_413] += hsum.too_large;
    rejected[ST_431] += hsum.header_too_large;

    put(&o, "# HELP fairstat_hits_accepted_total Hits answered 202: stored in Redis or spooled.\n"
            "# TYPE fairstat_hits_accepted_total counter\n"
            "fairstat_hits_accepted_total %llu\n", accepted);
    put(&o, "# HELP fairstat_hits_refused_total Hits refused by policy (answered 204), by reason.\n"
            "# TYPE fairstat_hits_refused_total counter\n");
    for (int i = 0; i < REFUSED_COUNT; i++)
        put(&o, "fairstat_hits_refused_total{reason=\"%s\"} %llu\n", refusal_names[i], refused[i]);
    put(&o, "# HELP fairstat_requests_rejected_total Requests answered with an error, by status.\n"
            "# TYPE fairstat_requests_rejected_total counter\n");
    for (int i = 0; i < ST_COUNT; i++)
        put(&o, "fairstat_requests_rejected_total{status=\"%d\"} %llu\n", status_codes[i], rejected[i]);
    put(&o, "# TYPE fairstat_http_requests_total counter\nfairstat_http_requests_total %llu\n",
        hsum.requests);
    put(&o, "# TYPE fairstat_http_connections gauge\nfairstat_http_connections %ld\n", conns);
    put(&o, "# TYPE fairstat_http_refused_connections_total counter\n"
            "fairstat_http_refused_connections_total %llu\n", hsum.refused_connections);
    put(&o, "# TYPE fairstat_consent_receipts_total counter\nfairstat_consent_receipts_total %llu\n",
        receipts);
    put(&o, "# TYPE fairstat_consent_withdrawals_total counter\nfairstat_consent_withdrawals_total %llu\n",
        withdrawals);
    put(&o, "# TYPE fairstat_erased_hits_total counter\nfairstat_erased_hits_total %llu\n", erased);
    put(&o, "# HELP fairstat_redis_up 1 when every worker's Redis connection is up.\n"
            "# TYPE fairstat_redis_up gauge\nfairstat_redis_up %d\n", up);
    put(&o, "# HELP fairstat_redis_ready 1 when every worker's Redis answered a PING within "
            "collector.redis_timeout (/readyz).\n"
            "# TYPE fairstat_redis_ready gauge\nfairstat_redis_ready %d\n", ready);
    put(&o, "# HELP fairstat_spool_hits_total Hits written to the spool (answered 202) because Redis "
            "was down, slow or refused them.\n"
            "# TYPE fairstat_spool_hits_total counter\nfairstat_spool_hits_total %llu\n", spooled);
    put(&o, "# HELP fairstat_spool_full_total Hits answered 503 because the spool was full.\n"
            "# TYPE fairstat_spool_full_total counter\nfairstat_spool_full_total %llu\n", spool_full);
    put(&o, "# HELP fairstat_spool_replayed_total Spooled hits written to Redis and acknowledged.\n"
            "# TYPE fairstat_spool_replayed_total counter\nfairstat_spool_replayed_total %llu\n",
        replayed);
    put(&o, "# HELP fairstat_spool_expired_total Spooled hits older than retention.raw_max_age, "
            "dropped (with an fs:audit record).\n"
            "# TYPE fairstat_spool_expired_total counter\nfairstat_spool_expired_total %llu\n",
        expired);
    put(&o, "# HELP fairstat_spool_corrupt_total Spool records skipped: torn or failing their "
            "checksum.\n"
            "# TYPE fairstat_spool_corrupt_total counter\nfairstat_spool_corrupt_total %llu\n", corrupt);
    put(&o, "# HELP fairstat_spool_bytes Bytes waiting in the spool.\n"
            "# TYPE fairstat_spool_bytes gauge\nfairstat_spool_bytes %llu\n", spool_bytes);
    put(&o, "# TYPE fairstat_spool_files gauge\nfairstat_spool_files %llu\n", spool_files);
    put(&o, "# HELP fairstat_redis_queue_depth Commands sent to Redis and not yet answered.\n"
            "# TYPE fairstat_redis_queue_depth gauge\nfairstat_redis_queue_depth %ld\n", sum.inflight);
    put(&o, "# TYPE fairstat_redis_failures_total counter\nfairstat_redis_failures_total %llu\n",
        sum.failed);
    put(&o, "# TYPE fairstat_redis_connects_total counter\nfairstat_redis_connects_total %llu\n",
        sum.reconnects);
    static const long long bounds[] = STORE_BUCKETS_US;
    put(&o, "# HELP fairstat_redis_latency_seconds Time from sending a command to its reply.\n"
            "# TYPE fairstat_redis_latency_seconds histogram\n");
    for (int i = 0; i < 8; i++)
        put(&o, "fairstat_redis_latency_seconds_bucket{le=\"%g\"} %llu\n", bounds[i] / 1e6,
            sum.latency_le[i]);
    put(&o, "fairstat_redis_latency_seconds_bucket{le=\"+Inf\"} %llu\n", sum.replied);
    put(&o, "fairstat_redis_latency_seconds_sum %.6f\n", sum.latency_us_sum / 1e6);
    put(&o, "fairstat_redis_latency_seconds_count %llu\n", sum.replied);
    return o.used;
}
