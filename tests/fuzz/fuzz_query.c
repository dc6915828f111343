/* fuzz_query.c -- libFuzzer target for the Stats API's parser and validator
 * (query_parse, then query_resolve): any bytes must give a query or a 400
 * message, never a crash, a leak or an over-read; an accepted query must
 * resolve to a bounded range or be refused. The engine's Redis half is not
 * reached: its entry points are stubs here, so query.c, rows.c,
 * countmap.c and fold_dims.c are compiled into this target directly (fuzz.mk
 * adds -Iaggregator). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "countmap.c"
#include "fold_dims.c"
#include "query.c"
#include "rows.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What query.c needs from the rest of the aggregator, never called here. */
int agg_connect(struct agg *a) { (void)a; return -1; }
void agg_disconnect(struct agg *a) { (void)a; }
int agg_append_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen)
{
    (void)a, (void)argc, (void)argv, (void)argvlen;
    return -1;
}
redisReply *agg_get_reply(struct agg *a) { (void)a; return NULL; }
int agg_hash_each(struct agg *a, int (*each)(void *arg, const char *field, size_t len, long long value),
                  void *arg)
{
    (void)a, (void)each, (void)arg;
    return -1;
}
int report_period(const char *name, int64_t today, int64_t *from, int64_t *to)
{
    (void)name;
    *from = *to = today;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct clock_zone *zone;
    char err[512];
    if (!zone && !(zone = clock_zone_new("Europe/Berlin", err, sizeof err))) return 0;
    struct query *q = query_parse((const char *)data, size, err, sizeof err);
    if (!q) {
        if (!memchr(err, '\0', sizeof err) || !err[0]) __builtin_trap();   /* a message, always */
        return 0;
    }
    if (query_resolve(q, zone, 1714521600000LL, 760, err, sizeof err) == 0) {
        int64_t from, to;
        query_days(q, &from, &to);
        if (from > to || to - from >= QUERY_MAX_DAYS) __builtin_trap();
    }
    query_free(q);
    return 0;
}
