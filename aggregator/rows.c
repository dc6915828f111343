/* rows.c -- small-count protection and safe names for breakdown rows.
 *
 * See rows.h for the rules. The UTF-8 check is strict in the way jansson's
 * is (json_stringn refuses what utf8_seq() refuses), so that a name that
 * passes here is never dropped by the JSON encoder.
 */
#include "rows.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- small counts */

void rows_fold_init(struct rows_fold *f, long long min_visitors, size_t limit)
{
    memset(f, 0, sizeof *f);
    f->min_visitors = min_visitors > 0 ? min_visitors : 0;
    f->limit = limit;
}

int rows_below_min(long long min_visitors, long long visitors, long long count)
{
    if (min_visitors <= 0) return 0;
    return visitors >= 0 ? visitors < min_visitors : count < min_visitors;
}

int rows_is_other(const char *name, size_t len)
{
    return len == ROWS_OTHER_LEN && memcmp(name, ROWS_OTHER, len) == 0;
}

enum rows_fate rows_fold_next(struct rows_fold *f, const char *name, size_t len, long long count,
                              long long visitors)
{
    if (rows_is_other(name, len)) {
        f->other_n += count;
        return ROWS_OTHER_ROW;
    }
    if (rows_below_min(f->min_visitors, visitors, count)) {
        f->hidden++;
        f->hidden_n += count;
        return ROWS_HIDE;
    }
    if (f->shown >= f->limit) {
        f->cut++;
        f->cut_n += count;
        return ROWS_CUT;
    }
    f->shown++;
    return ROWS_SHOW;
}

long long rows_fold_other(const struct rows_fold *f, int with_cut)
{
    return f->other_n + f->hidden_n + (with_cut ? f->cut_n : 0);
}

/* ------------------------------------------------------------------ names */

/* The length (1-4) of the valid UTF-8 sequence at s, its code point in *cp;
 * 0 when s[0] does not start one. */
static size_t utf8_seq(const unsigned char *s, size_t len, unsigned *cp)
{
    unsigned c = s[0], min;
    size_t n;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) n = 2, c &= 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, c &= 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, c &= 0x07, min = 0x10000;
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return n;
}

int rows_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned cp;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (!n) return 0;
        i += n;
    }
    return 1;
}

static const char hex[] = "0123456789abcdef";

char *rows_json_name(const char *s, size_t len, size_t *outlen, int *oom)
{
    *oom = 0;
    if (rows_utf8_valid(s, len)) return NULL;
    /* At most 4 output bytes per input byte. */
    char *out = malloc(len * 4 + 1);
    if (!out) {
        *oom = 1;
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    unsigned cp;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[p[i] >> 4];
        out[o++] = hex[p[i] & 0xF];
        i++;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* Code points a terminal would act on rather than show. */
static int term_unsafe(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

size_t rows_term_escape(const char *s, size_t len, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    unsigned cp;
    while (i < len) {
        char unit[8];
        size_t n = utf8_seq(p + i, len - i, &cp), w;
        if (!n || cp < 0x20 || cp == 0x7F) {
            unit[0] = '\\', unit[1] = 'x', unit[2] = hex[p[i] >> 4], unit[3] = hex[p[i] & 0xF];
            w = 4, n = 1;
        } else if (term_unsafe(cp)) {
            unit[0] = '\\', unit[1] = 'u';
            for (int d = 0; d < 4; d++) unit[2 + d] = hex[(cp >> (12 - 4 * d)) & 0xF];
            w = 6;
        } else {
            memcpy(unit, p + i, n);
            w = n;
        }
        if (o + w + 1 > outlen) break;
        memcpy(out + o, unit, w);
        o += w;
        i += n;
    }
    out[o] = '\0';
    return i;
}
