/* query.c -- Plausible's Stats API v2 over the aggregates (see query.h).
 *
 * Sections: the vocabulary (metrics, dimensions, what each data source
 * holds), parsing and validation, date ranges, reading (one pipeline), rows
 * (merge, filter, top-N), the response.
 *
 * Every query is answered from exactly one data source, chosen at parse time:
 *
 *   TOTALS    fs:{S}:d:DAY:totals (+ uv):        no dimension, or time:day
 *   HOURS     fs:{S}:h:DAYHH:                    time:hour
 *   MEMBERS   fs:{S}:d:DAY:<dim>:                a breakdown dimension
 *   FILTERED  the filter's dimension's hashes,   no dimension or time:day with
 *             matching members summed            a filter on one dimension
 *   CROSS     fs:{S}:d:DAY:bypage:<dim>,         a visit dimension filtered by
 *             member "entry\x1fvalue"            visit:entry_page
 *
 * and each source holds a fixed set of metrics (struct source_def). A query
 * asking a source for anything else is refused with the reason.
 */
#include "query.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "clock.h"
#include "countmap.h"
#include "fold.h"
#include "keys.h"
#include "report.h"
#include "rows.h"

/* ------------------------------------------------------------------------ */
/* Vocabulary                                                                */
/* ------------------------------------------------------------------------ */

enum metric { M_VISITORS, M_VISITS, M_PAGEVIEWS, M_BOUNCE_RATE, M_VISIT_DURATION,
              M_VIEWS_PER_VISIT, M_EVENTS, M_TIME_ON_PAGE, M_SCROLL_DEPTH, M_N };
static const char *const metric_names[M_N] = {
    "visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "views_per_visit", "events",
    "time_on_page", "scroll_depth",
};
#define BIT(m) (1u << (m))
/* What the site totals hold: all but the per-page engagement metrics. */
#define ALL_METRICS (BIT(M_TIME_ON_PAGE) - 1)
#define ENGAGEMENT_METRICS (BIT(M_TIME_ON_PAGE) | BIT(M_SCROLL_DEPTH))

enum dkind { D_DAY, D_HOUR, D_MEMBER };

struct dim_def {
    const char *name;
    enum dkind kind;
    enum fold_dim fold;         /* D_MEMBER: its day hash */
    enum metric count;          /* D_MEMBER: what a member's counter counts */
    int cross;                  /* held per entry page too (bypage) */
};

static const struct dim_def dims[] = {
    {"time:day", D_DAY, FOLD_TOTALS, M_N, 0},
    {"time:hour", D_HOUR, FOLD_TOTALS, M_N, 0},
    {"event:page", D_MEMBER, FOLD_PAGE, M_PAGEVIEWS, 0},
    {"event:name", D_MEMBER, FOLD_EVENT, M_EVENTS, 0},
    {"visit:entry_page", D_MEMBER, FOLD_ENTRY, M_VISITS, 0},
    {"visit:exit_page", D_MEMBER, FOLD_EXIT, M_VISITS, 0},
    {"visit:source", D_MEMBER, FOLD_SOURCE, M_VISITS, 1},
    {"visit:utm_source", D_MEMBER, FOLD_UTM_SOURCE, M_VISITS, 1},
    {"visit:utm_medium", D_MEMBER, FOLD_UTM_MEDIUM, M_VISITS, 1},
    {"visit:utm_campaign", D_MEMBER, FOLD_UTM_CAMPAIGN, M_VISITS, 1},
    {"visit:utm_term", D_MEMBER, FOLD_UTM_TERM, M_VISITS, 1},
    {"visit:utm_content", D_MEMBER, FOLD_UTM_CONTENT, M_VISITS, 1},
    {"visit:country", D_MEMBER, FOLD_COUNTRY, M_VISITS, 1},
    {"visit:region", D_MEMBER, FOLD_REGION, M_VISITS, 1},
    {"visit:browser", D_MEMBER, FOLD_BROWSER, M_VISITS, 1},
    {"visit:os", D_MEMBER, FOLD_OS, M_VISITS, 1},
    {"visit:device", D_MEMBER, FOLD_DEVICE, M_VISITS, 1},
    {"event:props:", D_MEMBER, FOLD_PROPS, M_EVENTS, 0},    /* + the property's name */
};
#define NDIMS (sizeof dims / sizeof dims[0])
#define DIM_PAGE 2
#define DIM_ENTRY 4
#define DIM_PROPS ((int)NDIMS - 1)
#define PROPS_PREFIX_LEN 12             /* "event:props:" */
#define MAX_PROP_NAME 200

enum source { SRC_TOTALS, SRC_HOURS, SRC_MEMBERS, SRC_FILTERED, SRC_CROSS };

/* What a member counter holds, and the visitors of a page where a
 * HyperLogLog exists. */
static unsigned member_metrics(int d)
{
    return BIT(dims[d].count) | (d == DIM_PAGE ? BIT(M_VISITORS) | ENGAGEMENT_METRICS : 0);
}

enum op { OP_IS, OP_IS_NOT, OP_CONTAINS, OP_CONTAINS_NOT };
static const char *const op_names[] = {"is", "is_not", "contains", "contains_not"};

#define MAX_METRICS 16
#define MAX_FILTERS 8
#define MAX_VALUES 100
#define MAX_VALUE_LEN 1024

struct filter {
    enum op op;
    int dim;
    char **vals;
    size_t *lens;
    size_t n;
};

enum range { R_DAY, R_7D, R_30D, R_MONTH, R_6MO, R_12MO, R_YEAR, R_ALL, R_CUSTOM };
static const char *const range_names[] = {"day", "7d", "30d", "month", "6mo", "12mo", "year", "all"};

struct order {
    int by_dim;                 /* else a metric */
    int metric;
    int desc;
};

struct query {
    char *site;
    int metrics[MAX_METRICS];
    size_t nmetrics;
    int dim;                    /* -1: none */
    char *dim_name;             /* as asked ("event:props:plan"); NULL: none */
    struct filter filters[MAX_FILTERS];
    size_t nfilters;
    int fdim;                   /* the dimension filtered other than dim; -1 none */
    enum source src;
    enum range range;
    int64_t from_day, to_day;   /* custom, then resolved */
    struct clock_zone *zone;    /* borrowed, set by query_resolve */
    struct order order[4];
    size_t norder;
    size_t limit, offset;
    int total_rows, time_labels;
    json_t *filters_echo, *include_echo;
};

/* ------------------------------------------------------------------------ */
/* Parsing and validation                                                    */
/* ------------------------------------------------------------------------ */

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); goto error; } while (0)

static int find_name(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0) return (int)i;
    return -1;
}

static int find_dim(const char *s)
{
    size_t n = strlen(s);
    if (n > PROPS_PREFIX_LEN && n <= PROPS_PREFIX_LEN + MAX_PROP_NAME &&
        memcmp(s, dims[DIM_PROPS].name, PROPS_PREFIX_LEN) == 0)
        return DIM_PROPS;
    for (size_t i = 0; i < NDIMS - 1; i++)
        if (strcmp(dims[i].name, s) == 0) return (int)i;
    return -1;
}

