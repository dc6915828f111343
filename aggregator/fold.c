/* fold.c -- the fold's C half: a batch of raw hits becomes one call of fold.lua.
 *
 * Everything is copied into one growing arena and addressed by offset, so a
 * batch of 500 hits costs a few reallocations, not thousands of mallocs, and
 * the argument vector is built once at the end. Each entry's items are
 * written at their fold.h offsets into slots reserved for them, so the
 * layout the script reads is the enum's, not the order of the calls here.
 * Keys are deduplicated through a small open-addressing table: a batch of one
 * day touches a few dozen distinct counters, and each is sent once in KEYS.
 */
#include "fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "keys.h"

const char *const fold_dim_names[FOLD_NDIMS] = {
    "totals", "page", "entry", "exit", "source", "utm_source", "utm_medium", "utm_campaign",
    "utm_term", "utm_content", "country", "region", "browser", "os", "device", "event", "uv",
};

struct str {
    size_t off, len;
};

struct fold_batch {
    char *site;
    struct clock_zone *zone;
    int64_t max_ttl_ms;

    char *arena;
    size_t alen, acap;
    struct str *keys;           /* keys[i] is KEYS[i + 1] */
    size_t nkeys, capkeys;
    struct str *args;           /* the entries' ARGV items, from FOLD_ARGV_FIRST_ENTRY */
    size_t nargs, capargs;
    uint32_t *ht;               /* key index + 1, 0 = empty */
    size_t htcap;
    size_t entries;

    /* Key indexes of the day and hour of the previous hit: most hits of a
     * batch share them. */
    char day[CLOCK_DAY_LEN + 1];
    char hour[CLOCK_HOUR_LEN + 1];
    uint32_t daykey[FOLD_NDIMS];
    uint32_t hourkey;

    const char **argv;
    size_t *argvlen;
    size_t capargv;
};

/* ------------------------------------------------------------------------ */
/* Arena, keys, args                                                         */
/* ------------------------------------------------------------------------ */

static int arena_put(struct fold_batch *b, const char *s, size_t len, struct str *out)
{
    if (b->alen + len + 1 > b->acap) {
        size_t cap = b->acap ? b->acap : 4096;
        while (cap < b->alen + len + 1) cap *= 2;
        char *a = realloc(b->arena, cap);
        if (!a) return -1;
        b->arena = a;
        b->acap = cap;
    }
    memcpy(b->arena + b->alen, s, len);
    b->arena[b->alen + len] = '\0';
    out->off = b->alen;
    out->len = len;
    b->alen += len + 1;
    return 0;
}

static int grow(void *pptr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *p = realloc(*(void **)pptr, c * size);
    if (!p) return -1;
    *(void **)pptr = p;
    *cap = c;
    return 0;
}

static int ht_rebuild(struct fold_batch *b, size_t cap)
{
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return -1;
    for (size_t i = 0; i < b->nkeys; i++) {
        size_t j = hash_fnv1a(HASH_FNV_OFFSET, b->arena + b->keys[i].off, b->keys[i].len) & (cap - 1);
        while (ht[j]) j = (j + 1) & (cap - 1);
        ht[j] = (uint32_t)i + 1;
    }
    free(b->ht);
    b->ht = ht;
    b->htcap = cap;
    return 0;
}

/* Returns the 1-based KEYS index of key, adding it if new; 0 when out of memory. */
static uint32_t key_index(struct fold_batch *b, const char *key, size_t len)
{
    if ((b->nkeys + 1) * 2 > b->htcap && ht_rebuild(b, b->htcap ? b->htcap * 2 : 256) < 0)
        return 0;
    size_t j = hash_fnv1a(HASH_FNV_OFFSET, key, len) & (b->htcap - 1);
    while (b->ht[j]) {
        struct str *k = &b->keys[b->ht[j] - 1];
        if (k->len == len && memcmp(b->arena + k->off, key, len) == 0) return b->ht[j];
        j = (j + 1) & (b->htcap - 1);
    }
    if (grow(&b->keys, &b->capkeys, b->nkeys + 1, sizeof *b->keys) < 0) return 0;
    if (arena_put(b, key, len, &b->keys[b->nkeys]) < 0) return 0;
    b->ht[j] = (uint32_t)++b->nkeys;
    return b->ht[j];
}

