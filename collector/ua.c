/* ua.c -- User-Agent classification and bot filter (see ua.h).
 *
 * Sits in the collector's hit path after the consent gate: a hit from a bot is
 * refused, an accepted one keeps only the browser family, OS family and device
 * class computed here. The User-Agent string itself goes no further.
 *
 * The rules are data, generated from pinned npm packages into ua_data.inc:
 * uap-core's user_agent_parsers and os_parsers (first matching rule wins, its
 * replacement applied with $1..$9), uap-core's device_parsers for the "Spider"
 * device family, and crawler-user-agents' patterns joined into one regex. They
 * are compiled once per process with PCRE2 (JIT when available) and shared
 * read-only by every thread; each struct ua carries its own match data, JIT
 * stack and match limits, which PCRE2 requires per thread.
 *
 * A miss runs a few hundred regexes (tens of microseconds), so each struct ua
 * keeps a set-associative cache keyed by the User-Agent bytes: real traffic
 * repeats a few thousand distinct strings, and a hit costs a hash, one cache
 * line of hashes and a memcmp. A full set drops a random way: unlike LRU, that
 * cannot be made to miss every time by cycling a few strings through one set.
 */
#include "ua.h"
#include "hash.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One generated rule: the regex, its case flag and the replacement template
 * (family or OS name with $1..$9; NULL = group 1; "Spider" marks device rules). */
struct ua_rule {
    const char *re;
    int caseless;
    const char *repl;
};

#include "ua_data.inc"

#define UA_NBROWSER (sizeof ua_data_browser / sizeof ua_data_browser[0])
#define UA_NOS (sizeof ua_data_os / sizeof ua_data_os[0])
#define UA_NDEVICE (sizeof ua_data_device / sizeof ua_data_device[0])

/* Bounds on one match. The uap rules backtrack over at most UA_MAX_LEN bytes;
 * these stop a pathological subject long before it costs a millisecond. */
#define UA_MATCH_LIMIT 200000u
#define UA_DEPTH_LIMIT 5000u
#define UA_JIT_STACK_MAX (512u * 1024u)
#define UA_OVEC_PAIRS 10u           /* group 0 and $1..$9 */

/* ------------------------------------------------------------------------ */
/* Device class: a documented heuristic on the User-Agent, in order. uap-core's
 * device rules name brands and models, not classes, so they cannot answer
 * "tablet or phone" by themselves. */

/* TVs, consoles, set-top boxes, e-readers in TV mode: neither screen class. */
static const char ua_re_class_other[] =
    "SmartTV|SMART-TV|Smart-TV|Smart TV|HbbTV|GoogleTV|Google TV|AppleTV|Apple TV|CrKey|"
    "Roku|AFT[A-Z]|BRAVIA|NetCast|Web0S|\\bTV\\b|PlayStation|Nintendo|Xbox|Tizen.{0,40}TV";
/* Tablets say so, or are iPads/Kindles, or run Android without "Mobile" (the
 * convention Google documents for Android tablets). */
static const char ua_re_class_tablet[] =
    "iPad|Tablet|Kindle|Silk/|PlayBook|\\bNexus (?:7|9|10)\\b|\\bSM-[TPX]\\d|\\bGT-P\\d|"
    "^(?!.*Mobi).*Android";
static const char ua_re_class_mobile[] =
    "Mobi|iPhone|iPod|Android|Windows Phone|Windows CE|BlackBerry|\\bBB10\\b|Symbian|SymbOS|"
    "Series ?[46]0|MIDP|CLDC|Nokia|Opera Mini|webOS|PalmOS|KAIOS|Maemo|UCWEB|J2ME|NetFront|"
    "Obigo|Fennec|Bada|Tizen";
static const char ua_re_class_desktop[] =
    "Windows NT|Windows (?:95|98|ME|XP|2000|3\\.1)|Win(?:64|32|98|95|NT)|Macintosh|Mac OS X|"
    "Mac_PowerPC|X11|CrOS|Linux (?:x86_64|i[3-6]86)|FreeBSD|OpenBSD|NetBSD|SunOS|Ubuntu|Fedora";

enum ua_class { UA_CLASS_OTHER, UA_CLASS_TABLET, UA_CLASS_MOBILE, UA_CLASS_DESKTOP, UA_NCLASS };
static const char *const ua_class_re[UA_NCLASS] = {
    ua_re_class_other, ua_re_class_tablet, ua_re_class_mobile, ua_re_class_desktop,
};
static const char *const ua_class_name[UA_NCLASS] = { "other", "tablet", "mobile", "desktop" };