/* Why a dimension name we do not hold is refused. */
static void unknown_dim(const char *s, char *err, size_t errlen)
{
    if (strncmp(s, "event:props:", 12) == 0)
        snprintf(err, errlen, "Invalid dimension `%.220s`: a property name of 1 to %d bytes", s,
                 MAX_PROP_NAME);
    else
        snprintf(err, errlen, "Invalid dimension `%.200s`: supported are time:day, time:hour, "
                 "event:page, event:name, visit:entry_page, visit:exit_page, visit:source, "
                 "visit:utm_*, visit:country, visit:region, visit:browser, visit:os, visit:device", s);
}

static int parse_metrics(struct query *q, json_t *v, char *err, size_t errlen)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        BAD("`metrics` must be a non-empty list");
    if (json_array_size(v) > MAX_METRICS) BAD("too many metrics");
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        const char *s = json_string_value(m);
        if (!s) BAD("`metrics` must be a list of strings");
        int k = find_name(metric_names, M_N, s);
        if (k < 0) {
            if (!strcmp(s, "percentage") ||
                !strcmp(s, "conversion_rate") || !strcmp(s, "group_conversion_rate"))
                BAD("Metric `%.100s` is not supported: the aggregates do not hold it", s);
            BAD("Unknown metric `%.100s`", s);
        }
        for (size_t j = 0; j < q->nmetrics; j++)
            if (q->metrics[j] == k) BAD("Metrics cannot be queried multiple times: `%s`", s);
        q->metrics[q->nmetrics++] = k;
    }
    return 0;
error:
    return -1;
}

static int parse_dimensions(struct query *q, json_t *v, char *err, size_t errlen)
{
    q->dim = -1;
    if (!v) return 0;
    if (!json_is_array(v)) BAD("`dimensions` must be a list");
    if (json_array_size(v) > 1)
        BAD("Querying more than one dimension at a time is not supported: the aggregates hold "
            "each breakdown on its own");
    if (json_array_size(v) == 0) return 0;
    const char *s = json_string_value(json_array_get(v, 0));
    if (!s) BAD("`dimensions` must be a list of strings");
    if ((q->dim = find_dim(s)) < 0) {
        unknown_dim(s, err, errlen);
        return -1;
    }
    if (!(q->dim_name = strdup(s))) BAD("out of memory");
    return 0;
error:
    return -1;
}

static int parse_filter(const struct query *q, struct filter *f, json_t *v, char *err, size_t errlen)
{
    const char *op = json_string_value(json_array_get(v, 0));
    if (op && (!strcmp(op, "and") || !strcmp(op, "or") || !strcmp(op, "not")))
        BAD("Filter operator `%s` is not supported: only a list of simple filters (combined with and)", op);
    if (!json_is_array(v) || json_array_size(v) < 3)
        BAD("Invalid filter: each filter is [operator, dimension, [values]]");
    const char *dim = json_string_value(json_array_get(v, 1));
    json_t *vals = json_array_get(v, 2);
    if (!op || !dim) BAD("Invalid filter: operator and dimension must be strings");
    int k = find_name(op_names, sizeof op_names / sizeof op_names[0], op);
    if (k < 0) BAD("Filter operator `%.50s` is not supported (is, is_not, contains, contains_not)", op);
    if (json_array_size(v) > 3) BAD("Filter modifiers are not supported");
    f->op = (enum op)k;
    if ((f->dim = find_dim(dim)) < 0) {
        unknown_dim(dim, err, errlen);
        return -1;
    }
    if (dims[f->dim].kind != D_MEMBER) BAD("Filtering by `%s` is not supported: use date_range", dim);
    /* a property's values are held per property only: filter the rows of its own breakdown */
    if (f->dim == DIM_PROPS && (q->dim != DIM_PROPS || strcmp(q->dim_name, dim) != 0))
        BAD("Filtering by `%.220s` is supported with dimension `%.220s` only: the aggregates hold "
            "property values on their own", dim, dim);
    if (!json_is_array(vals) || json_array_size(vals) == 0 || json_array_size(vals) > MAX_VALUES)
        BAD("Invalid filter: values must be a list of 1 to %d strings", MAX_VALUES);
    f->n = json_array_size(vals);
    f->vals = calloc(f->n, sizeof *f->vals);
    f->lens = calloc(f->n, sizeof *f->lens);
    if (!f->vals || !f->lens) BAD("out of memory");
    for (size_t i = 0; i < f->n; i++) {
        json_t *s = json_array_get(vals, i);
        if (!json_is_string(s) || json_string_length(s) > MAX_VALUE_LEN)
            BAD("Invalid filter: values must be strings of at most %d bytes", MAX_VALUE_LEN);
        f->lens[i] = json_string_length(s);
        if (!(f->vals[i] = malloc(f->lens[i] + 1))) BAD("out of memory");
        memcpy(f->vals[i], json_string_value(s), f->lens[i] + 1);
    }
    return 0;
error:
    return -1;
}

static int parse_filters(struct query *q, json_t *v, char *err, size_t errlen)
{
    if (!v) return 0;
    if (!json_is_array(v)) BAD("`filters` must be a list");
    if (json_array_size(v) > MAX_FILTERS) BAD("at most %d filters", MAX_FILTERS);
    size_t i;
    json_t *f;
    json_array_foreach(v, i, f) {
        if (parse_filter(q, &q->filters[q->nfilters], f, err, errlen) < 0) {
            q->nfilters++;          /* freed with the query */
            return -1;
        }
        q->nfilters++;
    }
    return 0;
error:
    return -1;
}

static int parse_date_range(struct query *q, json_t *v, char *err, size_t errlen)
{
    if (json_is_string(v)) {
        int k = find_name(range_names, sizeof range_names / sizeof range_names[0], json_string_value(v));
        if (k < 0) BAD("Invalid date_range `%.50s` (day, 7d, 30d, month, 6mo, 12mo, year, all, "
                       "or [\"YYYY-MM-DD\", \"YYYY-MM-DD\"])", json_string_value(v));
        q->range = (enum range)k;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) != 2) BAD("`date_range` is required: a name or two dates");
    const char *a = json_string_value(json_array_get(v, 0));
    const char *b = json_string_value(json_array_get(v, 1));
    if (!a || !b || strlen(a) != 10 || strlen(b) != 10 || clock_parse_day(a, &q->from_day) < 0 ||
        clock_parse_day(b, &q->to_day) < 0)
        BAD("Invalid date_range: dates must be YYYY-MM-DD (the aggregates count whole days and "
            "hours; date-times are not supported)");
    if (q->from_day > q->to_day) BAD("Invalid date_range: the first date is after the second");
    q->range = R_CUSTOM;
    return 0;
error:
    return -1;
}

static int parse_order(struct query *q, json_t *v, char *err, size_t errlen)
{
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) > 4) BAD("`order_by` must be a list of [name, direction]");
    size_t i;
    json_t *o;
    json_array_foreach(v, i, o) {
        const char *name = json_string_value(json_array_get(o, 0));
        const char *dir = json_string_value(json_array_get(o, 1));
        if (!json_is_array(o) || json_array_size(o) != 2 || !name || !dir ||
            (strcmp(dir, "asc") && strcmp(dir, "desc")))
            BAD("Invalid order_by entry: [name, \"asc\" | \"desc\"]");
        struct order *ord = &q->order[q->norder++];
        ord->desc = !strcmp(dir, "desc");
        if (q->dim >= 0 && !strcmp(name, q->dim_name)) {
            ord->by_dim = 1;
            continue;
        }
        int m = find_name(metric_names, M_N, name);
        size_t j = 0;
        while (m >= 0 && j < q->nmetrics && q->metrics[j] != m) j++;
        if (m < 0 || j == q->nmetrics)
            BAD("Invalid order_by entry: `%.100s` is not a queried metric or dimension", name);
        ord->metric = m;
    }
    return 0;
