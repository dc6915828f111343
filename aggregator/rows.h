/* rows.h -- the rules every breakdown row follows on its way out.
 *
 * A breakdown row (a page, a source, a country, an event name...) is a name
 * from the public and a count. Before any output shows it -- the report's
 * table, JSON and CSV (report.c), the Stats API (query.c) -- three rules
 * apply, each in one function here so that every output applies them alike:
 *
 *   - small-count protection (aggregator.min_visitors = K): a row with fewer
 *     than K visitors is not shown by name; its numbers go to one "(other)"
 *     row, so that the rows still sum to the totals. Rows that have no visitor
 *     count (every breakdown but pages, and pages past
 *     aggregator.max_page_visitors) use their count -- visits, pageviews or
 *     events -- as the bound: each visitor brings at least one, so a count
 *     under K means fewer than K visitors. (A count of K or more may still
 *     come from fewer visitors; without a HyperLogLog per row nothing better
 *     is known.) rows_fold_next() decides.
 *   - names that are not UTF-8 (JSON cannot carry them) are written with each
 *     byte that is not part of a valid UTF-8 sequence as "\xNN": rows_json_name().
 *   - names printed on a terminal have control characters and bidi controls
 *     escaped: rows_term_escape().
 *
 * Pure functions: no I/O, no allocation except where stated.
 */
#ifndef FAIRSTAT_ROWS_H
#define FAIRSTAT_ROWS_H

#include <stddef.h>

/* The name of the row that holds what is not shown by name. The fold's own
 * capped members (aggregator.max_members) are stored under it too. */
#define ROWS_OTHER "(other)"
#define ROWS_OTHER_LEN (sizeof ROWS_OTHER - 1)

/* 1 when name[0..len) is "(other)": the data's own row of members past
 * aggregator.max_members, never shown by name. */
int rows_is_other(const char *name, size_t len);

/* ---------------------------------------------------------- small counts */

/* What becomes of one row, walking a breakdown in its output order. */
enum rows_fate {
    ROWS_SHOW,        /* shown by name */
    ROWS_HIDE,        /* under min_visitors: counted in "(other)" */
    ROWS_CUT,         /* past the limit: in "(other)" only when asked for */
    ROWS_OTHER_ROW,   /* the data's own "(other)" member: counted in "(other)" */
};

/* The state of one breakdown's walk. Fields are read by the caller. */
struct rows_fold {
    long long min_visitors;     /* K; 0 = off */
    size_t limit;               /* rows shown by name at most */
    size_t shown;               /* rows given ROWS_SHOW so far */
    size_t hidden;              /* rows under K ... */
    long long hidden_n;         /* ... and the sum of their counts */
    size_t cut;                 /* rows past the limit ... */
    long long cut_n;            /* ... and the sum of their counts */
    long long other_n;          /* the data's own "(other)" member */
};

void rows_fold_init(struct rows_fold *f, long long min_visitors, size_t limit);

/* 1 when a row must not be shown by name under min_visitors K: visitors < K,
 * or, when visitors < 0 (not counted), count < K. 0 when K <= 0. */
int rows_below_min(long long min_visitors, long long visitors, long long count);

/* The fate of the next row (name, len: as stored; count; visitors, or -1
 * when the row has no visitor count). Rows under K do not use up the limit.
 * Walk the rows in output order (by count, descending). */
enum rows_fate rows_fold_next(struct rows_fold *f, const char *name, size_t len, long long count,
                              long long visitors);

/* The count of the "(other)" row: hidden rows, the data's "(other)" member,
 * and, with_cut, the rows past the limit. 0 = no "(other)" row. */
long long rows_fold_other(const struct rows_fold *f, int with_cut);

/* ------------------------------------------------------------------ names */

/* 1 when s[0..len) is valid UTF-8 as JSON (jansson) accepts it: no overlong
 * forms, no surrogates, nothing past U+10FFFF. NUL is valid. */
int rows_utf8_valid(const char *s, size_t len);

/* The name JSON and CSV carry for s[0..len): s itself when valid UTF-8 (then
 * NULL is returned: use s), else a new NUL-terminated string (caller frees;
 * its length in *outlen) with every byte that is not part of a valid UTF-8
 * sequence written as "\xNN" (two lower-case hex digits). Different invalid
 * names give different results; a valid name that spells out "\xNN" itself
 * can meet an escaped one, and the caller sums such rows into one. Sets
 * *oom and returns NULL when out of memory. */
char *rows_json_name(const char *s, size_t len, size_t *outlen, int *oom);

/* Writes s[0..len) to out (outlen bytes, NUL included; outlen >= 1) safe to
 * print on a terminal: C0 controls, DEL and bytes that are not valid UTF-8
 * as "\xNN"; C1 controls (U+0080-U+009F), bidi controls (U+061C, U+200E,
 * U+200F, U+202A-U+202E, U+2066-U+2069) and line/paragraph separators
 * (U+2028, U+2029) as "\uNNNN"; everything else as is (a backslash too: the
 * table is for reading, JSON and CSV keep the exact name). Never cuts a
 * character or an escape in two. Returns the number of bytes of s written
 * (len when everything fit). */
size_t rows_term_escape(const char *s, size_t len, char *out, size_t outlen);

#endif
