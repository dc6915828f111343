/* agg.c -- the aggregator's shared state: config, Redis connection, sites.
 *
 * See agg.h. The connection is synchronous with timeouts; any I/O error
 * closes it, and the caller decides whether to reconnect (the daemon does,
 * with backoff) or give up (the one-shot commands exit 1).
 */
#include "agg.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decimal.h"
#include "fold.h"
#include "keys.h"
#include "log.h"
#include "rconn.h"
#include "resp.h"

static int add_site(struct agg *a, const char *name, const char *tz, char *err, size_t errlen)
{
    struct agg_site *s;
    if (a->nsites == a->sites_alloc) {
        /* Geometric growth: 10,000 configured sites are 10,000 calls. */
        size_t n = a->sites_alloc ? a->sites_alloc * 2 : 16;
        s = realloc(a->sites, n * sizeof *s);
        if (!s) goto oom;
        a->sites = s;
        a->sites_alloc = n;
    }
    s = &a->sites[a->nsites];
    memset(s, 0, sizeof *s);
    if (keys_hits(s->stream, sizeof s->stream, name) < 0 ||
        keys_cursor(s->cursor_key, sizeof s->cursor_key, name) < 0 ||
        keys_lease(s->lease_key, sizeof s->lease_key, name) < 0 ||
        keys_withdrawn_gen(s->gen_key, sizeof s->gen_key, name) < 0) {
        snprintf(err, errlen, "site name too long: '%.60s...'", name);
        return -1;
    }
    char zerr[256];
    s->zone = clock_zone_new(tz, zerr, sizeof zerr);
    if (!s->zone) {
        snprintf(err, errlen, "%s: [site %.100s] timezone: %s", a->cfg->path, name, zerr);
        return -1;
    }
    s->ready = 1;
    s->name = strdup(name);
    if (!s->name) {
        clock_zone_free(s->zone);
        goto oom;
    }
    a->nsites++;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

struct agg *agg_new(struct cfg *cfg, char *err, size_t errlen)
{
    struct agg *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    char zerr[256];
    a->default_zone = clock_zone_new(cfg->aggregator.timezone, zerr, sizeof zerr);
    if (!a->default_zone) {
        snprintf(err, errlen, "%s: aggregator.timezone: %s", cfg->path, zerr);
        goto error;
    }
    for (size_t i = 0; i < cfg->n_sites; i++) {
        const char *tz = cfg->sites[i].timezone ? cfg->sites[i].timezone : cfg->aggregator.timezone;
        if (add_site(a, cfg->sites[i].name, tz, err, errlen) < 0) goto error;
    }
    char host[64] = "host";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    snprintf(a->consumer, sizeof a->consumer, "%s-%ld", host, (long)getpid());
    return a;

error:
    agg_free(a);
    return NULL;
}

void agg_free(struct agg *a)
{
    if (!a) return;
    agg_disconnect(a);
    for (size_t i = 0; i < a->nsites; i++) {
        free(a->sites[i].name);
        clock_zone_free(a->sites[i].zone);
        fold_free(a->sites[i].fold);
    }
    free(a->sites);
    clock_zone_free(a->default_zone);
    free(a->fmt);
    free(a->held);
    free(a);
}

struct agg_site *agg_site(struct agg *a, const char *name)
{
    for (size_t i = 0; i < a->nsites; i++)
        if (strcmp(a->sites[i].name, name) == 0) return &a->sites[i];
    char err[256];
    if (add_site(a, name, clock_zone_name(a->default_zone), err, sizeof err) < 0) {
        log_warn("ignoring site: %s", err);
        return NULL;
    }
    return &a->sites[a->nsites - 1];
}

void agg_disconnect(struct agg *a)
{
    if (a->rc) redisFree(a->rc);
    a->rc = NULL;
    for (size_t i = 0; i < a->nsites; i++) {
        a->sites[i].cursor_known = 0;
        a->sites[i].lease_until = 0;
        a->sites[i].ready = 1;
    }
}

int agg_connect(struct agg *a)
{
    struct rconn_url u;
    agg_disconnect(a);
    if (rconn_parse_url(a->cfg->redis.url, &u, a->err, sizeof a->err) < 0) return -1;
    if (!(a->rc = rconn_connect(&u, 2000, a->err, sizeof a->err))) return -1;
    /* A blocking XREAD may legitimately wait block_ms. */
    long ms = a->cfg->aggregator.block_ms + 5000;
    struct timeval ctv = {ms / 1000, (ms % 1000) * 1000};
    if (redisSetTimeout(a->rc, ctv) != REDIS_OK) {
        snprintf(a->err, sizeof a->err, "redis: cannot set timeout");
        agg_disconnect(a);
        return -1;
    }
    return 0;
}

static redisReply *checked(struct agg *a, void *reply)
{
    if (!reply) {
        snprintf(a->err, sizeof a->err, "redis: %s",
                 a->rc && a->rc->err ? a->rc->errstr : "connection lost");
        agg_disconnect(a);
    }
    return reply;
}

redisReply *agg_command(struct agg *a, const char *fmt, ...)
{
    if (!a->rc && agg_connect(a) < 0) return NULL;
    va_list ap;
    va_start(ap, fmt);
    void *r = redisvCommand(a->rc, fmt, ap);
    va_end(ap);
    return checked(a, r);
}

redisReply *agg_command_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen)
{
    if (!a->rc && agg_connect(a) < 0) return NULL;
    return checked(a, redisCommandArgv(a->rc, argc, argv, argvlen));
}