error:
    return -1;
}

static int parse_pagination(struct query *q, json_t *v, char *err, size_t errlen)
{
    q->limit = QUERY_MAX_LIMIT;
    q->offset = 0;
    if (!v) return 0;
    if (!json_is_object(v)) BAD("`pagination` must be an object {limit, offset}");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        json_int_t n = json_integer_value(x);
        if (!json_is_integer(x)) BAD("pagination.%.20s must be an integer", k);
        if (!strcmp(k, "limit")) {
            if (n < 1 || n > QUERY_MAX_LIMIT) BAD("pagination.limit must be 1..%d", QUERY_MAX_LIMIT);
            q->limit = (size_t)n;
        } else if (!strcmp(k, "offset")) {
            if (n < 0 || n > QUERY_MAX_OFFSET) BAD("pagination.offset must be 0..%d", QUERY_MAX_OFFSET);
            q->offset = (size_t)n;
        } else {
            BAD("Unknown pagination key `%.50s`", k);
        }
    }
    return 0;
error:
    return -1;
}

static int parse_include(struct query *q, json_t *v, char *err, size_t errlen)
{
    if (!v) return 0;
    if (!json_is_object(v)) BAD("`include` must be an object");
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (!json_is_boolean(x)) BAD("include.%.50s must be true or false", k);
        if (!strcmp(k, "total_rows")) q->total_rows = json_is_true(x);
        else if (!strcmp(k, "time_labels")) q->time_labels = json_is_true(x);
        else if (!strcmp(k, "imports")) continue;   /* nothing is ever imported */
        else BAD("include.%.50s is not supported", k);
    }
    if (q->time_labels && (q->dim < 0 || dims[q->dim].kind == D_MEMBER))
        BAD("Invalid include.time_labels: requires a time dimension");
    return 0;
error:
    return -1;
}

/* The source that holds the query, or a 400 saying why none does. */
static int plan(struct query *q, char *err, size_t errlen)
{
    q->fdim = -1;
    for (size_t i = 0; i < q->nfilters; i++) {
        int d = q->filters[i].dim;
        if (d == q->dim) continue;
        if (q->fdim >= 0 && q->fdim != d)
            BAD("Filtering by more than one dimension (`%s` and `%s`) is not supported: the "
                "aggregates hold no such cross breakdown", dims[q->fdim].name, dims[d].name);
        q->fdim = d;
    }
    unsigned held;
    for (size_t i = 0; q->dim >= 0 && dims[q->dim].kind != D_MEMBER && i < q->norder; i++)
        if (!q->order[i].by_dim) BAD("Invalid order_by: a time series is ordered by time only");
    const char *with = q->dim >= 0 ? q->dim_name : NULL;
    if (q->fdim >= 0) {
        if (q->dim >= 0 && dims[q->dim].kind == D_MEMBER) {
            if (q->fdim != DIM_ENTRY || !dims[q->dim].cross)
                BAD("Filtering by `%s` with dimension `%s` is not supported: the aggregates hold "
                    "%s per entry page only (filter by visit:entry_page)", dims[q->fdim].name,
                    dims[q->dim].name, dims[q->dim].cross ? dims[q->dim].name : "visit dimensions");
            q->src = SRC_CROSS;
            held = BIT(M_VISITS);
        } else if (q->dim >= 0 && dims[q->dim].kind == D_HOUR) {
            BAD("Filtering by `%s` with dimension `time:hour` is not supported: the aggregates "
                "hold breakdowns per day", dims[q->fdim].name);
        } else {
            q->src = SRC_FILTERED;
            held = BIT(dims[q->fdim].count);
            if (q->fdim == DIM_PAGE) {
                /* visitors of one list of pages: the union of their HyperLogLogs */
                size_t n = 0, only_is = 1;
                for (size_t i = 0; i < q->nfilters; i++) {
                    n += q->filters[i].dim == DIM_PAGE;
                    if (q->filters[i].dim == DIM_PAGE && q->filters[i].op != OP_IS) only_is = 0;
                }
                if (only_is && n == 1) held |= BIT(M_VISITORS);
            }
        }
        for (size_t i = 0; i < q->nmetrics; i++)
            if (!(held & BIT(q->metrics[i])))
                BAD("Metric `%s` cannot be queried with a filter on `%s`: the aggregates count "
                    "%s per %s", metric_names[q->metrics[i]], dims[q->fdim].name,
                    metric_names[dims[q->fdim].count], dims[q->fdim].name + 6);
        return 0;
    }
    if (q->dim < 0 || dims[q->dim].kind == D_DAY) {
        q->src = SRC_TOTALS;
        held = ALL_METRICS;
    } else if (dims[q->dim].kind == D_HOUR) {
        q->src = SRC_HOURS;
        held = BIT(M_PAGEVIEWS) | BIT(M_VISITS) | BIT(M_EVENTS);
    } else {
        q->src = SRC_MEMBERS;
        held = member_metrics(q->dim);
    }
    for (size_t i = 0; !with && i < q->nmetrics; i++)
        if (!(held & BIT(q->metrics[i])))
            BAD("Metric `%s` can only be queried with dimension `event:page`: the aggregates hold "
                "engagement per page", metric_names[q->metrics[i]]);
    for (size_t i = 0; i < q->nmetrics; i++)
        if (!(held & BIT(q->metrics[i])))
            BAD("Metric `%s` cannot be queried with dimension `%s`: the aggregates count %s",
                metric_names[q->metrics[i]], with,
                q->src == SRC_HOURS ? "pageviews, visits and events per hour"
                : q->dim == DIM_PAGE ? "pageviews, visitors, time on page and scroll depth per page"
                : q->dim == DIM_PROPS ? "events per property value"
                : dims[q->dim].count == M_EVENTS ? "events per event name" : "visits per value");
    for (size_t i = 0; i < q->norder; i++)
        if (q->dim == DIM_PAGE && !q->order[i].by_dim &&
            (q->order[i].metric == M_VISITORS || (BIT(q->order[i].metric) & ENGAGEMENT_METRICS)))
            BAD("Invalid order_by: event:page cannot be ordered by %s (read for the rows shown "
                "only); order by pageviews", metric_names[q->order[i].metric]);
    return 0;
error:
    return -1;
}

