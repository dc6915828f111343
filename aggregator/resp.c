/* resp.c -- a RESP2 reply parsed straight into a region (resp.h). */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "resp.h"

/* The most elements an array may say it has: more is not a reply of ours
 * (an XRANGE's is aggregator.batch long), and its element table would be
 * allocated before a byte of it arrived. */
#define RESP_MAX_ELEMENTS (1u << 26)

/* A number written as Redis writes one: an optional '-', 1-19 digits. */
static int number(const char *p, const char *e, long long *v)
{
    int neg = p < e && *p == '-';
    p += neg;
    if (p == e || e - p > 19) return -1;
    unsigned long long u = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return -1;
        u = u * 10 + (unsigned)(*p - '0');
    }
    if (u > (unsigned long long)LLONG_MAX + (unsigned)neg) return -1;
    *v = neg ? -(long long)(u - 1) - 1 : (long long)u;
    return 0;
}

/* -1, errno EPROTO: a byte no reply of RESP2 has there. */
static int bad(void)
{
    errno = EPROTO;
    return -1;
}

static redisReply *object(struct agg_region *rg, int type, size_t extra)
{
    redisReply *r = agg_region_alloc(rg, sizeof *r + extra);
    if (r) *r = (redisReply){.type = type};
    return r;
}

/* A string reply of type, its bytes s..s+len copied after it, NUL ended. */
static redisReply *string(struct agg_region *rg, int type, const char *s, size_t len)
{
    redisReply *r = object(rg, type, len + 1);
    if (!r) return NULL;
    r->str = (char *)(r + 1);
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

int resp_parse(struct resp_parse *st, const char *buf, size_t len, struct agg_region *rg)
{
    const char *end = buf + len;
    for (;;) {
        const char *p = buf + st->pos;
        if (p >= end) return 0;
        const char *cr = p + 1;                 /* the header line's end */
        while (cr < end && *cr != '\r') cr++;
        if (cr + 1 >= end) return 0;
        if (cr[1] != '\n') return bad();
        const char *next = cr + 2;
        redisReply *r;
        long long n;
        switch (*p) {
        case '+':
        case '-':
            r = string(rg, *p == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR, p + 1, (size_t)(cr - p - 1));
            break;
        case ':':
            if (number(p + 1, cr, &n) < 0) return bad();
            if ((r = object(rg, REDIS_REPLY_INTEGER, 0))) r->integer = n;
            break;
        case '$':
            if (number(p + 1, cr, &n) < 0 || n < -1) return bad();
            if (n == -1) {
                r = object(rg, REDIS_REPLY_NIL, 0);
                break;
            }
            if ((size_t)(end - next) < 2 || (unsigned long long)n > (size_t)(end - next) - 2) return 0;
            if (next[n] != '\r' || next[n + 1] != '\n') return bad();
            r = string(rg, REDIS_REPLY_STRING, next, (size_t)n);
            next += n + 2;
            break;
        case '*':
            if (number(p + 1, cr, &n) < 0 || n < -1 || n > RESP_MAX_ELEMENTS) return bad();
            if (n == -1) {
                r = object(rg, REDIS_REPLY_NIL, 0);
                break;
            }
            if ((r = object(rg, REDIS_REPLY_ARRAY, 0)) && n > 0) {
                r->element = agg_region_alloc(rg, (size_t)n * sizeof *r->element);
                if (!r->element) r = NULL;
                else r->elements = (size_t)n;
            }
            break;
        default:
            return bad();
        }
        if (!r) {
            errno = ENOMEM;
            return -1;
        }
        if (r->elements && st->depth == RESP_DEPTH) return bad();
        st->pos = (size_t)(next - buf);
        if (st->depth) {
            st->open[st->depth - 1].array->element[st->open[st->depth - 1].next++] = r;
        } else {
            st->root = r;
        }
        if (r->elements) {
            st->open[st->depth].array = r;
            st->open[st->depth++].next = 0;
        }
        while (st->depth && st->open[st->depth - 1].next == st->open[st->depth - 1].array->elements)
            st->depth--;
        if (!st->depth) return 1;
    }
}