/* The command in Redis's protocol into *buf (grown to *cap) from byte at:
 * the length of all, or 0 when out of memory. Written here rather than by
 * hiredis's redisAppendCommandArgv, whose formatting (sdscatfmt per
 * argument) was a twentieth of the drain's CPU for a batch's tens of
 * thousands of arguments. */
static size_t format_argv(char **buf, size_t *cap, size_t at, int argc, const char **argv,
                          const size_t *argvlen)
{
    size_t need = at + 32;
    for (int i = 0; i < argc; i++) need += (argvlen ? argvlen[i] : strlen(argv[i])) + 32;
    if (need > *cap) {
        size_t c = need > 2 * *cap ? need : 2 * *cap;
        char *b = realloc(*buf, c);
        if (!b) return 0;
        *buf = b;
        *cap = c;
    }
    char *p = *buf + at;
    *p++ = '*';
    p += decimal_u64(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        *p++ = '$';
        p += decimal_u64(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - *buf);
}

static int oom(struct agg *a)
{
    snprintf(a->err, sizeof a->err, "out of memory");
    return -1;
}

int agg_append_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen)
{
    if (!a->rc && agg_connect(a) < 0) return -1;
    size_t len = format_argv(&a->fmt, &a->fmtcap, 0, argc, argv, argvlen);
    return len && redisAppendFormattedCommand(a->rc, a->fmt, len) == REDIS_OK ? 0 : oom(a);
}

int agg_hold_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen)
{
    size_t len = format_argv(&a->held, &a->heldcap, a->heldlen, argc, argv, argvlen);
    return len ? (a->heldlen = len, 0) : oom(a);
}

int agg_append_held(struct agg *a)
{
    if (!a->rc && agg_connect(a) < 0) return -1;
    if (!a->heldlen) return oom(a);     /* nothing held: a caller's bug, said as an error */
    int rc = redisAppendFormattedCommand(a->rc, a->held, a->heldlen) == REDIS_OK ? 0 : oom(a);
    a->heldlen = 0;
    return rc;
}

int agg_flush(struct agg *a)
{
    int done = 0;
    while (!done) {
        if (!a->rc || redisBufferWrite(a->rc, &done) != REDIS_OK) {
            checked(a, NULL);
            return -1;
        }
    }
    return 0;
}

