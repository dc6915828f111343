/* resp.c -- a RESP2 reply parsed straight into a region (resp.h). */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "resp.h"

/* The most elements an array may say it has: more is not a reply of ours
 * (an XRANGE's is aggregator.batch long), and its element table would be
 * allocated before a byte of it arrived. */
#define RESP_MAX_ELEMENTS (1u << 26)

/* Reads the number Redis writes after a type byte -- an optional '-', 1-19
 * digits, CRLF -- from p: 1 and *v, *next past the CRLF; 0 when buf ends
 * first; -1 when it is not one. */
static inline int number(const char *p, const char *end, long long *v, const char **next)
{
    int neg = p < end && *p == '-';
    p += neg;
    const char *d = p;
    unsigned long long u = 0;
    for (; p < end && (unsigned char)(*p - '0') < 10; p++) {
        if (p - d == 19) return -1;
        u = u * 10 + (unsigned)(*p - '0');
    }
    if (p + 1 >= end) return p < end && *p != '\r' ? -1 : 0;
    if (p == d || p[0] != '\r' || p[1] != '\n' || u > (unsigned long long)LLONG_MAX + (unsigned)neg) return -1;
    *v = neg ? -(long long)(u - 1) - 1 : (long long)u;
    *next = p + 2;
    return 1;
}

/* -1, errno EPROTO: a byte no reply of RESP2 has there. */
static int bad(void)
{
    errno = EPROTO;
    return -1;
}

/* agg_region_alloc(), its common case here. */
static inline void *take(struct agg_region *rg, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n > rg->left) return agg_region_alloc(rg, n);
    void *p = rg->at;
    rg->at += n;
    rg->left -= n;
    return p;
}

