/* report.h -- the analysts' first view: totals, breakdowns, daily series.
 *
 * report_build() reads a site's daily hashes and HyperLogLogs for a range of
 * days (in the site's timezone) and returns the report as a jansson object,
 * the one model every output format renders: JSON as is, table and CSV by
 * report_format.c, HTML (the dashboard page holding the model) by
 * report_html.c. Visitors over a range are the union of the daily
 * HyperLogLogs (PFCOUNT over several keys), never a sum of daily counts.
 * Every breakdown row passes the rules of rows.h (min_visitors, names that
 * are not UTF-8) before it enters the model; "notes" (an object: section ->
 * sentences) says why a breakdown's rows do not add up to the totals.
 */
#ifndef FAIRSTAT_REPORT_H
#define FAIRSTAT_REPORT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

struct agg;

enum report_format { REPORT_TABLE, REPORT_JSON, REPORT_CSV, REPORT_HTML };

#define REPORT_MAX_DAYS 3660

struct report_opts {
    const char *site;
    int64_t from_day, to_day;   /* days since 1970-01-01, inclusive */
    int limit;                  /* rows per breakdown */
    int other;                  /* fold rows past limit into "(other)" */
    enum report_format format;
};

/* The report, or NULL with a->err set. Caller owns it (json_decref). */
json_t *report_build(struct agg *a, const struct report_opts *o);

/* Renders r to out in format. 0, or -1 on a write error. */
int report_print(const json_t *r, enum report_format format, FILE *out);

/* Adds "previous": {from, to, totals} to r, the totals of the period of the
 * same length just before o's (what the HTML page compares against).
 * 0, or -1 with a->err set. */
int report_add_previous(struct agg *a, const struct report_opts *o, json_t *r);

/* The dashboard page with r embedded (report_html.c). 0, or -1. */
int report_print_html(const json_t *r, FILE *out);

/* The days of a named period relative to today (days since 1970-01-01 in
 * the site's timezone), both inclusive: "day" today; "7d", "30d" the last 7
 * or 30 days, today included; "month" this calendar month to today; "12mo"
 * the last 12 calendar months, this one included (to today), as Plausible
 * counts them. 0, or -1 when name is none of these. */
int report_period(const char *name, int64_t today, int64_t *from, int64_t *to);

/* "table"|"json"|"csv"|"html" -> format. 0 or -1. */
int report_parse_format(const char *s, enum report_format *f);

#endif