redisReply *agg_get_reply(struct agg *a)
{
    void *r = NULL;
    if (!a->rc) {
        snprintf(a->err, sizeof a->err, "redis: connection lost");
        return NULL;
    }
    if (redisGetReply(a->rc, &r) != REDIS_OK) r = NULL;
    return checked(a, r);
}

/* agg_hash_each: hiredis's reader builds replies through a table of
 * functions; these stand in for its own while one HGETALL reply is read.
 * Every function returns a non-NULL token (NULL would mean out of memory to
 * the reader); nothing is allocated per field, only the field name of the
 * pair being read is copied, as the reader's buffer may move before its
 * value arrives. */
struct hash_each {
    int (*each)(void *arg, const char *field, size_t len, long long value);
    void *arg;
    int rc;                     /* each's first nonzero return, or 1: out of memory */
    char *field;                /* the pending field name ... */
    size_t len, room;           /* ... its length, and the buffer's size */
};

static char hash_each_token;

static void *he_string(const redisReadTask *t, char *s, size_t len)
{
    struct hash_each *h = t->privdata;
    /* Only the elements of a top-level array are fields and values. */
    if (!h || !t->parent || t->parent->parent || t->type != REDIS_REPLY_STRING) return &hash_each_token;
    if (t->idx % 2 == 0) {
        if (len + 1 > h->room) {
            size_t room = len + 1 > 2 * h->room ? len + 1 : 2 * h->room;
            char *f = realloc(h->field, room);
            if (!f) {
                h->rc = 1;
                return &hash_each_token;
            }
            h->field = f;
            h->room = room;
        }
        memcpy(h->field, s, len);
        h->field[len] = '\0';
        h->len = len;
        return &hash_each_token;
    }
    if (h->rc) return &hash_each_token;
    /* As strtoll reads a Redis integer: saturated at the ends of the range. */
    int neg = len > 0 && s[0] == '-';
    unsigned long long u = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    const unsigned long long cut = (unsigned long long)LLONG_MAX / 10;     /* the same for both ends */
    for (size_t i = (size_t)neg; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        u = u > cut || (u == cut && d > lim % 10) ? lim : u * 10 + d;
    }
    long long v = neg ? (u == lim ? LLONG_MIN : -(long long)u) : (long long)u;
    h->rc = h->each(h->arg, h->field, h->len, v);
    return &hash_each_token;
}

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
static void *he_array(const redisReadTask *t, size_t n)
#else
static void *he_array(const redisReadTask *t, int n)
#endif
{
    (void)t;
    (void)n;
    return &hash_each_token;
}

static void *he_integer(const redisReadTask *t, long long v)
{
    (void)t;
    (void)v;
    return &hash_each_token;
}

static void *he_nil(const redisReadTask *t)
{
    (void)t;
    return &hash_each_token;
}

static void he_free(void *obj)
{
    (void)obj;
}

static redisReplyObjectFunctions hash_each_fn = {
    .createString = he_string,
    .createArray = he_array,
    .createInteger = he_integer,
    .createNil = he_nil,
    .freeObject = he_free,
};

/* agg_get_reply_in: the reader's functions again, building the usual
 * redisReply objects but in the region's blocks, so that a range of 20,000
 * entries (five objects each) is not 100,000 malloc()s read and as many
 * free()s later -- a fifth of the drain's CPU. */
#define REGION_FIRST (64 << 10)   /* a small range, a few visit states: one small block */
#define REGION_BLOCK (1 << 20)

struct region_block {
    struct region_block *next;
    max_align_t data[];
};

void *agg_region_alloc(struct agg_region *rg, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n > rg->left) {
        rg->grow = rg->grow ? (rg->grow < REGION_BLOCK ? 2 * rg->grow : REGION_BLOCK) : REGION_FIRST;
        size_t size = n > rg->grow ? n : rg->grow;
        struct region_block *b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->next = rg->blocks;
        rg->blocks = b;
        rg->at = (char *)b->data;
        rg->left = size;
    }
    void *p = rg->at;
    rg->at += n;
    rg->left -= n;
    return p;
}

