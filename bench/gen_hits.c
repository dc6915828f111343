/* gen_hits.c -- bench/dataset.sh's data: N raw hits of one site spread over the
 * last D full UTC days, written as RESP XADD commands to stdout for
 * `redis-cli --pipe`, each with a backdated stream id (the hit's time).
 *
 *   gen_hits SITE HITS DAYS PATHS VISITORS_PER_DAY [SEED]
 *
 * Paths (PATHS of them) and referrers (a few hundred) are drawn Zipf-like; each
 * day has its own VISITORS_PER_DAY visitor ids, and a hit continues one of the
 * few dozen visits in progress more often than it starts another, so visits of
 * several pages exist. Browsers, systems, devices, countries and UTM tags come
 * from small weighted tables. Hits are written in time order (stream ids must
 * grow); the last day is yesterday, so a report ending yesterday covers whole days.
 *
 * put_hit() is the one place that knows the raw hit format: it packs the hit
 * with common/rawhit.h, as collector/hit.c does. It is built against
 * libcommon so that it follows common/ when the format changes.
 */
#include "clock.h"
#include "hash.h"
#include "keys.h"
#include "rawhit.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One raw hit's content, strings "" when absent. */
struct gen_hit {
    int64_t t_ms;
    const char *name, *path, *visitor, *browser, *os, *device;
    const char *referrer, *utm_source, *utm_medium, *utm_campaign, *country, *region;
};

/* ---------------------------------------------------------------- RESP */

static void resp_cmd(FILE *out, int argc, const char *const *argv, const size_t *lens)
{
    fprintf(out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        fprintf(out, "$%zu\r\n", n);
        fwrite(argv[i], 1, n, out);
        fputs("\r\n", out);
    }
}

/* XADD KEY <id> <the hit>: the fields and order of collector/hit.c store_hit(),
 * empty optional fields left out as the collector does. */
static void put_hit(FILE *out, const char *key, const char *id, const struct gen_hit *h)
{
    /* The hit's time is its stream id's, as when the collector stores it. */
    static uint64_t next_id;
    struct rawhit r = {.id = ++next_id, .flags = RAWHIT_F_VISITOR, .device = rawhit_device_of(h->device)};
    if (rawhit_visitor_from_hex(h->visitor, strlen(h->visitor), r.visitor) < 0) r.flags = 0;
    rawhit_set(&r, RAWHIT_PATH, h->path);
    rawhit_set(&r, RAWHIT_BROWSER, h->browser);
    rawhit_set(&r, RAWHIT_OS, h->os);
    rawhit_set(&r, RAWHIT_NAME, strcmp(h->name, "pageview") == 0 ? "" : h->name);
    rawhit_set(&r, RAWHIT_REFERRER, h->referrer);
    rawhit_set(&r, RAWHIT_UTM_SOURCE, h->utm_source);
    rawhit_set(&r, RAWHIT_UTM_MEDIUM, h->utm_medium);
    rawhit_set(&r, RAWHIT_UTM_CAMPAIGN, h->utm_campaign);
    rawhit_set(&r, RAWHIT_COUNTRY, h->country);
    rawhit_set(&r, RAWHIT_REGION, h->region);
    char packed[RAWHIT_MAX];
    size_t n = rawhit_encode(&r, packed, sizeof packed);
    const char *argv[] = {"XADD", key, id, RAWHIT_FIELD, packed};
    const size_t lens[] = {4, strlen(key), strlen(id), strlen(RAWHIT_FIELD), n};
    resp_cmd(out, 5, argv, lens);
}

/* ---------------------------------------------------------------- drawing */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)               /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double uniform(void) { return (double)(rng() >> 11) / 9007199254740992.0; }

struct zipf {
    size_t n;
    double *cdf;
};

static void zipf_init(struct zipf *z, size_t n)
{
    z->n = n;
    z->cdf = malloc(n * sizeof *z->cdf);
    if (!z->cdf) { perror("gen_hits"); exit(1); }
    double sum = 0;
    for (size_t k = 0; k < n; k++) z->cdf[k] = sum += 1.0 / (double)(k + 1);
}