/* ------------------------------------------------------------------------ */
/* The compiled rules, shared by every struct ua of the process. Built by the
 * first ua_new(), freed by the last ua_free(); read-only in between, which is
 * what lets threads match against them without locks. */

struct ua_rules {
    pcre2_code *browser[UA_NBROWSER];
    pcre2_code *os[UA_NOS];
    pcre2_code *device[UA_NDEVICE];
    pcre2_code *spider_any;
    pcre2_code *crawlers;
    pcre2_code *klass[UA_NCLASS];
};

static pthread_mutex_t ua_rules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ua_rules *ua_rules_shared;
static size_t ua_rules_refs;

static void ua_rules_free(struct ua_rules *r)
{
    if (!r) return;
    for (size_t i = 0; i < UA_NBROWSER; i++) pcre2_code_free(r->browser[i]);
    for (size_t i = 0; i < UA_NOS; i++) pcre2_code_free(r->os[i]);
    for (size_t i = 0; i < UA_NDEVICE; i++) pcre2_code_free(r->device[i]);
    for (size_t i = 0; i < UA_NCLASS; i++) pcre2_code_free(r->klass[i]);
    pcre2_code_free(r->spider_any);
    pcre2_code_free(r->crawlers);
    free(r);
}

static pcre2_code *ua_compile(const char *re, int caseless, const char *what, size_t idx,
                              char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    /* No PCRE2_UTF: User-Agents are arbitrary bytes, and matching bytewise means
     * invalid UTF-8 can neither fail a match nor need a validity pass. */
    uint32_t opts = caseless ? PCRE2_CASELESS : 0;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
    if (!c) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        snprintf(err, errlen, "ua: %s rule %zu: regex error at offset %zu: %s", what, idx,
                 (size_t)eo, (const char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: without it (unsupported CPU, no exec memory)
     * the interpreter gives the same answers under the same limits. */
    (void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
    return c;
}

static struct ua_rules *ua_rules_build(char *err, size_t errlen)
{
    struct ua_rules *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "ua: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < UA_NBROWSER; i++)
        if (!(r->browser[i] = ua_compile(ua_data_browser[i].re, ua_data_browser[i].caseless,
                                         "browser", i, err, errlen)))
            goto error;
    for (size_t i = 0; i < UA_NOS; i++)
        if (!(r->os[i] = ua_compile(ua_data_os[i].re, ua_data_os[i].caseless, "os", i, err,
                                    errlen)))
            goto error;
    for (size_t i = 0; i < UA_NDEVICE; i++)
        if (!(r->device[i] = ua_compile(ua_data_device[i].re, ua_data_device[i].caseless,
                                        "device", i, err, errlen)))
            goto error;
    for (size_t i = 0; i < UA_NCLASS; i++)
        if (!(r->klass[i] = ua_compile(ua_class_re[i], 0, "device class", i, err, errlen)))
            goto error;
    if (!(r->spider_any = ua_compile(ua_data_spider_any, 0, "spider", 0, err, errlen)))
        goto error;
    if (!(r->crawlers = ua_compile(ua_data_crawlers, 0, "crawler", 0, err, errlen)))
        goto error;
    return r;
error:
    ua_rules_free(r);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Per-thread state and the result cache. */

#define UA_CACHE_WAYS 8          /* 8 hashes: one 64-byte line per set */

struct ua_slot {
    size_t len;                 /* key length; the key itself is in ua.keys */
    struct ua_info info;
};

struct ua {
    const struct ua_rules *rules;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;

    size_t nsets, ways;         /* nsets is a power of two; ways <= UA_CACHE_WAYS */
    uint64_t *hashes;           /* nsets * ways; 0 = empty slot */
    struct ua_slot *slots;      /* nsets * ways */
    char *keys;                 /* nsets * ways * UA_MAX_LEN: the User-Agent bytes */
    uint64_t seed;              /* so that colliding strings cannot be precomputed */
    uint64_t rng;               /* xorshift state for choosing a victim */

    struct ua_info scratch;     /* result when there is no cache */
};

struct ua *ua_new(size_t cache_entries, char *err, size_t errlen)
{
    struct ua *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "ua: out of memory");
        return NULL;
    }

    pthread_mutex_lock(&ua_rules_lock);
    if (!ua_rules_shared)
        ua_rules_shared = ua_rules_build(err, errlen);
    if (ua_rules_shared)
        ua_rules_refs++;
    u->rules = ua_rules_shared;
    pthread_mutex_unlock(&ua_rules_lock);
    if (!u->rules) {
        free(u);
        return NULL;
    }

    u->md = pcre2_match_data_create(UA_OVEC_PAIRS, NULL);
    u->mctx = pcre2_match_context_create(NULL);
    u->jit_stack = pcre2_jit_stack_create(32 * 1024, UA_JIT_STACK_MAX, NULL);
    if (!u->md || !u->mctx)
        goto oom;
    pcre2_set_match_limit(u->mctx, UA_MATCH_LIMIT);
    pcre2_set_depth_limit(u->mctx, UA_DEPTH_LIMIT);
    if (u->jit_stack)
        pcre2_jit_stack_assign(u->mctx, NULL, u->jit_stack);

    /* Round down to a power of two so the slot index is a mask and memory never
     * exceeds what was asked for; cap so the sizes below cannot overflow. */
    if (cache_entries > ((size_t)1 << 20))
        cache_entries = (size_t)1 << 20;
    if (cache_entries > 0) {
        size_t n = 1;
        while (n * 2 <= cache_entries) n *= 2;
        u->ways = n < UA_CACHE_WAYS ? n : UA_CACHE_WAYS;
        u->nsets = n / u->ways;
        u->hashes = calloc(n, sizeof *u->hashes);
        u->slots = calloc(n, sizeof *u->slots);
        u->keys = malloc(n * UA_MAX_LEN);
        if (!u->hashes || !u->slots || !u->keys)
            goto oom;
    }
    /* Not a secret, only not fixed at build time. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    u->seed = (uint64_t)(uintptr_t)u ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec;
    u->rng = u->seed | 1;
    return u;
oom:
    snprintf(err, errlen, "ua: out of memory");
    ua_free(u);
    return NULL;
}

void ua_free(struct ua *u)
{
    if (!u) return;
    if (u->rules) {
        pthread_mutex_lock(&ua_rules_lock);
        if (--ua_rules_refs == 0) {
            ua_rules_free(ua_rules_shared);
            ua_rules_shared = NULL;
        }
        pthread_mutex_unlock(&ua_rules_lock);
    }
    pcre2_match_data_free(u->md);
    pcre2_match_context_free(u->mctx);
    pcre2_jit_stack_free(u->jit_stack);
    free(u->hashes);
    free(u->slots);
    free(u->keys);
    free(u);
}

/* ------------------------------------------------------------------------ */
/* Classification of one (already length-capped) User-Agent. */

/* > 0 or 0: match (0 = more groups than the ovector holds); < 0: no match or a
 * limit hit, which the callers treat as "this rule does not apply". */
static int ua_match(struct ua *u, const pcre2_code *c, const char *s, size_t len)
{
    return pcre2_match(c, (PCRE2_SPTR)s, len, 0, 0, u->md, u->mctx);
}

/* Appends n bytes to out (capacity cap, NUL kept), stopping early rather than
 * splitting a UTF-8 sequence. Captured text from the User-Agent is reduced to
 * printable ASCII: it becomes a report key, and control bytes or broken UTF-8
 * have no business there. */
static void ua_append(char *out, size_t *o, size_t cap, const char *p, size_t n, int from_ua)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (from_ua && (c < 0x20 || c > 0x7e))
            continue;
        if (*o + 1 >= cap) {
            /* Out of room in the middle of a UTF-8 sequence: drop its start. */
            if ((c & 0xc0) == 0x80) {
                while (*o > 0 && ((unsigned char)out[*o - 1] & 0xc0) == 0x80) (*o)--;
                if (*o > 0) (*o)--;
            }
            break;
        }
        out[(*o)++] = (char)c;
    }
    out[*o] = '\0';
}

/* Expands a uap replacement (or group 1 when repl is NULL) from the last match
 * of rc groups into out; "Other" when that leaves nothing. */
static void ua_expand(struct ua *u, int rc, const char *repl, const char *s, char *out,
                      size_t cap)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(u->md);
    uint32_t ngroups = rc > 0 ? (uint32_t)rc : UA_OVEC_PAIRS;
    size_t o = 0;
    out[0] = '\0';

    const char *t = repl ? repl : "$1";
    while (*t) {
        if (t[0] == '$' && t[1] >= '1' && t[1] <= '9') {
            uint32_t g = (uint32_t)(t[1] - '0');
            if (g < ngroups && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] >= ov[2 * g])
                ua_append(out, &o, cap, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g], 1);
            t += 2;
        } else {
            const char *d = strchr(t + 1, '$');
            size_t n = d ? (size_t)(d - t) : strlen(t);
            ua_append(out, &o, cap, t, n, 0);
            t += n;
        }
    }
    /* Trim the spaces an empty group or a trailing separator leaves behind. */
    size_t b = 0;
    while (out[b] == ' ') b++;
    while (o > b && out[o - 1] == ' ') o--;
    memmove(out, out + b, o - b);
    out[o - b] = '\0';
    if (out[0] == '\0')
        snprintf(out, cap, "Other");
}