void agg_region_free(struct agg_region *rg)
{
    for (struct region_block *b = rg->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    memset(rg, 0, sizeof *rg);
}

static redisReply *rg_object(const redisReadTask *t, int type)
{
    redisReply *r = agg_region_alloc(t->privdata, sizeof *r);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->type = type;
    if (t->parent) ((redisReply *)t->parent->obj)->element[t->idx] = r;
    return r;
}

static void *rg_string(const redisReadTask *t, char *s, size_t len)
{
    redisReply *r = rg_object(t, t->type);
    char *b = r ? agg_region_alloc(t->privdata, len + 1) : NULL;
    if (!b) return NULL;
    memcpy(b, s, len);
    b[len] = '\0';
    r->str = b;
    r->len = len;
    return r;
}

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
static void *rg_array(const redisReadTask *t, size_t n)
#else
static void *rg_array(const redisReadTask *t, int n)
#endif
{
    redisReply *r = rg_object(t, REDIS_REPLY_ARRAY);
    if (!r) return NULL;
    if (n > 0 && !(r->element = agg_region_alloc(t->privdata, (size_t)n * sizeof *r->element))) return NULL;
    r->elements = (size_t)n;
    return r;
}

static void *rg_integer(const redisReadTask *t, long long v)
{
    redisReply *r = rg_object(t, REDIS_REPLY_INTEGER);
    if (r) r->integer = v;
    return r;
}

static void *rg_nil(const redisReadTask *t)
{
    return rg_object(t, REDIS_REPLY_NIL);
}

static redisReplyObjectFunctions region_fn = {
    .createString = rg_string,
    .createArray = rg_array,
    .createInteger = rg_integer,
    .createNil = rg_nil,
    .freeObject = he_free,
};

/* Drops the part of the reader's buffer before its cursor, as hiredis does
 * once past 1 KiB; *pos (of the same buffer) moves back with it. */
static void reader_trim(redisReader *rd, size_t *pos)
{
    if (rd->pos < 1024 || rd->pos > INT_MAX) return;
    sdsrange(rd->buf, (int)rd->pos, -1);
    *pos -= rd->pos;
    rd->pos = 0;
    rd->len = sdslen(rd->buf);
}

/* A reply read by one of resp.h's parsers (parse, its state st, whose
 * position is *pos), reading the socket into hiredis's buffer as hiredis
 * would (after writing what is pending) and leaving its cursor after the
 * reply: hiredis's reader and these take turns between replies. 0, or -1. */
static int read_parsed(struct agg *a, int (*parse)(void *, const char *, size_t, struct agg_region *),
                       void *st, size_t *pos, struct agg_region *rg)
{
    redisContext *c = a->rc;
    redisReader *rd = c->reader;
    *pos = rd->pos;
    int written = 0;
    for (;;) {
        int rc = parse(st, rd->buf, rd->len, rg);
        if (rc < 0) {
            snprintf(a->err, sizeof a->err, "redis: %s",
                     errno == ENOMEM ? "out of memory reading a reply" : "protocol error");
            agg_disconnect(a);
            return -1;
        }
        rd->pos = *pos;
        reader_trim(rd, pos);
        if (rc > 0) return 0;
        for (int done = 0; !written; written = done)
            if (redisBufferWrite(c, &done) == REDIS_ERR) break;
        if (written && redisBufferRead(c) == REDIS_OK) continue;
        checked(a, NULL);       /* the connection's error, and it is dropped */
        return -1;
    }
}

static int parse_reply(void *st, const char *buf, size_t len, struct agg_region *rg)
{
    return resp_parse(st, buf, len, rg);
}

static int parse_entries(void *st, const char *buf, size_t len, struct agg_region *rg)
{
    return resp_parse_entries(st, buf, len, rg);
}

/* Whether the next reply can be read by resp.h's parsers: hiredis's reader
 * holds none of it, and the connection blocks. */
static int parsed_here(const struct agg *a)
{
    const redisReader *rd = a->rc->reader;
    return !rd->err && rd->ridx == -1 && (a->rc->flags & REDIS_BLOCK);
}

int agg_get_entries_in(struct agg *a, struct agg_region *rg, struct resp_entries *out)
{
    memset(out, 0, sizeof *out);
    if (!a->rc) {
        snprintf(a->err, sizeof a->err, "redis: connection lost");
        return -1;
    }
    if (!parsed_here(a)) {
        /* hiredis's reader holds part of a reply: never between the replies
         * of a blocking connection, which is all the aggregator opens */
        snprintf(a->err, sizeof a->err, "redis: a range read while a reply was half read");
        return -1;
    }
    struct resp_entries_parse st = {.out = out};
    return read_parsed(a, parse_entries, &st, &st.pos, rg);
}

static redisReply *get_reply_parsed(struct agg *a, struct agg_region *rg)
{
    struct resp_parse st = {0};
    return read_parsed(a, parse_reply, &st, &st.pos, rg) < 0 ? NULL : st.root;
}

redisReply *agg_get_reply_in(struct agg *a, struct agg_region *rg)
{
    if (!a->rc) {
        snprintf(a->err, sizeof a->err, "redis: connection lost");
        return NULL;
    }
    if (parsed_here(a)) return get_reply_parsed(a, rg);
    redisReader *rd = a->rc->reader;
    redisReplyObjectFunctions *fn = rd->fn;
    void *priv = rd->privdata;
    rd->fn = &region_fn;
    rd->privdata = rg;
    void *r = NULL;
    int ok = redisGetReply(a->rc, &r) == REDIS_OK;
    /* A reply cut off is the region's: hiredis must not free it. */
    if (!ok) rd->reply = NULL;
    rd->fn = fn;
    rd->privdata = priv;
    return checked(a, ok ? r : NULL);
}

int agg_hash_each(struct agg *a, int (*each)(void *arg, const char *field, size_t len, long long value),
                  void *arg)
{
    if (!a->rc) {
        snprintf(a->err, sizeof a->err, "redis: connection lost");
        return -1;
    }
    struct hash_each h = {.each = each, .arg = arg};
    redisReader *rd = a->rc->reader;
    redisReplyObjectFunctions *fn = rd->fn;
    void *priv = rd->privdata;
    rd->fn = &hash_each_fn;
    rd->privdata = &h;
    void *r = NULL;
    int ok = redisGetReply(a->rc, &r) == REDIS_OK;
    /* A reply cut off (the connection lost mid-array) leaves the reader
     * holding our token as its reply: hiredis's own functions must not be
     * asked to free it when the connection is freed. */
    if (!ok) rd->reply = NULL;
    rd->fn = fn;
    rd->privdata = priv;
    free(h.field);
    if (!ok || !r) {
        checked(a, NULL);
        return -1;
    }
    return h.rc;
}

int agg_discover(struct agg *a)
{
    char cursor[32] = "0", pattern[32];
    keys_hits_pattern(pattern, sizeof pattern);
    do {
        redisReply *r = agg_command(a, "SCAN %s MATCH %s COUNT 1000 TYPE stream", cursor, pattern);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING) {
            snprintf(a->err, sizeof a->err, "SCAN: unexpected reply%s%s",
                     r->type == REDIS_REPLY_ERROR ? ": " : "", r->type == REDIS_REPLY_ERROR ? r->str : "");
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            char name[512];
            size_t before = a->nsites;
            if (keys_site_of_hits(keys->element[i]->str, keys->element[i]->len, name, sizeof name) > 0 &&
                agg_site(a, name) && a->nsites > before)
                log_info("new site %s", name);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int agg_stopping(const struct agg *a)
{
    return a->stop && *a->stop;
}

void agg_sleep(struct agg *a, long ms)
{
    while (ms > 0 && !agg_stopping(a)) {
        long step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, step * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !agg_stopping(a)) {}
        ms -= step;
    }
}
