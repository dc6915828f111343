/* fold.c -- turns a batch of raw hits into one call of the apply script.
 *
 * Everything is copied into one growing arena and addressed by offset, so a
 * batch of 500 hits costs a few reallocations, not thousands of mallocs, and
 * the argument vector is built once at the end. Keys are deduplicated through
 * a small open-addressing table: a batch of one day touches a few dozen
 * distinct counters, and each is sent once in KEYS.
 */
#include "fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "session.h"

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
    struct str *keys;           /* keys[0] is the stream: KEYS[1] */
    size_t nkeys, capkeys;
    struct str *args;           /* per-entry ARGV items */
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

static uint32_t fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int ht_rebuild(struct fold_batch *b, size_t cap)
{
    uint32_t *ht = calloc(cap, sizeof *ht);
    if (!ht) return -1;
    for (size_t i = 0; i < b->nkeys; i++) {
        size_t j = fnv1a(b->arena + b->keys[i].off, b->keys[i].len) & (cap - 1);
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
    size_t j = fnv1a(key, len) & (b->htcap - 1);
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

static int arg(struct fold_batch *b, const char *s, size_t len)
{
    if (grow(&b->args, &b->capargs, b->nargs + 1, sizeof *b->args) < 0) return -1;
    if (arena_put(b, s, len, &b->args[b->nargs]) < 0) return -1;
    b->nargs++;
    return 0;
}

static int arg_s(struct fold_batch *b, const char *s)
{
    return arg(b, s, strlen(s));
}

static int arg_i(struct fold_batch *b, long long v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    return arg(b, buf, (size_t)n);
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

/* An always-op is (code, key, member); a visit op (code NULL) is (key, member). */
static int op(struct fold_batch *b, const char *code, uint32_t key, const char *m, size_t mlen)
{
    if ((code && arg_s(b, code) < 0) || arg_i(b, key) < 0 || arg(b, m, mlen) < 0) return -1;
    return 0;
}

/* A visit-level breakdown: counted when the hit starts a visit; empty values
 * are either skipped or filed under fallback. */
static int visit_op(struct fold_batch *b, enum fold_dim d, const char *v, size_t len,
                    const char *fallback)
{
    if (!v || len == 0) {
        if (!fallback) return 0;
        v = fallback;
        len = strlen(fallback);
    }
    return op(b, NULL, b->daykey[d], v, len);
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

    size_t mark_args = b->nargs;
    if (arg(b, id, idlen) < 0 || arg_i(b, t) < 0) goto error;
    int dk = day_keys(b, t);
    if (dk == -2) goto error;
    if (dk < 0) {
        /* Only a key that cannot be built gets here: acknowledge and delete
         * the hit, count nothing (kind, sess, totals, exit, page, ttl, nops,
         * nvisit). */
        static const char *const drop[] = {"X", "0", "0", "0", "", "0", "0", "0"};
        for (size_t k = 0; k < sizeof drop / sizeof drop[0]; k++)
            if (arg_s(b, drop[k]) < 0) goto error;
        b->entries++;
        return 0;
    }

    uint32_t sess = 0;
    char key[2048];
    if (pageview && vis) {
        char v[65];
        memcpy(v, vis, vl);
        v[vl] = '\0';
        int n = keys_sess(key, sizeof key, b->site, v);
        if (n < 0 || !(sess = key_index(b, key, (size_t)n))) goto error;
    }
    if (arg_s(b, pageview ? "P" : "E") < 0 || arg_i(b, sess) < 0 ||
        arg_i(b, b->daykey[FOLD_TOTALS]) < 0 || arg_i(b, b->daykey[FOLD_EXIT]) < 0 ||
        arg(b, path, pl) < 0 ||
        arg_i(b, session_ttl_ms(SESSION_IDLE_MS, t, now_ms, b->max_ttl_ms)) < 0)
        goto error;
    size_t nops_at = b->nargs;
    if (arg_s(b, "0") < 0 || arg_s(b, "0") < 0) goto error;
    size_t ops_from = b->nargs, always_end = 0;

    if (pageview) {
        if (op(b, "h", b->daykey[FOLD_TOTALS], "pageviews", 9) < 0 ||
            op(b, "h", b->hourkey, "pageviews", 9) < 0 ||
            op(b, "h", b->daykey[FOLD_PAGE], path, pl) < 0)
            goto error;
        if (vis) {
            char p[FOLD_MAX_PATH + 1];
            memcpy(p, path, pl);
            p[pl] = '\0';
            int n = keys_uv(key, sizeof key, b->site, b->day, p);
            uint32_t uvp = n < 0 ? 0 : key_index(b, key, (size_t)n);
            if (!uvp || op(b, "p", b->daykey[FOLD_UV], vis, vl) < 0 || op(b, "p", uvp, vis, vl) < 0)
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
        always_end = b->nargs;
        if (op(b, NULL, b->daykey[FOLD_TOTALS], "visits", 6) < 0 ||
            op(b, NULL, b->daykey[FOLD_TOTALS], "bounces", 7) < 0 ||
            op(b, NULL, b->hourkey, "visits", 6) < 0 ||
            op(b, NULL, b->daykey[FOLD_ENTRY], path, pl) < 0 ||
            op(b, NULL, b->daykey[FOLD_EXIT], path, pl) < 0)
            goto error;
        for (size_t i = 0; i < sizeof visit / sizeof visit[0]; i++) {
            const char *v = field(fv, fvlen, nfv, visit[i].field, &len);
            if (visit_op(b, visit[i].dim, v, len, visit[i].fallback) < 0) goto error;
        }
    } else {
        if (op(b, "h", b->daykey[FOLD_TOTALS], "events", 6) < 0 ||
            op(b, "h", b->hourkey, "events", 6) < 0 ||
            op(b, "h", b->daykey[FOLD_EVENT], name, nl) < 0)
            goto error;
        if (vis && op(b, "p", b->daykey[FOLD_UV], vis, vl) < 0) goto error;
        always_end = b->nargs;
    }

    /* Patch the op counts in place: they were written as "0". */
    size_t counts[2] = {(always_end - ops_from) / 3, (b->nargs - always_end) / 2};
    for (int k = 0; k < 2; k++) {
        char num[24];
        int n = snprintf(num, sizeof num, "%zu", counts[k]);
        if (arg(b, num, (size_t)n) < 0) goto error;
        b->args[nops_at + (size_t)k] = b->args[--b->nargs];
    }
    b->entries++;
    return 0;

error:
    b->nargs = mark_args;
    return -1;
}

int fold_batch_argv(struct fold_batch *b, const char *sha, const char *group,
                    const char *consumer, int64_t idle_ms,
                    const char ***argv, const size_t **argvlen, size_t *argc)
{
    char numkeys[24], idle[24], count[24];
    size_t n = 3 + b->nkeys + 4 + b->nargs;
    if (grow(&b->argv, &b->capargv, n, sizeof *b->argv) < 0) return -1;
    size_t cap = b->capargv;
    if (grow(&b->argvlen, &(size_t){0}, cap, sizeof *b->argvlen) < 0) return -1;
    /* The three numbers go into the arena, like everything else. */
    struct str sn, si, sc;
    snprintf(numkeys, sizeof numkeys, "%zu", b->nkeys);
    snprintf(idle, sizeof idle, "%lld", (long long)idle_ms);
    snprintf(count, sizeof count, "%zu", b->entries);
    if (arena_put(b, numkeys, strlen(numkeys), &sn) < 0 ||
        arena_put(b, idle, strlen(idle), &si) < 0 || arena_put(b, count, strlen(count), &sc) < 0)
        return -1;
    size_t k = 0;
#define PUT(p, l) (b->argv[k] = (p), b->argvlen[k] = (l), k++)
    PUT("EVALSHA", 7);
    PUT(sha, strlen(sha));
    PUT(b->arena + sn.off, sn.len);
    for (size_t i = 0; i < b->nkeys; i++) PUT(b->arena + b->keys[i].off, b->keys[i].len);
    PUT(group, strlen(group));
    PUT(consumer, strlen(consumer));
    PUT(b->arena + si.off, si.len);
    PUT(b->arena + sc.off, sc.len);
    for (size_t i = 0; i < b->nargs; i++) PUT(b->arena + b->args[i].off, b->args[i].len);
#undef PUT
    *argv = b->argv;
    *argvlen = b->argvlen;
    *argc = k;
    return 0;
}