static void ua_family(struct ua *u, pcre2_code *const *codes, const struct ua_rule *rules,
                      size_t n, const char *s, size_t len, char *out, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ua_match(u, codes[i], s, len);
        if (rc >= 0) {
            ua_expand(u, rc, rules[i].repl, s, out, cap);
            return;
        }
    }
    snprintf(out, cap, "Other");
}

static int ua_is_bot(struct ua *u, const char *s, size_t len)
{
    const struct ua_rules *r = u->rules;
    /* A limit error on these is itself a sign of a made-up string: refuse it. */
    int rc = ua_match(u, r->crawlers, s, len);
    if (rc != PCRE2_ERROR_NOMATCH)
        return 1;
    rc = ua_match(u, r->spider_any, s, len);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return 1;
    /* Some Spider rule matches, but uap-core gives the first matching device
     * rule the last word: "Silk" is a Kindle before it is a spider. */
    for (size_t i = 0; i < UA_NDEVICE; i++)
        if (ua_match(u, r->device[i], s, len) >= 0)
            return ua_data_device[i].repl != NULL;
    return 0;
}

static void ua_compute(struct ua *u, const char *s, size_t len, struct ua_info *info)
{
    const struct ua_rules *r = u->rules;
    memset(info, 0, sizeof *info);
    info->bot = ua_is_bot(u, s, len);
    ua_family(u, r->browser, ua_data_browser, UA_NBROWSER, s, len, info->browser,
              sizeof info->browser);
    ua_family(u, r->os, ua_data_os, UA_NOS, s, len, info->os, sizeof info->os);
    int k;
    for (k = 0; k < UA_NCLASS; k++)
        if (ua_match(u, r->klass[k], s, len) >= 0)
            break;
    snprintf(info->device, sizeof info->device, "%s", ua_class_name[k < UA_NCLASS ? k : 0]);
}

