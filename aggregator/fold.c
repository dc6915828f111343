/* fold.c -- a range of raw hits summed in C into one atomic apply (fold.h).
 *
 * Everything the batch makes (key names, members, numbers) is copied into one
 * growing arena and addressed by offset, so a batch costs a few
 * reallocations, not thousands of mallocs, and the argument vector is built
 * once at the end. Three open-addressing tables, all seeded per process
 * (members are paths an attacker chooses): the keys of the batch, the
 * (key, member) sums, and the visit states.
 */
#include "fold.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <yajl/yajl_parse.h>

#include "decimal.h"
#include "hash.h"
#include "hll.h"
#include "keys.h"
#include "rawhit.h"

struct str {
    size_t off, len;
};

/* One hit of the batch; its strings point into the caller's entries. */
struct fhit {
    int64_t t;
    struct rawhit h;
    uint32_t visit;             /* visit state index + 1, 0 = no visitor */
    /* The visitor in hex, the HyperLogLog member: the form earlier versions
     * added, so that one visitor stays one member across an upgrade. */
    char vhex[2 * RAWHIT_VISITOR_LEN + 1];
    uint8_t twin;               /* its id is in the site's record of replayed ids */
};

enum { TWINS_UNKNOWN, TWINS_EMPTY, TWINS_SOME };

/* The members every hit counts, their hashes made once (f->fixed_h). */
enum { FM_PAGEVIEWS, FM_VISITS, FM_BOUNCES, FM_DURATION, FM_EVENTS, FM_OTHER, FM_N };
static const char *const fixed_members[FM_N] = {"pageviews", "visits", "bounces", "duration_ms", "events",
                                                FOLD_OTHER};  /* what is known of fs:{S}:twins */

/* uint64 -> uint64, open addressing, key + 1 stored (0 = empty): the ids
 * and epochs of a batch for the dedupe. */
struct idmap {
    uint64_t *k, *v;
    size_t cap, n;
};

/* A (key, member) sum: a counter delta, a HyperLogLog member (f->pfs, not
 * a sum of the table), a set member. */
enum { SUM_INCR, SUM_PF, SUM_SADD, SUM_NKINDS };
struct sum {
    uint32_t key;               /* key index */
    uint8_t kind;
    uint8_t own;                /* a capped key's member that kept its own count */
    uint64_t hash;              /* sum_hash: compared first, and the table grows without it */
    struct str member;
    int64_t delta;
};

struct visit {
    uint32_t vkey;              /* key index of fs:{S}:v:YYYYMMDD */
    unsigned char visitor[RAWHIT_VISITOR_LEN];
    int known;                  /* a state exists (loaded, or made by this batch) */
    int dirty;
    int64_t first, last;
    long views;
    char day[CLOCK_DAY_LEN + 1];   /* local day the visit began */
    struct str exit;
};

/* Per visit key: the visits of the batch that live there (query order). */
struct vgroup {
    uint32_t vkey;
    int64_t day;                /* UTC day */
    uint32_t *visits;
    size_t n, cap;
};

/* The visit cache (below): a visit state, and what it knows of a UTC day's
 * visit hash. */
struct vcent {
    int64_t utc_day;
    unsigned char visitor[RAWHIT_VISITOR_LEN];
    int64_t first, last;
    long views;
    char day[CLOCK_DAY_LEN + 1];
    char *exit;
    size_t exitlen, exitcap;
};

enum {
    VC_UNKNOWN,                 /* not known yet: the batch asks HLEN */
    VC_WHOLE,                   /* every state of the hash is in the cache */
    VC_BECOMES_WHOLE,           /* ... once this batch's states are kept */
    VC_LOAD,                    /* the next batch reads the hash whole (HGETALL) */
    VC_OFF                      /* read per batch (HMGET): too large, or over the limit */
};
struct vday {
    int64_t utc_day;
    int status;
    int64_t expire_at;          /* ms: when the hash may expire in Redis; 0: not written */
    size_t n;                   /* its states in the cache */
};

/* A read of visit states: which group, and how (VR_*). */
enum { VR_HMGET, VR_HLEN, VR_PTTL, VR_HGETALL };
struct vread {
    uint32_t group;
    uint8_t kind;
};

struct table {
    uint32_t *slot;             /* index + 1, 0 = empty */
    size_t cap;
};

/* What bounds a key's growth. CAP_MEMBERS: a breakdown hash keeps
 * max_members members; CAP_PAGE_SET: the day's set of the pages that have a
 * visitor HyperLogLog, at most max_page_visitors. */
enum { CAP_NONE, CAP_MEMBERS, CAP_PAGE_SET };
struct keyinfo {
    uint8_t cap;
    uint32_t capset;            /* index + 1 in f->caps */
    int64_t expire_at;          /* ms, PEXPIREAT after the counts; 0: none */
    uint32_t fixed[FM_N];       /* index + 1 in f->sums of each fixed member's sum, once made */
};

/* What this process knows of a capped key's members, kept across batches
 * while it folds the site: the fold decides in C which member a count goes
 * to, and the script only adds. Loaded with HKEYS / SMEMBERS when a batch
 * first touches the key; forgotten when a batch is not applied or the
 * withdrawn generation moves (fold_withdrawn_gen: a purge may have deleted
 * the key). A member
 * that falls to zero in Redis (an exit page moved away) stays known, so the
 * cap is approximate by that much. */
struct member {
    char *s;
    size_t len;
    uint64_t h;                 /* member_hash */
    uint32_t aux;               /* page set: the page's uv key index + 1 ... */
    unsigned long aux_batch;    /* ... in this batch */
};

struct capset {
    char *key;
    size_t keylen;
    int page_set;               /* SMEMBERS, not HKEYS */
    size_t limit;               /* members at most (max_members unless said) */
    int loaded;
    unsigned long used;         /* f->batches when last touched */
    unsigned long blind;        /* f->batches when last written while not loaded */
    size_t size;                /* members in Redis */
    struct member *slot;        /* open addressing, s == NULL: empty */
    size_t cap, n;              /* slots, members known */
};

struct fold {
    char *site;
    struct clock_zone *zone;
    uint64_t seed;
    uint64_t fixed_h[FM_N];     /* member_hash of fixed_members */
    int max_members, max_page_visitors;

    char *arena;
    size_t alen, acap;

    struct str *keys;
    struct keyinfo *kinfo;      /* parallel to keys */
    size_t nkeys, capkeys, capkinfo;
    struct table keyt;

    struct fhit *hits;
    size_t nhits, caphits, skipped, duplicates;
    int collected;              /* visit states gathered (collect_visits) */
    int64_t now;
    char last[64], expect_trim[64];

    struct sum *sums;
    size_t nsums, capsums;
    struct table sumt;
    /* The HyperLogLog members: a visitor (hit index) added to a key, as
     * often as the hits say; grouped and made unique per key when the
     * command is laid out (pf_order), not looked up per hit. */
    struct pf {
        uint32_t key, hit;
    } *pfs;
    size_t npfs, cappfs;
    uint32_t *pfset;            /* pf_order's scratch set: order index + 1 */
    size_t cappfset;
    /* The HyperLogLog members the batches counted so far have added (seen_*):
     * fingerprints of (key, visitor), not sent again; emptied at seen_since. */
    struct idmap seen;
    int64_t seen_since;
    /* A HyperLogLog's registers, and the merges of the batch (hll.h): the
     * key index and its dense string in the arena. */
    uint8_t *hllreg;
    struct merge {
        uint32_t key;
        struct str hll;
    } *merges;
    size_t nmerges, capmerges;

    struct capset *caps;
    size_t ncaps, capcaps;
    unsigned long batches;
    uint32_t *capq;             /* capsets to load this batch (index) */
    size_t ncapq, capcapq;
    const char **rargv;         /* the read fold_read() last laid out */
    size_t *rlens, caprargv, caprlens;
    uint32_t pagesetkey;        /* the current day's page-visitor set */
    size_t nprop_keys;          /* property keys made capped this batch */

    struct visit *visits;
    size_t nvisits, capvisits;
    struct table visitt;
    /* The visit states the last batch wrote (fold_keep_visits), laid over
     * the answers of reads sent before it was applied (fold_overlay). */
    struct kept {
        int64_t utc_day;        /* the visit hash's */
        unsigned char visitor[RAWHIT_VISITOR_LEN];
        int64_t first, last;
        long views;
        char day[CLOCK_DAY_LEN + 1];
        size_t exit, exitlen;   /* in karena */
    } *kept;
    size_t nkept, capkept;
    struct table keptt;
    char *karena;
    size_t kalen, kacap;
    int overlay;
    struct vgroup *groups;
    size_t ngroups, capgroups;
    struct vread *vr;           /* this batch's reads of visit states */
    size_t nvr, capvr;
    /* The visit cache: every state of the UTC days it holds whole, as Redis
     * has them once the batches counted so far are applied. */
    struct vcent *vc;
    size_t nvc, capvc;
    struct table vct;
    struct vday *vdays;
    size_t nvdays, capvdays;
    size_t *vc_used, vc_limit;  /* states the process holds, and how many it may; 0: off */

    /* The local day and hour of the last minute seen, and their keys. */
    int64_t minute;
    char day[CLOCK_DAY_LEN + 1], hour[CLOCK_HOUR_LEN + 1];
    uint32_t daykey[FOLD_NDIMS], hourkey;
    uint32_t bypagekey[FOLD_NDIMS];     /* FOLD_BYPAGE_FIRST..LAST only */
    /* The UTC minute of the last realtime key, and its key. */
    int64_t rtminute;
    uint32_t rtkey;

    /* The withdrawn visitors (erase.h), loaded at generation wgen; wseen is
     * the generation read with this batch. Open addressing over the 8-byte
     * visitor as a number; wzero stands for the visitor 0. */
    uint64_t *wslot;
    size_t wcap, wn;
    int wzero, wloaded, wread;
    char wgen[24], wseen[24];
    /* The generation the visit cache, the seen set and the capped keys'
     * members were kept under: when the one read with a range differs, all
     * three are emptied. */
    char kgen[24];
    size_t dropped;
    /* Hit-id dedupe (see "Dedupe" below): what is known of fs:{S}:twins
     * across batches, this batch's replayed ids counted and its epochs'
     * highest sequence numbers. */
    int twins_state;            /* TWINS_UNKNOWN, TWINS_EMPTY, TWINS_SOME */
    int64_t window_ms;
    int64_t aggregates_ms;      /* retention.aggregates; 0: no expiry on aggregates */
    size_t nreplayed;
    struct idmap counted, epochs;
    uint32_t twinskey, seqkey;
    size_t dreads[3], ndreads;  /* which dedupe reads this batch sends */
    unsigned char *dbuf;        /* the ids or epochs of a dedupe read */
    size_t capdbuf;

    struct str *args;
    size_t nargs, capargs;
    size_t nscript;             /* args[0..nscript): the script's ARGV; then fold_block's plain commands */
    struct span {
        size_t at, n;
    } *cmds;                    /* fold_block's commands: in args, then in argv */
    size_t ncmds, capcmds;
    const char **argv;
    size_t *argvlen;
    size_t capargv;
};

/* ------------------------------------------------------------------------ */
/* Memory: arena, arrays, tables                                             */
/* ------------------------------------------------------------------------ */

static int grow(void *pptr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*(void **)pptr, c * size);
    if (!p) return -1;
    *(void **)pptr = p;
    *cap = c;
    return 0;
}

/* Copies s (which may point into the arena itself) to the arena's end. */
static int arena_put(struct fold *f, const void *s, size_t len, struct str *out)
{
    const char *p = s;
    int inside = f->arena && p >= f->arena && p < f->arena + f->alen;
    size_t from = inside ? (size_t)(p - f->arena) : 0;
    if (grow(&f->arena, &f->acap, f->alen + len + 1, 1) < 0) return -1;
    if (inside) p = f->arena + from;
    if (len) memcpy(f->arena + f->alen, p, len);
    f->arena[f->alen + len] = '\0';
    out->off = f->alen;
    out->len = len;
    f->alen += len + 1;
    return 0;
}

#define AT(f, s) ((f)->arena + (s).off)

/* The slot of an entry for which eq(f, index, arg) holds, or the empty slot
 * where it would go (t must have slots). */
static inline uint32_t *table_lookup(struct fold *f, const struct table *t, uint64_t h,
                              int (*eq)(struct fold *, uint32_t, const void *), const void *arg)
{
    size_t j = h & (t->cap - 1);
    while (t->slot[j] && !eq(f, t->slot[j] - 1, arg)) j = (j + 1) & (t->cap - 1);
    return &t->slot[j];
}

/* Doubles t, placing its entries again by rehash. 0, or -1. */
static int table_grow(struct fold *f, struct table *t, uint64_t (*rehash)(struct fold *, uint32_t))
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    uint32_t *slot = calloc(cap, sizeof *slot);
    if (!slot) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i]) continue;
        size_t j = rehash(f, t->slot[i] - 1) & (cap - 1);
        while (slot[j]) j = (j + 1) & (cap - 1);
        slot[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

/* table_lookup(), doubling the table first when half full. Inline, so that
 * each caller's eq is too: the sums' lookups are a tenth of the fold. */
static inline uint32_t *table_find(struct fold *f, struct table *t, size_t used, uint64_t h,
                                   int (*eq)(struct fold *, uint32_t, const void *), const void *arg,
                                   uint64_t (*rehash)(struct fold *, uint32_t))
{
    if ((used + 1) * 2 > t->cap && table_grow(f, t, rehash) < 0) return NULL;
    return table_lookup(f, t, h, eq, arg);
}

static void table_clear(struct table *t)
{
    if (t->slot) memset(t->slot, 0, t->cap * sizeof *t->slot);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

struct keyarg {
    const char *s;
    size_t len;
};

static uint64_t key_hash(struct fold *f, const char *s, size_t len)
{
    return hash_seeded(f->seed, s, len);
}

static uint64_t key_rehash(struct fold *f, uint32_t i)
{
    return key_hash(f, AT(f, f->keys[i]), f->keys[i].len);
}

static int key_eq(struct fold *f, uint32_t i, const void *arg)
{
    const struct keyarg *k = arg;
    return f->keys[i].len == k->len && memcmp(AT(f, f->keys[i]), k->s, k->len) == 0;
}

/* The index of key (added if new), or -1 when out of memory. */
static int64_t key_index(struct fold *f, const char *s, int len)
{
    if (len < 0) return -1;
    struct keyarg k = {s, (size_t)len};
    uint32_t *slot = table_find(f, &f->keyt, f->nkeys, key_hash(f, s, (size_t)len), key_eq, &k, key_rehash);
    if (!slot) return -1;
    if (*slot) return *slot - 1;
    if (grow(&f->keys, &f->capkeys, f->nkeys + 1, sizeof *f->keys) < 0 ||
        grow(&f->kinfo, &f->capkinfo, f->nkeys + 1, sizeof *f->kinfo) < 0 ||
        arena_put(f, s, (size_t)len, &f->keys[f->nkeys]) < 0)
        return -1;
    f->kinfo[f->nkeys] = (struct keyinfo){.cap = CAP_NONE};
    *slot = (uint32_t)++f->nkeys;
    return *slot - 1;
}

/* ------------------------------------------------------------------------ */
/* Caps                                                                      */
/* ------------------------------------------------------------------------ */

static uint64_t member_hash(const struct fold *f, const char *m, size_t len)
{
    return hash_seeded(f->seed, m, len);
}

/* The slot of m (member hash mh) in cs, or the empty slot where it goes. */
static struct member *set_slot(struct capset *cs, const char *m, size_t len, uint64_t mh)
{
    size_t j = mh & (cs->cap - 1);
    while (cs->slot[j].s &&
           !(cs->slot[j].h == mh && cs->slot[j].len == len && memcmp(cs->slot[j].s, m, len) == 0))
        j = (j + 1) & (cs->cap - 1);
    return &cs->slot[j];
}

static int set_has(struct capset *cs, const char *m, size_t len, uint64_t mh)
{
    return cs->cap && set_slot(cs, m, len, mh)->s != NULL;
}

static void set_clear(struct capset *cs)
{
    for (size_t i = 0; i < cs->cap; i++) free(cs->slot[i].s);
    free(cs->slot);
    cs->slot = NULL;
    cs->cap = cs->n = 0;
    cs->size = 0;
    cs->loaded = 0;
}

/* Adds m (copied) to the known members; 0, or -1 when out of memory. */
static int set_add(struct capset *cs, const char *m, size_t len, uint64_t mh)
{
    if ((cs->n + 1) * 2 > cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 64;
        struct member *old = cs->slot, *slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        size_t oldcap = cs->cap;
        cs->slot = slot;
        cs->cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].s) *set_slot(cs, old[i].s, old[i].len, old[i].h) = old[i];
        free(old);
    }
    struct member *e = set_slot(cs, m, len, mh);
    if (e->s) return 0;
    if (!(e->s = malloc(len ? len : 1))) return -1;
    memcpy(e->s, m, len);
    e->len = len;
    e->h = mh;
    e->aux = 0;
    e->aux_batch = 0;
    cs->n++;
    return 0;
}

