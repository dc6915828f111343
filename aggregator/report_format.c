/* report_format.c -- renders the report model as JSON, a terminal table or CSV
 * (HTML is report_html.c's).
 *
 * The renderers know nothing of analytics: they walk the model (report.h) --
 * scalars at the top, "totals" as one object, every other array a table whose
 * columns are the keys of its rows -- so a new breakdown needs no change here.
 * CSV is long-form (section,key,metric,value) so that one header fits every
 * section; text cells that a spreadsheet would run as a formula get a quote
 * prefix, because page paths and event names come from the public. Every
 * text the table prints from the model goes through rows_term_escape(), so a
 * name cannot move the cursor, recolour the terminal or reorder the line
 * (rows.h). The model's "notes" (why rows do not add up to the totals) are an
 * object, not an array, so no renderer takes them for a breakdown: the table
 * prints them under their section, CSV as "note" rows at the end.
 */
#include <string.h>

#include "report.h"
#include "rows.h"

#define NAME_WIDTH 48

static void scalar(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, len, "%.2f", json_real_value(v));
    else buf[0] = '\0';
}

/* A cell of the table: strings escaped for the terminal and cut to width
 * bytes ("..." at the end; never inside a character or an escape). */
static void cell(const json_t *v, char *buf, size_t len, size_t width)
{
    if (!json_is_string(v)) {
        scalar(v, buf, len);
        return;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (width + 1 < len) len = width + 1;
    if (rows_term_escape(s, n, buf, len) < n) {
        rows_term_escape(s, n, buf, len - 3);
        strcat(buf, "...");
    }
}

/* A string of the model, escaped for the terminal, into buf. */
static const char *term(const json_t *v, char *buf, size_t len)
{
    buf[0] = '\0';
    if (json_is_string(v)) rows_term_escape(json_string_value(v), json_string_length(v), buf, len);
    return buf;
}

static void title(FILE *out, const char *section)
{
    /* JSON keys that do not read well as headings. */
    static const char *const names[][2] = {
        {"os", "Operating systems"}, {"utm_sources", "UTM sources"}, {"utm_mediums", "UTM media"},
        {"utm_campaigns", "UTM campaigns"}, {"utm_terms", "UTM terms"},
        {"utm_contents", "UTM contents"}, {"timeseries", "By day"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(section, names[i][0]) == 0) {
            fprintf(out, "\n%s\n", names[i][1]);
            return;
        }
    }
    char t[64];
    rows_term_escape(section, strlen(section), t, sizeof t);
    for (char *p = t; *p; p++) if (*p == '_') *p = ' ';
    if (t[0] >= 'a' && t[0] <= 'z') t[0] = (char)(t[0] - 'a' + 'A');
    fprintf(out, "\n%s\n", t);
}

static void table_rows(FILE *out, const json_t *arr)
{
    if (json_array_size(arr) == 0) {
        fputs("  (none)\n", out);
        return;
    }
    const json_t *first = json_array_get(arr, 0);
    size_t ncol = json_object_size(first), width[16] = {0};
    const char *cols[16];
    size_t c = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)first, k, v) {
        if (c < 16) cols[c++] = k;
    }
    ncol = c;
    size_t idx;
    const json_t *row;
    char buf[1024], head[16][64];
    for (size_t i = 0; i < ncol; i++) {
        rows_term_escape(cols[i], strlen(cols[i]), head[i], sizeof head[i]);
        width[i] = strlen(head[i]);
    }
    json_array_foreach(arr, idx, row) {
        for (size_t i = 0; i < ncol; i++) {
            cell(json_object_get(row, cols[i]), buf, sizeof buf, i == 0 ? NAME_WIDTH : sizeof buf - 1);
            if (strlen(buf) > width[i]) width[i] = strlen(buf);
        }
    }
    for (size_t i = 0; i < ncol; i++)
        fprintf(out, i == 0 ? "  %-*s" : "  %*s", (int)width[i], head[i]);
    fputc('\n', out);
    json_array_foreach(arr, idx, row) {
        for (size_t i = 0; i < ncol; i++) {
            cell(json_object_get(row, cols[i]), buf, sizeof buf, i == 0 ? NAME_WIDTH : sizeof buf - 1);
            fprintf(out, i == 0 ? "  %-*s" : "  %*s", (int)width[i], buf);
        }
        fputc('\n', out);
    }
}

