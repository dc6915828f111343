/* report.c -- reads a site's aggregates for a range of days into one model.
 *
 * The reads go out as one pipeline on the synchronous connection, a day's
 * commands at a time, two days ahead of the replies being read (Redis
 * answers a pipeline only once it has run what it read, so sending a month
 * at once would make Redis and the reader wait for each other); then a
 * round of PFCOUNT over the top pages' per-day HyperLogLogs. Breakdowns are
 * merged over the days field by field as the replies are parsed
 * (agg_hash_each) into a countmap keyed by the name the output shows, then
 * sorted by count (ties by name, so output is stable) and cut at --limit and
 * min_visitors (rows.h). The model (report.h) keeps its keys in insertion
 * order, which the table and CSV renderers rely on.
 */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "consents.h"
#include "countmap.h"
#include "fold.h"
#include "keys.h"
#include "rows.h"

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
/* Read per day after the breakdowns, not shown as sections of their own:
 * the pages' engagement sums (time on page, scroll depth) and the event
 * property names (the props section). */
static const enum fold_dim extras[] = {FOLD_ENGAGED, FOLD_SCROLL, FOLD_ENGAGEMENTS, FOLD_PROPS};
enum { X_ENGAGED, X_SCROLL, X_ENGAGEMENTS, X_PROPS, NEXTRA };
/* Per day: totals, uv, then each breakdown, then the extras. */
#define PER_DAY (2 + NBREAK + NEXTRA)

int report_parse_format(const char *s, enum report_format *f)
{
    if (strcmp(s, "table") == 0) *f = REPORT_TABLE;
    else if (strcmp(s, "json") == 0) *f = REPORT_JSON;
    else if (strcmp(s, "csv") == 0) *f = REPORT_CSV;
    else if (strcmp(s, "html") == 0) *f = REPORT_HTML;
    else return -1;
    return 0;
}

int report_period(const char *name, int64_t today, int64_t *from, int64_t *to)
{
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(today, &y, &m, &d);
    *to = today;
    if (strcmp(name, "day") == 0) {
        *from = today;
    } else if (strcmp(name, "7d") == 0) {
        *from = today - 6;
    } else if (strcmp(name, "30d") == 0) {
        *from = today - 29;
    } else if (strcmp(name, "month") == 0) {
        *from = clock_days_from_civil(y, m, 1);
    } else if (strcmp(name, "12mo") == 0) {
        /* Eleven months back from this one: m - 11, borrowing a year. */
        *from = m > 11 ? clock_days_from_civil(y, m - 11, 1) : clock_days_from_civil(y - 1, m + 1, 1);
    } else {
        return -1;
    }
    return 0;
}