/* The capset of key (created if new), index + 1; 0 when out of memory. */
static uint32_t capset_of(struct fold *f, const char *key, size_t len, int page_set)
{
    for (size_t i = 0; i < f->ncaps; i++)
        if (f->caps[i].keylen == len && memcmp(f->caps[i].key, key, len) == 0) {
            f->caps[i].used = f->batches;
            return (uint32_t)i + 1;
        }
    if (grow(&f->caps, &f->capcaps, f->ncaps + 1, sizeof *f->caps) < 0) return 0;
    struct capset *cs = &f->caps[f->ncaps];
    memset(cs, 0, sizeof *cs);
    if (!(cs->key = malloc(len + 1))) return 0;
    memcpy(cs->key, key, len);
    cs->key[len] = '\0';
    cs->keylen = len;
    cs->page_set = page_set;
    cs->limit = (size_t)f->max_members;
    cs->used = f->batches;
    return (uint32_t)++f->ncaps;
}

/* Drops the capsets no batch touched lately (days gone by). */
static void capsets_trim(struct fold *f)
{
    size_t k = 0;
    for (size_t i = 0; i < f->ncaps; i++) {
        if (f->batches - f->caps[i].used > 16) {
            set_clear(&f->caps[i]);
            free(f->caps[i].key);
        } else {
            f->caps[k++] = f->caps[i];
        }
    }
    f->ncaps = k;
}

static void vc_clear(struct fold *f);

static void seen_clear(struct fold *f);

/* What the fold keeps across batches as Redis holds it: the visit cache, the
 * HyperLogLog members added and the capped keys' members. */
static void forget_kept(struct fold *f)
{
    vc_clear(f);
    seen_clear(f);
    for (size_t i = 0; i < f->ncaps; i++) set_clear(&f->caps[i]);
}

void fold_forget(struct fold *f)
{
    forget_kept(f);
    f->nkept = 0;
    f->overlay = 0;
    f->wloaded = 0;
    f->twins_state = TWINS_UNKNOWN;
}

/* The member a count of m goes to in a capped hash: m itself when known or
 * while there is room, else FOLD_OTHER. A negative count (an exit page moved
 * away) of a member that is not known was counted in FOLD_OTHER. */
static int capped_member(struct fold *f, uint32_t key, const char **m, size_t *len, uint64_t *mh,
                         int64_t d)
{
    struct capset *cs = &f->caps[f->kinfo[key].capset - 1];
    if (!cs->loaded) {
        cs->blind = f->batches;
        return 0;
    }
    if (set_has(cs, *m, *len, *mh)) return 0;
    if (d > 0 && cs->size < cs->limit) {
        cs->size++;
        return set_add(cs, *m, *len, *mh);
    }
    *m = fixed_members[FM_OTHER];
    *len = strlen(*m);
    *mh = f->fixed_h[FM_OTHER];
    if (d > 0 && !set_has(cs, *m, *len, *mh)) {
        cs->size++;
        return set_add(cs, *m, *len, *mh);
    }
    return 0;
}

/* Breakdowns whose members come from the visitors' input (paths, hosts,
 * campaign names): each keeps at most max_members a day. Countries,
 * browsers, OSes and devices are few by nature. */
static int capped(enum fold_dim d)
{
    switch (d) {
    case FOLD_PAGE: case FOLD_ENTRY: case FOLD_EXIT: case FOLD_SOURCE: case FOLD_UTM_SOURCE:
    case FOLD_UTM_MEDIUM: case FOLD_UTM_CAMPAIGN: case FOLD_UTM_TERM: case FOLD_UTM_CONTENT:
    case FOLD_REGION: case FOLD_EVENT: case FOLD_ENGAGED: case FOLD_SCROLL: case FOLD_ENGAGEMENTS:
    case FOLD_PROPS:
        return 1;
    default:
        return 0;
    }
}

/* The key of dim d of a local day. */
static int day_key(struct fold *f, const char *day, enum fold_dim d, uint32_t *out)
{
    char key[600];
    int n = d == FOLD_UV ? keys_uv(key, sizeof key, f->site, day, NULL)
                         : keys_day(key, sizeof key, f->site, day, fold_dim_names[d]);
    int64_t i = key_index(f, key, n);
    if (i < 0) return -1;
    if (capped(d) && f->kinfo[i].cap != CAP_MEMBERS) {
        if (!(f->kinfo[i].capset = capset_of(f, key, (size_t)n, 0))) return -1;
        f->kinfo[i].cap = CAP_MEMBERS;
        if (d == FOLD_PROPS) f->caps[f->kinfo[i].capset - 1].limit = FOLD_MAX_PROP_NAMES;
    }
    *out = (uint32_t)i;
    return 0;
}

/* The key of the per-entry-page breakdown of dim d of a local day. */
static int bypage_key(struct fold *f, const char *day, enum fold_dim d, uint32_t *out)
{
    char key[600];
    int n = keys_bypage(key, sizeof key, f->site, day, fold_dim_names[d]);
    int64_t i = key_index(f, key, n);
    if (i < 0) return -1;
    if (f->kinfo[i].cap != CAP_MEMBERS) {
        if (!(f->kinfo[i].capset = capset_of(f, key, (size_t)n, 0))) return -1;
        f->kinfo[i].cap = CAP_MEMBERS;
    }
    *out = (uint32_t)i;
    return 0;
}