static size_t zipf_draw(const struct zipf *z)
{
    double x = uniform() * z->cdf[z->n - 1];
    size_t lo = 0, hi = z->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->cdf[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* A weighted pick from a table of { weight, a, b, c }. */
struct choice {
    int weight;
    const char *a, *b, *c;
};

static const struct choice *pick(const struct choice *t, size_t n)
{
    int total = 0;
    for (size_t i = 0; i < n; i++) total += t[i].weight;
    int x = (int)(uniform() * total);
    for (size_t i = 0; i < n; i++)
        if ((x -= t[i].weight) < 0) return &t[i];
    return &t[n - 1];
}
#define PICK(t) pick(t, sizeof t / sizeof t[0])

static const struct choice agents[] = {      /* browser, os, device */
    {30, "Chrome", "Windows", "desktop"},   {14, "Chrome Mobile", "Android", "mobile"},
    {12, "Mobile Safari", "iOS", "mobile"}, {8, "Safari", "Mac OS X", "desktop"},
    {7, "Firefox", "Windows", "desktop"},   {5, "Edge", "Windows", "desktop"},
    {4, "Chrome", "Mac OS X", "desktop"},   {3, "Firefox", "Linux", "desktop"},
    {3, "Samsung Internet", "Android", "mobile"}, {2, "Mobile Safari", "iOS", "tablet"},
    {2, "Chrome", "Chrome OS", "desktop"},  {1, "Opera", "Windows", "desktop"},
    {1, "Firefox Mobile", "Android", "mobile"}, {1, "Other", "Other", "other"},
};
static const struct choice places[] = {      /* country, region */
    {25, "", "", NULL},      {15, "US", "US-CA", NULL}, {10, "US", "US-NY", NULL},
    {12, "DE", "DE-BE", NULL}, {8, "GB", "GB-ENG", NULL}, {6, "FR", "FR-IDF", NULL},
    {5, "NL", "NL-NH", NULL}, {4, "SE", "SE-AB", NULL}, {4, "IN", "IN-KA", NULL},
    {3, "BR", "BR-SP", NULL}, {3, "JP", "JP-13", NULL}, {2, "CA", "CA-ON", NULL},
    {2, "ES", "", NULL},     {1, "CN", "CN-22", NULL},
};
static const struct choice utms[] = {        /* source, medium, campaign */
    {92, "", "", ""},         {3, "newsletter", "email", "spring"},
    {2, "twitter", "social", "launch"}, {1, "mastodon", "social", ""},
    {1, "partner", "referral", "q3"}, {1, "google", "cpc", "brand"},
};

int main(int argc, char **argv)
{
    if (argc < 6) {
        fputs("usage: gen_hits SITE HITS DAYS PATHS VISITORS_PER_DAY [SEED]\n", stderr);
        return 2;
    }
    const char *site = argv[1];
    long long hits = atoll(argv[2]);
    int days = atoi(argv[3]);
    size_t npaths = (size_t)atol(argv[4]);
    long vpd = atol(argv[5]);
    if (argc > 6) rng_state ^= (uint64_t)atoll(argv[6]) * 0x100000001b3ULL;
    if (hits <= 0 || days <= 0 || npaths == 0 || vpd <= 0) {
        fputs("gen_hits: HITS, DAYS, PATHS and VISITORS_PER_DAY must be > 0\n", stderr);
        return 2;
    }

    char key[300];
    if (keys_hits(key, sizeof key, site) < 0) {
        fputs("gen_hits: site name too long\n", stderr);
        return 2;
    }

    /* the paths and referrers the Zipf draws index */
    static const char *const sections[] = {"blog", "docs", "products", "news", "help", "shop", "about", "events"};
    char **paths = malloc(npaths * sizeof *paths);
    if (!paths) { perror("gen_hits"); return 1; }
    for (size_t k = 0; k < npaths; k++) {
        char b[96];
        if (k == 0) snprintf(b, sizeof b, "/");
        else snprintf(b, sizeof b, "/%s/%zu/item-%zu", sections[k % 8], k / 100, k);
        paths[k] = strdup(b);
    }
    enum { NREFS = 300 };
    static char refs[NREFS][48];
    static const char *const engines[] = {"google.com", "duckduckgo.com", "bing.com", "search.brave.com", "ecosia.org"};
    for (size_t k = 0; k < NREFS; k++) {
        if (k < 5) snprintf(refs[k], sizeof refs[k], "%s", engines[k]);
        else if (k % 3 == 0) snprintf(refs[k], sizeof refs[k], "news.ycombinator.com");
        else snprintf(refs[k], sizeof refs[k], "site%zu.example.net", k);
    }
    struct zipf zp, zr;
    zipf_init(&zp, npaths);
    zipf_init(&zr, NREFS);

    /* whole days, the last one yesterday (UTC) */
    int64_t first_ms = (clock_utc_today() - days) * CLOCK_DAY_MS;
    int64_t span_ms = (int64_t)days * CLOCK_DAY_MS;

    /* visits in progress: a hit continues one of them 70 % of the time */
    enum { LIVE = 64 };
    long live[LIVE];
    for (int k = 0; k < LIVE; k++) live[k] = (long)(rng() % (uint64_t)vpd);

    static char outbuf[1 << 20];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    int64_t prev_ms = -1;
    unsigned seq = 0;
    for (long long i = 0; i < hits; i++) {
        struct gen_hit h;
        h.t_ms = first_ms + (int64_t)((double)i * (double)span_ms / (double)hits);
        seq = h.t_ms == prev_ms ? seq + 1 : 0;
        prev_ms = h.t_ms;
        char id[48];
        snprintf(id, sizeof id, "%" PRId64 "-%u", h.t_ms, seq);

        int slot = (int)(rng() % LIVE);
        if (uniform() >= 0.7) live[slot] = (long)(rng() % (uint64_t)vpd);
        long v = live[slot];
        /* the visitor's id of that day: 16 hex like visitor.h's, another each day */
        int64_t day = clock_utc_day(h.t_ms);
        uint64_t vh = hash_fnv1a(HASH_FNV_OFFSET, &day, sizeof day);
        vh = hash_fnv1a(vh, &v, sizeof v);
        char visitor[17];
        snprintf(visitor, sizeof visitor, "%016" PRIx64, vh);
        /* a visitor keeps its browser and place: drawn from its own seed */
        uint64_t saved = rng_state;
        rng_state = vh | 1;
        const struct choice *ag = PICK(agents), *pl = PICK(places);
        rng_state = saved;
        const struct choice *ut = PICK(utms);

        double x = uniform();
        h.name = "pageview";
        h.path = paths[zipf_draw(&zp)];
        h.visitor = visitor;
        h.browser = ag->a;
        h.os = ag->b;
        h.device = ag->c;
        h.referrer = x < 0.6 ? "" : refs[zipf_draw(&zr)];
        h.utm_source = ut->a;
        h.utm_medium = ut->b;
        h.utm_campaign = ut->c;
        h.country = pl->a;
        h.region = pl->b;
        put_hit(stdout, key, id, &h);
    }
    if (fflush(stdout) != 0) { perror("gen_hits: stdout"); return 1; }
    return 0;
}