const struct ua_info *ua_classify(struct ua *u, const char *s, size_t len)
{
    if (len > UA_MAX_LEN)
        len = UA_MAX_LEN;
    if (!s)
        len = 0;

    size_t blank = 0;
    while (blank < len && (s[blank] == ' ' || s[blank] == '\t')) blank++;
    if (blank == len) {
        /* No User-Agent at all: browsers always send one. */
        memset(&u->scratch, 0, sizeof u->scratch);
        snprintf(u->scratch.browser, sizeof u->scratch.browser, "Other");
        snprintf(u->scratch.os, sizeof u->scratch.os, "Other");
        snprintf(u->scratch.device, sizeof u->scratch.device, "other");
        u->scratch.bot = 1;
        return &u->scratch;
    }

    if (!u->slots) {
        ua_compute(u, s, len, &u->scratch);
        return &u->scratch;
    }

    uint64_t h = hash_words(u->seed, s, len);
    size_t base = ((size_t)h & (u->nsets - 1)) * u->ways;
    const uint64_t *hs = u->hashes + base;
    size_t free_way = u->ways;
    for (size_t w = 0; w < u->ways; w++) {
        if (hs[w] == h) {
            struct ua_slot *sl = &u->slots[base + w];
            if (sl->len == len && memcmp(u->keys + (base + w) * UA_MAX_LEN, s, len) == 0)
                return &sl->info;
        } else if (hs[w] == 0 && free_way == u->ways) {
            free_way = w;
        }
    }

    /* Miss: take a free way, else a random one. */
    size_t w = free_way;
    if (w == u->ways) {
        u->rng ^= u->rng << 13;
        u->rng ^= u->rng >> 7;
        u->rng ^= u->rng << 17;
        w = (size_t)(u->rng % u->ways);
    }
    size_t i = base + w;
    struct ua_slot *sl = &u->slots[i];
    ua_compute(u, s, len, &sl->info);
    memcpy(u->keys + i * UA_MAX_LEN, s, len);
    sl->len = len;
    u->hashes[i] = h;
    return &sl->info;
}
