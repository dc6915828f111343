/* utf8.c -- strict UTF-8 validation (see utf8.h).
 *
 * The ranges are RFC 3629's table of well-formed byte sequences: the second
 * byte's range depends on the first, which is what rules out overlongs
 * (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points past
 * U+10FFFF (F4 90..BF, F5..FF).
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

int utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        /* ASCII, the most of what comes in, eight bytes at a time */
        for (uint64_t w; len - i >= 8; i += 8) {
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
        }
        if (i == len) break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;     /* the second byte's range */
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else return 0;          /* 80..C1 (continuation, overlong lead), F5..FF */
        if (len - i <= need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        i += need + 1;
    }
    return 1;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

int utf8_json_escapes_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *esc = memchr(s + i, '\\', len - i);
        if (!esc) break;
        i = (size_t)(esc - s);
        if (len - i < 2) return 1;              /* a broken escape: the parser refuses it */
        if (s[i + 1] != 'u') {
            i += 2;
            continue;
        }
        unsigned cp, lo;
        if (len - i < 6 || hex4(s + i + 2, &cp) < 0) return 1;     /* the parser's to refuse */
        i += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;                 /* a low one alone */
        if (cp < 0xD800 || cp > 0xDBFF) continue;
        if (len - i < 6 || s[i] != '\\' || s[i + 1] != 'u' || hex4(s + i + 2, &lo) < 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return 0;                                               /* a high one alone */
        i += 6;
    }
    return 1;
}
