/* report.c -- reads a site's aggregates for a range of days into one model.
 *
 * All reads of a report go out as one pipeline on the synchronous connection
 * (a year is ~6,000 commands, one round trip), then a second pipeline asks
 * PFCOUNT of the top pages' per-day HyperLogLogs. Breakdowns are merged over
 * the days in a jansson object used as a map, then sorted by count (ties by
 * name, so output is stable) and cut at --limit. The model (report.h) keeps
 * its keys in insertion order, which the table and CSV renderers rely on.
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "fold.h"
#include "hash.h"
#include "keys.h"

/* The breakdowns, in output order: dim, JSON section, label, metric. */
static const struct {
    enum fold_dim dim;
    const char *section, *label, *metric;
} breakdowns[] = {
    {FOLD_PAGE, "pages", "page", "pageviews"},
    {FOLD_ENTRY, "entry_pages", "page", "visits"},
    {FOLD_EXIT, "exit_pages", "page", "visits"},
    {FOLD_SOURCE, "sources", "source", "visits"},
    {FOLD_UTM_SOURCE, "utm_sources", "utm_source", "visits"},
    {FOLD_UTM_MEDIUM, "utm_mediums", "utm_medium", "visits"},
    {FOLD_UTM_CAMPAIGN, "utm_campaigns", "utm_campaign", "visits"},
    {FOLD_UTM_TERM, "utm_terms", "utm_term", "visits"},
    {FOLD_UTM_CONTENT, "utm_contents", "utm_content", "visits"},
    {FOLD_COUNTRY, "countries", "country", "visits"},
    {FOLD_REGION, "regions", "region", "visits"},
    {FOLD_BROWSER, "browsers", "browser", "visits"},
    {FOLD_OS, "os", "os", "visits"},
    {FOLD_DEVICE, "devices", "device", "visits"},
    {FOLD_EVENT, "events", "name", "count"},
};
#define NBREAK (sizeof breakdowns / sizeof breakdowns[0])
/* Per day: totals, uv, then each breakdown. */
#define PER_DAY (2 + NBREAK)

int report_parse_format(const char *s, enum report_format *f)
{
    if (strcmp(s, "table") == 0) *f = REPORT_TABLE;
    else if (strcmp(s, "json") == 0) *f = REPORT_JSON;
    else if (strcmp(s, "csv") == 0) *f = REPORT_CSV;
    else if (strcmp(s, "html") == 0) *f = REPORT_HTML;
    else return -1;
    return 0;
}

static long long to_ll(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

struct row {
    const char *name;           /* owned by the map */
    size_t len;
    long long n;
};

/* name -> count over the days of a breakdown: open addressing over rows
 * with their own copy of the name, so that each day's reply is merged and
 * freed as it arrives (a 30-day report holds one reply at a time). */
struct map {
    struct row *slot;
    size_t cap, n;
};

static int map_add(struct map *m, const char *name, size_t len, long long v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        struct row *slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slot[i].name) continue;
            size_t j = hash_fnv1a(HASH_FNV_OFFSET, m->slot[i].name, m->slot[i].len) & (cap - 1);
            while (slot[j].name) j = (j + 1) & (cap - 1);
            slot[j] = m->slot[i];
        }
        free(m->slot);
        m->slot = slot;
        m->cap = cap;
    }
    size_t j = hash_fnv1a(HASH_FNV_OFFSET, name, len) & (m->cap - 1);
    while (m->slot[j].name && !(m->slot[j].len == len && memcmp(m->slot[j].name, name, len) == 0))
        j = (j + 1) & (m->cap - 1);
    if (!m->slot[j].name) {
        char *copy = malloc(len + 1);
        if (!copy) return -1;
        memcpy(copy, name, len);
        copy[len] = '\0';
        m->slot[j] = (struct row){copy, len, 0};
        m->n++;
    }
    m->slot[j].n += v;
    return 0;
}

/* Adds the field/value pairs of an HGETALL reply into map. The members are
 * bounded per day (aggregator.max_members), not by who controls the input,
 * so an unseeded hash is fine here. */
static int merge(struct map *map, const redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        if (!k->str) continue;
        if (map_add(map, k->str, k->len, to_ll(r->element[i + 1])) < 0) return -1;
    }
    return 0;
}

static long long hget(const redisReply *r, const char *field)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->str && strcmp(r->element[i]->str, field) == 0) return to_ll(r->element[i + 1]);
    return 0;
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void map_free(struct map *m)
{
    for (size_t i = 0; i < m->cap; i++) free((char *)m->slot[i].name);
    free(m->slot);
}

/* map -> rows sorted by count; caller frees. Rows point into the map. */
static struct row *sorted(const struct map *map, size_t *n)
{
    struct row *rows = calloc(map->n ? map->n : 1, sizeof *rows);
    if (!rows) return NULL;
    size_t i = 0;
    for (size_t j = 0; j < map->cap; j++) {
        const struct row *r = &map->slot[j];
        if (!r->name || r->n <= 0) continue;   /* an exit page moved away */
        rows[i++] = *r;
    }
    *n = i;
    qsort(rows, *n, sizeof *rows, row_cmp);
    return rows;
}