/* Appends n empty items (a head or an op, sized by its fold.h enum); *at is
 * the index of the first. 0 or -1. */
static int reserve(struct fold_batch *b, size_t n, size_t *at)
{
    if (grow(&b->args, &b->capargs, b->nargs + n, sizeof *b->args) < 0) return -1;
    *at = b->nargs;
    for (size_t i = 0; i < n; i++) b->args[b->nargs++] = (struct str){0, 0};
    return 0;
}

/* Sets the reserved item at to a copy of s. 0 or -1. */
static int set(struct fold_batch *b, size_t at, const char *s, size_t len)
{
    return arena_put(b, s, len, &b->args[at]);
}

static int set_s(struct fold_batch *b, size_t at, const char *s)
{
    return set(b, at, s, strlen(s));
}

static int set_i(struct fold_batch *b, size_t at, long long v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    return set(b, at, buf, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* Batch                                                                     */
/* ------------------------------------------------------------------------ */

struct fold_batch *fold_batch_new(const char *site, struct clock_zone *zone, int64_t max_ttl_ms)
{
    struct fold_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->site = strdup(site);
    if (!b->site) goto error;
    b->zone = zone;
    b->max_ttl_ms = max_ttl_ms;
    fold_batch_reset(b);
    if (b->nkeys == 0) goto error;
    return b;

error:
    fold_batch_free(b);
    return NULL;
}

void fold_batch_free(struct fold_batch *b)
{
    if (!b) return;
    free(b->site);
    free(b->arena);
    free(b->keys);
    free(b->args);
    free(b->ht);
    free(b->argv);
    free(b->argvlen);
    free(b);
}

void fold_batch_reset(struct fold_batch *b)
{
    b->alen = 0;
    b->nkeys = 0;
    b->nargs = 0;
    b->entries = 0;
    b->day[0] = '\0';
    b->hour[0] = '\0';
    if (b->ht) memset(b->ht, 0, b->htcap * sizeof *b->ht);
    /* The first key added is KEYS[1]: the stream. */
    _Static_assert(FOLD_KEY_STREAM == 1, "the stream must be the first key");
    char key[512];
    int n = keys_hits(key, sizeof key, b->site);
    if (n > 0) key_index(b, key, (size_t)n);
}

size_t fold_batch_entries(const struct fold_batch *b)
{
    return b->entries;
}

/* The value of field name in fv, or NULL. */
static const char *field(const char *const *fv, const size_t *fvlen, size_t nfv,
                         const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 1 < nfv; i += 2) {
        if (fvlen[i] == nl && memcmp(fv[i], name, nl) == 0) {
            *len = fvlen[i + 1];
            return fv[i + 1];
        }
    }
    *len = 0;
    return NULL;
}

static int parse_ms(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (!s || len == 0 || len > 15) return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int valid_visitor(const char *v, size_t len)
{
    if (!v || len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'))) return 0;
    return 1;
}

/* Points b->daykey/hourkey at the keys of the hit's day and hour. 0; -1 when
 * a key name does not fit; -2 when out of memory. */
static int day_keys(struct fold_batch *b, int64_t t_ms)
{
    char day[CLOCK_DAY_LEN + 1], hour[CLOCK_HOUR_LEN + 1], key[512];
    clock_buckets(b->zone, t_ms, day, hour);
    if (strcmp(day, b->day) != 0) {
        b->day[0] = '\0';
        for (int d = 0; d < FOLD_NDIMS; d++) {
            int n = d == FOLD_UV ? keys_uv(key, sizeof key, b->site, day, NULL)
                                 : keys_day(key, sizeof key, b->site, day, fold_dim_names[d]);
            if (n < 0) return -1;
            if (!(b->daykey[d] = key_index(b, key, (size_t)n))) return -2;
        }
        memcpy(b->day, day, sizeof day);
    }
    if (strcmp(hour, b->hour) != 0) {
        b->hour[0] = '\0';
        int n = keys_hour(key, sizeof key, b->site, hour);
        if (n < 0) return -1;
        if (!(b->hourkey = key_index(b, key, (size_t)n))) return -2;
        memcpy(b->hour, hour, sizeof hour);
    }
    return 0;
}

/* An op, counted for every counted hit; ++*count. 0 or -1. */
static int op(struct fold_batch *b, size_t *count, const char *code, uint32_t key,
              const char *m, size_t mlen)
{
    size_t at;
    if (reserve(b, FOLD_OP_WIDTH, &at) < 0 || set_s(b, at + FOLD_OP_CODE, code) < 0 ||
        set_i(b, at + FOLD_OP_KEY, key) < 0 || set(b, at + FOLD_OP_MEMBER, m, mlen) < 0)
        return -1;
    ++*count;
    return 0;
}

/* A visit op, counted when the hit starts a visit; ++*count. Empty values are
 * either skipped or filed under fallback. 0 or -1. */
static int visit_op(struct fold_batch *b, size_t *count, uint32_t key, const char *v, size_t len,
                    const char *fallback)
{
    if (!v || len == 0) {
        if (!fallback) return 0;
        v = fallback;
        len = strlen(fallback);
    }
    size_t at;
    if (reserve(b, FOLD_VISIT_WIDTH, &at) < 0 || set_i(b, at + FOLD_VISIT_KEY, key) < 0 ||
        set(b, at + FOLD_VISIT_MEMBER, v, len) < 0)
        return -1;
    ++*count;
    return 0;
}

int fold_batch_add(struct fold_batch *b, const char *id, size_t idlen,
                   const char *const *fv, const size_t *fvlen, size_t nfv, int64_t now_ms)
{
    size_t tl, nl, pl, vl, len;
    const char *ts = field(fv, fvlen, nfv, HIT_TIME, &tl);
    const char *name = field(fv, fvlen, nfv, HIT_NAME, &nl);
    const char *path = field(fv, fvlen, nfv, HIT_PATH, &pl);
    const char *vis = field(fv, fvlen, nfv, HIT_VISITOR, &vl);
    int64_t t;
    /* A hit without a usable time is filed at its stream id, which is the
     * time the collector stored it. */
    if (parse_ms(ts, tl, &t) < 0) {
        size_t k = 0;
        while (k < idlen && id[k] != '-') k++;
        if (parse_ms(id, k, &t) < 0) t = now_ms;
    }
    int pageview = !name || nl == 0 || (nl == 8 && memcmp(name, "pageview", 8) == 0);
    if (!path || pl == 0) {
        path = "/";
        pl = 1;
    }
    if (pl > FOLD_MAX_PATH) pl = FOLD_MAX_PATH;
    if (!valid_visitor(vis, vl)) vis = NULL;

    size_t mark_args = b->nargs, e;
    if (reserve(b, FOLD_E_HEAD, &e) < 0 || set(b, e + FOLD_E_ID, id, idlen) < 0 ||
        set_i(b, e + FOLD_E_TIME, t) < 0)
        goto error;
    int dk = day_keys(b, t);
    if (dk == -2) goto error;
    if (dk < 0) {
        /* Only a key that cannot be built gets here: acknowledge and delete
         * the hit, count nothing. */
        if (set_s(b, e + FOLD_E_KIND, FOLD_KIND_SKIP) < 0 ||
            set_i(b, e + FOLD_E_SESS, FOLD_KEY_NONE) < 0 ||
            set_i(b, e + FOLD_E_TOTALS, FOLD_KEY_NONE) < 0 ||
            set_i(b, e + FOLD_E_EXIT, FOLD_KEY_NONE) < 0 || set_s(b, e + FOLD_E_PAGE, "") < 0 ||
            set_i(b, e + FOLD_E_TTL, 0) < 0 || set_i(b, e + FOLD_E_NOPS, 0) < 0 ||
            set_i(b, e + FOLD_E_NVISIT, 0) < 0)
            goto error;
        b->entries++;
        return 0;
    }

    uint32_t sess = FOLD_KEY_NONE;
    char key[2048];
    if (pageview && vis) {
        char v[65];
        memcpy(v, vis, vl);
        v[vl] = '\0';
        int n = keys_sess(key, sizeof key, b->site, v);
        if (n < 0 || !(sess = key_index(b, key, (size_t)n))) goto error;
    }
    if (set_s(b, e + FOLD_E_KIND, pageview ? FOLD_KIND_PAGEVIEW : FOLD_KIND_EVENT) < 0 ||
        set_i(b, e + FOLD_E_SESS, sess) < 0 ||
        set_i(b, e + FOLD_E_TOTALS, b->daykey[FOLD_TOTALS]) < 0 ||
        set_i(b, e + FOLD_E_EXIT, b->daykey[FOLD_EXIT]) < 0 || set(b, e + FOLD_E_PAGE, path, pl) < 0 ||
        set_i(b, e + FOLD_E_TTL, fold_session_ttl_ms(FOLD_IDLE_MS, t, now_ms, b->max_ttl_ms)) < 0)
        goto error;

    /* The ops, then the visit ops: the script finds the visit ops after
     * FOLD_E_NOPS ops and skips them in one step. */
    size_t nops = 0, nvisit = 0;
    if (pageview) {
        if (op(b, &nops, FOLD_OP_HINCR, b->daykey[FOLD_TOTALS], "pageviews", 9) < 0 ||
            op(b, &nops, FOLD_OP_HINCR, b->hourkey, "pageviews", 9) < 0 ||
            op(b, &nops, FOLD_OP_HINCR, b->daykey[FOLD_PAGE], path, pl) < 0)
            goto error;
        if (vis) {
            char p[FOLD_MAX_PATH + 1];
            memcpy(p, path, pl);
            p[pl] = '\0';
            int n = keys_uv(key, sizeof key, b->site, b->day, p);
            uint32_t uvp = n < 0 ? 0 : key_index(b, key, (size_t)n);
            if (!uvp || op(b, &nops, FOLD_OP_PFADD, b->daykey[FOLD_UV], vis, vl) < 0 ||
                op(b, &nops, FOLD_OP_PFADD, uvp, vis, vl) < 0)
                goto error;
        }
        static const struct { enum fold_dim dim; const char *field, *fallback; } visit[] = {
            {FOLD_SOURCE, HIT_REFERRER, FOLD_DIRECT},
            {FOLD_UTM_SOURCE, HIT_UTM_SOURCE, NULL},
            {FOLD_UTM_MEDIUM, HIT_UTM_MEDIUM, NULL},
            {FOLD_UTM_CAMPAIGN, HIT_UTM_CAMPAIGN, NULL},
            {FOLD_UTM_TERM, HIT_UTM_TERM, NULL},
            {FOLD_UTM_CONTENT, HIT_UTM_CONTENT, NULL},
            {FOLD_COUNTRY, HIT_COUNTRY, FOLD_UNKNOWN},
            {FOLD_REGION, HIT_REGION, NULL},
            {FOLD_BROWSER, HIT_BROWSER, FOLD_UNKNOWN},
            {FOLD_OS, HIT_OS, FOLD_UNKNOWN},
            {FOLD_DEVICE, HIT_DEVICE, FOLD_UNKNOWN},
        };
        if (visit_op(b, &nvisit, b->daykey[FOLD_TOTALS], "visits", 6, NULL) < 0 ||
            visit_op(b, &nvisit, b->daykey[FOLD_TOTALS], "bounces", 7, NULL) < 0 ||
            visit_op(b, &nvisit, b->hourkey, "visits", 6, NULL) < 0 ||
            visit_op(b, &nvisit, b->daykey[FOLD_ENTRY], path, pl, NULL) < 0 ||
            visit_op(b, &nvisit, b->daykey[FOLD_EXIT], path, pl, NULL) < 0)
            goto error;
        for (size_t i = 0; i < sizeof visit / sizeof visit[0]; i++) {
            const char *v = field(fv, fvlen, nfv, visit[i].field, &len);
            if (visit_op(b, &nvisit, b->daykey[visit[i].dim], v, len, visit[i].fallback) < 0)
                goto error;
        }
    } else {
        if (op(b, &nops, FOLD_OP_HINCR, b->daykey[FOLD_TOTALS], "events", 6) < 0 ||
            op(b, &nops, FOLD_OP_HINCR, b->hourkey, "events", 6) < 0 ||
            op(b, &nops, FOLD_OP_HINCR, b->daykey[FOLD_EVENT], name, nl) < 0)
            goto error;
        if (vis && op(b, &nops, FOLD_OP_PFADD, b->daykey[FOLD_UV], vis, vl) < 0) goto error;
    }
    if (set_i(b, e + FOLD_E_NOPS, (long long)nops) < 0 ||
        set_i(b, e + FOLD_E_NVISIT, (long long)nvisit) < 0)
        goto error;
    b->entries++;
    return 0;

error:
    b->nargs = mark_args;
    return -1;
}

int fold_batch_argv(struct fold_batch *b, const char *sha, const char *group,
                    const char *consumer, const char ***argv, const size_t **argvlen,
                    size_t *argc)
{
    size_t n = 3 + b->nkeys + (FOLD_ARGV_FIRST_ENTRY - 1) + b->nargs;
    if (grow(&b->argv, &b->capargv, n, sizeof *b->argv) < 0) return -1;
    size_t cap = b->capargv;
    if (grow(&b->argvlen, &(size_t){0}, cap, sizeof *b->argvlen) < 0) return -1;
    /* The numbers go into the arena, like everything else; pointers into it
     * are taken only once it has stopped growing. */
    char num[24];
    struct str numkeys, idle, count;
    snprintf(num, sizeof num, "%zu", b->nkeys);
    if (arena_put(b, num, strlen(num), &numkeys) < 0) return -1;
    snprintf(num, sizeof num, "%lld", (long long)FOLD_IDLE_MS);
    if (arena_put(b, num, strlen(num), &idle) < 0) return -1;
    snprintf(num, sizeof num, "%zu", b->entries);
    if (arena_put(b, num, strlen(num), &count) < 0) return -1;

    struct { const char *p; size_t len; } head[FOLD_ARGV_FIRST_ENTRY] = {
        [FOLD_ARGV_GROUP] = {group, strlen(group)},
        [FOLD_ARGV_CONSUMER] = {consumer, strlen(consumer)},
        [FOLD_ARGV_IDLE_MS] = {b->arena + idle.off, idle.len},
        [FOLD_ARGV_ENTRIES] = {b->arena + count.off, count.len},
    };
    size_t k = 0;
#define PUT(p, l) (b->argv[k] = (p), b->argvlen[k] = (l), k++)
    PUT("EVALSHA", 7);
    PUT(sha, strlen(sha));
    PUT(b->arena + numkeys.off, numkeys.len);
    for (size_t i = 0; i < b->nkeys; i++) PUT(b->arena + b->keys[i].off, b->keys[i].len);
    for (int a = FOLD_ARGV_GROUP; a < FOLD_ARGV_FIRST_ENTRY; a++) PUT(head[a].p, head[a].len);
    for (size_t i = 0; i < b->nargs; i++) PUT(b->arena + b->args[i].off, b->args[i].len);
#undef PUT
    *argv = b->argv;
    *argvlen = b->argvlen;
    *argc = k;
    return 0;
}

int64_t fold_session_ttl_ms(int64_t idle_ms, int64_t t_ms, int64_t now_ms, int64_t max_ms)
{
    int64_t lag = now_ms > t_ms ? now_ms - t_ms : 0;
    int64_t ttl = idle_ms + lag;
    if (ttl > max_ms) ttl = max_ms;
    if (ttl < 1000) ttl = 1000;
    return ttl;
}