struct query *query_parse(const char *buf, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    struct query *q = calloc(1, sizeof *q);
    if (!q) BAD("out of memory");
    q->dim = q->fdim = -1;
    if (!root) BAD("Invalid JSON: %.100s", jerr.text);
    if (!json_is_object(root)) BAD("The query must be a JSON object");
    const char *k;
    json_t *x;
    json_object_foreach(root, k, x) {
        static const char *const known[] = {"site_id", "metrics", "date_range", "dimensions",
                                            "filters", "order_by", "pagination", "include"};
        if (find_name(known, sizeof known / sizeof known[0], k) < 0) BAD("Unknown key `%.50s`", k);
    }
    const char *site = json_string_value(json_object_get(root, "site_id"));
    if (!site || !*site || strlen(site) > 253) BAD("`site_id` is required");
    if (!(q->site = strdup(site))) BAD("out of memory");
    if (!json_object_get(root, "date_range")) BAD("`date_range` is required");
    if (parse_metrics(q, json_object_get(root, "metrics"), err, errlen) < 0 ||
        parse_dimensions(q, json_object_get(root, "dimensions"), err, errlen) < 0 ||
        parse_filters(q, json_object_get(root, "filters"), err, errlen) < 0 ||
        parse_date_range(q, json_object_get(root, "date_range"), err, errlen) < 0 ||
        parse_order(q, json_object_get(root, "order_by"), err, errlen) < 0 ||
        parse_pagination(q, json_object_get(root, "pagination"), err, errlen) < 0 ||
        parse_include(q, json_object_get(root, "include"), err, errlen) < 0 ||
        plan(q, err, errlen) < 0)
        goto error;
    if (q->norder == 0) {
        /* Plausible's default: time ascending, else the first metric descending
         * (event:page: pageviews, the metric every page holds). */
        if (q->dim >= 0 && dims[q->dim].kind != D_MEMBER) q->order[q->norder++] = (struct order){1, 0, 0};
        else if (q->src == SRC_MEMBERS || q->src == SRC_CROSS)
            q->order[q->norder++] = (struct order){0, q->dim == DIM_PAGE ? M_PAGEVIEWS : q->metrics[0], 1};
    }
    q->filters_echo = json_incref(json_object_get(root, "filters"));
    q->include_echo = json_incref(json_object_get(root, "include"));
    json_decref(root);
    return q;
error:
    json_decref(root);
    query_free(q);
    return NULL;
}

void query_free(struct query *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->nfilters; i++) {
        for (size_t j = 0; q->filters[i].vals && j < q->filters[i].n; j++) free(q->filters[i].vals[j]);
        free(q->filters[i].vals);
        free(q->filters[i].lens);
    }
    free(q->dim_name);
    json_decref(q->filters_echo);
    json_decref(q->include_echo);
    free(q->site);
    free(q);
}

const char *query_site(const struct query *q)
{
    return q->site;
}

/* ------------------------------------------------------------------------ */
/* Date ranges                                                               */
/* ------------------------------------------------------------------------ */

static int64_t month_start(int64_t day, int back)
{
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(day, &y, &m, &d);
    int64_t idx = y * 12 + (m - 1) - back;
    return clock_days_from_civil(idx / 12, (unsigned)(idx % 12) + 1, 1);
}

int query_resolve(struct query *q, struct clock_zone *zone, int64_t now_ms, long retention_days,
                  char *err, size_t errlen)
{
    int64_t today = clock_local_days(zone, now_ms);
    int64_t y;
    unsigned m, d;
    q->zone = zone;
    /* The periods the report knows mean the same here (report_period);
     * every range ends today. */
    switch (q->range) {
    case R_DAY: case R_7D: case R_30D: case R_MONTH: case R_12MO:
        report_period(range_names[q->range], today, &q->from_day, &q->to_day);
        break;
    case R_6MO: q->from_day = month_start(today, 5); q->to_day = today; break;
    case R_YEAR:
        clock_civil_from_days(today, &y, &m, &d);
        q->from_day = clock_days_from_civil(y, 1, 1);
        q->to_day = today;
        break;
    case R_ALL:
        q->from_day = today - (retention_days < QUERY_MAX_DAYS ? retention_days : QUERY_MAX_DAYS - 1);
        q->to_day = today;
        break;
    case R_CUSTOM: break;
    }
    int64_t n = q->to_day - q->from_day + 1;
    if (n > QUERY_MAX_DAYS) BAD("Invalid date_range: longer than ten years");
    if (q->src == SRC_HOURS && n > QUERY_MAX_HOUR_DAYS)
        BAD("Invalid date_range: time:hour covers at most %d days", QUERY_MAX_HOUR_DAYS);
    /* visitors of filtered pages: one HyperLogLog key per page and day */
    for (size_t i = 0; q->src == SRC_FILTERED && q->fdim == DIM_PAGE && i < q->nmetrics; i++)
        for (size_t j = 0; q->metrics[i] == M_VISITORS && j < q->nfilters; j++)
            if (q->filters[j].dim == DIM_PAGE && (int64_t)q->filters[j].n * n > QUERY_MAX_PAGE_DAYS)
                BAD("Invalid query: visitors of %zu pages over %lld days is more than %d page-days",
                    q->filters[j].n, (long long)n, QUERY_MAX_PAGE_DAYS);
    return 0;
error:
    return -1;
}

void query_days(const struct query *q, int64_t *from_day, int64_t *to_day)
{
    *from_day = q->from_day;
    *to_day = q->to_day;
}

/* "YYYY-MM-DDTHH:MM:SS+HH:MM" of local time sec_of_day on day in q's zone. */
static void local_datetime(struct clock_zone *z, int64_t day, int sec_of_day, char out[40])
{
    int64_t local_ms = (day * CLOCK_DAY_S + sec_of_day) * 1000;
    long off = clock_zone_offset(z, local_ms);
    off = clock_zone_offset(z, local_ms - (int64_t)off * 1000);
    char date[11];
    clock_format_day_dashed(day, date);
    long a = off < 0 ? -off : off;
    snprintf(out, 40, "%sT%02d:%02d:%02d%c%02ld:%02ld", date, sec_of_day / 3600, sec_of_day / 60 % 60,
             sec_of_day % 60, off < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

/* ------------------------------------------------------------------------ */
/* Rows: a map of member -> counts, filters, top-N                           */
/* ------------------------------------------------------------------------ */

struct row {
    COUNTMAP_KEY;               /* the member's name, owned by the map */
    long long n;                /* the source's count */
    long long visitors;         /* event:page only; -1: not held */
    int visitors_known;         /* visitors asked for already */
    long long engaged_ms, scroll_sum, engagements;  /* event:page, rows shown */
};

static struct row *map_get(struct countmap *m, const char *name, size_t len)
{
    int added;
    struct row *row = countmap_get(m, name, len, &added);
    if (row && added) row->visitors = -1;
    return row;
}

static int contains(const char *s, size_t n, const char *needle, size_t k)
{
    return k == 0 || memmem(s, n, needle, k) != NULL;
}

/* Does value pass every filter on dimension d? */
static int passes(const struct query *q, int d, const char *s, size_t n)
{
    for (size_t i = 0; i < q->nfilters; i++) {
        const struct filter *f = &q->filters[i];
        if (f->dim != d) continue;
        int any = 0;
        for (size_t j = 0; j < f->n && !any; j++) {
            if (f->op == OP_IS || f->op == OP_IS_NOT) any = f->lens[j] == n && memcmp(f->vals[j], s, n) == 0;
            else any = contains(s, n, f->vals[j], f->lens[j]);
        }
        if ((f->op == OP_IS || f->op == OP_CONTAINS) != any) return 0;
    }
    return 1;
}

/* Row order: the query's order_by, then the name for stable output. */
static int row_before(const struct query *q, const struct row *a, const struct row *b)
{
    for (size_t i = 0; i < q->norder; i++) {
        const struct order *o = &q->order[i];
        int c;
        if (o->by_dim) {
            size_t n = a->len < b->len ? a->len : b->len;
            c = memcmp(a->name, b->name, n);
            if (!c) c = a->len < b->len ? -1 : a->len > b->len;
        } else {
            c = a->n < b->n ? -1 : a->n > b->n;
        }
        if (c) return o->desc ? c > 0 : c < 0;
    }
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->name, b->name, n);
    return c ? c < 0 : a->len < b->len;
}

/* A heap of the best k rows so far, worst on top: O(n log k) for top-k. */
struct heap {
    const struct row **r;
    size_t n, k;
};

static void heap_sift(const struct query *q, struct heap *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < h->n && row_before(q, h->r[w], h->r[l])) w = l;
        if (l + 1 < h->n && row_before(q, h->r[w], h->r[l + 1])) w = l + 1;
        if (w == i) return;
        const struct row *t = h->r[i];
        h->r[i] = h->r[w];
        h->r[w] = t;
        i = w;
    }
}

