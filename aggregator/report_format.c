/* report_format.c -- renders the report model as JSON, a terminal table or CSV
 * (HTML is report_html.c's).
 *
 * The renderers know nothing of analytics: they walk the model (report.h) --
 * scalars at the top, "totals" as one object, every other array a table whose
 * columns are the keys of its rows -- so a new breakdown needs no change here.
 * CSV is long-form (section,key,metric,value) so that one header fits every
 * section; text cells that a spreadsheet would run as a formula get a quote
 * prefix, because page paths and event names come from the public.
 */
#include <string.h>

#include "report.h"

#define NAME_WIDTH 48

static void scalar(const json_t *v, char *buf, size_t len)
{
    if (json_is_string(v)) snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, len, "%.2f", json_real_value(v));
    else buf[0] = '\0';
}

/* Cuts s to width display columns (bytes, but never inside a UTF-8 sequence). */
static void cut(char *s, size_t width)
{
    if (strlen(s) <= width) return;
    size_t n = width - 3;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    memcpy(s + n, "...", 4);
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
    snprintf(t, sizeof t, "%s", section);
    for (char *p = t; *p; p++) if (*p == '_') *p = ' ';
    if (t[0] >= 'a' && t[0] <= 'z') t[0] = (char)(t[0] - 'a' + 'A');
    fprintf(out, "\n%s\n", t);
}

static void table(FILE *out, const char *section, const json_t *arr)
{
    title(out, section);
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
    char buf[1024];
    for (size_t i = 0; i < ncol; i++) width[i] = strlen(cols[i]);
    size_t idx;
    const json_t *row;
    json_array_foreach(arr, idx, row) {
        for (size_t i = 0; i < ncol; i++) {
            scalar(json_object_get(row, cols[i]), buf, sizeof buf);
            if (i == 0) cut(buf, NAME_WIDTH);
            if (strlen(buf) > width[i]) width[i] = strlen(buf);
        }
    }
    for (size_t i = 0; i < ncol; i++)
        fprintf(out, i == 0 ? "  %-*s" : "  %*s", (int)width[i], cols[i]);
    fputc('\n', out);
    json_array_foreach(arr, idx, row) {
        for (size_t i = 0; i < ncol; i++) {
            scalar(json_object_get(row, cols[i]), buf, sizeof buf);
            if (i == 0) cut(buf, NAME_WIDTH);
            fprintf(out, i == 0 ? "  %-*s" : "  %*s", (int)width[i], buf);
        }
        fputc('\n', out);
    }
}

static void print_table(const json_t *r, FILE *out)
{
    fprintf(out, "%s  %s .. %s  (%s)\n", json_string_value(json_object_get(r, "site")),
            json_string_value(json_object_get(r, "from")), json_string_value(json_object_get(r, "to")),
            json_string_value(json_object_get(r, "timezone")));
    const json_t *t = json_object_get(r, "totals");
    fputs("\nTotals\n", out);
    const char *k;
    const json_t *v;
    char buf[64];
    json_object_foreach((json_t *)t, k, v) {
        scalar(v, buf, sizeof buf);
        const char *unit = strcmp(k, "bounce_rate") == 0 ? " %" : strcmp(k, "visit_duration") == 0 ? " s" : "";
        fprintf(out, "  %-16s %12s%s\n", k, buf, unit);
    }
    /* Empty optional breakdowns (UTM, regions, events) would only add noise. */
    json_object_foreach((json_t *)r, k, v) {
        if (json_is_array(v) && (json_array_size(v) > 0 || strcmp(k, "pages") == 0)) table(out, k, v);
    }
}

static void csv_cell(FILE *out, const char *s)
{
    int formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';
    if (!formula && !strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    if (formula) fputc('\'', out);
    for (; *s; s++) {
        if (*s == '"') fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_row(FILE *out, const char *section, const char *key, const char *metric, const json_t *v)
{
    char buf[64];
    csv_cell(out, section);
    fputc(',', out);
    csv_cell(out, key);
    fputc(',', out);
    csv_cell(out, metric);
    fputc(',', out);
    scalar(v, buf, sizeof buf);
    fputs(buf, out);
    fputs("\r\n", out);
}

static void print_csv(const json_t *r, FILE *out)
{
    fputs("section,key,metric,value\r\n", out);
    const char *k, *m;
    const json_t *v, *mv;
    json_object_foreach((json_t *)json_object_get(r, "totals"), k, v) csv_row(out, "totals", "", k, v);
    json_object_foreach((json_t *)r, k, v) {
        if (!json_is_array(v)) continue;
        size_t i;
        const json_t *row;
        json_array_foreach(v, i, row) {
            const char *name = NULL;
            char label[1100];
            json_object_foreach((json_t *)row, m, mv) {
                if (!name) {
                    scalar(mv, label, sizeof label);
                    name = label;
                    continue;
                }
                csv_row(out, k, name, m, mv);
            }
        }
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