/* Points f->daykey/hourkey at the local day and hour of t. */
static int bucket(struct fold *f, int64_t t)
{
    int64_t minute = t >= 0 ? t / 60000 : -1 - (-t - 1) / 60000;
    if (minute == f->minute) return 0;
    char day[CLOCK_DAY_LEN + 1], hour[CLOCK_HOUR_LEN + 1], key[600];
    clock_buckets(f->zone, t, day, hour);
    if (strcmp(day, f->day) != 0) {
        for (int d = 0; d < FOLD_NDIMS; d++)
            if (day_key(f, day, (enum fold_dim)d, &f->daykey[d]) < 0) return -1;
        for (int d = FOLD_BYPAGE_FIRST; d <= FOLD_BYPAGE_LAST; d++)
            if (bypage_key(f, day, (enum fold_dim)d, &f->bypagekey[d]) < 0) return -1;
        if (f->max_page_visitors > 0) {
            int n = keys_day(key, sizeof key, f->site, day, FOLD_PAGE_SET);
            int64_t i = key_index(f, key, n);
            if (i < 0) return -1;
            if (f->kinfo[i].cap != CAP_PAGE_SET) {
                if (!(f->kinfo[i].capset = capset_of(f, key, (size_t)n, 1))) return -1;
                f->kinfo[i].cap = CAP_PAGE_SET;
            }
            f->pagesetkey = (uint32_t)i;
        }
        memcpy(f->day, day, sizeof day);
    }
    if (strcmp(hour, f->hour) != 0) {
        int64_t i = key_index(f, key, keys_hour(key, sizeof key, f->site, hour));
        if (i < 0) return -1;
        f->hourkey = (uint32_t)i;
        memcpy(f->hour, hour, sizeof hour);
    }
    f->minute = minute;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sums                                                                      */
/* ------------------------------------------------------------------------ */

struct sumarg {
    uint32_t key;
    uint8_t kind;
    const char *m;
    size_t len;
    uint64_t hash;
};

/* A sum's hash, from its member's (member_hash: seeded in every word, since
 * members come from visitors' input, and hash_words has collisions that no
 * seed moves) and its key and kind, mixed (MurmurHash3's finalizer, a
 * bijection). A hit's path and visitor are hashed once, not once per sum
 * they go to. */
static uint64_t sum_hash(uint64_t mh, uint32_t key, uint8_t kind)
{
    uint64_t h = mh ^ (((uint64_t)key << 8 | kind) * 0x9e3779b97f4a7c15ull);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t sum_rehash(struct fold *f, uint32_t i)
{
    return f->sums[i].hash;
}

static int sum_eq(struct fold *f, uint32_t i, const void *arg)
{
    const struct sumarg *a = arg;
    const struct sum *s = &f->sums[i];
    return s->hash == a->hash && s->key == a->key && s->kind == a->kind && s->member.len == a->len &&
           memcmp(AT(f, s->member), a->m, a->len) == 0;
}

/* The sum (key, kind, m), m's member hash mh: its slot in f->sumt, found
 * or where it goes, and its *hash. */
static uint32_t *sum_slot(struct fold *f, uint8_t kind, uint32_t key, const char *m, size_t len,
                          uint64_t mh, uint64_t *hash)
{
    struct sumarg a = {key, kind, m, len, *hash = sum_hash(mh, key, kind)};
    return table_find(f, &f->sumt, f->nsums, a.hash, sum_eq, &a, sum_rehash);
}

/* Adds d to the sum at slot (sum_slot's, of that hash, nothing looked up
 * since), made if new. */
static int sum_put(struct fold *f, uint32_t *slot, uint64_t hash, uint8_t kind, uint32_t key,
                   const char *m, size_t len, int64_t d)
{
    if (!slot) return -1;
    if (!*slot) {
        if (grow(&f->sums, &f->capsums, f->nsums + 1, sizeof *f->sums) < 0) return -1;
        struct sum *s = &f->sums[f->nsums];
        s->key = key;
        s->kind = kind;
        s->own = 0;
        s->delta = 0;
        s->hash = hash;
        if (arena_put(f, m, len, &s->member) < 0) return -1;
        *slot = (uint32_t)++f->nsums;
    }
    f->sums[*slot - 1].delta += d;
    return 0;
}

static int add_sum_h(struct fold *f, uint8_t kind, uint32_t key, const char *m, size_t len,
                     uint64_t mh, int64_t d)
{
    uint64_t h;
    uint32_t *slot = sum_slot(f, kind, key, m, len, mh, &h);
    return sum_put(f, slot, h, kind, key, m, len, d);
}

/* incr() of m, its member hash mh, saying whether m kept its own member
 * (not FOLD_OTHER). A member of a capped key that kept its own count
 * earlier in the batch keeps it (capped_member would say so again): its sum
 * answers without the cap's lookup, which was a tenth of the fold's time. */
static int incr_kept(struct fold *f, uint32_t key, const char *m, size_t len, uint64_t mh, int64_t d,
                     int *kept)
{
    *kept = 1;
    uint64_t h;
    uint32_t *slot = sum_slot(f, SUM_INCR, key, m, len, mh, &h);
    if (!slot) return -1;
    if (f->kinfo[key].cap != CAP_MEMBERS || (*slot && f->sums[*slot - 1].own))
        return sum_put(f, slot, h, SUM_INCR, key, m, len, d);
    const char *own = m;
    if (capped_member(f, key, &m, &len, &mh, d) < 0) return -1;
    if (m != own) {
        *kept = 0;
        return add_sum_h(f, SUM_INCR, key, m, len, mh, d);
    }
    if (sum_put(f, slot, h, SUM_INCR, key, m, len, d) < 0) return -1;
    f->sums[*slot - 1].own = 1;
    return 0;
}

/* Adds d to member m (its member hash mh) of the counter hash key. */
static int incr_h(struct fold *f, uint32_t key, const char *m, size_t len, uint64_t mh, int64_t d)
{
    int kept;
    return incr_kept(f, key, m, len, mh, d, &kept);
}

static int incr(struct fold *f, uint32_t key, const char *m, size_t len, int64_t d)
{
    return incr_h(f, key, m, len, member_hash(f, m, len), d);
}

/* incr() of one of the fixed members (FM_*). Their sums are found again by
 * the key's index, not looked up: a hit adds to three of them on average. */
static int incr_fixed(struct fold *f, uint32_t key, int fm, int64_t d)
{
    uint32_t at = f->kinfo[key].fixed[fm];
    if (at && f->kinfo[key].cap != CAP_MEMBERS) {
        f->sums[at - 1].delta += d;
        return 0;
    }
    const char *m = fixed_members[fm];
    size_t len = strlen(m);
    if (f->kinfo[key].cap == CAP_MEMBERS) return incr_h(f, key, m, len, f->fixed_h[fm], d);
    uint64_t h;
    uint32_t *slot = sum_slot(f, SUM_INCR, key, m, len, f->fixed_h[fm], &h);
    if (sum_put(f, slot, h, SUM_INCR, key, m, len, d) < 0) return -1;
    f->kinfo[key].fixed[fm] = *slot;
    return 0;
}

static int pfadd(struct fold *f, uint32_t key, const struct fhit *x)
{
    if (grow(&f->pfs, &f->cappfs, f->npfs + 1, sizeof *f->pfs) < 0) return -1;
    f->pfs[f->npfs++] = (struct pf){key, (uint32_t)(x - f->hits)};
    return 0;
}


/* ------------------------------------------------------------------------ */
/* Batch and entries                                                         */
/* ------------------------------------------------------------------------ */

struct fold *fold_new(const char *site, struct clock_zone *zone, int max_members,
                      int max_page_visitors)
{
    struct fold *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->max_members = max_members;
    f->max_page_visitors = max_page_visitors;
    f->site = strdup(site);
    if (!f->site) goto error;
    f->zone = zone;
    if (getrandom(&f->seed, sizeof f->seed, 0) != sizeof f->seed) f->seed = (uint64_t)(uintptr_t)f;
    f->seed ^= HASH_FNV_OFFSET;
    for (int i = 0; i < FM_N; i++) f->fixed_h[i] = member_hash(f, fixed_members[i], strlen(fixed_members[i]));
    f->window_ms = FOLD_DEDUPE_WINDOW_MS;
    fold_reset(f);
    if (f->nkeys != FOLD_KEY_FIRST_OTHER - 1) goto error;
    return f;

error:
    fold_free(f);
    return NULL;
}

void fold_free(struct fold *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->capgroups; i++) free(f->groups[i].visits);
    free(f->rargv);
    free(f->rlens);
    free(f->cmds);
    free(f->groups);
    free(f->site);
    free(f->arena);
    free(f->keys);
    free(f->kinfo);
    free(f->keyt.slot);
    free(f->hits);
    free(f->sums);
    free(f->pfs);
    free(f->pfset);
    free(f->seen.k);
    free(f->seen.v);
    free(f->sumt.slot);
    free(f->hllreg);
    free(f->merges);
    for (size_t i = 0; i < f->ncaps; i++) {
        set_clear(&f->caps[i]);
        free(f->caps[i].key);
    }
    free(f->caps);
    free(f->capq);
    free(f->visits);
    free(f->visitt.slot);
    vc_clear(f);
    free(f->vc);
    free(f->vct.slot);
    free(f->vdays);
    free(f->vr);
    free(f->kept);
    free(f->keptt.slot);
    free(f->karena);
    free(f->wslot);
    free(f->args);
    free(f->argv);
    free(f->argvlen);
    free(f->dbuf);
    free(f->counted.k);
    free(f->counted.v);
    free(f->epochs.k);
    free(f->epochs.v);
    free(f);
}

static void dedupe_reset(struct fold *f);
static int arg(struct fold *f, const char *s, size_t len);
static int arg_i(struct fold *f, long long v);
static long long keys_at(uint32_t i);

void fold_reset(struct fold *f)
{
    f->batches++;
    capsets_trim(f);
    f->ncapq = 0;
    f->alen = 0;
    f->nkeys = 0;
    f->nhits = f->skipped = f->dropped = f->duplicates = 0;
    f->wseen[0] = '\0';
    f->wread = 0;
    f->nsums = 0;
    f->npfs = 0;
    f->nvisits = 0;
    f->collected = 0;
    for (size_t i = 0; i < f->ngroups; i++) f->groups[i].n = 0;
    f->ngroups = 0;
    f->nargs = 0;
    f->last[0] = '\0';
    f->minute = INT64_MIN;
    f->rtminute = INT64_MIN;
    f->nprop_keys = 0;
    f->day[0] = f->hour[0] = '\0';
    table_clear(&f->keyt);
    table_clear(&f->sumt);
    table_clear(&f->visitt);
    /* The fixed KEYS come first, in fold_key's order. */
    char key[600];
    key_index(f, key, keys_hits(key, sizeof key, f->site));
    key_index(f, key, keys_cursor(key, sizeof key, f->site));
    key_index(f, key, keys_withdrawn(key, sizeof key, f->site));
    key_index(f, key, keys_withdrawn_gen(key, sizeof key, f->site));
    key_index(f, KEYS_AUDIT, (int)strlen(KEYS_AUDIT));
    key_index(f, key, keys_merge(key, sizeof key, f->site));
    dedupe_reset(f);
}

size_t fold_entries(const struct fold *f)
{
    return f->nhits + f->skipped;
}

size_t fold_skipped(const struct fold *f)
{
    return f->skipped;
}

size_t fold_dropped(const struct fold *f)
{
    return f->dropped;
}

size_t fold_duplicates(const struct fold *f)
{
    return f->duplicates;
}

const char *fold_last_id(const struct fold *f)
{
    return f->last;
}

/* The ms part of a stream id "ms-seq", or -1. */
static int64_t id_ms(const char *id, size_t len)
{
    int64_t v = 0;
    size_t i = 0, n = len < 15 ? len : 15;
    for (unsigned d; i < n && (d = (unsigned char)id[i] - '0') < 10; i++) v = v * 10 + d;
    return i > 0 && i < len && id[i] == '-' ? v : -1;
}

/* The raw hit of an entry written field by field (before rawhit.h). */
static int legacy_decode(const char *const *fv, const size_t *fvlen, size_t nfv, struct rawhit *h,
                         int64_t *t)
{
    static const struct { const char *name; int str; } fields[] = {
        {HIT_PATH, RAWHIT_PATH}, {HIT_BROWSER, RAWHIT_BROWSER}, {HIT_OS, RAWHIT_OS},
        {HIT_NAME, RAWHIT_NAME}, {HIT_REFERRER, RAWHIT_REFERRER},
        {HIT_UTM_SOURCE, RAWHIT_UTM_SOURCE}, {HIT_UTM_MEDIUM, RAWHIT_UTM_MEDIUM},
        {HIT_UTM_CAMPAIGN, RAWHIT_UTM_CAMPAIGN}, {HIT_UTM_TERM, RAWHIT_UTM_TERM},
        {HIT_UTM_CONTENT, RAWHIT_UTM_CONTENT}, {HIT_COUNTRY, RAWHIT_COUNTRY},
        {HIT_REGION, RAWHIT_REGION}, {HIT_PROPS, RAWHIT_PROPS},
    };
    memset(h, 0, sizeof *h);
    for (int i = 0; i < RAWHIT_NSTR; i++) h->s[i] = "";
    int any = 0;
    for (size_t i = 0; i + 1 < nfv; i += 2) {
        const char *name = fv[i], *v = fv[i + 1];
        size_t nl = fvlen[i], vl = fvlen[i + 1];
        for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
            if (nl == strlen(fields[k].name) && memcmp(name, fields[k].name, nl) == 0) {
                h->s[fields[k].str] = v;
                h->n[fields[k].str] = vl;
                any = 1;
            }
        if (nl == 1 && name[0] == HIT_VISITOR[0] &&
            rawhit_visitor_from_hex(v, vl, h->visitor) == 0)
            h->flags |= RAWHIT_F_VISITOR;
        if (nl == 2 && memcmp(name, HIT_DEVICE, 2) == 0) {
            char d[16];
            snprintf(d, sizeof d, "%.*s", (int)(vl < 15 ? vl : 15), v);
            h->device = rawhit_device_of(d);
        }
        if (nl == 1 && name[0] == HIT_TIME[0]) {
            int64_t x = 0;
            size_t k = 0;
            for (; k < vl && k < 15 && v[k] >= '0' && v[k] <= '9'; k++) x = x * 10 + (v[k] - '0');
            if (k == vl && k > 0) *t = x;
        }
    }
    return any ? 0 : -1;
}

int fold_add(struct fold *f, const char *id, size_t idlen, const char *const *fv,
             const size_t *fvlen, size_t nfv)
{
    int64_t t = id_ms(id, idlen);
    if (t < 0 || idlen >= sizeof f->last) return -1;
    memcpy(f->last, id, idlen);
    f->last[idlen] = '\0';
    if (grow(&f->hits, &f->caphits, f->nhits + 1, sizeof *f->hits) < 0) return -1;
    struct fhit *x = &f->hits[f->nhits];
    int ok;
    if (nfv == 2 && fvlen[0] == 1 && fv[0][0] == RAWHIT_FIELD[0]) {
        ok = rawhit_decode(fv[1], fvlen[1], &x->h) == 0;
        if (ok && (x->h.flags & RAWHIT_F_TIME)) t = x->h.t_ms;
    } else {
        ok = legacy_decode(fv, fvlen, nfv, &x->h, &t) == 0;
    }
    if (!ok) {
        f->skipped++;
        return 0;
    }
    x->t = t;
    x->visit = 0;
    x->twin = 0;
    x->vhex[0] = '\0';       /* written once a HyperLogLog takes it (pf_member) */
    f->nhits++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Visit states                                                              */
/* ------------------------------------------------------------------------ */

/* When the visit hash of a UTC day expires, written at now_ms: once the day
 * is over and idle, or idle after now when folding late. */
static int64_t visit_expiry(int64_t utc_day, int64_t now_ms)
{
    int64_t at = (utc_day + 1) * CLOCK_DAY_MS + FOLD_IDLE_MS;
    return at < now_ms + FOLD_IDLE_MS ? now_ms + FOLD_IDLE_MS : at;
}

struct visitarg {
    uint32_t vkey;
    const unsigned char *v;
};

/* A visitor's first 8 bytes: HMAC output (visitor.h), evenly spread. */
static uint64_t visitor_word(const unsigned char *v)
{
    uint64_t w;
    memcpy(&w, v, sizeof w);
    return w;
}

/* A 64-bit word w (and salt), hashed with the process's seed. */
static uint64_t word_hash(const struct fold *f, uint64_t w, uint64_t salt)
{
    return hash_mum(w ^ f->seed, salt ^ 0xc4ceb9fe1a85ec53ull);
}

/* A visitor within a scope (a visit hash's key index, or its UTC day). */
static uint64_t visitor_hash(struct fold *f, int64_t scope, const unsigned char *v)
{
    return word_hash(f, visitor_word(v), (uint64_t)scope);
}

static uint64_t visit_rehash(struct fold *f, uint32_t i)
{
    return visitor_hash(f, f->visits[i].vkey, f->visits[i].visitor);
}

static int visit_eq(struct fold *f, uint32_t i, const void *arg)
{
    const struct visitarg *a = arg;
    return f->visits[i].vkey == a->vkey && memcmp(f->visits[i].visitor, a->v, RAWHIT_VISITOR_LEN) == 0;
}

static struct vgroup *group_of(struct fold *f, uint32_t vkey, int64_t day)
{
    for (size_t i = 0; i < f->ngroups; i++)
        if (f->groups[i].vkey == vkey) return &f->groups[i];
    size_t old = f->capgroups;
    if (grow(&f->groups, &f->capgroups, f->ngroups + 1, sizeof *f->groups) < 0) return NULL;
    if (f->capgroups > old) memset(f->groups + old, 0, (f->capgroups - old) * sizeof *f->groups);
    struct vgroup *g = &f->groups[f->ngroups++];
    g->vkey = vkey;
    g->day = day;
    g->n = 0;
    return g;
}

/* Finds or adds the visit state of every hit with a visitor, grouped by
 * the UTC day's hash. */
static int collect_visits(struct fold *f)
{
    if (f->collected) return 0;
    f->collected = 1;
    char key[600], day[CLOCK_DAY_LEN + 1];
    int64_t cached_day = INT64_MIN;
    uint32_t vkey = 0;
    struct vgroup *g = NULL;
    for (size_t i = 0; i < f->nhits; i++) {
        struct fhit *x = &f->hits[i];
        if (!(x->h.flags & RAWHIT_F_VISITOR)) continue;
        int64_t d = clock_utc_day(x->t);
        if (d != cached_day) {
            clock_format_day(d, day);
            int64_t k = key_index(f, key, keys_visits(key, sizeof key, f->site, day));
            if (k < 0 || !(g = group_of(f, (uint32_t)k, d))) return -1;
            vkey = (uint32_t)k;
            cached_day = d;
        }
        struct visitarg a = {vkey, x->h.visitor};
        uint32_t *slot = table_find(f, &f->visitt, f->nvisits, visitor_hash(f, vkey, x->h.visitor),
                                    visit_eq, &a, visit_rehash);
        if (!slot) return -1;
        if (!*slot) {
            if (grow(&f->visits, &f->capvisits, f->nvisits + 1, sizeof *f->visits) < 0 ||
                grow(&g->visits, &g->cap, g->n + 1, sizeof *g->visits) < 0)
                return -1;
            struct visit *v = &f->visits[f->nvisits];
            memset(v, 0, sizeof *v);
            v->vkey = vkey;
            memcpy(v->visitor, x->h.visitor, RAWHIT_VISITOR_LEN);
            g->visits[g->n++] = (uint32_t)f->nvisits;
            *slot = (uint32_t)++f->nvisits;
        }
        x->visit = *slot;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The last batch's visit states, for reads sent before it was applied      */
/* ------------------------------------------------------------------------ */

struct keptarg {
    int64_t utc_day;
    const unsigned char *v;
};

static uint64_t kept_rehash(struct fold *f, uint32_t i)
{
    return visitor_hash(f, f->kept[i].utc_day, f->kept[i].visitor);
}

static int kept_eq(struct fold *f, uint32_t i, const void *arg)
{
    const struct keptarg *a = arg;
    return f->kept[i].utc_day == a->utc_day && memcmp(f->kept[i].visitor, a->v, RAWHIT_VISITOR_LEN) == 0;
}

static int vc_keep(struct fold *f);

int fold_keep_visits(struct fold *f)
{
    f->nkept = 0;
    f->kalen = 0;
    table_clear(&f->keptt);
    for (size_t i = 0; i < f->ngroups; i++) {
        const struct vgroup *g = &f->groups[i];
        for (size_t j = 0; j < g->n; j++) {
            const struct visit *v = &f->visits[g->visits[j]];
            if (!v->dirty) continue;
            struct keptarg a = {g->day, v->visitor};
            uint32_t *slot = table_find(f, &f->keptt, f->nkept, visitor_hash(f, g->day, v->visitor),
                                        kept_eq, &a, kept_rehash);
            if (!slot || grow(&f->kept, &f->capkept, f->nkept + 1, sizeof *f->kept) < 0 ||
                grow(&f->karena, &f->kacap, f->kalen + v->exit.len + 1, 1) < 0)
                return -1;
            struct kept *k = &f->kept[f->nkept];
            k->utc_day = g->day;
            memcpy(k->visitor, v->visitor, RAWHIT_VISITOR_LEN);
            k->first = v->first;
            k->last = v->last;
            k->views = v->views;
            memcpy(k->day, v->day, sizeof k->day);
            memcpy(f->karena + f->kalen, AT(f, v->exit), v->exit.len);
            k->exit = f->kalen;
            k->exitlen = v->exit.len;
            f->kalen += v->exit.len;
            *slot = (uint32_t)++f->nkept;
        }
    }
    return vc_keep(f);
}

void fold_overlay(struct fold *f, int on)
{
    f->overlay = on;
}

/* The kept state of visit v of group g, when the overlay is on. */
static const struct kept *kept_of(struct fold *f, const struct vgroup *g, const struct visit *v)
{
    if (!f->overlay || !f->nkept) return NULL;
    struct keptarg a = {g->day, v->visitor};
    uint32_t i = *table_lookup(f, &f->keptt, visitor_hash(f, g->day, v->visitor), kept_eq, &a);
    return i ? &f->kept[i - 1] : NULL;
}

int fold_reads_after_apply(const struct fold *f)
{
    if (f->ndreads > 0) return 1;
    /* A capped key the batch before wrote without having it loaded (a
     * visit's exit page on an earlier day): loaded now, ahead of that
     * batch's apply, it would miss the members that batch added. */
    for (size_t i = 0; i < f->ncapq; i++)
        if (f->batches > 0 && f->caps[f->capq[i]].blind == f->batches - 1) return 1;
    return 0;
}

struct vstate {
    int64_t first, last;
    long views;
    char day[CLOCK_DAY_LEN + 1];
    const char *exit;           /* in the value read */
    size_t exitlen;
};
static int visit_state_parse(const char *value, size_t len, struct vstate *st);
static int visit_set(struct fold *f, const struct vgroup *g, struct visit *v, const char *value, size_t len);

/* ------------------------------------------------------------------------ */
/* The visit cache                                                           */
/* ------------------------------------------------------------------------ */

/* Most of a batch's visitors came in the batches before it, whose visit
 * states this process wrote: with a backlog, reading them back was a tenth
 * of Redis's work per batch, and a read the batch had to wait for. The
 * cache holds every state of a UTC day's hash once it knows them all -- the
 * hash did not exist when a batch first read it (HLEN 0), or it was read
 * whole (HGETALL, up to VC_LOAD_MAX states) -- and then keeps them as each
 * batch writes them (fold_keep_visits), so the batches after it read none
 * of that day.
 *
 * It is what Redis holds once the batches counted so far are applied, for
 * as long as nothing else writes the hashes. What else could:
 *   - a batch not applied (refused, or the connection lost): fold_forget()
 *     drops the cache, as it drops the capped keys' members;
 *   - another aggregator's batches: they move the cursor, so this process's
 *     next batch is refused, and forgets;
 *   - an erasure (erase.lua deletes the visitor's states): it raises the
 *     withdrawn generation, read with every range; the cache is dropped
 *     when that differs from the generation it was kept under (and a batch
 *     counted before the erasure is refused by the same generation);
 *   - the hash's expiry: a day is dropped VC_EXPIRY_MARGIN_MS before the
 *     last expiry the fold set on it, or the one Redis gave (PTTL, read
 *     with HLEN) while no batch wrote it, by this process's clock.
 * Its size is bounded for the process (aggregator.visit_cache states): a
 * day that would pass it is read per batch, as without the cache. */

#define VC_LOAD_MAX 200000              /* a larger hash is read per batch, never whole */
#define VC_EXPIRY_MARGIN_MS (60 * 1000LL)

void fold_set_visit_cache(struct fold *f, size_t *used, size_t limit)
{
    if (!limit || !used) vc_clear(f);   /* turned off (a reload): give its states back */
    f->vc_used = limit ? used : NULL;
    f->vc_limit = used ? limit : 0;
}

static uint64_t vc_rehash(struct fold *f, uint32_t i)
{
    return visitor_hash(f, f->vc[i].utc_day, f->vc[i].visitor);
}

static int vc_eq(struct fold *f, uint32_t i, const void *arg)
{
    const struct keptarg *a = arg;
    return f->vc[i].utc_day == a->utc_day && memcmp(f->vc[i].visitor, a->v, RAWHIT_VISITOR_LEN) == 0;
}

static struct vday *vday_of(struct fold *f, int64_t utc_day)
{
    for (size_t i = 0; i < f->nvdays; i++)
        if (f->vdays[i].utc_day == utc_day) return &f->vdays[i];
    return NULL;
}

static struct vcent *vc_find(struct fold *f, int64_t utc_day, const unsigned char *v)
{
    if (!f->nvc) return NULL;
    struct keptarg a = {utc_day, v};
    uint32_t i = *table_lookup(f, &f->vct, visitor_hash(f, utc_day, v), vc_eq, &a);
    return i ? &f->vc[i - 1] : NULL;
}

/* Drops the states of day d, or of every day (d NULL: the days go too). */
static void vc_drop(struct fold *f, struct vday *d)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nvc; i++) {
        if (!d || f->vc[i].utc_day == d->utc_day)
            free(f->vc[i].exit);
        else
            f->vc[n++] = f->vc[i];
    }
    if (f->vc_used) *f->vc_used -= f->nvc - n;
    f->nvc = n;
    table_clear(&f->vct);
    for (size_t i = 0; i < f->nvc; i++)
        *table_lookup(f, &f->vct, vc_rehash(f, (uint32_t)i), vc_eq,
                      &(struct keptarg){f->vc[i].utc_day, f->vc[i].visitor}) = (uint32_t)i + 1;
    if (d)
        d->n = 0;
    else
        f->nvdays = 0;
}

static void vc_clear(struct fold *f)
{
    if (f->nvc || f->nvdays) vc_drop(f, NULL);
}

/* Day d read per batch from now on. */
static void vc_off(struct fold *f, struct vday *d)
{
    vc_drop(f, d);
    d->status = VC_OFF;
}

/* Sets the state of (d, visitor) in the cache. 0; 1 when the process's
 * limit is reached (the day is turned off); -1 when out of memory. */
static int vc_put(struct fold *f, struct vday *d, const unsigned char *visitor, int64_t first,
                  int64_t last, long views, const char *day, const char *exit, size_t exitlen)
{
    struct keptarg a = {d->utc_day, visitor};
    uint32_t *slot = table_find(f, &f->vct, f->nvc, visitor_hash(f, d->utc_day, visitor), vc_eq, &a,
                                vc_rehash);
    if (!slot) return -1;
    struct vcent *e;
    if (*slot) {
        e = &f->vc[*slot - 1];
    } else {
        if (*f->vc_used >= f->vc_limit) {
            vc_off(f, d);
            return 1;
        }
        if (grow(&f->vc, &f->capvc, f->nvc + 1, sizeof *f->vc) < 0) return -1;
        e = &f->vc[f->nvc];
        memset(e, 0, sizeof *e);
        e->utc_day = d->utc_day;
        memcpy(e->visitor, visitor, RAWHIT_VISITOR_LEN);
        *slot = (uint32_t)++f->nvc;
        (*f->vc_used)++;
        d->n++;
    }
    if (exitlen > e->exitcap) {
        char *x = realloc(e->exit, exitlen);
        if (!x) return -1;
        e->exit = x;
        e->exitcap = exitlen;
    }
    if (exitlen) memcpy(e->exit, exit, exitlen);
    e->exitlen = exitlen;
    e->first = first;
    e->last = last;
    e->views = views;
    memcpy(e->day, day, sizeof e->day);
    return 0;
}

/* What the batch's visit reads are, from what the cache knows of each day
 * (after collect_visits). The states of the days it holds whole are taken
 * from it now. 0, or -1. */
static int vc_plan(struct fold *f)
{
    f->nvr = 0;
    int64_t now = clock_now_ms();
    for (size_t i = 0; i < f->nvdays; i++) {
        struct vday *d = &f->vdays[i];
        if (d->expire_at && d->expire_at - VC_EXPIRY_MARGIN_MS <= now) {
            vc_drop(f, d);
            f->vdays[i--] = f->vdays[--f->nvdays];
        }
    }
    for (size_t i = 0; i < f->ngroups; i++) {
        struct vgroup *g = &f->groups[i];
        struct vday *d = f->vc_limit ? vday_of(f, g->day) : NULL;
        if (f->vc_limit && !d) {
            if (grow(&f->vdays, &f->capvdays, f->nvdays + 1, sizeof *f->vdays) < 0) return -1;
            d = &f->vdays[f->nvdays++];
            memset(d, 0, sizeof *d);
            d->utc_day = g->day;
            d->status = VC_UNKNOWN;     /* HLEN says */
        }
        int kind = !d || d->status == VC_OFF || d->status == VC_UNKNOWN ? VR_HMGET
                   : d->status == VC_LOAD                      ? VR_HGETALL
                                                               : -1;
        if (kind < 0) {                 /* whole: the states are here */
            for (size_t j = 0; j < g->n; j++) {
                struct visit *v = &f->visits[g->visits[j]];
                const struct vcent *e = vc_find(f, g->day, v->visitor);
                if (!e) continue;
                v->known = 1;
                v->first = e->first;
                v->last = e->last;
                v->views = e->views;
                memcpy(v->day, e->day, sizeof v->day);
                if (arena_put(f, e->exit ? e->exit : "", e->exitlen, &v->exit) < 0) return -1;
            }
            continue;
        }
        if (grow(&f->vr, &f->capvr, f->nvr + 3, sizeof *f->vr) < 0) return -1;
        f->vr[f->nvr++] = (struct vread){(uint32_t)i, (uint8_t)kind};
        if (d && d->status == VC_UNKNOWN) {
            f->vr[f->nvr++] = (struct vread){(uint32_t)i, VR_HLEN};
            f->vr[f->nvr++] = (struct vread){(uint32_t)i, VR_PTTL};
        }
    }
    return 0;
}

/* The answer to HLEN of group g's hash: empty, the cache will hold it whole
 * once the batch's states are kept; small enough, the next batch reads it
 * whole; else it is read per batch. */
static void vc_hlen(struct fold *f, const struct vgroup *g, long long n)
{
    struct vday *d = vday_of(f, g->day);
    if (!d) return;
    if (n == 0)
        d->status = VC_BECOMES_WHOLE;
    else if (n <= VC_LOAD_MAX && *f->vc_used + (size_t)n <= f->vc_limit)
        d->status = VC_LOAD;
    else
        d->status = VC_OFF;
}

/* The answer to PTTL of group g's hash, read with HLEN: a hash the cache
 * will hold whole that no batch writes (events only) still expires when
 * Redis said; a batch that writes it sets its own expiry (vc_keep). */
static void vc_pttl(struct fold *f, const struct vgroup *g, long long ms)
{
    struct vday *d = vday_of(f, g->day);
    if (d && ms >= 0 && ms != LLONG_MAX) d->expire_at = clock_now_ms() + ms;
}

/* The answer to HGETALL of group g's hash (field, value, ...): the batch's
 * visits take their states from it (the kept ones of the batch before over
 * Redis's, as for HMGET), and every state goes into the cache, the kept
 * ones too when the read went before that batch was applied. 0, or -1. */
static int vc_load(struct fold *f, const struct vgroup *g, size_t n, const char *const *vals,
                   const size_t *lens)
{
    for (size_t j = 0; j < g->n; j++)
        if (visit_set(f, g, &f->visits[g->visits[j]], NULL, 0) < 0) return -1;
    for (size_t j = 0; j + 1 < n; j += 2) {
        if (!vals[j] || lens[j] != RAWHIT_VISITOR_LEN || !vals[j + 1] || !f->nvisits) continue;
        struct visitarg a = {g->vkey, (const unsigned char *)vals[j]};
        uint32_t i = *table_lookup(f, &f->visitt, visitor_hash(f, g->vkey, a.v), visit_eq, &a);
        if (i && visit_set(f, g, &f->visits[i - 1], vals[j + 1], lens[j + 1]) < 0) return -1;
    }
    struct vday *d = vday_of(f, g->day);
    if (!d) return 0;
    if (d->n) vc_drop(f, d);
    int rc = 0;
    for (size_t j = 0; j + 1 < n && rc == 0; j += 2) {
        struct vstate st;
        if (!vals[j] || lens[j] != RAWHIT_VISITOR_LEN || !vals[j + 1] ||
            visit_state_parse(vals[j + 1], lens[j + 1], &st) < 0)
            continue;           /* unreadable: no state, as for HMGET */
        rc = vc_put(f, d, (const unsigned char *)vals[j], st.first, st.last, st.views, st.day, st.exit,
                    st.exitlen);
    }
    for (size_t k = 0; f->overlay && k < f->nkept && rc == 0; k++) {
        const struct kept *kp = &f->kept[k];
        if (kp->utc_day == g->day)
            rc = vc_put(f, d, kp->visitor, kp->first, kp->last, kp->views, kp->day, f->karena + kp->exit,
                        kp->exitlen);
    }
    if (rc < 0) return -1;
    if (rc == 0) d->status = VC_BECOMES_WHOLE;
    return 0;
}

/* After the batch is counted (fold_keep_visits): the states it writes go
 * into the days held whole, with the expiry it sets. */
static int vc_keep(struct fold *f)
{
    if (!f->vc_limit) return 0;
    for (size_t i = 0; i < f->ngroups; i++) {
        const struct vgroup *g = &f->groups[i];
        struct vday *d = vday_of(f, g->day);
        if (!d) continue;
        int written = 0;
        for (size_t j = 0; j < g->n; j++) written |= f->visits[g->visits[j]].dirty;
        if (written) d->expire_at = visit_expiry(g->day, f->now);
        if (d->status != VC_WHOLE && d->status != VC_BECOMES_WHOLE) continue;
        d->status = VC_WHOLE;
        for (size_t j = 0; j < g->n; j++) {
            const struct visit *v = &f->visits[g->visits[j]];
            if (!v->dirty) continue;
            int rc = vc_put(f, d, v->visitor, v->first, v->last, v->views, v->day, AT(f, v->exit),
                            v->exit.len);
            if (rc < 0) return -1;
            if (rc > 0) break;          /* turned off */
        }
    }
    return 0;
}

/* A state is "first last views day exit", the exit page last so that it may
 * hold anything. Read by hand (sscanf was a twentieth of the fold's time),
 * as sscanf's "%lld %lld %ld %9s %n" read it, blanks before each field and
 * after the day, but stricter: a number out of range, or a day that is not
 * 8 digits, makes the state unreadable (the visit starts afresh), and an
 * exit page is cut at FOLD_MAX_PATH. */
static int state_blank(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* A decimal at *p after blanks, optionally signed; 0, or -1 (none, or out
 * of range). */
static int state_number(const char **p, const char *end, long long *v)
{
    const char *q = *p;
    while (q < end && state_blank(*q)) q++;
    int neg = q < end && (*q == '-' || *q == '+') ? *q++ == '-' : 0;
    const char *digits = q;
    unsigned long long u = 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (u > ((unsigned long long)LLONG_MAX - (unsigned)(*q - '0')) / 10) return -1;
        u = u * 10 + (unsigned)(*q - '0');
    }
    if (q == digits) return -1;
    *v = neg ? -(long long)u : (long long)u;
    *p = q;
    return 0;
}

/* A state's fields, or -1 when it is unreadable. */
static int visit_state_parse(const char *value, size_t len, struct vstate *st)
{
    const char *p = value, *end = value + len;
    long long first, last, views;
    if (state_number(&p, end, &first) < 0 || state_number(&p, end, &last) < 0 ||
        state_number(&p, end, &views) < 0 || views > LONG_MAX || views < LONG_MIN)
        return -1;
    while (p < end && state_blank(*p)) p++;
    const char *day = p;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p - day != CLOCK_DAY_LEN || (p < end && !state_blank(*p))) return -1;
    st->first = first;
    st->last = last;
    st->views = (long)views;
    memcpy(st->day, day, CLOCK_DAY_LEN);
    st->day[CLOCK_DAY_LEN] = '\0';
    while (p < end && state_blank(*p)) p++;
    st->exit = p;
    /* cut as the fold cuts paths: a longer one was not written here */
    st->exitlen = (size_t)(end - p) < FOLD_MAX_PATH ? (size_t)(end - p) : FOLD_MAX_PATH;
    return 0;
}

/* Visit v of group g takes the state Redis answered (value NULL: none), or
 * the one the batch before kept, which is newer. 0, or -1. */
static int visit_set(struct fold *f, const struct vgroup *g, struct visit *v, const char *value, size_t len)
{
    const struct kept *k = kept_of(f, g, v);
    struct vstate st;
    if (k) {                    /* the last batch wrote it: what Redis said is older */
        v->known = 1;
        v->first = k->first;
        v->last = k->last;
        v->views = k->views;
        memcpy(v->day, k->day, sizeof v->day);
        return arena_put(f, f->karena + k->exit, k->exitlen, &v->exit);
    }
    if (!value || visit_state_parse(value, len, &st) < 0) return 0;   /* the visit starts afresh */
    v->known = 1;
    v->first = st.first;
    v->last = st.last;
    v->views = st.views;
    memcpy(v->day, st.day, sizeof v->day);
    return arena_put(f, st.exit, st.exitlen, &v->exit);
}

/* ------------------------------------------------------------------------ */
/* Withdrawn visitors                                                        */
/* ------------------------------------------------------------------------ */

/* The slot of a 64-bit key in a table of cap (a power of two) slots. */
static size_t word_slot(const struct fold *f, uint64_t w, size_t cap)
{
    return (size_t)word_hash(f, w, 0) & (cap - 1);
}

static size_t wslot_of(const struct fold *f, uint64_t w)
{
    return word_slot(f, w, f->wcap);
}

static void withdrawn_clear(struct fold *f)
{
    if (f->wslot) memset(f->wslot, 0, f->wcap * sizeof *f->wslot);
    f->wn = 0;
    f->wzero = 0;
}

static int withdrawn_add(struct fold *f, const unsigned char *v)
{
    uint64_t w = visitor_word(v);
    if (w == 0) return f->wzero = 1, 0;
    if (2 * (f->wn + 1) > f->wcap) {
        size_t cap = f->wcap ? 2 * f->wcap : 64;
        uint64_t *old = f->wslot, *slot = calloc(cap, sizeof *slot);
        if (!slot) return -1;
        size_t oldcap = f->wcap;
        f->wslot = slot;
        f->wcap = cap;
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i]) continue;
            size_t j = wslot_of(f, old[i]);
            while (slot[j]) j = (j + 1) & (cap - 1);
            slot[j] = old[i];
        }
        free(old);
    }
    size_t j = wslot_of(f, w);
    while (f->wslot[j] && f->wslot[j] != w) j = (j + 1) & (f->wcap - 1);
    if (!f->wslot[j]) f->wslot[j] = w, f->wn++;
    return 0;
}

