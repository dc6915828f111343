/* json.c -- a strict JSON event parser without allocation (json.h).
 *
 * Written by hand for one hot path: the beacon body is parsed on every hit,
 * and yajl there cost ~4,500 instructions a hit, ~1,700 of them in its ten
 * or so mallocs and frees. The grammar is RFC 8259; where yajl 2.1 (the
 * parser the collector used before, and that the aggregator still uses)
 * answers otherwise, this file answers as yajl did, so that no beacon's
 * verdict changed with the swap:
 *   - whitespace also takes \v and \f;
 *   - after the value, one partial string to the end of the text ("{} "ab)
 *     is no trailing garbage, anything else is;
 *   - decoding, a high surrogate escape takes the next \u escape whatever
 *     it is, a lone one becomes '?', a lone low one decodes to its
 *     (non-UTF-8) bytes, which the string's bad mark says.
 * Checked against yajl by a differential run, and fuzzed
 * (tests/fuzz/fuzz_beacon.c).
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

enum tok {
    T_EOF, T_ERROR, T_PARTIAL,      /* T_PARTIAL: a string open at the end of the text */
    T_LBRACE, T_RBRACE, T_LBRACKET, T_RBRACKET, T_COMMA, T_COLON,
    T_STRING, T_NUMBER, T_TRUE, T_FALSE, T_NULL,
};

/* Parser states, yajl's: a value's state moves on before a container is
 * pushed, so a closing bracket only pops. */
enum state {
    S_START, S_DONE, S_MAP_START, S_MAP_NEED_KEY, S_MAP_SEP, S_MAP_NEED_VAL, S_MAP_GOT_VAL,
    S_ARRAY_START, S_ARRAY_NEED_VAL, S_ARRAY_GOT_VAL,
};

struct lexer {
    const unsigned char *b;
    size_t len, pos;
    size_t start, n;                /* the token's text (a string's without quotes) */
    int escapes;
};

/* Bytes a string's scan stops at: the quote, the backslash, control characters. */
static const unsigned char stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

/* yajl's whitespace: RFC 8259's four, and \v and \f */
static const unsigned char space[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1,
};

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static enum tok lex_literal(struct lexer *lx, size_t i, const char *word, size_t n, enum tok t)
{
    /* yajl ends the text with a space: a word cut short is an error */
    if (lx->len - i < n || memcmp(lx->b + i, word, n) != 0) return T_ERROR;
    lx->pos = i + n;
    return t;
}

/* yajl's number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, ending at
 * the first byte that cannot go on ("01" is two numbers). */
static enum tok lex_number(struct lexer *lx, size_t i)
{
    const unsigned char *b = lx->b;
    size_t j = i, len = lx->len;
    if (b[j] == '-') j++;
    if (j < len && b[j] == '0') j++;
    else if (j < len && b[j] >= '1' && b[j] <= '9')
        while (j < len && b[j] >= '0' && b[j] <= '9') j++;
    else return T_ERROR;
    if (j < len && b[j] == '.') {
        size_t d = ++j;
        while (j < len && b[j] >= '0' && b[j] <= '9') j++;
        if (j == d) return T_ERROR;
    }
    if (j < len && (b[j] == 'e' || b[j] == 'E')) {
        j++;
        if (j < len && (b[j] == '+' || b[j] == '-')) j++;
        size_t d = j;
        while (j < len && b[j] >= '0' && b[j] <= '9') j++;
        if (j == d) return T_ERROR;
    }
    lx->start = i;
    lx->n = j - i;
    lx->pos = j;
    return T_NUMBER;
}

static enum tok lex_string(struct lexer *lx, size_t i)
{
    const unsigned char *b = lx->b;
    size_t j = i + 1, len = lx->len;
    lx->escapes = 0;
    for (;;) {
        /* eight bytes at a time while none is a quote, a backslash or a
         * control character (the has-zero-byte and has-less-than tricks) */
        for (uint64_t w; len - j >= 8; j += 8) {
            memcpy(&w, b + j, 8);
            uint64_t q = w ^ 0x2222222222222222ULL, bs = w ^ 0x5C5C5C5C5C5C5C5CULL;
            if ((((q - ONES) & ~q) | ((bs - ONES) & ~bs) | ((w - 0x20 * ONES) & ~w)) & HIGHS) break;
        }
        while (j < len && !stop[b[j]]) j++;
        if (j >= len) return T_PARTIAL;
        if (b[j] == '"') break;
        if (b[j] != '\\') return T_ERROR;           /* a control character */
        lx->escapes = 1;
        /* at the end of the text, yajl's closing space is no escape */
        if (++j >= len) return T_ERROR;
        if (b[j] == 'u') {
            if (len - j < 5) return T_ERROR;
            for (int k = 1; k <= 4; k++)
                if (hex_digit(b[j + k]) < 0) return T_ERROR;
            j += 5;
        } else if (b[j] == '"' || b[j] == '\\' || b[j] == '/' || b[j] == 'b' || b[j] == 'f' ||
                   b[j] == 'n' || b[j] == 'r' || b[j] == 't') {
            j++;
        } else {
            return T_ERROR;
        }
    }
    lx->start = i + 1;
    lx->n = j - i - 1;
    lx->pos = j + 1;
    return T_STRING;
}