static json_t *rates(long long pageviews, long long visits, long long bounces, long long duration_ms,
                     json_t *o)
{
    json_object_set_new(o, "bounce_rate", json_integer(visits ? llround(100.0 * (double)bounces / (double)visits) : 0));
    json_object_set_new(o, "visit_duration",
                        json_integer(visits ? llround((double)duration_ms / 1000.0 / (double)visits) : 0));
    json_object_set_new(o, "views_per_visit",
                        json_real(visits ? round(100.0 * (double)pageviews / (double)visits) / 100.0 : 0));
    return o;
}

/* Sends n commands already appended and collects their replies into out[]. */
static int collect(struct agg *a, redisReply **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(a->rc, &r) != REDIS_OK) {
            snprintf(a->err, sizeof a->err, "redis: %s", a->rc->errstr);
            agg_disconnect(a);
            return -1;
        }
        out[i] = r;
    }
    return 0;
}

/* PFCOUNT over the per-day uv:<page> keys of each of the first n rows. */
static int page_visitors(struct agg *a, const char *site, const struct report_opts *o,
                         const struct row *rows, size_t n, long long *out)
{
    size_t ndays = (size_t)(o->to_day - o->from_day + 1);
    const char **argv = calloc(ndays + 1, sizeof *argv);
    char *keys = malloc(ndays * 1200);
    redisReply **rep = calloc(n ? n : 1, sizeof *rep);
    int rc = -1;
    if (!argv || !keys || !rep) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        argv[0] = "PFCOUNT";
        for (size_t d = 0; d < ndays; d++) {
            char day[CLOCK_DAY_LEN + 1];
            clock_format_day(o->from_day + (int64_t)d, day);
            char *k = keys + d * 1200;
            if (keys_uv(k, 1200, site, day, rows[i].name) < 0) k[0] = '\0';
            argv[d + 1] = k;
        }
        redisAppendCommandArgv(a->rc, (int)ndays + 1, argv, NULL);
    }
    if (collect(a, rep, n) < 0) goto out;
    for (size_t i = 0; i < n; i++) out[i] = rep[i]->type == REDIS_REPLY_INTEGER ? rep[i]->integer : 0;
    rc = 0;
out:
    for (size_t i = 0; rep && i < n; i++)
        if (rep[i]) freeReplyObject(rep[i]);
    free(rep);
    free(argv);
    free(keys);
    return rc;
}

static json_t *breakdown(struct agg *a, const char *site, const struct report_opts *o, size_t b,
                         const struct map *map)
{
    size_t n;
    struct row *rows = sorted(map, &n);
    json_t *arr = json_array();
    long long *vis = NULL;
    if (!rows || !arr) goto error;
    int pages = breakdowns[b].dim == FOLD_PAGE;
    size_t shown = n < (size_t)o->limit ? n : (size_t)o->limit;
    if (pages) {
        /* Ask for visitors of a few more rows than shown: min_visitors may hide some. */
        size_t ask = a->cfg->aggregator.min_visitors > 0 ? n : shown;
        vis = calloc(ask ? ask : 1, sizeof *vis);
        if (!vis || page_visitors(a, site, o, rows, ask, vis) < 0) goto error;
    }
    long long other = 0;
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        int hidden = pages && a->cfg->aggregator.min_visitors > 0 && vis[i] < a->cfg->aggregator.min_visitors;
        if (added >= (size_t)o->limit || hidden) {
            other += rows[i].n;
            continue;
        }
        json_t *r = json_object();
        json_object_set_new(r, breakdowns[b].label, json_string(rows[i].name));
        json_object_set_new(r, breakdowns[b].metric, json_integer(rows[i].n));
        /* A page past aggregator.max_page_visitors on every day of the range
         * has no visitor count: null, not a zero that would look measured. */
        if (pages) json_object_set_new(r, "visitors", vis[i] > 0 ? json_integer(vis[i]) : json_null());
        json_array_append_new(arr, r);
        added++;
    }
    if (o->other && other > 0) {
        json_t *r = json_object();
        json_object_set_new(r, breakdowns[b].label, json_string("(other)"));
        json_object_set_new(r, breakdowns[b].metric, json_integer(other));
        json_array_append_new(arr, r);
    }
    free(rows);
    free(vis);
    return arr;
error:
    if (!a->err[0]) snprintf(a->err, sizeof a->err, "out of memory");
    free(rows);
    free(vis);
    json_decref(arr);
    return NULL;
}