static void heap_offer(const struct query *q, struct heap *h, const struct row *r)
{
    if (h->n < h->k) {
        size_t i = h->n++;
        h->r[i] = r;
        while (i && row_before(q, h->r[(i - 1) / 2], h->r[i])) {
            const struct row *t = h->r[i];
            h->r[i] = h->r[(i - 1) / 2];
            h->r[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
    } else if (h->k && row_before(q, r, h->r[0])) {
        h->r[0] = r;
        heap_sift(q, h, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

#define KEYLEN 1200

struct day_totals {
    long long pageviews, visits, bounces, duration_ms, events, visitors;
    int visitors_null;
    long long engaged_ms, scroll_sum, engagements;
};

static const char *const total_fields[] = {"pageviews", "visits", "bounces", "duration_ms", "events"};

static long long to_ll(const redisReply *r)
{
    if (!r) return 0;
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

struct run {
    struct agg *a;
    struct query *q;
    size_t ndays;
    int status;
    char *err;
    size_t errlen;
};

static int fail_redis(struct run *r)
{
    snprintf(r->err, r->errlen, "statistics store unavailable: %s", r->a->err[0] ? r->a->err : "redis");
    r->status = 503;
    return -1;
}

static int oom(struct run *r)
{
    snprintf(r->err, r->errlen, "out of memory");
    r->status = 500;
    return -1;
}

static int append(struct run *r, int argc, const char **argv)
{
    if (agg_append_argv(r->a, argc, argv, NULL) < 0) return fail_redis(r);
    return 0;
}

static redisReply *reply(struct run *r)
{
    redisReply *rep = agg_get_reply(r->a);
    if (!rep) fail_redis(r);
    return rep;
}

/* The next reply as an integer into *out (a PFCOUNT's); -1 as reply(). */
static int reply_ll(struct run *r, long long *out)
{
    redisReply *rep = reply(r);
    if (!rep) return -1;
    *out = to_ll(rep);
    freeReplyObject(rep);
    return 0;
}

static void day_of(const struct run *r, size_t d, char day[CLOCK_DAY_LEN + 1])
{
    clock_format_day(r->q->from_day + (int64_t)d, day);
}

/* The day hash of a member dimension (or its per-entry-page cross breakdown). */
static int member_key(const struct run *r, char *key, const char *day, int d, int cross)
{
    if (d == DIM_PROPS) return keys_prop(key, KEYLEN, r->q->site, day, r->q->dim_name + PROPS_PREFIX_LEN);
    const char *dim = fold_dim_names[dims[d].fold];
    return cross ? keys_bypage(key, KEYLEN, r->q->site, day, dim) : keys_day(key, KEYLEN, r->q->site, day, dim);
}

/* PFCOUNT over keys[0..n): the union of their sets. */
static int append_pfcount(struct run *r, char **keys, size_t n)
{
    const char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) return oom(r);
    argv[0] = "PFCOUNT";
    for (size_t i = 0; i < n; i++) argv[i + 1] = keys[i];
    int rc = append(r, (int)n + 1, argv);
    free(argv);
    return rc;
}

static char **key_array(size_t n)
{
    char **k = calloc(n ? n : 1, sizeof *k);
    char *mem = malloc((n ? n : 1) * KEYLEN);
    if (!k || !mem) {
        free(k);
        free(mem);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) k[i] = mem + i * KEYLEN;
    if (n == 0) k[0] = mem;
    return k;
}

static void key_array_free(char **k)
{
    if (k) free(k[0]);
    free(k);
}

/* TOTALS: per day HMGET of the totals (+ PFCOUNT uv per day for time:day),
 * then one PFCOUNT over every day's uv for the whole range. */
static int read_totals(struct run *r, struct day_totals *days, struct day_totals *all, int visitors)
{
    char key[KEYLEN], day[CLOCK_DAY_LEN + 1];
    char **uv = key_array(r->ndays);
    if (!uv) return oom(r);
    int per_day = r->q->dim >= 0;
    for (size_t d = 0; d < r->ndays; d++) {
        day_of(r, d, day);
        keys_day(key, sizeof key, r->q->site, day, fold_dim_names[FOLD_TOTALS]);
        const char *argv[] = {"HMGET", key, total_fields[0], total_fields[1], total_fields[2],
                              total_fields[3], total_fields[4]};
        keys_uv(uv[d], KEYLEN, r->q->site, day, NULL);
        if (append(r, 7, argv) < 0) goto error;
        if (visitors && per_day) {
            const char *pf[] = {"PFCOUNT", uv[d]};
            if (append(r, 2, pf) < 0) goto error;
        }
    }
    if (visitors && append_pfcount(r, uv, r->ndays) < 0) goto error;
    for (size_t d = 0; d < r->ndays; d++) {
        redisReply *rep = reply(r);
        if (!rep) goto error;
        long long *f[] = {&days[d].pageviews, &days[d].visits, &days[d].bounces, &days[d].duration_ms,
                          &days[d].events};
        for (size_t i = 0; i < 5; i++) {
            *f[i] = rep->type == REDIS_REPLY_ARRAY && i < rep->elements ? to_ll(rep->element[i]) : 0;
        }
        freeReplyObject(rep);
        all->pageviews += days[d].pageviews;
        all->visits += days[d].visits;
        all->bounces += days[d].bounces;
        all->duration_ms += days[d].duration_ms;
        all->events += days[d].events;
        if (visitors && per_day && reply_ll(r, &days[d].visitors) < 0) goto error;
    }
    if (visitors && reply_ll(r, &all->visitors) < 0) goto error;
    key_array_free(uv);
    return 0;
error:
    key_array_free(uv);
    return -1;
}

/* HOURS: 24 HMGETs a day (a day of a DST change has 23 or 25 local hours; the
 * fold files the repeated hour under its one name). */
static int read_hours(struct run *r, struct day_totals *hours)
{
    char key[KEYLEN], hour[CLOCK_HOUR_LEN + 1];
    for (size_t d = 0; d < r->ndays; d++) {
        char day[CLOCK_DAY_LEN + 1];
        day_of(r, d, day);
        for (int h = 0; h < 24; h++) {
            snprintf(hour, sizeof hour, "%s%02d", day, h);
            keys_hour(key, sizeof key, r->q->site, hour);
            const char *argv[] = {"HMGET", key, "pageviews", "visits", "events"};
            if (append(r, 5, argv) < 0) return -1;
        }
    }
    for (size_t i = 0; i < r->ndays * 24; i++) {
        redisReply *rep = reply(r);
        if (!rep) return -1;
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
            hours[i].pageviews = to_ll(rep->element[0]);
            hours[i].visits = to_ll(rep->element[1]);
            hours[i].events = to_ll(rep->element[2]);
        }
        freeReplyObject(rep);
    }
    return 0;
}

/* One field of a MEMBERS or CROSS day hash into the map, filtered, for
 * agg_hash_each(). */
struct member_merge {
    const struct query *q;
    int cross;
    struct countmap *map;
};

static int merge_member(void *arg, const char *field, size_t len, long long v)
{
    const struct member_merge *m = arg;
    const char *name = field;
    if (m->cross) {
        const char *sep = memchr(field, KEYS_BYPAGE_SEP, len);
        if (!sep || !passes(m->q, m->q->fdim, field, (size_t)(sep - field))) return 0;
        name = sep + 1;
        len -= (size_t)(name - field);
    }
    if (!passes(m->q, m->q->dim, name, len)) return 0;
    struct row *row = map_get(m->map, name, len);
    if (!row) return 1;
    row->n += v;
    return 0;
}

/* MEMBERS and CROSS: every day's hash merged into map, filtered, field by
 * field as it is read (agg_hash_each: no reply is held). */
static int read_members(struct run *r, struct countmap *map)
{
    struct query *q = r->q;
    struct member_merge m = {q, q->src == SRC_CROSS, map};
    char key[KEYLEN], day[CLOCK_DAY_LEN + 1];
    for (size_t d = 0; d < r->ndays; d++) {
        day_of(r, d, day);
        member_key(r, key, day, q->dim, m.cross);
        const char *argv[] = {"HGETALL", key};
        if (append(r, 2, argv) < 0) return -1;
    }
    for (size_t d = 0; d < r->ndays; d++) {
        int rc = agg_hash_each(r->a, merge_member, &m);
        if (rc > 0) return oom(r);
        if (rc < 0) return fail_redis(r);
    }
    return 0;
}

/* FILTERED: per day, the sum of the filter dimension's matching members; for
 * event:page is X also the visitors, from the pages' HyperLogLogs, when every
 * (day, page) with pageviews has one. */
static int read_filtered(struct run *r, struct day_totals *days, struct day_totals *all, int visitors)
{
    struct query *q = r->q;
    const struct filter *f = NULL;
    for (size_t i = 0; i < q->nfilters; i++)
        if (q->filters[i].dim == q->fdim) f = &q->filters[i];
    enum metric count = dims[q->fdim].count;
    char key[KEYLEN], day[CLOCK_DAY_LEN + 1];
    size_t nv = visitors ? f->n : 0;
    char **uv = key_array(r->ndays * nv);
    if (!uv) return oom(r);
    for (size_t d = 0; d < r->ndays; d++) {
        day_of(r, d, day);
        member_key(r, key, day, q->fdim, 0);
        const char *argv[] = {"HGETALL", key};
        if (append(r, 2, argv) < 0) goto error;
        if (!visitors) continue;
        /* which of the pages have a HyperLogLog that day */
        const char **sm = malloc((2 + nv) * sizeof *sm);
        if (!sm) {
            oom(r);
            goto error;
        }
        keys_day(key, sizeof key, q->site, day, FOLD_PAGE_SET);
        sm[0] = "SMISMEMBER";
        sm[1] = key;
        for (size_t j = 0; j < nv; j++) {
            sm[2 + j] = f->vals[j];
            if (keys_uv(uv[d * nv + j], KEYLEN, q->site, day, f->vals[j]) < 0) uv[d * nv + j][0] = '\0';
        }
        int rc = append(r, (int)(2 + nv), sm);
        free(sm);
        if (rc < 0) goto error;
        if (q->dim >= 0 && append_pfcount(r, uv + d * nv, nv) < 0) goto error;
    }
    if (visitors && append_pfcount(r, uv, r->ndays * nv) < 0) goto error;
    all->visitors_null = 0;
    for (size_t d = 0; d < r->ndays; d++) {
        redisReply *rep = reply(r);
        if (!rep) goto error;
        long long sum = 0;
        long long pv_of[MAX_VALUES] = {0};
        for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
            const redisReply *k = rep->element[i];
            if (!k->str || !passes(q, q->fdim, k->str, k->len)) continue;
            long long v = to_ll(rep->element[i + 1]);
            sum += v;
            for (size_t j = 0; j < nv; j++)
                if (f->lens[j] == k->len && memcmp(f->vals[j], k->str, k->len) == 0) pv_of[j] += v;
        }
        freeReplyObject(rep);
        long long *slot = count == M_PAGEVIEWS ? &days[d].pageviews
                        : count == M_VISITS ? &days[d].visits : &days[d].events;
        *slot = sum;
        if (!visitors) continue;
        if (!(rep = reply(r))) goto error;
        for (size_t j = 0; j < nv; j++) {
            int held = rep->type == REDIS_REPLY_ARRAY && j < rep->elements && to_ll(rep->element[j]) == 1;
            if (pv_of[j] > 0 && !held) days[d].visitors_null = all->visitors_null = 1;
        }
        freeReplyObject(rep);
        if (q->dim >= 0 && reply_ll(r, &days[d].visitors) < 0) goto error;
    }
    if (visitors && reply_ll(r, &all->visitors) < 0) goto error;
    for (size_t d = 0; d < r->ndays; d++) {
        all->pageviews += days[d].pageviews;
        all->visits += days[d].visits;
        all->events += days[d].events;
    }
    key_array_free(uv);
    return 0;
error:
    key_array_free(uv);
    return -1;
}

/* The visitors of pages rows[0..n): per day, which of them have a
 * HyperLogLog (SMISMEMBER) and their pageviews (HMGET); then one PFCOUNT per
 * page over the days it has one. -1 (not held) when a day with pageviews of
 * the page has none. */
static int page_visitors_chunk(struct run *r, struct row **rows, size_t n)
{
    if (n == 0) return 0;
    struct query *q = r->q;
    char key[KEYLEN], day[CLOCK_DAY_LEN + 1];
    const char **argv = malloc((n + 2) * sizeof *argv);
    char *held = calloc(r->ndays * n, 1);
    int rc = -1;
    if (!argv || !held) {
        oom(r);
        goto out;
    }
    for (size_t d = 0; d < r->ndays; d++) {
        day_of(r, d, day);
        keys_day(key, sizeof key, q->site, day, FOLD_PAGE_SET);
        argv[0] = "SMISMEMBER";
        argv[1] = key;
        for (size_t i = 0; i < n; i++) argv[i + 2] = rows[i]->name;
        if (append(r, (int)n + 2, argv) < 0) goto out;
        keys_day(key, sizeof key, q->site, day, fold_dim_names[FOLD_PAGE]);
        argv[0] = "HMGET";
        if (append(r, (int)n + 2, argv) < 0) goto out;
    }
    for (size_t i = 0; i < n; i++) rows[i]->visitors = 0;
    for (size_t d = 0; d < r->ndays; d++) {
        redisReply *mem = reply(r), *pv = mem ? reply(r) : NULL;
        if (!mem || !pv) {
            if (mem) freeReplyObject(mem);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            int h = mem->type == REDIS_REPLY_ARRAY && i < mem->elements && to_ll(mem->element[i]) == 1;
            long long views = pv->type == REDIS_REPLY_ARRAY && i < pv->elements ? to_ll(pv->element[i]) : 0;
            held[d * n + i] = (char)h;
            if (views > 0 && !h) rows[i]->visitors = -1;
        }
        freeReplyObject(mem);
        freeReplyObject(pv);
    }
    char **keys = key_array(r->ndays);
    if (!keys) {
        oom(r);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i]->visitors < 0) continue;
        size_t k = 0;
        for (size_t d = 0; d < r->ndays; d++) {
            if (!held[d * n + i]) continue;
            day_of(r, d, day);
            if (keys_uv(keys[k], KEYLEN, q->site, day, rows[i]->name) >= 0) k++;
        }
        if (append_pfcount(r, keys, k) < 0) {
            key_array_free(keys);
            goto out;
        }
    }
    key_array_free(keys);
    for (size_t i = 0; i < n; i++) {
        if (rows[i]->visitors >= 0 && reply_ll(r, &rows[i]->visitors) < 0) goto out;
    }
    rc = 0;
out:
    free(argv);
    free(held);
    return rc;
}

/* Engagement of pages rows[0..n) (n <= VISITOR_CHUNK): per day one HMGET of
 * each of the engaged, scroll and engagements hashes for the rows, summed. */
static int page_engagement(struct run *r, struct row **rows, size_t n)
{
    static const enum fold_dim hashes[] = {FOLD_ENGAGED, FOLD_SCROLL, FOLD_ENGAGEMENTS};
    char key[KEYLEN], day[CLOCK_DAY_LEN + 1];
    if (n == 0) return 0;
    const char **argv = malloc((n + 2) * sizeof *argv);
    if (!argv) return oom(r);
    for (size_t d = 0; d < r->ndays; d++) {
        day_of(r, d, day);
        for (size_t h = 0; h < 3; h++) {
            keys_day(key, sizeof key, r->q->site, day, fold_dim_names[hashes[h]]);
            argv[0] = "HMGET";
            argv[1] = key;
            for (size_t i = 0; i < n; i++) argv[i + 2] = rows[i]->name;
            if (append(r, (int)n + 2, argv) < 0) {
                free(argv);
                return -1;
            }
        }
    }
    free(argv);
    for (size_t d = 0; d < r->ndays; d++) {
        for (size_t h = 0; h < 3; h++) {
            redisReply *rep = reply(r);
            if (!rep) return -1;
            for (size_t i = 0; i < n && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
                long long v = to_ll(rep->element[i]);
                if (h == 0) rows[i]->engaged_ms += v;
                else if (h == 1) rows[i]->scroll_sum += v;
                else rows[i]->engagements += v;
            }
            freeReplyObject(rep);
        }
    }
    return 0;
}

#define VISITOR_CHUNK 256      /* rows per pipeline: bounds the per-day flags and commands */

/* The visitors of the rows not asked for yet, VISITOR_CHUNK rows at a time. */
static int page_visitors(struct run *r, struct row **rows, size_t n)
{
    struct row *chunk[VISITOR_CHUNK];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i]->visitors_known) continue;
        rows[i]->visitors_known = 1;
        chunk[k++] = rows[i];
        if (k == VISITOR_CHUNK) {
            if (page_visitors_chunk(r, chunk, k) < 0) return -1;
            k = 0;
        }
    }
    return page_visitors_chunk(r, chunk, k);
}