static redisReply *object(struct agg_region *rg, int type, size_t extra)
{
    redisReply *r = take(rg, sizeof *r + extra);
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
        const char *p = buf + st->pos, *next = NULL;
        if (p >= end) return 0;
        redisReply *r;
        long long n;
        int rc;
        switch (*p) {
        case '+':
        case '-': {
            const char *cr = p + 1;
            while (cr < end && *cr != '\r') cr++;
            if (cr + 1 >= end) return 0;
            if (cr[1] != '\n') return bad();
            next = cr + 2;
            r = string(rg, *p == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR, p + 1, (size_t)(cr - p - 1));
            break;
        }
        case ':':
            if ((rc = number(p + 1, end, &n, &next)) <= 0) return rc < 0 ? bad() : 0;
            if ((r = object(rg, REDIS_REPLY_INTEGER, 0))) r->integer = n;
            break;
        case '$':
            if ((rc = number(p + 1, end, &n, &next)) <= 0) return rc < 0 ? bad() : 0;
            if (n < -1) return bad();
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
            if ((rc = number(p + 1, end, &n, &next)) <= 0) return rc < 0 ? bad() : 0;
            if (n < -1 || n > RESP_MAX_ELEMENTS) return bad();
            if (n == -1) {
                r = object(rg, REDIS_REPLY_NIL, 0);
                break;
            }
            if ((r = object(rg, REDIS_REPLY_ARRAY, 0)) && n > 0) {
                r->element = take(rg, (size_t)n * sizeof *r->element);
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

/* The most strings an entry may have: an entry of ours has 2, of earlier
 * versions a few dozen. */
#define RESP_MAX_STRINGS 1024

/* "<type><number>\r\n" at p: as number(), -1 also when the type differs. */
static inline int head(const char *p, const char *end, char type, long long *v, const char **next)
{
    if (p >= end) return 0;
    if (*p != type) return -1;
    return number(p + 1, end, v, next);
}

/* A bulk string at *p ("$-1" reads as empty): 1, its bytes at *s, *n of
 * them, *p past it; 0 when buf ends first; -1 when it is not one. */
static inline int bulk(const char **p, const char *end, const char **s, size_t *n)
{
    long long l;
    const char *next;
    int rc = head(*p, end, '$', &l, &next);
    if (rc <= 0) return rc;
    if (l == -1) {
        *s = "";
        *n = 0;
        *p = next;
        return 1;
    }
    if (l < 0) return -1;
    if ((size_t)(end - next) < 2 || (unsigned long long)l > (size_t)(end - next) - 2) return 0;
    if (next[l] != '\r' || next[l + 1] != '\n') return -1;
    *s = next;
    *n = (size_t)l;
    *p = next + l + 2;
    return 1;
}

/* Where a string of the reply is. */
struct span {
    const char *s;
    size_t n;
};

/* One entry, [id, [strings]], at *p, read once: its id, its strings (*nstr;
 * the first cap of them into str), *bytes of them with their NULs. 1, *p
 * past it; 0 buf ends first; -1 not an entry. */
static int entry(const char **p, const char *end, struct span *id, struct span *str, size_t cap,
                 size_t *nstr, size_t *bytes)
{
    long long k;
    const char *q = *p;
    int rc = head(q, end, '*', &k, &q);
    if (rc <= 0) return rc;
    if (k != 2) return -1;
    if ((rc = bulk(&q, end, &id->s, &id->n)) <= 0) return rc;
    *bytes = id->n + 1;
    if ((rc = head(q, end, '*', &k, &q)) <= 0) return rc;
    if (k < -1 || k > RESP_MAX_STRINGS) return -1;
    *nstr = k > 0 ? (size_t)k : 0;
    for (size_t i = 0; i < *nstr; i++) {
        struct span x;
        if ((rc = bulk(&q, end, &x.s, &x.n)) <= 0) return rc;
        if (i < cap) str[i] = x;
        *bytes += x.n + 1;
    }
    *p = q;
    return 1;
}

/* Copies x to *to, NUL ended; where it went. */
static inline const char *put(char **to, struct span x)
{
    char *at = *to;
    memcpy(at, x.s, x.n);
    at[x.n] = '\0';
    *to += x.n + 1;
    return at;
}

int resp_parse_entries(struct resp_entries_parse *st, const char *buf, size_t len, struct agg_region *rg)
{
    const char *end = buf + len, *p = buf + st->pos;
    struct resp_entries *out = st->out;
    if (!st->begun) {
        long long n;
        const char *next;
        int rc;
        if (p >= end) return 0;
        if (*p == '-') {
            struct resp_parse e = {.pos = st->pos};
            if ((rc = resp_parse(&e, buf, len, rg)) <= 0) return rc;
            out->error = e.root;
            st->pos = e.pos;
            return 1;
        }
        if ((rc = head(p, end, '*', &n, &next)) <= 0) return rc < 0 ? bad() : 0;
        if (n < 0 || n > RESP_MAX_ELEMENTS) return bad();
        if (n && !(out->e = take(rg, (size_t)n * sizeof *out->e))) goto oom;
        out->n = (size_t)n;
        st->begun = 1;
        st->pos = (size_t)(next - buf);
        p = next;
    }
    for (; st->done < out->n; st->done++) {
        enum { MOST = 16 };     /* an entry of ours has 2 strings; more are read twice */
        struct span id, few[MOST], *str = few;
        size_t nstr, bytes;
        const char *q = p;
        int rc = entry(&q, end, &id, few, MOST, &nstr, &bytes);
        if (rc <= 0) return rc < 0 ? bad() : 0;
        /* the strings' pointers, their lengths, their bytes: one block */
        const char **ptr = take(rg, nstr * (sizeof(char *) + sizeof(size_t)) + bytes);
        if (!ptr) goto oom;
        if (nstr > MOST) {
            if (!(str = take(rg, nstr * sizeof *str))) goto oom;
            q = p;
            entry(&q, end, &id, str, nstr, &nstr, &bytes);
        }
        size_t *lens = (size_t *)(ptr + nstr);
        char *to = (char *)(lens + nstr);
        struct resp_entry *e = &out->e[st->done];
        *e = (struct resp_entry){put(&to, id), id.n, nstr, ptr, lens};
        for (size_t i = 0; i < nstr; i++) {
            ptr[i] = put(&to, str[i]);
            lens[i] = str[i].n;
        }
        p = q;
        st->pos = (size_t)(p - buf);
    }
    return 1;
oom:
    errno = ENOMEM;
    return -1;
}