static int withdrawn_has(const struct fold *f, const unsigned char *v)
{
    uint64_t w = visitor_word(v);
    if (w == 0) return f->wzero;
    if (!f->wn) return 0;
    for (size_t j = wslot_of(f, w); f->wslot[j]; j = (j + 1) & (f->wcap - 1))
        if (f->wslot[j] == w) return 1;
    return 0;
}

int fold_withdrawn_gen(struct fold *f, const char *gen, size_t len)
{
    if (len >= sizeof f->wseen) return -1;
    memcpy(f->wseen, gen, len);
    f->wseen[len] = '\0';
    /* An erasure since (it deletes visit states), or a purge of aggregates
     * (purge.c): of the last days' keys, which the seen set speaks for, or
     * of capped keys whose members the fold knows. */
    if (strcmp(f->kgen, f->wseen) != 0) {
        forget_kept(f);
        memcpy(f->kgen, f->wseen, sizeof f->kgen);
    }
    return 0;
}

/* Whether this batch must read the withdrawn set: its generation moved since
 * the copy was loaded. No generation yet: nobody withdrew, the set is empty. */
static int withdrawn_stale(struct fold *f)
{
    if (!f->wseen[0]) {
        withdrawn_clear(f);
        f->wloaded = 1;
        f->wgen[0] = '\0';
        return 0;
    }
    return !f->wloaded || strcmp(f->wgen, f->wseen) != 0;
}