/* ------------------------------------------------------------------------ */
/* The response                                                              */
/* ------------------------------------------------------------------------ */

static json_t *metric_value(int m, const struct day_totals *t)
{
    switch (m) {
    case M_VISITORS: return t->visitors_null ? json_null() : json_integer(t->visitors);
    case M_VISITS: return json_integer(t->visits);
    case M_PAGEVIEWS: return json_integer(t->pageviews);
    case M_EVENTS: return json_integer(t->events);
    case M_BOUNCE_RATE:
        return json_integer(t->visits ? llround(100.0 * (double)t->bounces / (double)t->visits) : 0);
    case M_VISIT_DURATION:
        return json_integer(t->visits ? llround((double)t->duration_ms / 1000.0 / (double)t->visits) : 0);
    case M_VIEWS_PER_VISIT:
        return json_real(t->visits ? round(100.0 * (double)t->pageviews / (double)t->visits) / 100.0 : 0);
    /* as the report computes them (docs/aggregator.md): null without engagements */
    case M_TIME_ON_PAGE:
        return t->engagements > 0 && t->pageviews > 0
            ? json_integer(llround((double)t->engaged_ms / 1000.0 / (double)t->pageviews)) : json_null();
    case M_SCROLL_DEPTH:
        return t->engagements > 0 ? json_integer(llround((double)t->scroll_sum / (double)t->engagements))
                                  : json_null();
    }
    return json_null();
}