json_t *report_build(struct agg *a, const struct report_opts *o)
{
    struct agg_site *s = agg_site(a, o->site);
    size_t ndays = (size_t)(o->to_day - o->from_day + 1);
    size_t ncmd = ndays * PER_DAY + 1;
    redisReply **rep = calloc(ncmd, sizeof *rep);
    struct map maps[NBREAK] = {{0}};
    json_t *report = NULL;
    char key[1200];
    a->err[0] = '\0';
    if (!s || !rep) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto error;
    }
    if (!a->rc && agg_connect(a) < 0) goto error;

    const char **uv = calloc(ndays + 1, sizeof *uv);
    char *uvkeys = malloc(ndays * 600);
    if (!uv || !uvkeys) {
        free(uv);
        free(uvkeys);
        snprintf(a->err, sizeof a->err, "out of memory");
        goto error;
    }
    uv[0] = "PFCOUNT";
    for (size_t d = 0; d < ndays; d++) {
        char day[CLOCK_DAY_LEN + 1];
        clock_format_day(o->from_day + (int64_t)d, day);
        keys_day(key, sizeof key, s->name, day, fold_dim_names[FOLD_TOTALS]);
        redisAppendCommand(a->rc, "HGETALL %s", key);
        keys_uv(uvkeys + d * 600, 600, s->name, day, NULL);
        uv[d + 1] = uvkeys + d * 600;
        redisAppendCommand(a->rc, "PFCOUNT %s", uv[d + 1]);
        for (size_t b = 0; b < NBREAK; b++) {
            keys_day(key, sizeof key, s->name, day, fold_dim_names[breakdowns[b].dim]);
            redisAppendCommand(a->rc, "HGETALL %s", key);
        }
    }
    redisAppendCommandArgv(a->rc, (int)ndays + 1, uv, NULL);
    free(uv);
    free(uvkeys);
    /* Totals and visitor counts are kept; a breakdown's reply is merged and
     * freed as soon as it is read. */
    for (size_t i = 0; i < ncmd; i++) {
        void *r = NULL;
        if (redisGetReply(a->rc, &r) != REDIS_OK) {
            snprintf(a->err, sizeof a->err, "redis: %s", a->rc->errstr);
            agg_disconnect(a);
            goto error;
        }
        size_t k = i % PER_DAY;
        if (i < ndays * PER_DAY && k >= 2) {
            int rc = merge(&maps[k - 2], r);
            freeReplyObject(r);
            if (rc < 0) {
                snprintf(a->err, sizeof a->err, "out of memory");
                goto error;
            }
        } else {
            rep[i] = r;
        }
    }

    report = json_object();
    json_t *series = json_array();
    long long pv = 0, visits = 0, bounces = 0, dur = 0, events = 0;
    for (size_t d = 0; d < ndays; d++) {
        redisReply **r = rep + d * PER_DAY;
        long long dpv = hget(r[0], "pageviews"), dvis = hget(r[0], "visits");
        long long db = hget(r[0], "bounces"), dd = hget(r[0], "duration_ms");
        pv += dpv;
        visits += dvis;
        bounces += db;
        dur += dd;
        events += hget(r[0], "events");
        char date[11];
        clock_format_day_dashed(o->from_day + (int64_t)d, date);
        json_t *p = json_object();
        json_object_set_new(p, "date", json_string(date));
        json_object_set_new(p, "pageviews", json_integer(dpv));
        json_object_set_new(p, "visitors", json_integer(to_ll(r[1])));
        json_object_set_new(p, "visits", json_integer(dvis));
        rates(dpv, dvis, db, dd, p);
        json_array_append_new(series, p);
    }
    char from[11], to[11];
    clock_format_day_dashed(o->from_day, from);
    clock_format_day_dashed(o->to_day, to);
    json_object_set_new(report, "site", json_string(s->name));
    json_object_set_new(report, "from", json_string(from));
    json_object_set_new(report, "to", json_string(to));
    json_object_set_new(report, "timezone", json_string(clock_zone_name(s->zone)));
    json_t *totals = json_object();
    json_object_set_new(totals, "pageviews", json_integer(pv));
    json_object_set_new(totals, "visitors", json_integer(to_ll(rep[ncmd - 1])));
    json_object_set_new(totals, "visits", json_integer(visits));
    rates(pv, visits, bounces, dur, totals);
    json_object_set_new(totals, "events", json_integer(events));
    json_object_set_new(report, "totals", totals);
    for (size_t b = 0; b < NBREAK; b++) {
        json_t *arr = breakdown(a, s->name, o, b, &maps[b]);
        if (!arr) {
            json_decref(series);
            goto error;
        }
        json_object_set_new(report, breakdowns[b].section, arr);
    }
    json_object_set_new(report, "timeseries", series);
    for (size_t i = 0; i < ncmd; i++) freeReplyObject(rep[i]);
    free(rep);
    for (size_t b = 0; b < NBREAK; b++) map_free(&maps[b]);
    return report;

error:
    for (size_t i = 0; rep && i < ncmd; i++)
        if (rep[i]) freeReplyObject(rep[i]);
    free(rep);
    for (size_t b = 0; b < NBREAK; b++) map_free(&maps[b]);
    json_decref(report);
    return NULL;
}