static long long to_ll(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

struct row {
    COUNTMAP_KEY;               /* as output (rows_json_name), owned by the map */
    const char *raw;            /* as stored, when it differs from name (owned); else NULL */
    size_t raw_len;
    int merged;                 /* several stored names have this output name */
    long long n;
};

/* The stored name of a row (for its uv:<page> key). */
static const char *row_stored(const struct row *r, size_t *len)
{
    *len = r->raw ? r->raw_len : r->len;
    return r->raw ? r->raw : r->name;
}

/* output name -> count over the days of a breakdown (countmap.h). Rows are
 * keyed by the name the output shows, so that two stored names that would
 * show alike are summed into one row rather than shown twice. */
#define MAP_INIT COUNTMAP_INIT(struct row)

static char *dup_bytes(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

/* One field of an HGETALL reply into the map (arg), for agg_hash_each(): 0,
 * or 1 when out of memory. The members are bounded per day
 * (aggregator.max_members), not by who controls the input, so an unseeded
 * hash is fine here. */
static int merge_field(void *arg, const char *stored, size_t stored_len, long long v)
{
    struct countmap *m = arg;
    size_t len = stored_len;
    int oom, added;
    char *esc = rows_json_name(stored, stored_len, &len, &oom);
    if (oom) return 1;
    struct row *r = countmap_get(m, esc ? esc : stored, len, &added);
    if (r && added && esc && !(r->raw = dup_bytes(stored, stored_len))) r = NULL;
    free(esc);
    if (!r) return 1;
    if (added) {
        r->raw_len = stored_len;
    } else {
        size_t had_len;
        const char *had = row_stored(r, &had_len);
        if (had_len != stored_len || memcmp(had, stored, stored_len) != 0) r->merged = 1;
    }
    r->n += v;
    return 0;
}

/* The next reply, an HGETALL's, merged into map; -1 with a->err set. */
static int merge(struct agg *a, struct countmap *map)
{
    int rc = agg_hash_each(a, merge_field, map);
    if (rc > 0) snprintf(a->err, sizeof a->err, "out of memory");
    return rc ? -1 : 0;
}

/* The count of name in map, 0 when absent. */
static long long map_get(const struct countmap *m, const char *name, size_t len)
{
    const struct row *r = countmap_find(m, name, len);
    return r ? r->n : 0;
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
    int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void map_free(struct countmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        struct row *r = countmap_at(m, i);
        if (r) free((char *)r->raw);
    }
    countmap_free(m);
}

/* map -> rows sorted by count; caller frees. Rows point into the map. */
static struct row *sorted(const struct countmap *map, size_t *n)
{
    struct row *rows = calloc(map->n ? map->n : 1, sizeof *rows);
    if (!rows) return NULL;
    size_t i = 0;
    for (size_t j = 0; j < map->n; j++) {
        const struct row *r = countmap_at(map, j);
        if (!r || r->n <= 0) continue;   /* an exit page moved away */
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

/* Visitors of rows[0..n) (PFCOUNT over each page's per-day uv:<page> keys)
 * into out[], -1 where a page has none (past aggregator.max_page_visitors)
 * or none can be told (a row of several stored names, a name with a NUL). */
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
        size_t len;
        const char *page = row_stored(&rows[i], &len);
        int known = !rows[i].merged && strlen(page) == len;
        argv[0] = "PFCOUNT";
        for (size_t d = 0; d < ndays; d++) {
            char day[CLOCK_DAY_LEN + 1];
            clock_format_day(o->from_day + (int64_t)d, day);
            char *k = keys + d * 1200;
            if (!known || keys_uv(k, 1200, site, day, page) < 0) k[0] = '\0';
            argv[d + 1] = k;
        }
        redisAppendCommandArgv(a->rc, (int)ndays + 1, argv, NULL);
    }
    if (collect(a, rep, n) < 0) goto out;
    for (size_t i = 0; i < n; i++)
        out[i] = rep[i]->type == REDIS_REPLY_INTEGER && rep[i]->integer > 0 ? rep[i]->integer : -1;
    rc = 0;
out:
    for (size_t i = 0; rep && i < n; i++)
        if (rep[i]) freeReplyObject(rep[i]);
    free(rep);
    free(argv);
    free(keys);
    return rc;
}

/* Breakdowns whose empty values are not stored (docs/aggregator.md): their
 * rows may sum to less than the visits. */
static int skips_empty(enum fold_dim d)
{
    return d == FOLD_UTM_SOURCE || d == FOLD_UTM_MEDIUM || d == FOLD_UTM_CAMPAIGN || d == FOLD_UTM_TERM ||
           d == FOLD_UTM_CONTENT || d == FOLD_REGION;
}

static void note(json_t *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(json_t *notes, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(notes, json_string(buf));
}

/* Why the rows of breakdown b do not sum to its total, one sentence each,
 * into notes (a JSON array): the output says so rather than leave a reader
 * to wonder. sum = what the rows shown (with "(other)") add up to. */
static void explain(json_t *notes, const struct report_opts *o, size_t b, const struct rows_fold *f,
                    long long sum, long long total, long long min_visitors)
{
    const char *unit = strcmp(breakdowns[b].metric, "count") == 0 ? "events" : breakdowns[b].metric;
    if (f->hidden)
        note(notes, "%zu row%s with fewer than %lld visitors (aggregator.min_visitors) %s counted in (other)",
             f->hidden, f->hidden == 1 ? "" : "s", min_visitors, f->hidden == 1 ? "is" : "are");
    if (f->other_n)
        note(notes, "(other) holds %lld %s of members past aggregator.max_members on a day", f->other_n, unit);
    if (f->cut && !o->other)
        note(notes, "%zu more row%s (%lld %s) past --limit %d %s not shown; --other adds them as (other)",
             f->cut, f->cut == 1 ? "" : "s", f->cut_n, unit, o->limit, f->cut == 1 ? "is" : "are");
    if (breakdowns[b].dim == FOLD_PAGE && f->shown)
        note(notes, "visitors are counted per page: one visitor of two pages counts on both, "
                    "so they do not add up to the total");
    long long listed = sum + (o->other ? 0 : f->cut_n), missing = total - listed;
    if (missing > 0 && skips_empty(breakdowns[b].dim)) {
        if (sum > 0) note(notes, "%lld %s have no %s and are not listed", missing, unit, breakdowns[b].label);
    } else if (missing != 0) {
        note(notes, "the rows add up to %lld %s, the totals say %lld", listed, unit, total);
    }
}

/* Breakdown b as a JSON array of rows, after small-count protection and
 * --limit (rows.h); why its rows do not sum to total, if they do not, goes
 * into notes. */
static json_t *breakdown(struct agg *a, const char *site, const struct report_opts *o, size_t b,
                         const struct countmap *map, long long total, json_t *notes)
{
    size_t n, known = 0;
    struct row *rows = sorted(map, &n);
    json_t *arr = json_array();
    long long *vis = NULL;
    if (!rows || !arr) goto error;
    int pages = breakdowns[b].dim == FOLD_PAGE;
    long long k = a->cfg->aggregator.min_visitors, sum = 0;
    if (pages && !(vis = calloc(n ? n : 1, sizeof *vis))) goto error;
    struct rows_fold f;
    rows_fold_init(&f, k, (size_t)o->limit);
    for (size_t i = 0; i < n; i++) {
        /* Visitors are asked for in rounds, only while rows may still be
         * shown: a breakdown of 50,000 pages costs a few PFCOUNTs, not all. */
        if (pages && i == known && f.shown < f.limit) {
            /* The data's own "(other)" member is never shown by name (and
             * often the largest row): it does not count towards a round,
             * or a second round would be needed for the row it took. */
            size_t need = (f.limit - f.shown) * (k > 0 ? 2 : 1), ask = 0;
            for (; i + ask < n && need > 0; ask++)
                if (!rows_is_other(rows[i + ask].name, rows[i + ask].len)) need--;
            if (page_visitors(a, site, o, rows + i, ask, vis + i) < 0) goto error;
            known = i + ask;
        }
        long long v = pages && i < known ? vis[i] : -1;
        if (rows_fold_next(&f, rows[i].name, rows[i].len, rows[i].n, v) != ROWS_SHOW) continue;
        json_t *r = json_object();
        json_t *name = json_stringn(rows[i].name, rows[i].len);
        if (!r || !name) {
            json_decref(r);
            json_decref(name);
            goto error;
        }
        json_object_set_new(r, breakdowns[b].label, name);
        json_object_set_new(r, breakdowns[b].metric, json_integer(rows[i].n));
        /* A page past aggregator.max_page_visitors on every day of the range
         * has no visitor count: null, not a zero that would look measured. */
        if (pages) json_object_set_new(r, "visitors", v > 0 ? json_integer(v) : json_null());
        json_array_append_new(arr, r);
        sum += rows[i].n;
    }
    long long other = rows_fold_other(&f, o->other);
    if (other > 0) {
        json_t *r = json_object();
        json_object_set_new(r, breakdowns[b].label, json_string(ROWS_OTHER));
        json_object_set_new(r, breakdowns[b].metric, json_integer(other));
        json_array_append_new(arr, r);
        sum += other;
    }
    json_t *why = json_array();
    if (why) explain(why, o, b, &f, sum, total, k);
    if (why && json_array_size(why) > 0) json_object_set_new(notes, breakdowns[b].section, why);
    else json_decref(why);
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

/* ------------------------------------------------------------------------ */
/* Engagement and event properties                                           */
/* ------------------------------------------------------------------------ */

/* Adds time_on_page (s) and scroll_depth (%) to each row of pages, when the
 * range holds engagement events at all (null for a page without any):
 * time on page = engaged time / pageviews of the page, scroll depth = the
 * mean of its engagement events' depths (docs/aggregator.md says why). */
static void engagement_columns(json_t *pages, const struct countmap *x)
{
    if (!x[X_ENGAGEMENTS].n) return;
    size_t i;
    json_t *row;
    json_array_foreach(pages, i, row) {
        const char *page = json_string_value(json_object_get(row, "page"));
        long long views = json_integer_value(json_object_get(row, "pageviews"));
        size_t len = page ? strlen(page) : 0;
        long long n = page && strcmp(page, FOLD_OTHER) != 0 ? map_get(&x[X_ENGAGEMENTS], page, len) : 0;
        json_t *top = json_null(), *sd = json_null();
        if (n > 0) {
            long long ms = map_get(&x[X_ENGAGED], page, len), depth = map_get(&x[X_SCROLL], page, len);
            if (views > 0) top = json_integer(llround((double)ms / 1000.0 / (double)views));
            sd = json_integer(llround((double)depth / (double)n));
        }
        json_object_set_new(row, "time_on_page", top);
        json_object_set_new(row, "scroll_depth", sd);
    }
}

/* The props section: for each property name of the range (the busiest
 * FOLD_MAX_PROP_NAMES; names counted as FOLD_OTHER kept no values), its
 * values by count, under the rows' rules (rows.h: min_visitors, with the
 * count as the bound, then --limit; the rest in "(other)"). A name carried
 * by fewer than min_visitors events is left out whole. One pipeline of
 * HGETALL fs:{S}:d:D:prop:<name> per name and day. */
static json_t *props_section(struct agg *a, const char *site, const struct report_opts *o,
                             const struct countmap *names)
{
    size_t n, ndays = (size_t)(o->to_day - o->from_day + 1);
    struct row *rows = sorted(names, &n);
    json_t *arr = json_array();
    if (!rows || !arr) goto error;
    long long minv = a->cfg->aggregator.min_visitors;
    size_t k = 0;
    for (size_t i = 0; i < n && k < FOLD_MAX_PROP_NAMES; i++)
        if (!rows_is_other(rows[i].name, rows[i].len) && !rows[i].merged &&
            !rows_below_min(minv, -1, rows[i].n))
            rows[k++] = rows[i];
    n = k;
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < ndays; d++) {
            char day[CLOCK_DAY_LEN + 1], key[1200];
            size_t len;
            const char *stored = row_stored(&rows[i], &len);
            clock_format_day(o->from_day + (int64_t)d, day);
            if (memchr(stored, '\0', len) || keys_prop(key, sizeof key, site, day, stored) < 0) key[0] = '\0';
            redisAppendCommand(a->rc, "HGETALL %s", key);
        }
    for (size_t i = 0; i < n; i++) {
        struct countmap values = MAP_INIT;
        for (size_t d = 0; d < ndays; d++) {
            if (merge(a, &values) < 0) {
                map_free(&values);
                goto error;
            }
        }
        size_t nv;
        struct row *v = sorted(&values, &nv);
        if (!v) {
            map_free(&values);
            goto error;
        }
        struct rows_fold rf;
        rows_fold_init(&rf, minv, (size_t)o->limit);
        for (size_t j = 0; j < nv; j++) {
            if (rows_fold_next(&rf, v[j].name, v[j].len, v[j].n, -1) != ROWS_SHOW) continue;
            json_t *r = json_object();
            json_object_set_new(r, "property", json_stringn(rows[i].name, rows[i].len));
            json_object_set_new(r, "value", json_stringn(v[j].name, v[j].len));
            json_object_set_new(r, "count", json_integer(v[j].n));
            json_array_append_new(arr, r);
        }
        long long other = rows_fold_other(&rf, o->other);
        if (other > 0) {
            json_t *r = json_object();
            json_object_set_new(r, "property", json_stringn(rows[i].name, rows[i].len));
            json_object_set_new(r, "value", json_string(ROWS_OTHER));
            json_object_set_new(r, "count", json_integer(other));
            json_array_append_new(arr, r);
        }
        free(v);
        map_free(&values);
    }
    free(rows);
    return arr;
error:
    if (!a->err[0]) snprintf(a->err, sizeof a->err, "out of memory");
    free(rows);
    json_decref(arr);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Consent coverage                                                          */
/* ------------------------------------------------------------------------ */

/* Choices per local day of the range, from the receipts (consents.h): never
 * from refused beacons, of which nothing is written anywhere. */
enum { COVER_ACCEPT, COVER_REJECT, COVER_WITHDRAW, COVER_N };

struct cover {
    struct clock_zone *zone;
    int64_t from_day, ndays;
    long long (*n)[COVER_N];
};

static int cover_count(const struct consent_record *rec, void *arg)
{
    struct cover *c = arg;
    int64_t d = clock_local_days(c->zone, rec->t_ms) - c->from_day;
    if (d < 0 || d >= c->ndays) return 0;
    if (strcmp(rec->action, "grant") == 0) c->n[d][COVER_ACCEPT]++;
    else if (strcmp(rec->action, "deny") == 0) c->n[d][COVER_REJECT]++;
    else if (strcmp(rec->action, "withdraw") == 0) c->n[d][COVER_WITHDRAW]++;
    return 0;                   /* forget: an operator's erasure, not a visitor's choice */
}

/* [{date, accept, reject, withdraw, accept_share}] for each day with a
 * choice; accept_share = accept / (accept + reject) in percent, one decimal,
 * null without either. NULL with a->err set. */
static json_t *consent_coverage(struct agg *a, struct agg_site *s, const struct report_opts *o,
                                json_t *notes)
{
    struct cover c = {.zone = s->zone, .from_day = o->from_day, .ndays = o->to_day - o->from_day + 1};
    json_t *arr = json_array();
    if (!arr || !(c.n = calloc((size_t)c.ndays, sizeof *c.n))) {
        json_decref(arr);
        snprintf(a->err, sizeof a->err, "out of memory");
        return NULL;
    }
    /* A day either side in UTC covers every time zone; cover_count cuts. */
    if (consents_read(a, s->name, (o->from_day - 1) * CLOCK_DAY_MS, (o->to_day + 2) * CLOCK_DAY_MS,
                      cover_count, &c) < 0) {
        free(c.n);
        json_decref(arr);
        return NULL;
    }
    for (int64_t d = 0; d < c.ndays; d++) {
        long long acc = c.n[d][COVER_ACCEPT], rej = c.n[d][COVER_REJECT];
        if (!acc && !rej && !c.n[d][COVER_WITHDRAW]) continue;
        char date[11];
        clock_format_day_dashed(o->from_day + d, date);
        json_t *row = json_object();
        json_object_set_new(row, "date", json_string(date));
        json_object_set_new(row, "accept", json_integer(acc));
        json_object_set_new(row, "reject", json_integer(rej));
        json_object_set_new(row, "withdraw", json_integer(c.n[d][COVER_WITHDRAW]));
        json_object_set_new(row, "accept_share",
                            acc + rej ? json_real(round(1000.0 * (double)acc / (double)(acc + rej)) / 10.0)
                                      : json_null());
        json_array_append_new(arr, row);
    }
    free(c.n);
    json_t *why = json_array();
    note(why, "choices recorded on the consent banner, from the receipts; accept_share is "
              "accept / (accept + reject) in %%; a withdrawal is followed by a refusal, "
              "counted under reject too");
    json_object_set_new(notes, "consent_coverage", why);
    return arr;
}

/* Days of reads in flight (report_build). */
enum { REPORT_WINDOW = 2 };

/* A day's reads: totals, visitors (uvkey), each breakdown, each extra. */
static void append_day(struct agg *a, const char *site, int64_t daynum, const char *uvkey)
{
    char day[CLOCK_DAY_LEN + 1], key[1200];
    clock_format_day(daynum, day);
    keys_day(key, sizeof key, site, day, fold_dim_names[FOLD_TOTALS]);
    redisAppendCommand(a->rc, "HGETALL %s", key);
    redisAppendCommand(a->rc, "PFCOUNT %s", uvkey);
    for (size_t b = 0; b < NBREAK; b++) {
        keys_day(key, sizeof key, site, day, fold_dim_names[breakdowns[b].dim]);
        redisAppendCommand(a->rc, "HGETALL %s", key);
    }
    for (size_t x = 0; x < NEXTRA; x++) {
        keys_day(key, sizeof key, site, day, fold_dim_names[extras[x]]);
        redisAppendCommand(a->rc, "HGETALL %s", key);
    }
}

json_t *report_build(struct agg *a, const struct report_opts *o)
{
    struct agg_site *s = agg_site(a, o->site);
    size_t ndays = (size_t)(o->to_day - o->from_day + 1);
    size_t ncmd = ndays * PER_DAY + 1;
    redisReply **rep = calloc(ncmd, sizeof *rep);
    struct countmap maps[NBREAK + NEXTRA];
    for (size_t b = 0; b < NBREAK + NEXTRA; b++) maps[b] = MAP_INIT;
    json_t *report = NULL;
    const char **uv = NULL;     /* PFCOUNT and each day's visitor key */
    char *uvkeys = NULL;
    a->err[0] = '\0';
    if (!s || !rep) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto error;
    }
    if (!a->rc && agg_connect(a) < 0) goto error;

    uv = calloc(ndays + 1, sizeof *uv);
    uvkeys = malloc(ndays * 600);
    if (!uv || !uvkeys) {
        snprintf(a->err, sizeof a->err, "out of memory");
        goto error;
    }
    uv[0] = "PFCOUNT";
    for (size_t d = 0; d < ndays; d++) {
        char day[CLOCK_DAY_LEN + 1];
        clock_format_day(o->from_day + (int64_t)d, day);
        keys_uv(uvkeys + d * 600, 600, s->name, day, NULL);
        uv[d + 1] = uvkeys + d * 600;
    }
    /* The days go out REPORT_WINDOW at a time ahead of the replies read,
     * the range's visitors after the last: Redis answers a pipeline it has
     * read whole only when it has run all of it, so a month sent at once
     * would leave the reader idle for Redis's whole share of the time (~50
     * ms here) and Redis idle for the reader's. Totals and visitor counts
     * are kept; a breakdown's reply is merged field by field as it is read
     * (agg_hash_each), never held. */
    size_t sent = 0;
    for (size_t i = 0; i < ncmd; i++) {
        size_t d = i / PER_DAY, k = i % PER_DAY;
        for (; sent < ndays && sent < d + REPORT_WINDOW; sent++) {
            append_day(a, s->name, o->from_day + (int64_t)sent, uv[sent + 1]);
            if (sent + 1 == ndays) redisAppendCommandArgv(a->rc, (int)ndays + 1, uv, NULL);
        }
        if (i < ndays * PER_DAY && k >= 2) {
            if (merge(a, &maps[k - 2]) < 0) goto error;
            continue;
        }
        void *r = NULL;
        if (redisGetReply(a->rc, &r) != REDIS_OK) {
            snprintf(a->err, sizeof a->err, "redis: %s", a->rc->errstr);
            agg_disconnect(a);
            goto error;
        }
        rep[i] = r;
    }
    free(uv);
    free(uvkeys);
    uv = NULL;
    uvkeys = NULL;

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
    json_t *notes = json_object();
    for (size_t b = 0; b < NBREAK; b++) {
        const char *m = breakdowns[b].metric;
        long long total = strcmp(m, "pageviews") == 0 ? pv : strcmp(m, "visits") == 0 ? visits : events;
        json_t *arr = breakdown(a, s->name, o, b, &maps[b], total, notes);
        if (!arr) {
            json_decref(series);
            json_decref(notes);
            goto error;
        }
        json_object_set_new(report, breakdowns[b].section, arr);
    }
    engagement_columns(json_object_get(report, "pages"), &maps[NBREAK]);
    json_t *props = props_section(a, s->name, o, &maps[NBREAK + X_PROPS]);
    if (!props) {
        json_decref(series);
        goto error;
    }
    json_object_set_new(report, "props", props);
    json_object_set_new(report, "timeseries", series);
    json_t *coverage = consent_coverage(a, s, o, notes);
    if (!coverage) {
        json_decref(notes);
        goto error;
    }
    json_object_set_new(report, "consent_coverage", coverage);
    if (ndays > 1) {
        json_t *why = json_array();
        note(why, "visitors are counted per day: one visitor of two days counts on both, "
                  "so the days do not add up to the total");
        json_object_set_new(notes, "timeseries", why);
    }
    /* Not an array: the renderers do not take it for a breakdown. */
    json_object_set_new(report, "notes", notes);
    for (size_t i = 0; i < ncmd; i++) freeReplyObject(rep[i]);
    free(rep);
    for (size_t b = 0; b < NBREAK + NEXTRA; b++) map_free(&maps[b]);
    return report;

error:
    free(uv);
    free(uvkeys);
    /* replies may still be queued behind a failure: start afresh */
    agg_disconnect(a);
    for (size_t i = 0; rep && i < ncmd; i++)
        if (rep[i]) freeReplyObject(rep[i]);
    free(rep);
    for (size_t b = 0; b < NBREAK + NEXTRA; b++) map_free(&maps[b]);
    json_decref(report);
    return NULL;
}