static enum tok lex(struct lexer *lx)
{
    size_t i = lx->pos;
    const unsigned char *b = lx->b;
    while (i < lx->len && space[b[i]]) i++;
    lx->pos = i;
    if (i >= lx->len) return T_EOF;
    switch (b[i]) {
    case '{': lx->pos = i + 1; return T_LBRACE;
    case '}': lx->pos = i + 1; return T_RBRACE;
    case '[': lx->pos = i + 1; return T_LBRACKET;
    case ']': lx->pos = i + 1; return T_RBRACKET;
    case ',': lx->pos = i + 1; return T_COMMA;
    case ':': lx->pos = i + 1; return T_COLON;
    case '"': return lex_string(lx, i);
    case 't': return lex_literal(lx, i, "true", 4, T_TRUE);
    case 'f': return lex_literal(lx, i, "false", 5, T_FALSE);
    case 'n': return lex_literal(lx, i, "null", 4, T_NULL);
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        return lex_number(lx, i);
    default: return T_ERROR;
    }
}

/* ------------------------------------------------------------------------ */
/* Decoding a string's escapes, as yajl_string_decode does                   */
/* ------------------------------------------------------------------------ */

struct out {
    char *buf;
    size_t cap, n;
};

static void put(struct out *o, const void *s, size_t n)
{
    if (o->n < o->cap) memcpy(o->buf + o->n, s, n < o->cap - o->n ? n : o->cap - o->n);
    o->n += n;
}

static unsigned hex4(const unsigned char *r)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) v = v << 4 | (unsigned)hex_digit(r[i]);
    return v;
}

static void put_code_point(struct out *o, unsigned cp)
{
    unsigned char u[4];
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        put(o, u, 1);
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(cp >> 6 | 0xC0);
        u[1] = (unsigned char)((cp & 0x3F) | 0x80);
        put(o, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(cp >> 12 | 0xE0);
        u[1] = (unsigned char)((cp >> 6 & 0x3F) | 0x80);
        u[2] = (unsigned char)((cp & 0x3F) | 0x80);
        put(o, u, 3);
    } else {
        u[0] = (unsigned char)(cp >> 18 | 0xF0);
        u[1] = (unsigned char)((cp >> 12 & 0x3F) | 0x80);
        u[2] = (unsigned char)((cp >> 6 & 0x3F) | 0x80);
        u[3] = (unsigned char)((cp & 0x3F) | 0x80);
        put(o, u, 4);
    }
}

/* Decodes the len bytes at r, a string the lexer accepted (so every
 * escape is whole), as Debian's yajl 2.1.0 does (with the fix for
 * CVE-2017-16516): a high surrogate takes the \u escape right after it,
 * whatever that is, and becomes '?' without one. */
static void decode(const unsigned char *r, size_t len, struct out *o, int *bad)
{
    size_t i = 0;
    while (i < len) {
        const unsigned char *esc = memchr(r + i, '\\', len - i);
        size_t run = esc ? (size_t)(esc - r) - i : len - i;
        put(o, r + i, run);
        i += run;
        if (i >= len) break;
        char ch;
        switch (r[i + 1]) {
        case 'r': ch = '\r'; break;
        case 'n': ch = '\n'; break;
        case 'f': ch = '\f'; break;
        case 'b': ch = '\b'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            unsigned cp = hex4(r + i + 2);
            i += 6;
            if ((cp & 0xFC00) == 0xD800) {
                if (len - i > 1 && r[i] == '\\' && r[i + 1] == 'u') {
                    unsigned lo = hex4(r + i + 2);
                    /* yajl's sum, which does not look at lo's high bits */
                    cp = ((cp & 0x3F) << 10) | ((((cp >> 6) & 0xF) + 1) << 16) | (lo & 0x3FF);
                    i += 6;
                } else {
                    put(o, "?", 1);
                    continue;
                }
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) *bad = 1;
            put_code_point(o, cp);
            continue;
        }
        default: ch = (char)r[i + 1]; break;      /* '"', '\\', '/' */
        }
        put(o, &ch, 1);
        i += 2;
    }
}

