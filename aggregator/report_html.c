/* report_html.c -- the report as one self-contained HTML file.
 *
 * The file is the dashboard page itself (web.h, the same bytes `serve`
 * answers at GET /) with the report model put
 * into its `<script type="application/json" id="fs-data">` element; the
 * page's script renders from that element instead of asking the API, so the
 * report looks like the dashboard and makes no request when opened offline.
 * The model's strings come from the public (paths, referrers, event names):
 * it is written with every non-ASCII character as \uXXXX (U+2028/2029
 * included) and <, >, & as \u003c, \u003e, \u0026, so that no value can end
 * the script element or open a comment in it.
 *
 * The page shows each headline number's change against the previous period
 * of the same length; report_add_previous() reads that period's totals, for
 * this format only, so JSON, CSV and the table are unchanged.
 */
#include <string.h>

#include "agg.h"
#include "report.h"
#include "web.h"

/* The data element as the page holds it, empty ("null": the live dashboard). */
static const char data_slot[] = "<script type=\"application/json\" id=\"fs-data\">null</script>";

int report_add_previous(struct agg *a, const struct report_opts *o, json_t *r)
{
    int64_t days = o->to_day - o->from_day + 1;
    struct report_opts p = *o;
    p.to_day = o->from_day - 1;
    p.from_day = o->from_day - days;
    p.limit = 1;
    p.other = 0;
    if (p.from_day < 0) return 0;       /* before 1970: nothing to compare */
    json_t *prev = report_build(a, &p);
    if (!prev) return -1;
    json_t *o2 = json_object();
    json_object_set(o2, "from", json_object_get(prev, "from"));
    json_object_set(o2, "to", json_object_get(prev, "to"));
    json_object_set(o2, "totals", json_object_get(prev, "totals"));
    json_object_set_new(r, "previous", o2);
    json_decref(prev);
    return 0;
}

/* json_dump_callback sink: the JSON text, with the three characters that
 * mean something to an HTML parser written as JSON escapes. They only occur
 * inside strings (JSON's own syntax has none of them). */
static int put_json(const char *buf, size_t len, void *data)
{
    FILE *out = data;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *esc = buf[i] == '<' ? "\\u003c" : buf[i] == '>' ? "\\u003e" : buf[i] == '&' ? "\\u0026" : NULL;
        if (!esc) continue;
        fwrite(buf + start, 1, i - start, out);
        fputs(esc, out);
        start = i + 1;
    }
    fwrite(buf + start, 1, len - start, out);
    return ferror(out) ? -1 : 0;
}

int report_print_html(const json_t *r, FILE *out)
{
    const struct embed_file *page = embed_find(web_files, "dashboard.html", strlen("dashboard.html"));
    const char *slot = page ? strstr(page->data, data_slot) : NULL;
    if (!slot) return -1;               /* the page lost its data element: a build error */
    const char *open_end = slot + strlen(data_slot) - strlen("null</script>");
    fwrite(page->data, 1, (size_t)(open_end - page->data), out);
    if (json_dump_callback(r, put_json, out, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) < 0) return -1;
    const char *rest = slot + strlen(data_slot) - strlen("</script>");
    fwrite(rest, 1, page->len - (size_t)(rest - page->data), out);
    return ferror(out) ? -1 : 0;
}