/* A member as a JSON string: a name that is not UTF-8 keeps its bytes as
 * "\xNN" (rows_json_name), as the report writes it. NULL when out of memory. */
static json_t *member_string(const char *s, size_t n)
{
    size_t len;
    int oom = 0;
    char *esc = rows_json_name(s, n, &len, &oom);
    if (oom) return NULL;
    json_t *j = esc ? json_stringn(esc, len) : json_stringn(s, n);
    free(esc);
    return j;
}

static json_t *result(const struct query *q, const struct day_totals *t, json_t *dimvals)
{
    json_t *o = json_object(), *m = json_array();
    for (size_t i = 0; i < q->nmetrics; i++) json_array_append_new(m, metric_value(q->metrics[i], t));
    json_object_set_new(o, "metrics", m);
    json_object_set_new(o, "dimensions", dimvals ? dimvals : json_array());
    return o;
}

static int has_data(const struct day_totals *t)
{
    return t->pageviews || t->visits || t->events || t->visitors;
}

static json_t *echo(const struct query *q)
{
    json_t *o = json_object(), *m = json_array(), *d = json_array(), *ord = json_array();
    char from[40], to[40];
    json_object_set_new(o, "site_id", json_string(q->site));
    for (size_t i = 0; i < q->nmetrics; i++) json_array_append_new(m, json_string(metric_names[q->metrics[i]]));
    json_object_set_new(o, "metrics", m);
    local_datetime(q->zone, q->from_day, 0, from);
    local_datetime(q->zone, q->to_day, (int)CLOCK_DAY_S - 1, to);
    json_object_set_new(o, "date_range", json_pack("[s,s]", from, to));
    json_object_set_new(o, "filters", q->filters_echo ? json_incref(q->filters_echo) : json_array());
    if (q->dim >= 0) json_array_append_new(d, json_string(q->dim_name));
    json_object_set_new(o, "dimensions", d);
    for (size_t i = 0; i < q->norder; i++)
        json_array_append_new(ord, json_pack("[s,s]", q->order[i].by_dim ? q->dim_name
                                             : metric_names[q->order[i].metric],
                                             q->order[i].desc ? "desc" : "asc"));
    json_object_set_new(o, "order_by", ord);
    json_object_set_new(o, "include", q->include_echo ? json_incref(q->include_echo) : json_object());
    json_object_set_new(o, "pagination", json_pack("{s:I,s:I}", "limit", (json_int_t)q->limit,
                                                   "offset", (json_int_t)q->offset));
    return o;
}

/* Time buckets (TOTALS or FILTERED by day, HOURS): in order, those with data. */
static int time_results(struct query *q, const struct day_totals *b, size_t nb, int hourly,
                        json_t *results, json_t *meta)
{
    json_t *labels = q->time_labels ? json_array() : NULL;
    size_t shown = 0, total = 0;
    int desc = q->norder && q->order[0].by_dim && q->order[0].desc;
    for (size_t k = 0; k < nb; k++) {
        size_t i = desc ? nb - 1 - k : k;
        char label[24], date[11];
        clock_format_day_dashed(q->from_day + (int64_t)(hourly ? i / 24 : i), date);
        if (hourly) snprintf(label, sizeof label, "%s %02zu:00:00", date, i % 24);
        else snprintf(label, sizeof label, "%s", date);
        if (labels) json_array_append_new(labels, json_string(label));
        if (!has_data(&b[i])) continue;
        if (total++ < q->offset || shown >= q->limit) continue;
        shown++;
        json_array_append_new(results, result(q, &b[i], json_pack("[s]", label)));
    }
    if (labels) json_object_set_new(meta, "time_labels", labels);
    if (q->total_rows) json_object_set_new(meta, "total_rows", json_integer((json_int_t)total));
    return 0;
}