/* ------------------------------------------------------------------------ */
/* Dedupe: a hit id counted once (docs/aggregator.md, Exactly once)          */
/* ------------------------------------------------------------------------ */

/* A hit id is a 24-bit epoch and a 24-bit sequence number; the hits of an
 * epoch went over one Redis connection in sequence order, so those that
 * landed are a prefix of it (a hit Redis surely did not take, unsent or
 * refused, is spooled by the collector under an epoch never sent). Only two kinds of hit can have a twin: a
 * replayed one (RAWHIT_F_REPLAYED: written again from the collector's spool,
 * perhaps more than once) and the original of a replayed one whose write
 * timed out. The site keeps
 *   fs:{S}:twins  the ids of the replayed hits counted (field: 6 bytes)
 *   fs:{S}:seq    per epoch (field: 3 bytes) the highest sequence number of
 *                 an original hit counted,
 * both expiring FOLD_DEDUPE_WINDOW_MS (retention.raw_max_age) after their
 * last write. A replayed hit is a twin when its id was counted (twins) or
 * its original landed: some original of its epoch with as high a sequence
 * number was counted (seq; it landed first, the replay came after the
 * collector gave the write up). An original is a twin when its replay was
 * counted before it (twins). The reads cost nothing while no hit was
 * replayed: twins is read only while it exists, seq only for the epochs of
 * replayed hits; seq is written once per batch, one field per epoch. */

#define EPOCH_OF(id) ((id) >> 24 & 0xffffff)
#define SEQ_OF(id) ((id) & 0xffffff)

static uint64_t *idmap_slot(struct fold *f, struct idmap *m, uint64_t key, int add)
{
    if (add && (m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        uint64_t *k = calloc(cap, sizeof *k), *v = calloc(cap, sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return NULL;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->k[i]) continue;
            size_t j = word_slot(f, m->k[i], cap);
            while (k[j]) j = (j + 1) & (cap - 1);
            k[j] = m->k[i];
            v[j] = m->v[i];
        }
        free(m->k);
        free(m->v);
        m->k = k;
        m->v = v;
        m->cap = cap;
    }
    if (!m->cap) return NULL;
    uint64_t stored = key + 1;
    size_t j = word_slot(f, stored, m->cap);
    while (m->k[j] && m->k[j] != stored) j = (j + 1) & (m->cap - 1);
    if (!m->k[j]) {
        if (!add) return NULL;
        m->k[j] = stored;
        m->v[j] = 0;
        m->n++;
    }
    return &m->v[j];
}

static void idmap_clear(struct idmap *m)
{
    if (m->cap) memset(m->k, 0, m->cap * sizeof *m->k);
    m->n = 0;
}

static void dedupe_reset(struct fold *f)
{
    idmap_clear(&f->counted);
    idmap_clear(&f->epochs);
    f->nreplayed = 0;
    f->ndreads = 0;
    f->twinskey = f->seqkey = 0;
}

/* The record's keys join the batch's KEYS only when a batch uses them. */
static int dedupe_keys(struct fold *f)
{
    char key[600];
    if (f->twinskey) return 0;
    int64_t k1 = key_index(f, key, keys_twins(key, sizeof key, f->site));
    int64_t k2 = key_index(f, key, keys_seq(key, sizeof key, f->site));
    if (k1 < 0 || k2 < 0) return -1;
    f->twinskey = (uint32_t)k1;
    f->seqkey = (uint32_t)k2;
    return 0;
}

void fold_set_retention(struct fold *f, int64_t aggregates_ms)
{
    f->aggregates_ms = aggregates_ms > 0 ? aggregates_ms : 0;
}

void fold_set_dedupe_window(struct fold *f, int64_t ms)
{
    f->window_ms = ms > 0 ? ms : FOLD_DEDUPE_WINDOW_MS;
}

static void id_bytes(uint64_t v, unsigned char *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = (unsigned char)(v >> (8 * i));
}

/* Decides which dedupe reads the batch needs (numbered DR_*). */
enum { DR_TWINS_EXIST, DR_TWINS, DR_SEQ };

static int dedupe_plan(struct fold *f)
{
    f->nreplayed = 0;
    for (size_t i = 0; i < f->nhits; i++) {
        f->hits[i].twin = 0;
        if (f->hits[i].h.flags & RAWHIT_F_REPLAYED) f->nreplayed++;
    }
    f->ndreads = 0;
    if (f->twins_state != TWINS_EMPTY && f->nhits) {
        f->dreads[f->ndreads++] = DR_TWINS_EXIST;
        f->dreads[f->ndreads++] = DR_TWINS;
    }
    if (f->nreplayed) {
        for (size_t i = 0; i < f->nhits; i++)
            if ((f->hits[i].h.flags & RAWHIT_F_REPLAYED) &&
                !idmap_slot(f, &f->epochs, EPOCH_OF(f->hits[i].h.id), 1))
                return -1;
        f->dreads[f->ndreads++] = DR_SEQ;
    }
    return f->ndreads ? dedupe_keys(f) : 0;
}

/* Lays dedupe read j out; ids and epochs go through the arena. */
static int dedupe_read(struct fold *f, size_t j, size_t *n)
{
    size_t at = 2;
    switch (f->dreads[j]) {
    case DR_TWINS_EXIST:
        if (grow(&f->rargv, &f->caprargv, 3, sizeof *f->rargv) < 0 ||
            grow(&f->rlens, &f->caprlens, 3, sizeof *f->rlens) < 0)
            return -1;
        f->rargv[0] = "HRANDFIELD";
        f->rargv[1] = AT(f, f->keys[f->twinskey]);
        f->rlens[1] = f->keys[f->twinskey].len;
        f->rargv[2] = "1";
        f->rlens[2] = 1;
        *n = 3;
        return 0;
    case DR_TWINS:
        if (grow(&f->rargv, &f->caprargv, 2 + f->nhits, sizeof *f->rargv) < 0 ||
            grow(&f->rlens, &f->caprlens, 2 + f->nhits, sizeof *f->rlens) < 0)
            return -1;
        if (grow(&f->dbuf, &f->capdbuf, f->nhits * RAWHIT_ID_LEN + 1, 1) < 0) return -1;
        f->rargv[0] = "HMGET";
        f->rargv[1] = AT(f, f->keys[f->twinskey]);
        f->rlens[1] = f->keys[f->twinskey].len;
        for (size_t i = 0; i < f->nhits; i++) {
            unsigned char *b = f->dbuf + i * RAWHIT_ID_LEN;
            id_bytes(f->hits[i].h.id, b, RAWHIT_ID_LEN);
            f->rargv[at] = (const char *)b;
            f->rlens[at++] = RAWHIT_ID_LEN;
        }
        break;
    default:
        if (grow(&f->rargv, &f->caprargv, 2 + f->epochs.n, sizeof *f->rargv) < 0 ||
            grow(&f->rlens, &f->caprlens, 2 + f->epochs.n, sizeof *f->rlens) < 0)
            return -1;
        if (grow(&f->dbuf, &f->capdbuf, f->epochs.n * 3 + 1, 1) < 0) return -1;
        f->rargv[0] = "HMGET";
        f->rargv[1] = AT(f, f->keys[f->seqkey]);
        f->rlens[1] = f->keys[f->seqkey].len;
        for (size_t i = 0, k = 0; i < f->epochs.cap; i++) {
            if (!f->epochs.k[i]) continue;
            unsigned char *b = f->dbuf + 3 * k++;
            id_bytes(f->epochs.k[i] - 1, b, 3);
            f->rargv[at] = (const char *)b;
            f->rlens[at++] = 3;
        }
        break;
    }
    *n = at;
    return 0;
}

static int dedupe_answer(struct fold *f, size_t j, size_t n, const char *const *vals,
                         const size_t *lens)
{
    switch (f->dreads[j]) {
    case DR_TWINS_EXIST:
        f->twins_state = n ? TWINS_SOME : TWINS_EMPTY;
        return 0;
    case DR_TWINS:
        for (size_t i = 0; i < n && i < f->nhits; i++) f->hits[i].twin = vals[i] != NULL;
        return 0;
    default: {
        size_t at = 0;
        for (size_t i = 0; i < f->epochs.cap && at < n; i++) {
            if (!f->epochs.k[i]) continue;
            /* stored as highest seq + 1, 0 = none counted */
            uint64_t v = 0;
            for (size_t k = 0; vals[at] && k < lens[at] && vals[at][k] >= '0' && vals[at][k] <= '9'; k++)
                v = v * 10 + (uint64_t)(vals[at][k] - '0');
            f->epochs.v[i] = v;
            at++;
        }
        (void)lens;
        return 0;
    }
    }
}

/* 1 when x was counted already (it is dropped from the sums), 0 when it is
 * to count now; -1 when out of memory. In stream order, within the batch
 * too. */
static int dedupe_skip(struct fold *f, const struct fhit *x)
{
    uint64_t id = x->h.id;
    if (!id) return 0;                  /* entries of earlier versions have none */
    if (x->twin || idmap_slot(f, &f->counted, id, 0)) return 1;
    uint64_t *top = idmap_slot(f, &f->epochs, EPOCH_OF(id), !(x->h.flags & RAWHIT_F_REPLAYED));
    if (x->h.flags & RAWHIT_F_REPLAYED) {
        if (top && *top > SEQ_OF(id)) return 1;     /* its original landed and counted */
        return idmap_slot(f, &f->counted, id, 1) ? 0 : -1;
    }
    if (!top) return -1;
    if (*top < SEQ_OF(id) + 1) *top = SEQ_OF(id) + 1;
    return 0;
}

/* The writes: the replayed ids counted, the epochs' highest sequence
 * numbers; as groups of the script's hash-with-expiry layout (FOLD_VG_*). */