static void string_of(const struct lexer *lx, char *scratch, size_t cap, struct json_str *s)
{
    s->bad = 0;
    s->decoded = lx->escapes;
    if (!lx->escapes) {
        s->s = (const char *)lx->b + lx->start;
        s->n = s->kept = lx->n;
        return;
    }
    struct out o = {scratch, cap, 0};
    decode(lx->b + lx->start, lx->n, &o, &s->bad);
    s->s = scratch;
    s->n = o.n;
    s->kept = o.n < cap ? o.n : cap;
}

/* ------------------------------------------------------------------------ */
/* The grammar                                                               */
/* ------------------------------------------------------------------------ */

#define CALL(x) do { if (!(x)) return JSON_CANCELLED; } while (0)

int json_parse(const char *buf, size_t len, const struct json_callbacks *cb, void *ctx,
               char *scratch, size_t cap)
{
    struct lexer lx = {(const unsigned char *)buf, len, 0, 0, 0, 0};
    unsigned char st[JSON_DEPTH_MAX + 1];
    int top = 0;
    struct json_str s;
    st[0] = S_START;
    for (;;) {
        enum tok t = lex(&lx);
        switch (st[top]) {
        case S_DONE:
            /* one token past the value is garbage, but yajl's lexer is
             * still waiting for the end of a partial string */
            return t == T_EOF || t == T_PARTIAL ? JSON_OK : JSON_SYNTAX;
        case S_START:
        case S_MAP_NEED_VAL:
        case S_ARRAY_START:
        case S_ARRAY_NEED_VAL: {
            enum state push = S_START;
            switch (t) {
            case T_STRING:
                string_of(&lx, scratch, cap, &s);
                CALL(cb->string(ctx, &s));
                break;
            case T_NUMBER: CALL(cb->number(ctx, buf + lx.start, lx.n)); break;
            case T_TRUE: CALL(cb->boolean(ctx, 1)); break;
            case T_FALSE: CALL(cb->boolean(ctx, 0)); break;
            case T_NULL: CALL(cb->null(ctx)); break;
            case T_LBRACE:
                CALL(cb->start_map(ctx));
                push = S_MAP_START;
                break;
            case T_LBRACKET:
                CALL(cb->start_array(ctx));
                push = S_ARRAY_START;
                break;
            case T_RBRACKET:
                if (st[top] != S_ARRAY_START) return JSON_SYNTAX;
                CALL(cb->end_array(ctx));
                top--;
                continue;
            default: return JSON_SYNTAX;
            }
            st[top] = st[top] == S_START ? S_DONE : st[top] == S_MAP_NEED_VAL ? S_MAP_GOT_VAL
                                                                              : S_ARRAY_GOT_VAL;
            if (push != S_START) {
                if (top == JSON_DEPTH_MAX) return JSON_SYNTAX;
                st[++top] = (unsigned char)push;
            }
            break;
        }
        case S_MAP_START:
        case S_MAP_NEED_KEY:
            if (t == T_STRING) {
                string_of(&lx, scratch, cap, &s);
                CALL(cb->map_key(ctx, &s));
                st[top] = S_MAP_SEP;
            } else if (t == T_RBRACE && st[top] == S_MAP_START) {
                CALL(cb->end_map(ctx));
                top--;
            } else {
                return JSON_SYNTAX;
            }
            break;
        case S_MAP_SEP:
            if (t != T_COLON) return JSON_SYNTAX;
            st[top] = S_MAP_NEED_VAL;
            break;
        case S_MAP_GOT_VAL:
        case S_ARRAY_GOT_VAL: {
            int map = st[top] == S_MAP_GOT_VAL;
            if (t == T_COMMA) {
                st[top] = map ? S_MAP_NEED_KEY : S_ARRAY_NEED_VAL;
            } else if (t == (map ? T_RBRACE : T_RBRACKET)) {
                CALL(map ? cb->end_map(ctx) : cb->end_array(ctx));
                top--;
            } else {
                return JSON_SYNTAX;
            }
            break;
        }
        }
    }
}