static void table(FILE *out, const char *section, const json_t *arr, const json_t *notes)
{
    title(out, section);
    table_rows(out, arr);
    size_t i;
    const json_t *text;
    char buf[512];
    json_array_foreach(json_object_get(notes, section), i, text)
        fprintf(out, "  note: %s\n", term(text, buf, sizeof buf));
}

static void print_table(const json_t *r, FILE *out)
{
    char site[256], from[32], to[32], zone[128];
    fprintf(out, "%s  %s .. %s  (%s)\n", term(json_object_get(r, "site"), site, sizeof site),
            term(json_object_get(r, "from"), from, sizeof from), term(json_object_get(r, "to"), to, sizeof to),
            term(json_object_get(r, "timezone"), zone, sizeof zone));
    const json_t *t = json_object_get(r, "totals");
    fputs("\nTotals\n", out);
    const char *k;
    const json_t *v;
    char buf[64];
    json_object_foreach((json_t *)t, k, v) {
        cell(v, buf, sizeof buf, sizeof buf - 1);
        const char *unit = strcmp(k, "bounce_rate") == 0 ? " %" : strcmp(k, "visit_duration") == 0 ? " s" : "";
        fprintf(out, "  %-16s %12s%s\n", k, buf, unit);
    }
    /* Empty optional breakdowns (UTM, regions, events) would only add noise. */
    json_object_foreach((json_t *)r, k, v) {
        if (json_is_array(v) && (json_array_size(v) > 0 || strcmp(k, "pages") == 0))
            table(out, k, v, json_object_get(r, "notes"));
    }
}

/* s[0..n): names may hold any byte JSON can (a NUL too), so by length. */
static void csv_cell(FILE *out, const char *s, size_t n)
{
    int formula = n > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@');
    int quote = formula;
    for (size_t i = 0; i < n && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    if (formula) fputc('\'', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void csv_text(FILE *out, const json_t *v)
{
    char buf[64];
    if (json_is_string(v)) {
        csv_cell(out, json_string_value(v), json_string_length(v));
        return;
    }
    scalar(v, buf, sizeof buf);
    fputs(buf, out);
}

static void csv_row(FILE *out, const char *section, const json_t *key, const char *metric, const json_t *v)
{
    csv_cell(out, section, strlen(section));
    fputc(',', out);
    if (key) csv_text(out, key);
    fputc(',', out);
    csv_cell(out, metric, strlen(metric));
    fputc(',', out);
    csv_text(out, v);
    fputs("\r\n", out);
}

static void print_csv(const json_t *r, FILE *out)
{
    fputs("section,key,metric,value\r\n", out);
    const char *k, *m;
    const json_t *v, *mv;
    json_object_foreach((json_t *)json_object_get(r, "totals"), k, v) csv_row(out, "totals", NULL, k, v);
    json_object_foreach((json_t *)r, k, v) {
        if (!json_is_array(v)) continue;
        size_t i;
        const json_t *row;
        json_array_foreach(v, i, row) {
            const json_t *name = NULL;
            json_object_foreach((json_t *)row, m, mv) {
                if (!name) {
                    name = mv;
                    continue;
                }
                csv_row(out, k, name, m, mv);
            }
        }
    }
    json_object_foreach((json_t *)json_object_get(r, "notes"), k, v) {
        size_t i;
        const json_t *text;
        json_array_foreach(v, i, text) csv_row(out, k, NULL, "note", text);
    }
}

int report_print(const json_t *r, enum report_format format, FILE *out)
{
    switch (format) {
    case REPORT_JSON:
        if (json_dumpf(r, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) return -1;
        fputc('\n', out);
        break;
    case REPORT_CSV:
        print_csv(r, out);
        break;
    case REPORT_TABLE:
        print_table(r, out);
        break;
    case REPORT_HTML:
        if (report_print_html(r, out) < 0) return -1;
        break;
    }
    return ferror(out) ? -1 : 0;
}