static int dedupe_args(struct fold *f, int64_t now_ms, size_t *ngroups)
{
    *ngroups = 0;
    int64_t at = now_ms + f->window_ms;
    if ((f->counted.n || f->epochs.n) && dedupe_keys(f) < 0) return -1;
    if (f->counted.n) {
        if (arg_i(f, keys_at(f->twinskey)) < 0 || arg_i(f, at) < 0 ||
            arg_i(f, (long long)f->counted.n) < 0)
            return -1;
        for (size_t i = 0; i < f->counted.cap; i++) {
            if (!f->counted.k[i]) continue;
            unsigned char b[RAWHIT_ID_LEN];
            id_bytes(f->counted.k[i] - 1, b, RAWHIT_ID_LEN);
            if (arg(f, (const char *)b, sizeof b) < 0 || arg(f, "1", 1) < 0) return -1;
        }
        (*ngroups)++;
        f->twins_state = TWINS_SOME;    /* once applied; forgotten if not */
    }
    size_t n = 0;
    for (size_t i = 0; i < f->epochs.cap; i++) n += f->epochs.k[i] && f->epochs.v[i];
    if (n) {
        if (arg_i(f, keys_at(f->seqkey)) < 0 || arg_i(f, at) < 0 || arg_i(f, (long long)n) < 0)
            return -1;
        for (size_t i = 0; i < f->epochs.cap; i++) {
            if (!f->epochs.k[i] || !f->epochs.v[i]) continue;
            unsigned char b[3];
            id_bytes(f->epochs.k[i] - 1, b, 3);
            if (arg(f, (const char *)b, 3) < 0 || arg_i(f, (long long)f->epochs.v[i]) < 0) return -1;
        }
        (*ngroups)++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Reads: what the batch needs from Redis before it can be counted           */
/* ------------------------------------------------------------------------ */

/* Event properties (below) decide which keys a batch reads. */
typedef int (*prop_fn)(struct fold *f, const char *name, size_t nlen, const char *v, size_t vlen);
static int props_walk(struct fold *f, const struct fhit *x, prop_fn fn);
static int prop_register(struct fold *f, const char *name, size_t nlen, const char *v, size_t vlen);

int fold_reads(struct fold *f, size_t *n)
{
    *n = 0;
    if (collect_visits(f) < 0 || vc_plan(f) < 0) return -1;
    /* The days of the batch, hence its capped keys; and its property names. */
    for (size_t i = 0; i < f->nhits; i++) {
        if (bucket(f, f->hits[i].t) < 0) return -1;
        if (!f->hits[i].h.engagement && props_walk(f, &f->hits[i], prop_register) < 0) return -1;
    }
    f->ncapq = 0;
    for (size_t i = 0; i < f->ncaps; i++) {
        if (f->caps[i].loaded || f->caps[i].used != f->batches) continue;
        if (grow(&f->capq, &f->capcapq, f->ncapq + 1, sizeof *f->capq) < 0) return -1;
        f->capq[f->ncapq++] = (uint32_t)i;
    }
    f->wread = withdrawn_stale(f);
    if (dedupe_plan(f) < 0) return -1;
    *n = f->nvr + f->ncapq + (size_t)f->wread + f->ndreads;
    return 0;
}

/* Reads 0..nvr-1 are the visit states of a day (vc_plan: HMGET, HLEN or
 * HGETALL), the next ncapq the members of a capped key (HKEYS, SMEMBERS),
 * the next (when wread) the withdrawn set (ZRANGE key 0 -1), then the
 * dedupe's. */
int fold_read(struct fold *f, size_t i, int *argc, const char *const **argv, const size_t **lens)
{
    if (i >= f->nvr + f->ncapq + (size_t)f->wread) {
        size_t n;
        if (dedupe_read(f, i - f->nvr - f->ncapq - (size_t)f->wread, &n) < 0) return -1;
        f->rlens[0] = strlen(f->rargv[0]);
        *argc = (int)n;
        *argv = f->rargv;
        *lens = f->rlens;
        return 0;
    }
    const struct vgroup *g = i < f->nvr ? &f->groups[f->vr[i].group] : NULL;
    size_t n = g ? (f->vr[i].kind == VR_HMGET ? 2 + g->n : 2) : i < f->nvr + f->ncapq ? 2 : 4;
    if (grow(&f->rargv, &f->caprargv, n, sizeof *f->rargv) < 0 ||
        grow(&f->rlens, &f->caprlens, n, sizeof *f->rlens) < 0)
        return -1;
    if (g) {
        static const char *const verbs[] = {[VR_HMGET] = "HMGET", [VR_HLEN] = "HLEN", [VR_PTTL] = "PTTL",
                                            [VR_HGETALL] = "HGETALL"};
        f->rargv[0] = verbs[f->vr[i].kind];
        f->rargv[1] = AT(f, f->keys[g->vkey]);
        f->rlens[1] = f->keys[g->vkey].len;
        for (size_t j = 0; j + 2 < n; j++) {
            f->rargv[2 + j] = (const char *)f->visits[g->visits[j]].visitor;
            f->rlens[2 + j] = RAWHIT_VISITOR_LEN;
        }
    } else if (i < f->nvr + f->ncapq) {
        const struct capset *cs = &f->caps[f->capq[i - f->nvr]];
        f->rargv[0] = cs->page_set ? "SMEMBERS" : "HKEYS";
        f->rargv[1] = cs->key;
        f->rlens[1] = cs->keylen;
    } else {
        const struct str *k = &f->keys[FOLD_KEY_WITHDRAWN - 1];
        f->rargv[0] = "ZRANGE";
        f->rargv[1] = AT(f, *k);
        f->rlens[1] = k->len;
        f->rargv[2] = "0";
        f->rargv[3] = "-1";
        f->rlens[2] = 1;
        f->rlens[3] = 2;
    }
    f->rlens[0] = strlen(f->rargv[0]);
    *argc = (int)n;
    *argv = f->rargv;
    *lens = f->rlens;
    return 0;
}

int fold_read_answer(struct fold *f, size_t i, size_t n, const char *const *vals, const size_t *lens)
{
    if (i >= f->nvr + f->ncapq + (size_t)f->wread)
        return dedupe_answer(f, i - f->nvr - f->ncapq - (size_t)f->wread, n, vals, lens);
    if (i < f->nvr) {
        const struct vgroup *g = &f->groups[f->vr[i].group];
        switch (f->vr[i].kind) {
        case VR_HMGET:
            for (size_t j = 0; j < n && j < g->n; j++)
                if (visit_set(f, g, &f->visits[g->visits[j]], vals[j], lens[j]) < 0) return -1;
            return 0;
        case VR_HLEN:
        case VR_PTTL: {
            const char *p = n == 1 && vals[0] ? vals[0] : "";
            long long v;
            if (state_number(&p, p + (n == 1 && vals[0] ? lens[0] : 0), &v) < 0) v = LLONG_MAX;
            if (f->vr[i].kind == VR_HLEN)
                vc_hlen(f, g, v);
            else
                vc_pttl(f, g, v);
            return 0;
        }
        default:
            return vc_load(f, g, n, vals, lens);
        }
    }
    if (i >= f->nvr + f->ncapq) {
        withdrawn_clear(f);
        for (size_t j = 0; j < n; j++)
            if (vals[j] && lens[j] == RAWHIT_VISITOR_LEN &&
                withdrawn_add(f, (const unsigned char *)vals[j]) < 0)
                return -1;
        memcpy(f->wgen, f->wseen, sizeof f->wgen);
        f->wloaded = 1;
        return 0;
    }
    struct capset *cs = &f->caps[f->capq[i - f->nvr]];
    set_clear(cs);
    for (size_t j = 0; j < n; j++)
        if (vals[j] && set_add(cs, vals[j], lens[j], member_hash(f, vals[j], lens[j])) < 0) return -1;
    cs->size = n;
    cs->loaded = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Counting                                                                  */
/* ------------------------------------------------------------------------ */

/* A visit-level value counted for the day, and for the day and entry page
 * (path KEYS_BYPAGE_SEP value, one member: the cap keeps or drops it whole). */
static int visit_value(struct fold *f, enum fold_dim d, const char *path, size_t pl,
                       const char *v, size_t vl)
{
    char m[FOLD_MAX_PATH + 1 + 256];
    if (vl > sizeof m - 1 - pl) vl = sizeof m - 1 - pl;
    memcpy(m, path, pl);
    m[pl] = KEYS_BYPAGE_SEP;
    memcpy(m + pl + 1, v, vl);
    uint64_t mh = member_hash(f, m, pl + 1 + vl);
    if (incr(f, f->daykey[d], v, vl, 1) < 0 || incr_h(f, f->bypagekey[d], m, pl + 1 + vl, mh, 1) < 0)
        return -1;
    return 0;
}

/* A visit-level breakdown, counted when the hit starts a visit; an empty
 * value is skipped, or filed under fallback. */
static int visit_dim(struct fold *f, enum fold_dim d, const struct rawhit *h, enum rawhit_str s,
                     const char *fallback, const char *path, size_t pl)
{
    if (h->n[s]) return visit_value(f, d, path, pl, h->s[s], h->n[s]);
    return fallback ? visit_value(f, d, path, pl, fallback, strlen(fallback)) : 0;
}

static int start_visit(struct fold *f, const struct fhit *x, const char *path, size_t pl, uint64_t ph)
{
    const struct rawhit *h = &x->h;
    const char *device = rawhit_device_name(h->device);
    if (!device[0]) device = FOLD_UNKNOWN;
    if (incr_fixed(f, f->daykey[FOLD_TOTALS], FM_VISITS, 1) < 0 ||
        incr_fixed(f, f->daykey[FOLD_TOTALS], FM_BOUNCES, 1) < 0 ||
        incr_fixed(f, f->hourkey, FM_VISITS, 1) < 0 || incr_h(f, f->daykey[FOLD_ENTRY], path, pl, ph, 1) < 0 ||
        incr_h(f, f->daykey[FOLD_EXIT], path, pl, ph, 1) < 0 ||
        visit_dim(f, FOLD_SOURCE, h, RAWHIT_REFERRER, FOLD_DIRECT, path, pl) < 0 ||
        visit_dim(f, FOLD_UTM_SOURCE, h, RAWHIT_UTM_SOURCE, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_UTM_MEDIUM, h, RAWHIT_UTM_MEDIUM, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_UTM_CAMPAIGN, h, RAWHIT_UTM_CAMPAIGN, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_UTM_TERM, h, RAWHIT_UTM_TERM, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_UTM_CONTENT, h, RAWHIT_UTM_CONTENT, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_COUNTRY, h, RAWHIT_COUNTRY, FOLD_UNKNOWN, path, pl) < 0 ||
        visit_dim(f, FOLD_REGION, h, RAWHIT_REGION, NULL, path, pl) < 0 ||
        visit_dim(f, FOLD_BROWSER, h, RAWHIT_BROWSER, FOLD_UNKNOWN, path, pl) < 0 ||
        visit_dim(f, FOLD_OS, h, RAWHIT_OS, FOLD_UNKNOWN, path, pl) < 0 ||
        visit_value(f, FOLD_DEVICE, path, pl, device, strlen(device)) < 0)
        return -1;
    return 0;
}

/* A pageview of a visit already under way: the bounce taken back, the
 * duration and the exit page moved, on the day the visit began. */
static int extend_visit(struct fold *f, struct visit *v, int64_t t, const char *path, size_t pl,
                        uint64_t ph)
{
    uint32_t totals = f->daykey[FOLD_TOTALS], exit = f->daykey[FOLD_EXIT];
    /* Mostly the day of the hit; otherwise the keys are named again. */
    if (strcmp(v->day, f->day) != 0 &&
        (day_key(f, v->day, FOLD_TOTALS, &totals) < 0 || day_key(f, v->day, FOLD_EXIT, &exit) < 0))
        return -1;
    if (++v->views == 2 && incr_fixed(f, totals, FM_BOUNCES, -1) < 0) return -1;
    int64_t nf = t < v->first ? t : v->first, nl = t > v->last ? t : v->last;
    int64_t more = (nl - nf) - (v->last - v->first);
    if (more > 0 && incr_fixed(f, totals, FM_DURATION, more) < 0) return -1;
    if (t >= v->last && (v->exit.len != pl || memcmp(AT(f, v->exit), path, pl) != 0)) {
        if (incr(f, exit, AT(f, v->exit), v->exit.len, -1) < 0 || incr_h(f, exit, path, pl, ph, 1) < 0 ||
            arena_put(f, path, pl, &v->exit) < 0)
            return -1;
    }
    v->first = nf;
    v->last = nl;
    v->dirty = 1;
    return 0;
}

/* Adds the visitor to the page's HyperLogLog when the page is one of the
 * day's first max_page_visitors (their set's member remembers the key's
 * index for the rest of the batch: no key name built per hit). */
static int page_visitor(struct fold *f, const struct fhit *x, const char *path, size_t pl, uint64_t ph)
{
    struct capset *cs = &f->caps[f->kinfo[f->pagesetkey].capset - 1];
    struct member *e = cs->loaded && cs->cap ? set_slot(cs, path, pl, ph) : NULL;
    if (cs->loaded && !(e && e->s)) {
        if (cs->size >= (size_t)f->max_page_visitors) return 0;
        /* One of the day's first pages: it gets its visitor count. */
        cs->size++;
        if (set_add(cs, path, pl, ph) < 0 || add_sum_h(f, SUM_SADD, f->pagesetkey, path, pl, ph, 1) < 0)
            return -1;
        e = set_slot(cs, path, pl, ph);
    }
    int64_t uvp;
    if (e && e->s && e->aux_batch == f->batches) {
        uvp = (int64_t)e->aux - 1;
    } else {
        char key[FOLD_MAX_PATH + 700], p[FOLD_MAX_PATH + 1];
        memcpy(p, path, pl);
        p[pl] = '\0';
        uvp = key_index(f, key, keys_uv(key, sizeof key, f->site, f->day, p));
        if (uvp < 0) return -1;
        if (e && e->s) {
            e->aux = (uint32_t)uvp + 1;
            e->aux_batch = f->batches;
        }
    }
    return pfadd(f, (uint32_t)uvp, x);
}

/* The page of a hit: "/" when it has none, cut at FOLD_MAX_PATH. */
static const char *hit_path(const struct fhit *x, size_t *pl)
{
    *pl = x->h.n[RAWHIT_PATH] ? x->h.n[RAWHIT_PATH] : 1;
    if (*pl > FOLD_MAX_PATH) *pl = FOLD_MAX_PATH;
    return x->h.n[RAWHIT_PATH] ? x->h.s[RAWHIT_PATH] : "/";
}

static int count_pageview(struct fold *f, struct fhit *x)
{
    size_t pl;
    const char *path = hit_path(x, &pl);
    uint64_t ph = member_hash(f, path, pl);
    if (incr_fixed(f, f->daykey[FOLD_TOTALS], FM_PAGEVIEWS, 1) < 0 ||
        incr_fixed(f, f->hourkey, FM_PAGEVIEWS, 1) < 0 || incr_h(f, f->daykey[FOLD_PAGE], path, pl, ph, 1) < 0)
        return -1;
    if (x->visit) {
        if (pfadd(f, f->daykey[FOLD_UV], x) < 0) return -1;
        if (f->max_page_visitors > 0 && page_visitor(f, x, path, pl, ph) < 0) return -1;
        struct visit *v = &f->visits[x->visit - 1];
        if (v->known && x->t <= v->last + FOLD_IDLE_MS && x->t >= v->first - FOLD_IDLE_MS)
            return extend_visit(f, v, x->t, path, pl, ph);
        if (!v->known || x->t > v->last + FOLD_IDLE_MS) {
            /* A new visit replaces the state; a straggler from long before
             * the current visit is a visit of its own and leaves it alone. */
            v->known = v->dirty = 1;
            v->first = v->last = x->t;
            v->views = 1;
            memcpy(v->day, f->day, sizeof v->day);
            if (arena_put(f, path, pl, &v->exit) < 0) return -1;
        }
    }
    return start_visit(f, x, path, pl, ph);
}

static int count_event(struct fold *f, const struct fhit *x)
{
    if (incr_fixed(f, f->daykey[FOLD_TOTALS], FM_EVENTS, 1) < 0 || incr_fixed(f, f->hourkey, FM_EVENTS, 1) < 0 ||
        incr(f, f->daykey[FOLD_EVENT], x->h.s[RAWHIT_NAME], x->h.n[RAWHIT_NAME], 1) < 0)
        return -1;
    if (x->visit && pfadd(f, f->daykey[FOLD_UV], x) < 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Engagement, event properties, realtime                                    */
/* ------------------------------------------------------------------------ */

/* An engagement event (Plausible's tracker, on leaving or hiding a page):
 * its engaged time and scroll depth summed per page, and counted. It is no
 * pageview, no event, and takes no part in visits or visitor counts. */
static int count_engagement(struct fold *f, const struct fhit *x)
{
    size_t pl;
    const char *path = hit_path(x, &pl);
    uint64_t ph = member_hash(f, path, pl);
    if (incr_h(f, f->daykey[FOLD_ENGAGEMENTS], path, pl, ph, 1) < 0 ||
        incr_h(f, f->daykey[FOLD_ENGAGED], path, pl, ph, x->h.engaged_ms) < 0 ||
        incr_h(f, f->daykey[FOLD_SCROLL], path, pl, ph, x->h.scroll_depth) < 0)
        return -1;
    return 0;
}

#define PROP_NAME_MAX 64        /* the collector's limit (beacon.c) */
/* Property keys made capped (read with the batch) per batch: the day's
 * FOLD_MAX_PROP_NAMES names for a few days. Names past it keep no values this
 * batch, so that junk names cannot make a batch read thousands of keys. */
#define PROP_KEYS_PER_BATCH (4 * FOLD_MAX_PROP_NAMES)

/* The key of property name's values on the current day. 0 and *out; 1 when
 * it is not kept this batch (not made capped in fold_reads: make, at most
 * PROP_KEYS_PER_BATCH); -1 when out of memory. */
static int prop_key(struct fold *f, const char *name, size_t nlen, int make, uint32_t *out)
{
    char key[700], nm[PROP_NAME_MAX + 1];
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    int n = keys_prop(key, sizeof key, f->site, f->day, nm);
    int64_t i = key_index(f, key, n);
    if (i < 0) return -1;
    if (f->kinfo[i].cap != CAP_MEMBERS) {
        if (!make || f->nprop_keys >= PROP_KEYS_PER_BATCH) return 1;
        if (!(f->kinfo[i].capset = capset_of(f, key, (size_t)n, 0))) return -1;
        f->kinfo[i].cap = CAP_MEMBERS;
        f->nprop_keys++;
    }
    *out = (uint32_t)i;
    return 0;
}

/* A walk over a hit's props: the compact JSON object of scalars the
 * collector wrote, read with yajl's event parser (no tree). */
struct pwalk {
    struct fold *f;
    prop_fn fn;
    int depth, named, rc;
    char name[PROP_NAME_MAX];
    size_t nlen;
};

static int pw_value(struct pwalk *w, const char *v, size_t n)
{
    if (w->depth != 1) return 0;            /* not a flat object: stop here */
    if (!w->named || n == 0 || memchr(v, '\0', n)) return w->named = 0, 1;
    w->named = 0;
    if (n > FOLD_MAX_PATH) n = FOLD_MAX_PATH;
    if (w->fn(w->f, w->name, w->nlen, v, n) < 0) return w->rc = -1, 0;
    return 1;
}

static int pw_null(void *ctx) { return ((struct pwalk *)ctx)->named = 0, 1; }
static int pw_bool(void *ctx, int b) { return pw_value(ctx, b ? "true" : "false", b ? 4 : 5); }
static int pw_number(void *ctx, const char *s, size_t n) { return pw_value(ctx, s, n); }
static int pw_string(void *ctx, const unsigned char *s, size_t n) { return pw_value(ctx, (const char *)s, n); }
static int pw_start_map(void *ctx) { return ++((struct pwalk *)ctx)->depth == 1; }
static int pw_end_map(void *ctx) { return ((struct pwalk *)ctx)->depth--, 1; }
static int pw_array(void *ctx) { (void)ctx; return 0; }

static int pw_key(void *ctx, const unsigned char *k, size_t n)
{
    struct pwalk *w = ctx;
    w->named = n > 0 && n <= PROP_NAME_MAX && !memchr(k, '\0', n);
    if (w->named) memcpy(w->name, k, n);
    w->nlen = n;
    return 1;
}

static const yajl_callbacks pw_callbacks = {
    pw_null, pw_bool, NULL, NULL, pw_number, pw_string,
    pw_start_map, pw_key, pw_end_map, pw_array, NULL,
};

/* Calls fn for each (name, value) of x's props; a value that is not a scalar
 * ends the walk (a hit never fails its batch). 0, or -1 when out of memory. */
static int props_walk(struct fold *f, const struct fhit *x, prop_fn fn)
{
    if (!x->h.n[RAWHIT_PROPS]) return 0;
    struct pwalk w = {.f = f, .fn = fn};
    yajl_handle h = yajl_alloc(&pw_callbacks, NULL, &w);
    if (!h) return -1;
    if (yajl_parse(h, (const unsigned char *)x->h.s[RAWHIT_PROPS], x->h.n[RAWHIT_PROPS]) == yajl_status_ok)
        yajl_complete_parse(h);
    yajl_free(h);
    return w.rc;
}

/* fold_reads: the keys of the batch's property names, to be read. */
static int prop_register(struct fold *f, const char *name, size_t nlen, const char *v, size_t vlen)
{
    (void)v;
    (void)vlen;
    uint32_t k;
    return prop_key(f, name, nlen, 1, &k) < 0 ? -1 : 0;
}

/* fold_compute: the name counted in FOLD_PROPS, the value in its key. */
static int prop_count(struct fold *f, const char *name, size_t nlen, const char *v, size_t vlen)
{
    int kept, r;
    uint32_t k;
    if (incr_kept(f, f->daykey[FOLD_PROPS], name, nlen, member_hash(f, name, nlen), 1, &kept) < 0) return -1;
    if (!kept || (r = prop_key(f, name, nlen, 0, &k)) > 0) return 0;
    return r < 0 ? -1 : incr(f, k, v, vlen, 1);
}

/* The visitor in the HyperLogLog of the hit's UTC minute, which expires
 * KEYS_REALTIME_KEEP_MS after the minute: "current visitors" read the last
 * few. A hit folded after that writes none. */
static int count_realtime(struct fold *f, const struct fhit *x)
{
    if (!(x->h.flags & RAWHIT_F_VISITOR)) return 0;
    int64_t minute = x->t >= 0 ? x->t / 60000 : -1 - (-x->t - 1) / 60000;
    int64_t at = keys_realtime_expires_ms(minute);
    if (at <= f->now) return 0;
    if (minute != f->rtminute) {
        char key[600];
        int64_t i = key_index(f, key, keys_realtime_minute(key, sizeof key, f->site, minute));
        if (i < 0) return -1;
        f->kinfo[i].expire_at = at;
        f->rtkey = (uint32_t)i;
        f->rtminute = minute;
    }
    return pfadd(f, f->rtkey, x);
}

int fold_compute(struct fold *f, int64_t now_ms)
{
    f->now = now_ms;
    if (collect_visits(f) < 0) return -1;
    for (size_t i = 0; i < f->nhits; i++) {
        struct fhit *x = &f->hits[i];
        if ((x->h.flags & RAWHIT_F_VISITOR) && withdrawn_has(f, x->h.visitor)) {
            f->dropped++;
            continue;
        }
        if (bucket(f, x->t) < 0) return -1;
        const struct rawhit *h = &x->h;
        int dup = dedupe_skip(f, x);
        if (dup < 0) return -1;
        if (dup) {
            f->duplicates++;
            continue;
        }
        if (h->engagement) {
            if (count_engagement(f, x) < 0) return -1;
            continue;
        }
        int pageview = h->n[RAWHIT_NAME] == 0 ||
                       (h->n[RAWHIT_NAME] == 8 && memcmp(h->s[RAWHIT_NAME], "pageview", 8) == 0);
        if ((pageview ? count_pageview(f, x) : count_event(f, x)) < 0 ||
            props_walk(f, x, prop_count) < 0 || count_realtime(f, x) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */

/* An argument already in the arena. */
static int arg_str(struct fold *f, struct str s)
{
    if (grow(&f->args, &f->capargs, f->nargs + 1, sizeof *f->args) < 0) return -1;
    f->args[f->nargs++] = s;
    return 0;
}

static int arg(struct fold *f, const char *s, size_t len)
{
    struct str x;
    return arena_put(f, s, len, &x) < 0 ? -1 : arg_str(f, x);
}

static int arg_s(struct fold *f, const char *s)
{
    return arg(f, s, strlen(s));
}

static int arg_i(struct fold *f, long long v)
{
    char buf[24];
    return arg(f, buf, decimal_i64(buf, v));
}

/* KEYS index (1-based) of key i: the keys go to KEYS in their order. */
static long long keys_at(uint32_t i)
{
    return (long long)i + 1;
}

/* The id right after "ms-seq": XTRIM MINID keeps it and what follows. */
static int next_id(const char *id, char *out, size_t cap)
{
    unsigned long long ms, seq;
    if (sscanf(id, "%llu-%llu", &ms, &seq) != 2) return -1;
    int n = seq == UINT64_MAX ? snprintf(out, cap, "%llu-0", ms + 1) : snprintf(out, cap, "%llu-%llu", ms, seq + 1);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The member of f->pfs[i]: its visitor in hex. */
static const char *pf_member(struct fold *f, size_t i)
{
    struct fhit *x = &f->hits[f->pfs[i].hit];
    if (!x->vhex[0]) rawhit_visitor_to_hex(x->h.visitor, x->vhex);
    return x->vhex;
}

/* ------------------------------------------------------------------------ */
/* HyperLogLog members already added                                         */
/* ------------------------------------------------------------------------ */

/* Adding a member a HyperLogLog holds changes nothing, and a visitor comes
 * back to the same pages all day: most members of a batch were added by an
 * earlier one (the bench's realistic drain: 278,549 members sent for 58,020
 * distinct). The fold keeps a fingerprint of each (key, visitor) it added and
 * sends only the others. Like the visit cache (vc_*), the set is what Redis
 * holds once the batches counted so far are applied; what could make it
 * wrong:
 *   - a batch not applied: fold_forget() empties it;
 *   - the key deleted while the set says it holds the member: only the
 *     retention purge deletes aggregates (purge.h), a day at least
 *     retention.aggregates old, and the key's own expiry comes later still.
 *     So only the keys of the last two local days are kept, with that
 *     retention at least SEEN_MIN_RETENTION_MS, and the set is emptied every
 *     SEEN_MAX_AGE_MS: no member it holds can outlive its key;
 *   - a fingerprint shared by two (key, visitor) pairs: 64 bits, a chance
 *     of about 2^-45 a lookup in a full set; a HyperLogLog's own error is
 *     0.81 %.
 * Its size is bounded (SEEN_MAX fingerprints, an idmap): full, it is emptied.
 * It is emptied too when the withdrawn generation moves (fold_withdrawn_gen):
 * an erasure needs that only for the visit cache (a HyperLogLog cannot forget
 * a member), but a purge that deleted aggregates of the last two days raises
 * it, and the keys the set speaks for may then be gone. */
#define SEEN_MAX (1u << 18)              /* fingerprints; 16 bytes a slot, half full: 8 MiB */
#define SEEN_MAX_AGE_MS (3600 * 1000LL)
#define SEEN_MIN_RETENTION_MS (3 * CLOCK_DAY_MS)

static void seen_clear(struct fold *f)
{
    idmap_clear(&f->seen);
    f->seen_since = f->now;
}

/* Whether key k's members may be remembered: an aggregate of the last two
 * local days, its retention long enough (above). */
static int seen_key(struct fold *f, uint32_t k, int64_t today)
{
    if (f->aggregates_ms < SEEN_MIN_RETENTION_MS) return 0;
    return keys_aggregate_day(AT(f, f->keys[k]), f->keys[k].len, f->site) >= today - 1;
}

/* 1 if fingerprint fp was added before; else remembers it and says 0 (also
 * when the set cannot grow: the member is then sent). */
static int seen_add(struct fold *f, uint64_t fp)
{
    if (f->seen.n >= SEEN_MAX) seen_clear(f);
    uint64_t *v = idmap_slot(f, &f->seen, fp, 1);
    if (!v) return 0;
    if (*v) return 1;
    *v = 1;
    return 0;
}

/* The HyperLogLog members grouped by key as script_argv groups the sums:
 * order[] holds indexes of f->pfs, key k's after key k - 1's, and start[k]
 * ends key k's run (start has nkeys + 1 places). A visitor is in a key's
 * run once, at its first hit's place, and not at all when an earlier batch
 * added it (seen_add). */
static int pf_order(struct fold *f, size_t nkeys, size_t *start, size_t *order)
{
    if (f->now - f->seen_since > SEEN_MAX_AGE_MS) seen_clear(f);
    int64_t today = clock_local_days(f->zone, f->now);
    memset(start, 0, (nkeys + 1) * sizeof *start);
    for (size_t i = 0; i < f->npfs; i++) start[f->pfs[i].key + 1]++;
    size_t most = 0;
    for (size_t k = 0; k < nkeys; k++) {
        if (start[k + 1] > most) most = start[k + 1];
        start[k + 1] += start[k];
    }
    for (size_t i = 0; i < f->npfs; i++) order[start[f->pfs[i].key]++] = i;
    size_t cap = 16;
    while (cap < 2 * most) cap *= 2;
    if (grow(&f->pfset, &f->cappfset, cap, sizeof *f->pfset) < 0) return -1;
    /* Each run made unique in place, moved down over what it dropped. */
    for (size_t k = 0, at = 0, w = 0; k < nkeys; k++) {
        size_t end = start[k], n = end - at;
        if (n) {
            size_t c = 16;
            while (c < 2 * n) c *= 2;
            memset(f->pfset, 0, c * sizeof *f->pfset);
            uint64_t kh = seen_key(f, (uint32_t)k, today) ? key_hash(f, AT(f, f->keys[k]), f->keys[k].len) : 0;
            for (; at < end; at++) {
                const unsigned char *v = f->hits[f->pfs[order[at]].hit].h.visitor;
                size_t j = (size_t)((visitor_word(v) ^ f->seed) * 0x9e3779b97f4a7c15ull >> 32) & (c - 1);
                while (f->pfset[j] &&
                       memcmp(f->hits[f->pfs[order[f->pfset[j] - 1]].hit].h.visitor, v, RAWHIT_VISITOR_LEN) != 0)
                    j = (j + 1) & (c - 1);
                if (f->pfset[j]) continue;
                /* Not marked in pfset when sent before: its repeats are too. */
                uint64_t fp = kh ^ visitor_word(v);
                if (kh && fp != UINT64_MAX && seen_add(f, fp)) continue;
                order[w] = order[at];
                f->pfset[j] = (uint32_t)++w;
            }
        }
        start[k] = w;
    }
    return 0;
}

/* Fewer members than this cannot make a HyperLogLog dense: each sets at most
 * one register, worth at most three bytes of the sparse form (hll.h). */
#define HLL_MERGE_MIN (HLL_SPARSE_MAX_BYTES / 3)

/* A HyperLogLog's n members of the batch (f->pfs at order[]) as one dense
 * HyperLogLog to merge, if their registers alone need the dense form
 * (hll.h): 1 when queued in f->merges, 0 when they stay PFADD members. */
static int merge_hll(struct fold *f, uint32_t key, const size_t *order, size_t n)
{
    if (!f->hllreg && !(f->hllreg = malloc(HLL_REGISTERS))) return -1;
    memset(f->hllreg, 0, HLL_REGISTERS);
    for (size_t i = 0; i < n; i++) hll_add(f->hllreg, pf_member(f, order[i]), 2 * RAWHIT_VISITOR_LEN);
    if (!hll_needs_dense(f->hllreg)) return 0;
    unsigned char dense[HLL_DENSE_BYTES];
    hll_dense(f->hllreg, dense);
    if (grow(&f->merges, &f->capmerges, f->nmerges + 1, sizeof *f->merges) < 0) return -1;
    struct merge *m = &f->merges[f->nmerges];
    m->key = key;
    if (arena_put(f, dense, sizeof dense, &m->hll) < 0) return -1;
    f->nmerges++;
    return 1;
}

/* A visit state as the hash holds it: "first last views day exit"; its length. */
static size_t visit_state(const struct fold *f, const struct visit *v, char *state)
{
    size_t n = decimal_i64(state, v->first);
    state[n++] = ' ';
    n += decimal_i64(state + n, v->last);
    state[n++] = ' ';
    n += decimal_i64(state + n, v->views);
    state[n++] = ' ';
    size_t dl = strlen(v->day);
    memcpy(state + n, v->day, dl);
    n += dl;
    state[n++] = ' ';
    memcpy(state + n, AT(f, v->exit), v->exit.len);
    return n + v->exit.len;
}

/* A plain command of fold_block begins: its verb, next in args. */
static int cmd_begin(struct fold *f, const char *verb)
{
    if (grow(&f->cmds, &f->capcmds, f->ncmds + 1, sizeof *f->cmds) < 0) return -1;
    f->cmds[f->ncmds++] = (struct span){f->nargs, 0};
    return arg_s(f, verb);
}

static void cmd_end(struct fold *f)
{
    f->cmds[f->ncmds - 1].n = f->nargs - f->cmds[f->ncmds - 1].at;
}

/* The changed visit states, a group per day's hash (key, expiry, count, then
 * visitor and state pairs) of the script's ARGV; or, plain, as commands of
 * fold_block: HSET of the day's hash, then its PEXPIREAT. */
static int visit_args(struct fold *f, int64_t now_ms, int plain, size_t *ngroups)
{
    *ngroups = 0;
    for (size_t i = 0; i < f->ngroups; i++) {
        const struct vgroup *g = &f->groups[i];
        size_t dirty = 0;
        for (size_t j = 0; j < g->n; j++) dirty += f->visits[g->visits[j]].dirty;
        if (!dirty) continue;
        int64_t at = visit_expiry(g->day, now_ms);
        if (plain ? cmd_begin(f, "HSET") < 0 || arg_str(f, f->keys[g->vkey]) < 0
                  : arg_i(f, keys_at(g->vkey)) < 0 || arg_i(f, at) < 0 || arg_i(f, (long long)dirty) < 0)
            return -1;
        for (size_t j = 0; j < g->n; j++) {
            const struct visit *v = &f->visits[g->visits[j]];
            if (!v->dirty) continue;
            char state[96 + FOLD_MAX_PATH];
            if (arg(f, (const char *)v->visitor, RAWHIT_VISITOR_LEN) < 0 ||
                arg(f, state, visit_state(f, v, state)) < 0)
                return -1;
        }
        if (plain) {
            cmd_end(f);
            if (cmd_begin(f, "PEXPIREAT") < 0 || arg_str(f, f->keys[g->vkey]) < 0 || arg_i(f, at) < 0)
                return -1;
            cmd_end(f);
        }
        (*ngroups)++;
    }
    return 0;
}

/* The expiries of the batch (groups of the script's ARGV, or, plain, PEXPIREAT
 * commands of fold_block): the keys that carry their own (realtime), and
 * every aggregate key at its day + retention.aggregates (+ a day: a local
 * day ends up to 14 hours after the UTC one). */
static int expire_args(struct fold *f, int plain, size_t *n)
{
    *n = 0;
    for (size_t k = 0; k < f->nkeys; k++) {
        if (!f->kinfo[k].expire_at && f->aggregates_ms) {
            int64_t day = keys_aggregate_day(AT(f, f->keys[k]), f->keys[k].len, f->site);
            if (day >= 0) f->kinfo[k].expire_at = (day + 2) * CLOCK_DAY_MS + f->aggregates_ms;
        }
        if (!f->kinfo[k].expire_at) continue;
        if (plain ? cmd_begin(f, "PEXPIREAT") < 0 || arg_str(f, f->keys[k]) < 0
                  : arg_i(f, keys_at((uint32_t)k)) < 0)
            return -1;
        if (arg_i(f, f->kinfo[k].expire_at) < 0) return -1;
        if (plain) cmd_end(f);
        (*n)++;
    }
    return 0;
}

/* The script's KEYS and ARGV (visit states included unless plain: then
 * they follow, as fold_block's commands, in args from nscript) and, from
 * argv[0], its command: verb, then script (its SHA1, or its text), then
 * numkeys, KEYS, ARGV; argv has room for the plain commands' arguments and
 * extra more. Its length, or 0 when out of memory. */
static size_t script_argv(struct fold *f, const char *verb, const char *script, const char *expect,
                          long long added, long long length, int plain, size_t extra)
{
    char trim[64];
    if (!f->last[0] || next_id(f->last, trim, sizeof trim) < 0) return 0;
    f->nargs = 0;
    /* Plain, fold_block's commands before them are laid out by it. */
    f->ncmds = plain ? FOLD_CMD_SCRIPT + 1 : 0;
    if (grow(&f->cmds, &f->capcmds, f->ncmds, sizeof *f->cmds) < 0) return 0;
    if (arg_s(f, expect) < 0 || arg_s(f, f->last) < 0 || arg_s(f, trim) < 0 ||
        arg_i(f, added) < 0 || arg_i(f, length) < 0 || arg_s(f, f->wseen) < 0 ||
        arg_i(f, (long long)f->dropped) < 0 || arg_i(f, f->now) < 0 || arg_s(f, f->site) < 0)
        return 0;
    /* The group counts, FOLD_ARGV_NINCR.., are filled in at the end. */
    enum { NCOUNTS = FOLD_ARGV_FIRST_GROUP - FOLD_ARGV_NINCR };
    size_t counts = f->nargs;
    for (int k = 0; k < NCOUNTS; k++)
        if (arg_s(f, "0") < 0) return 0;
    size_t nincr = 0, npf = 0, nsadd = 0, nvisit, nexpire;
    f->nmerges = 0;
    /* The sums, grouped by key (a counting sort over the key indexes). */
    size_t nsumkeys = f->nkeys;     /* the sums' keys: dedupe_args may add more */
    size_t norder = (f->nsums > f->npfs ? f->nsums : f->npfs) + 1;
    size_t *start = calloc(nsumkeys + 1, sizeof *start), *order = malloc(norder * sizeof *order);
    if (!start || !order) {
        free(start);
        free(order);
        return 0;
    }
    int rc = 0;
    size_t *groups[SUM_NKINDS] = {&nincr, &npf, &nsadd};
    /* Plain, the HyperLogLogs' members go last, as PFADDs after the script
     * (below): their order and ends are kept till then. */
    const int kinds[SUM_NKINDS] = {SUM_INCR, plain ? SUM_SADD : SUM_PF, plain ? SUM_PF : SUM_SADD};
    for (int ki = 0; ki < SUM_NKINDS && rc == 0; ki++) {
        int kind = kinds[ki];
        if (kind == SUM_PF) {
            if (pf_order(f, nsumkeys, start, order) < 0) rc = -1;
        } else {
            memset(start, 0, (nsumkeys + 1) * sizeof *start);
            for (size_t i = 0; i < f->nsums; i++)
                if (f->sums[i].kind == kind && (kind != SUM_INCR || f->sums[i].delta)) start[f->sums[i].key + 1]++;
            for (size_t k = 0; k < nsumkeys; k++) start[k + 1] += start[k];
            for (size_t i = 0; i < f->nsums; i++)
                if (f->sums[i].kind == kind && (kind != SUM_INCR || f->sums[i].delta))
                    order[start[f->sums[i].key]++] = i;
        }
        for (size_t k = 0, at = 0; k < nsumkeys && rc == 0; k++) {
            size_t end = start[k];          /* after the fill, start[k] is key k's end */
            if (end == at) continue;
            if (kind == SUM_PF && end - at >= HLL_MERGE_MIN) {
                int merged = merge_hll(f, (uint32_t)k, order + at, end - at);
                if (merged < 0) rc = -1;
                if (merged) {
                    at = end;
                    continue;
                }
            }
            if (kind == SUM_PF && plain) {
                at = end;
                continue;
            }
            rc = arg_i(f, keys_at((uint32_t)k)) < 0 || arg_i(f, (long long)(end - at)) < 0 ? -1 : 0;
            (*groups[kind])++;
            for (; rc == 0 && at < end; at++) {
                if (kind == SUM_PF) {
                    if (arg(f, pf_member(f, order[at]), 2 * RAWHIT_VISITOR_LEN) < 0) rc = -1;
                    continue;
                }
                const struct sum *s = &f->sums[order[at]];
                if (arg_str(f, s->member) < 0 || (kind == SUM_INCR && arg_i(f, s->delta) < 0)) rc = -1;
            }
        }
    }
    for (size_t m = 0; rc == 0 && m < f->nmerges; m++)
        if (arg_i(f, keys_at(f->merges[m].key)) < 0 || arg_str(f, f->merges[m].hll) < 0) rc = -1;
    size_t ndedupe = 0;
    nvisit = nexpire = 0;
    if (rc == 0 && ((!plain && visit_args(f, f->now, 0, &nvisit) < 0) || dedupe_args(f, f->now, &ndedupe) < 0 ||
                    (!plain && expire_args(f, 0, &nexpire) < 0)))
        rc = -1;
    nvisit += ndedupe;
    const size_t nums[NCOUNTS] = {nincr, npf, nsadd, f->nmerges, nvisit, nexpire};
    for (int k = 0; rc == 0 && k < NCOUNTS; k++) {
        char num[24];
        struct str s;
        if (arena_put(f, num, (size_t)snprintf(num, sizeof num, "%zu", nums[k]), &s) < 0) rc = -1;
        else f->args[counts + (size_t)k] = s;
    }

    char numkeys[24];
    struct str sn;
    if (rc == 0 && arena_put(f, numkeys, (size_t)snprintf(numkeys, sizeof numkeys, "%zu", f->nkeys), &sn) < 0)
        rc = -1;
    f->nscript = f->nargs;
    /* Plain, after the script: the visit states, the HyperLogLogs' members
     * (PFADD: adding one again changes nothing, so they may run whatever
     * the script decided) and the expiries, after the writes they are for. */
    size_t ngroups;
    if (rc == 0 && plain && visit_args(f, f->now, 1, &ngroups) < 0) rc = -1;
    for (size_t k = 0, at = 0, m = 0; rc == 0 && plain && k < nsumkeys; k++) {
        size_t end = start[k];
        if (end == at) continue;
        if (m < f->nmerges && f->merges[m].key == k) {
            m++;
            at = end;
            continue;
        }
        if (cmd_begin(f, "PFADD") < 0 || arg_str(f, f->keys[k]) < 0) rc = -1;
        for (; rc == 0 && at < end; at++)
            if (arg(f, pf_member(f, order[at]), 2 * RAWHIT_VISITOR_LEN) < 0) rc = -1;
        if (rc == 0) cmd_end(f);
    }
    free(start);
    free(order);
    if (rc < 0 || (plain && expire_args(f, 1, &nexpire) < 0)) return 0;
    size_t n = 3 + f->nkeys + f->nargs + extra;
    if (grow(&f->argv, &f->capargv, n, sizeof *f->argv) < 0) return 0;
    size_t cap = f->capargv;
    if (grow(&f->argvlen, &(size_t){0}, cap, sizeof *f->argvlen) < 0) return 0;
    size_t k = 0;
#define PUT(p, l) (f->argv[k] = (p), f->argvlen[k] = (l), k++)
    PUT(verb, strlen(verb));
    PUT(script, strlen(script));
    PUT(AT(f, sn), sn.len);
    for (size_t i = 0; i < f->nkeys; i++) PUT(AT(f, f->keys[i]), f->keys[i].len);
    for (size_t i = 0; i < f->nscript; i++) PUT(AT(f, f->args[i]), f->args[i].len);
#undef PUT
    return k;
}

int fold_argv(struct fold *f, const char *sha, const char *expect, long long added,
              long long length, const char ***argv, const size_t **argvlen, size_t *argc)
{
    size_t k = script_argv(f, "EVALSHA", sha, expect, added, length, 0, 0);
    *argv = f->argv;
    *argvlen = f->argvlen;
    *argc = k;
    return k ? 0 : -1;
}

/* fold_block's check: fold.lua's three, before MULTI. KEYS: the stream, the
 * cursor, the withdrawn generation; ARGV: the cursor expected, the stream's
 * entries-added and length when read, the generation. A refusal writes the
 * cursor (its own value: "" where there was none, which reads as none), so
 * that the block's EXEC, which WATCHes it, runs nothing. */
static const char check_script[] =
    "local cur = redis.call('GET', KEYS[2]) or ''\n"
    "local status = 0\n"
    "if cur ~= ARGV[1] then\n"
    "  status = 1\n"
    "else\n"
    "  local info, length, added = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "  for i = 1, #info, 2 do\n"
    "    if info[i] == 'length' then length = info[i + 1]\n"
    "    elseif info[i] == 'entries-added' then added = info[i + 1] end\n"
    "  end\n"
    "  if added - tonumber(ARGV[2]) ~= length - tonumber(ARGV[3]) then status = 2\n"
    "  elseif (redis.call('GET', KEYS[3]) or '') ~= ARGV[4] then status = 3 end\n"
    "end\n"
    "if status ~= 0 then redis.call('SET', KEYS[2], cur) end\n"
    "return {status}\n";
_Static_assert(FOLD_APPLIED == 0 && FOLD_MOVED == 1 && FOLD_DELETED == 2 && FOLD_WITHDRAWN == 3,
               "check_script's statuses");

int fold_block(struct fold *f, const char *expect, long long added, long long length, size_t *ncmds)
{
    enum { WATCH = 3, CHECK = 10 };
    size_t k = script_argv(f, "EVAL", fold_script, expect, added, length, 1, WATCH + CHECK + 2);
    if (!k) return -1;
    /* The script's command is laid out first, and the plain commands' spans
     * after the four of FOLD_CMD_*: the block's order is the spans'. */
    if (grow(&f->cmds, &f->capcmds, f->ncmds + 1, sizeof *f->cmds) < 0) return -1;
    struct span *c = f->cmds;
    c[FOLD_CMD_SCRIPT] = (struct span){0, k};
#define PUT(p, l) (f->argv[k] = (p), f->argvlen[k] = (l), k++)
#define PUT_STR(x) PUT(AT(f, (x)), (x).len)
    c[FOLD_CMD_WATCH] = (struct span){k, WATCH};
    PUT("WATCH", 5);
    PUT_STR(f->keys[FOLD_KEY_CURSOR - 1]);
    PUT_STR(f->keys[FOLD_KEY_GEN - 1]);
    c[FOLD_CMD_CHECK] = (struct span){k, CHECK};
    PUT("EVAL", 4);
    PUT(check_script, sizeof check_script - 1);
    PUT("3", 1);
    PUT_STR(f->keys[FOLD_KEY_STREAM - 1]);
    PUT_STR(f->keys[FOLD_KEY_CURSOR - 1]);
    PUT_STR(f->keys[FOLD_KEY_GEN - 1]);
    PUT_STR(f->args[FOLD_ARGV_EXPECT - 1]);
    PUT_STR(f->args[FOLD_ARGV_ADDED - 1]);
    PUT_STR(f->args[FOLD_ARGV_LENGTH - 1]);
    PUT_STR(f->args[FOLD_ARGV_GEN - 1]);
    c[FOLD_CMD_MULTI] = (struct span){k, 1};
    PUT("MULTI", 5);
    for (size_t i = FOLD_CMD_SCRIPT + 1; i < f->ncmds; i++) {
        size_t at = k;
        for (size_t j = c[i].at; j < c[i].at + c[i].n; j++) PUT_STR(f->args[j]);
        c[i].at = at;
    }
    c[f->ncmds++] = (struct span){k, 1};
    PUT("EXEC", 4);
#undef PUT_STR
#undef PUT
    *ncmds = f->ncmds;
    return 0;
}

void fold_block_cmd(const struct fold *f, size_t i, int *argc, const char *const **argv,
                    const size_t **lens)
{
    *argc = (int)f->cmds[i].n;
    *argv = f->argv + f->cmds[i].at;
    *lens = f->argvlen + f->cmds[i].at;
}