/* Breakdown rows: the top offset+limit by the query's order (rows under
 * min_visitors set apart into "(other)"), then the page asked for. */
static int member_results(struct run *r, struct countmap *map, int min_visitors, json_t *results,
                          json_t *meta)
{
    struct query *q = r->q;
    int pages = q->dim == DIM_PAGE && q->src == SRC_MEMBERS;
    int want_visitors = 0;
    for (size_t i = 0; i < q->nmetrics; i++) want_visitors |= q->metrics[i] == M_VISITORS;
    size_t total = 0;
    long long other = 0;
    for (size_t i = 0; i < map->n; i++) {
        struct row *row = countmap_at(map, i);
        if (!row || row->n <= 0) continue;       /* an exit page moved away */
        /* The data's own "(other)" (members past aggregator.max_members) and
         * rows whose count, a bound on their visitors, is under K go to the
         * one "(other)" row at the end (rows.h). */
        if (rows_is_other(row->name, row->len) ||
            rows_below_min(min_visitors, -1, row->n)) {
            other += row->n;
            row->n = -row->n;   /* set apart */
            continue;
        }
        total++;
    }
    size_t k = q->offset + q->limit;
    struct heap h = {NULL, 0, 0};
    for (;;) {
        h.k = k < total ? k : total;
        h.n = 0;
        free(h.r);
        h.r = calloc(h.k ? h.k : 1, sizeof *h.r);
        if (!h.r) return oom(r);
        for (size_t i = 0; i < map->n; i++) {
            const struct row *row = countmap_at(map, i);
            if (row && row->n > 0) heap_offer(q, &h, row);
        }
        /* heap -> ordered list, best first */
        size_t n = h.n;
        struct row **list = calloc(n ? n : 1, sizeof *list);
        if (!list) {
            free(h.r);
            return oom(r);
        }
        for (size_t i = n; i > 0; i--) {
            list[i - 1] = (struct row *)h.r[0];
            h.r[0] = h.r[--h.n];
            heap_sift(q, &h, 0);
        }
        if (pages && (want_visitors || min_visitors > 0) && page_visitors(r, list, n) < 0) {
            free(list);
            free(h.r);
            return -1;
        }
        /* Pages whose visitors are known and under K are set apart too;
         * the selection is made again without them. */
        size_t hidden = 0;
        for (size_t i = 0; pages && min_visitors > 0 && i < n; i++) {
            if (list[i]->visitors >= 0 && rows_below_min(min_visitors, list[i]->visitors, list[i]->n)) {
                other += list[i]->n;
                list[i]->n = -list[i]->n;
                hidden++;
            }
        }
        if (hidden) {
            total -= hidden;
            free(list);
            continue;
        }
        int want_engagement = 0;
        for (size_t i = 0; i < q->nmetrics; i++) want_engagement |= (BIT(q->metrics[i]) & ENGAGEMENT_METRICS) != 0;
        for (size_t i = q->offset; pages && want_engagement && i < n; i += VISITOR_CHUNK) {
            size_t m = n - i < VISITOR_CHUNK ? n - i : VISITOR_CHUNK;
            if (page_engagement(r, list + i, m) < 0) {
                free(list);
                free(h.r);
                return -1;
            }
        }
        for (size_t i = q->offset; i < n; i++) {
            struct day_totals t = {0};
            long long *slot = dims[q->dim].count == M_PAGEVIEWS ? &t.pageviews
                            : dims[q->dim].count == M_VISITS ? &t.visits : &t.events;
            *slot = list[i]->n;
            t.visitors = list[i]->visitors;
            t.visitors_null = list[i]->visitors < 0;
            t.engaged_ms = list[i]->engaged_ms;
            t.scroll_sum = list[i]->scroll_sum;
            t.engagements = list[i]->engagements;
            json_array_append_new(results, result(q, &t, json_pack("[o]", member_string(list[i]->name, list[i]->len))));
        }
        if (other > 0 && k >= total) {
            struct day_totals t = {0};
            long long *slot = dims[q->dim].count == M_PAGEVIEWS ? &t.pageviews
                            : dims[q->dim].count == M_VISITS ? &t.visits : &t.events;
            *slot = other;
            t.visitors_null = 1;
            json_array_append_new(results, result(q, &t, json_pack("[s]", ROWS_OTHER)));
        }
        free(list);
        free(h.r);
        break;
    }
    if (q->total_rows) json_object_set_new(meta, "total_rows", json_integer((json_int_t)total));
    return 0;
}

char *query_run(struct agg *a, struct query *q, int min_visitors, int *status, char *err,
                size_t errlen)
{
    struct run r = {a, q, (size_t)(q->to_day - q->from_day + 1), 500, err, errlen};
    struct day_totals *b = NULL, all = {0};
    struct countmap map = COUNTMAP_INIT(struct row);
    json_t *results = json_array(), *meta = json_object(), *resp = NULL;
    char *out = NULL;
    int visitors = 0;
    for (size_t i = 0; i < q->nmetrics; i++) visitors |= q->metrics[i] == M_VISITORS;
    a->err[0] = '\0';
    if (!a->rc && agg_connect(a) < 0) {
        fail_redis(&r);
        goto out;
    }
    size_t nb = q->src == SRC_HOURS ? r.ndays * 24 : r.ndays;
    if (!(b = calloc(nb, sizeof *b)) || !results || !meta) {
        oom(&r);
        goto out;
    }
    switch (q->src) {
    case SRC_TOTALS:
        if (read_totals(&r, b, &all, visitors) < 0) goto out;
        break;
    case SRC_FILTERED:
        if (read_filtered(&r, b, &all, visitors) < 0) goto out;
        break;
    case SRC_HOURS:
        if (read_hours(&r, b) < 0) goto out;
        break;
    case SRC_MEMBERS: case SRC_CROSS:
        if (read_members(&r, &map) < 0 || member_results(&r, &map, min_visitors, results, meta) < 0)
            goto out;
        break;
    }
    if (q->src == SRC_HOURS) time_results(q, b, nb, 1, results, meta);
    else if ((q->src == SRC_TOTALS || q->src == SRC_FILTERED) && q->dim >= 0) time_results(q, b, nb, 0, results, meta);
    else if (q->src == SRC_TOTALS || q->src == SRC_FILTERED) {
        if (q->offset == 0) json_array_append_new(results, result(q, &all, NULL));
        if (q->total_rows) json_object_set_new(meta, "total_rows", json_integer(1));
    }
    resp = json_pack("{s:O,s:O,s:o}", "results", results, "meta", meta, "query", echo(q));
    /* 2 decimals at most (views_per_visit): no binary tail like 3.3300000000000001 */
    if (!resp || !(out = json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(12)))) oom(&r);
out:
    /* replies may still be queued behind a failure: start afresh */
    if (!out) agg_disconnect(a);
    *status = r.status;
    json_decref(resp);
    json_decref(results);
    json_decref(meta);
    countmap_free(&map);
    free(b);
    return out;
}
