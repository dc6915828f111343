/* hit.c -- the beacon path: gate, enrich, store, answer (see hit.h).
 *
 * Privacy rules enforced here: the client address is used for the rate
 * limit and the GeoIP lookup, then overwritten; the User-Agent only feeds
 * ua_classify(); a refused hit is answered without a log line or a Redis
 * command; nothing here logs request data.
 */
#include "hit.h"
#include "api-internal.h"
#include "client.h"
#include "clock.h"
#include "cmp.h"
#include "geo.h"
#include "hash.h"
#include "keys.h"
#include "rawhit.h"
#include "revoke.h"
#include "salt.h"
#include "spool.h"
#include "store.h"
#include "ua.h"
#include "visitor.h"

#include "log.h"

/* Only for make bench (bench/build.mk builds a separate binary with it set):
 * every hit goes through the whole path but is answered 202 without being
 * sent to Redis, to weigh the acknowledgement the contract requires against
 * the rest. Never in bin/fairstat-collector. */
#ifndef HIT_BENCH_NOACK
#define HIT_BENCH_NOACK 0
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The verdict cache: SEEN_WAYS slots per set, SEEN_SETS sets, about 12 MB
 * per worker. Under real traffic most hits come from returning visitors,
 * and a visitor missing here costs two HMACs (cookie and visitor id): the
 * cache holds tens of thousands of them, and a set evicts its least
 * recently used slot. */
#define SEEN_SETS 16384
#define SEEN_WAYS 4
/* Longer than any valid cookie (consent.h's format is at most 83 bytes);
 * a longer value is verified on every hit, never cached. */
#define SEEN_VALUE_MAX 96

/* A visitor's later hits carry the same cookie: its verification and its
 * visitor hash are remembered, keyed by the whole cookie value and the site. */
struct seen {
    const struct cfg_site *site;        /* NULL = empty slot */
    uint64_t hash;              /* of value and site, compared first */
    unsigned char len;
    char value[SEEN_VALUE_MAX];
    unsigned gen;               /* revoke_generation() when last checked */
    unsigned used;              /* hit_cache.clock when last used */
    long long issued;
    char receipt[CONSENT_RECEIPT_LEN + 1];
    int64_t day;                /* visitor is valid for this salt day */
    unsigned char visitor[RAWHIT_VISITOR_LEN];   /* as stored: binary */
};

struct hit_cache {
    uint64_t seed;              /* keys the set choice: nobody can aim at one */
    unsigned clock;
    struct seen *seen;          /* SEEN_SETS * SEEN_WAYS */
    int64_t salt_day;           /* the day vkey was made for */
    struct visitor_key *vkey;
    uint64_t next_id;           /* splitmix64 state behind the epochs */
    uint32_t epoch, seq;        /* the hit id's halves, see hit_id() */
    unsigned long long store_gen; /* store_generation() the epoch belongs to */
    uint32_t unwritten_epoch, unwritten_seq; /* see unwritten_id() */
    char resp[8192];            /* the XADD being formatted; bounded by struct beacon */
};

/* One beacon on its way through the steps. */
struct hit {
    int pixel;
    const char *cors;
    struct beacon b;
    struct sockaddr_storage client;     /* until enrich() */
    int64_t now_ms;
    struct seen *seen;                  /* the consent cookie's cache slot; NULL when
                                           consent came from the site's CMP */
    struct http_str user_agent;         /* the request's, for a CMP visitor's id */
    const struct ua_info *ua;           /* until the next ua_classify() */
    char country[3], region[16];
    unsigned char visitor[RAWHIT_VISITOR_LEN];
};

struct hit_cache *hit_cache_new(void)
{
    struct hit_cache *h = calloc(1, sizeof *h);
    if (!h || !(h->seen = calloc((size_t)SEEN_SETS * SEEN_WAYS, sizeof *h->seen))) {
        free(h);
        return NULL;
    }
    RAND_bytes((unsigned char *)&h->seed, sizeof h->seed);
    RAND_bytes((unsigned char *)&h->next_id, sizeof h->next_id);
    h->salt_day = -1;
    h->unwritten_seq = HIT_SEQ_MAX;     /* its epoch is drawn when first needed */
    return h;
}

void hit_cache_clear(struct hit_cache *h)
{
    memset(h->seen, 0, (size_t)SEEN_SETS * SEEN_WAYS * sizeof *h->seen);
}

void hit_cache_free(struct hit_cache *h)
{
    if (!h) return;
    visitor_key_free(h->vkey);
    free(h->seen);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* Gate                                                                      */
/* ------------------------------------------------------------------------ */

static void refuse(struct api *a, struct http_conn *c, enum metrics_refusal why, const char *cors)
{
    char hdr[API_CORS_MAX + 64];
    snprintf(hdr, sizeof hdr, "Fairstat-Status: %s\r\n%s", metrics_refusal_name(why), cors);
    METRIC_INC(a->m.refused[why]);
    http_respond(c, 204, hdr, NULL, NULL, 0);
}

/* A slot holds another visitor's good cookie: a compare that stopped at the
 * first difference would let a guesser rebuild one byte by byte from the
 * timing. Constant time for a given length, as CRYPTO_memcmp, but a word
 * at a time (CRYPTO_memcmp's byte loop was 800 instructions per hit). */
static int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t d = 0, x, y;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        d |= x ^ y;
    }
    for (; i < n; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* The consent verdict of a Cookie header for site, from the cache or
 * verified now. *out is the cache slot, set only for CONSENT_GRANTED (only
 * good cookies are remembered: a flood of forged ones evicts nothing and
 * costs only its verification). A slot matches the exact cookie bytes on
 * the same site; expiry is re-checked on every hit, withdrawal whenever the
 * revoke set changed since the slot was last checked. */
static enum consent_verdict check_cookie(struct api *a, struct http_str cookie,
                                         const struct cfg_site *site, long long now_s,
                                         struct seen **out)
{
    struct hit_cache *hc = a->hits;
    const char *v;
    size_t n;
    *out = NULL;
    if (consent_find(site, cookie.p, cookie.n, &v, &n) < 0) return CONSENT_NONE;
    if (n == 0 || n > CONSENT_COOKIE_MAX) return CONSENT_INVALID;
    uint64_t h = hash_words(hc->seed ^ (uint64_t)(uintptr_t)site, v, n);
    struct seen *set = &hc->seen[(h % SEEN_SETS) * SEEN_WAYS], *victim = set;
    unsigned gen = revoke_generation();
    hc->clock++;
    for (int w = 0; w < SEEN_WAYS; w++) {
        struct seen *s = &set[w];
        if (s->hash == h && s->site == site && s->len == n && same_bytes(s->value, v, n)) {
            if (now_s - s->issued > consent_max_age_s(a->cfg)) {
                s->site = NULL;
                return CONSENT_EXPIRED;
            }
            if (s->gen != gen) {
                if (revoke_contains(site->name, s->receipt, now_s)) {
                    s->site = NULL;
                    return CONSENT_WITHDRAWN;
                }
                s->gen = gen;
            }
            s->used = hc->clock;
            *out = s;
            return CONSENT_GRANTED;
        }
        if (victim->site && (!s->site || hc->clock - s->used > hc->clock - victim->used)) victim = s;
    }
    struct consent_cookie cc;
    enum consent_verdict verdict = consent_verify(a->consent, site->name, v, n, now_s, &cc);
    if (verdict == CONSENT_GRANTED && revoke_contains(site->name, cc.receipt, now_s))
        return CONSENT_WITHDRAWN;
    if (verdict != CONSENT_GRANTED || n > SEEN_VALUE_MAX) return verdict;
    struct seen *s = victim;
    s->site = site;
    s->hash = h;
    memcpy(s->value, v, n);
    s->len = (unsigned char)n;
    s->gen = gen;
    s->used = hc->clock;
    s->issued = cc.issued;
    memcpy(s->receipt, cc.receipt, sizeof s->receipt);
    s->day = -1;
    *out = s;
    return CONSENT_GRANTED;
}

static int beacon_type(struct http_str t)
{
    return (t.n >= 10 && strncasecmp(t.p, "text/plain", 10) == 0) ||
           (t.n >= 16 && strncasecmp(t.p, "application/json", 16) == 0);
}

/* 0 when the hit may be stored; -1 when it was answered. */
static int gate(struct api *a, struct http_conn *c, const struct http_request *r, struct hit *h)
{
    client_addr(a->cfg, r, &h->client);
    if (client_limited(a->limit, (struct sockaddr *)&h->client)) {
        api_reply_error(a, c, 429, h->cors, "rate limited");
        return -1;
    }
    if (!h->pixel && r->content_type.p && !beacon_type(r->content_type)) {
        api_reply_error(a, c, 415, h->cors, "send the beacon as text/plain or application/json");
        return -1;
    }
    int rc = h->pixel ? beacon_parse_query(r->query.p, r->query.n, &h->b)
                      : beacon_parse_json(r->body.p, r->body.n, &h->b);
    if (rc != BEACON_OK) {
        api_reply_error(a, c, 400, h->cors, beacon_strerror(rc));
        return -1;
    }
    const struct cfg_site *site = api_site(a, c, r, h->b.domain, h->cors);
    if (!site) return -1;

    /* The consent gate: the browser's own signals first, then the cookie. */
    const char *sig = consent_signal(a->cfg, r->sec_gpc.p, r->sec_gpc.n, r->dnt.p, r->dnt.n);
    if (sig) {
        refuse(a, c, sig[0] == 'g' ? REFUSED_GPC : REFUSED_DNT, h->cors);
        return -1;
    }
    if (h->b.analytics_storage == 0) {      /* Google Consent Mode only ever restricts */
        refuse(a, c, REFUSED_NO_CONSENT, h->cors);
        return -1;
    }
    h->now_ms = clock_now_ms();
    h->seen = NULL;
    h->user_agent = r->user_agent;
    int granted = site->consent != CFG_CONSENT_FAIRSTAT
        ? cmp_check(a->cmp, site, r->cookie.p, r->cookie.n, h->b.tc, h->b.tc_len) == CMP_GRANTED
        : r->cookie.p && check_cookie(a, r->cookie, site, h->now_ms / 1000, &h->seen) == CONSENT_GRANTED;
    if (!granted) {
        refuse(a, c, REFUSED_NO_CONSENT, h->cors);
        return -1;
    }
    h->ua = ua_classify(a->ua, r->user_agent.p ? r->user_agent.p : "",
                        r->user_agent.p ? r->user_agent.n : 0);
    if (h->ua->bot) {
        refuse(a, c, REFUSED_BOT, h->cors);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Enrich                                                                    */
/* ------------------------------------------------------------------------ */

/* A visitor whose consent comes from the site's CMP has no receipt: their
 * id is the salt's hash of what the request gives, the client address and
 * the User-Agent (the first CMP_UA_MAX bytes), held nowhere. It changes
 * when the address does; see docs/protocol.md, Consent sources. */
#define CMP_UA_MAX 512

static int anonymous_visitor(struct hit_cache *hc, struct hit *h, char hex[VISITOR_HEX_LEN + 1])
{
    char msg[INET6_ADDRSTRLEN + 2 + CMP_UA_MAX];
    const void *addr = h->client.ss_family == AF_INET6
        ? (const void *)&((struct sockaddr_in6 *)&h->client)->sin6_addr
        : (const void *)&((struct sockaddr_in *)&h->client)->sin_addr;
    if (!inet_ntop(h->client.ss_family == AF_INET6 ? AF_INET6 : AF_INET, addr, msg, INET6_ADDRSTRLEN))
        return -1;
    size_t n = strlen(msg), ua = h->user_agent.p ? h->user_agent.n : 0;
    if (ua > CMP_UA_MAX) ua = CMP_UA_MAX;
    msg[n++] = '\n';           /* no receipt id holds one: the two never meet */
    if (ua) memcpy(msg + n, h->user_agent.p, ua);
    return visitor_key_hash(hc->vkey, h->b.domain, strlen(h->b.domain), msg, n + ua, hex);
}

/* The visitor hash of the hit's receipt on its site under today's salt:
 * from the cookie's cache slot (which is per site) when made today. */
static int visitor_of(struct hit_cache *hc, struct hit *h)
{
    int64_t day = clock_utc_day(h->now_ms);
    if (day != hc->salt_day) {
        char salt[SALT_HEX_LEN + 1];
        struct visitor_key *k = salt_get(day, salt) == 0 ? visitor_key_new(salt, SALT_HEX_LEN) : NULL;
        if (k) {
            visitor_key_free(hc->vkey);
            hc->vkey = k;
            hc->salt_day = day;
        }
    }
    if (day != hc->salt_day) return -1;
    char hex[VISITOR_HEX_LEN + 1];
    if (!h->seen)
        return anonymous_visitor(hc, h, hex) == 0 &&
               rawhit_visitor_from_hex(hex, VISITOR_HEX_LEN, h->visitor) == 0 ? 0 : -2;
    if (h->seen->day == day) {
        memcpy(h->visitor, h->seen->visitor, sizeof h->visitor);
        return 0;
    }
    if (visitor_key_hash(hc->vkey, h->b.domain, strlen(h->b.domain), h->seen->receipt,
                         CONSENT_RECEIPT_LEN, hex) != 0 ||
        rawhit_visitor_from_hex(hex, VISITOR_HEX_LEN, h->visitor) != 0)
        return -2;
    memcpy(h->seen->visitor, h->visitor, sizeof h->visitor);
    h->seen->day = day;
    return 0;
}

/* 0, or -1 when it was answered. After it the client address is gone. */
static int enrich(struct api *a, struct http_conn *c, struct hit *h)
{
    geo_lookup(a->geo, (struct sockaddr *)&h->client, h->country, h->region);
    int rc = visitor_of(a->hits, h);
    memset(&h->client, 0, sizeof h->client);
    h->user_agent.p = NULL;
    if (rc < 0) {
        api_reply_error(a, c, 503, h->cors, rc == -1 ? "daily salt unavailable" : "cannot hash");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Store and answer                                                          */
/* ------------------------------------------------------------------------ */

static const char gif[] =
    "GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01"
    "\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00;";

static void answer_stored(struct api_pending *p)
{
    METRIC_INC(p->a->m.accepted);
    if (p->kind == API_PIXEL)
        http_respond(p->c, 202, p->headers, "image/gif", gif, sizeof gif - 1);
    else
        http_respond(p->c, 202, p->headers, NULL, NULL, 0);
}

/* A new random epoch (see hit_id()). */
static uint32_t draw_epoch(struct hit_cache *hc)
{
    uint64_t z = (hc->next_id += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) & 0xffffff);
}

/* The id of a hit Redis did not take: from an epoch of its own that no
 * hit sent to Redis ever carries, so the fold finds no original of it that
 * landed and counts its replay (once: the replayed ids are kept). Hits
 * spooled while Redis is down, or during a reconnect (the connection's new
 * epoch is drawn before it is up), and hits refused with an error reply
 * (Redis out of memory, loading, read-only) all take this path. */
static uint64_t unwritten_id(struct hit_cache *hc)
{
    if (hc->unwritten_seq >= HIT_SEQ_MAX) {
        do hc->unwritten_epoch = draw_epoch(hc);
        while (hc->unwritten_epoch == hc->epoch);
        hc->unwritten_seq = 0;
    }
    return (uint64_t)hc->unwritten_epoch << 24 | hc->unwritten_seq++;
}

/* Gives the packed hit of p an unwritten_id(): 0, or -1 when it cannot be
 * repacked (it always can: it was packed here). */
static int reid_unwritten(struct api_pending *p)
{
    struct rawhit r;
    char buf[RAWHIT_MAX];
    if (rawhit_decode(p->hit, p->hit_len, &r) < 0) return -1;
    r.id = unwritten_id(p->a->hits);
    size_t len = rawhit_encode(&r, buf, sizeof buf);
    if (!len || len > sizeof p->hit) return -1;
    memcpy(p->hit, buf, len);
    p->hit_len = len;
    return 0;
}

/* Redis did not take the hit: the spool does, and the 202 is sent once the
 * record is written; or 503 when there is no spool or it is full. Unless
 * its write timed out (SPOOL_F_AMBIGUOUS: it may have landed, and keeps its
 * id so that the fold can tell), it surely did not land: it gets an id of
 * its own (unwritten_id()). */
static void spool_or_refuse(struct api_pending *p, unsigned flags)
{
    struct api *a = p->a;
    if (a->spool && !(flags & SPOOL_F_AMBIGUOUS) && reid_unwritten(p) < 0) {
        api_reply_error(a, p->c, 503, p->headers, "cannot encode");
        return;
    }
    int rc = a->spool ? spool_append(a->spool, flags, p->t_ms, p->site, strlen(p->site), p->hit,
                                     p->hit_len)
                      : SPOOL_IO;
    if (rc == SPOOL_OK) {
        METRIC_INC(a->m.spooled);
        answer_stored(p);
    } else if (rc == SPOOL_FULL) {
        METRIC_INC(a->m.spool_full);
        char hdr[sizeof p->headers + 32];
        snprintf(hdr, sizeof hdr, "Retry-After: %d\r\n%s", HIT_RETRY_AFTER_S, p->headers);
        api_reply_error(a, p->c, 503, hdr, "storage unavailable");
    } else {
        api_reply_error(a, p->c, 503, p->headers, "storage unavailable");
    }
}

static void answer(redisReply *r, void *arg)
{
    struct api_pending *p = arg;
    if (!r) spool_or_refuse(p, SPOOL_F_AMBIGUOUS);      /* timed out: it may have landed */
    else if (r->type == REDIS_REPLY_ERROR) spool_or_refuse(p, 0);
    else answer_stored(p);
    api_pending_put(p);
}

/* A hit id is 48 bits: a 24-bit epoch, random, and a 24-bit sequence number
 * within it. An epoch is used on one Redis connection only (a new one is
 * drawn whenever the store reconnects, or its sequence runs out), and Redis
 * runs a connection's commands in order, so of the hits of an epoch sent to
 * Redis, those that landed are a prefix of the sequence. The fold uses that
 * to tell whether a replayed hit's original landed (docs/aggregator.md,
 * Exactly once). That holds only for hits that were written or whose write
 * timed out: a hit Redis surely did not take (not sent, or refused with an
 * error reply) may be followed by hits of its epoch that did land, so it is
 * given another id before it is spooled (unwritten_id()). */
static uint64_t hit_id(struct hit_cache *hc, unsigned long long gen)
{
    if (hc->store_gen != gen || hc->seq >= HIT_SEQ_MAX) {
        hc->epoch = draw_epoch(hc);
        hc->seq = 0;
        hc->store_gen = gen;
    }
    return (uint64_t)hc->epoch << 24 | hc->seq++;
}

/* XADD of a packed hit to site's stream into buf: its length, or 0. */
static size_t format_xadd(char *buf, size_t cap, const char *site, const char *hit, size_t len)
{
    char key[300];
    int kl = keys_hits(key, sizeof key, site);
    const char *argv[] = {"XADD", key, "*", RAWHIT_FIELD, hit};
    const size_t lens[] = {4, kl > 0 ? (size_t)kl : 0, 1, sizeof RAWHIT_FIELD - 1, len};
    return kl > 0 && len ? store_format(buf, cap, 5, argv, lens) : 0;
}

static void store_hit(struct api *a, struct http_conn *c, const struct hit *h)
{
    struct api_pending *p = api_pending_get(a, c, h->pixel ? API_PIXEL : API_HIT);
    if (!p) {
        api_reply_error(a, c, 503, h->cors, "out of memory");
        return;
    }
    memcpy(p->headers, h->cors, strlen(h->cors) + 1);

    const struct beacon *b = &h->b;
    struct rawhit r = {.id = hit_id(a->hits, store_generation(a->store)),
                       .flags = RAWHIT_F_VISITOR, .device = rawhit_device_of(h->ua->device),
                       .engagement = b->engagement, .scroll_depth = b->scroll_depth,
                       .engaged_ms = b->engaged_ms};
    memcpy(r.visitor, h->visitor, sizeof r.visitor);
    rawhit_set(&r, RAWHIT_PATH, b->path);
    rawhit_set(&r, RAWHIT_BROWSER, h->ua->browser);
    rawhit_set(&r, RAWHIT_OS, h->ua->os);
    /* A pageview and an engagement (said by its own bit) need no name. */
    rawhit_set(&r, RAWHIT_NAME, strcmp(b->name, "pageview") == 0 || b->engagement ? "" : b->name);
    rawhit_set(&r, RAWHIT_REFERRER, b->referrer);
    rawhit_set(&r, RAWHIT_UTM_SOURCE, b->utm[UTM_SOURCE]);
    rawhit_set(&r, RAWHIT_UTM_MEDIUM, b->utm[UTM_MEDIUM]);
    rawhit_set(&r, RAWHIT_UTM_CAMPAIGN, b->utm[UTM_CAMPAIGN]);
    rawhit_set(&r, RAWHIT_UTM_TERM, b->utm[UTM_TERM]);
    rawhit_set(&r, RAWHIT_UTM_CONTENT, b->utm[UTM_CONTENT]);
    rawhit_set(&r, RAWHIT_COUNTRY, h->country);
    rawhit_set(&r, RAWHIT_REGION, h->region);
    rawhit_set(&r, RAWHIT_PROPS, b->props);
    size_t dl = strnlen(b->domain, sizeof p->site - 1);
    memcpy(p->site, b->domain, dl);
    p->site[dl] = '\0';
    p->t_ms = h->now_ms;
    p->hit_len = rawhit_encode(&r, p->hit, sizeof p->hit);
    /* The time is the stream id's: XADD * stamps it when Redis takes it. */
    size_t len = format_xadd(a->hits->resp, sizeof a->hits->resp, b->domain, p->hit, p->hit_len);
    if (!len) {
        api_pending_put(p);
        api_reply_error(a, c, 503, h->cors, "cannot encode");
    } else if (HIT_BENCH_NOACK) {
        answer_stored(p);
        api_pending_put(p);
    } else if (store_formatted(a->store, answer, p, a->hits->resp, len) < 0) {
        spool_or_refuse(p, 0);      /* Redis is down: it was never sent */
        api_pending_put(p);
    }
}

/* ------------------------------------------------------------------------ */
/* Spool replay                                                              */
/* ------------------------------------------------------------------------ */

#define REPLAY_CHUNK 256

struct replay {
    struct spool_rec recs[REPLAY_CHUNK];
    size_t n, inflight;
    int failed;
    long long last_sync_us;
};

static void replay_done(redisReply *r, void *arg)
{
    struct api *a = arg;
    struct replay *rp = a->replay;
    if (!r || r->type == REDIS_REPLY_ERROR) rp->failed = 1;
    if (--rp->inflight > 0) return;
    if (rp->failed) {
        /* Sent again later from the same position: what did land is
         * counted once by the fold. */
        spool_replay_abort(a->spool);
    } else {
        METRIC_ADD(a->m.replayed, rp->n);
        spool_replay_commit(a->spool);
    }
    rp->n = 0;
}

/* Records older than retention.raw_max_age are not sent: one audit record
 * per site says how many went (counts only, like the purge's). */
static void audit_expired(struct api *a, const struct spool_rec *recs, size_t n,
                          const unsigned char *expired)
{
    char buf[1024], site[SPOOL_SITE_MAX + 1], hits[24], t[24];
    unsigned char done[REPLAY_CHUNK] = {0};
    snprintf(t, sizeof t, "%lld", (long long)clock_now_ms());
    for (size_t i = 0; i < n; i++) {
        if (!expired[i] || done[i]) continue;
        long count = 0;
        for (size_t j = i; j < n; j++) {
            if (expired[j] && !done[j] && recs[j].site_len == recs[i].site_len &&
                memcmp(recs[j].site, recs[i].site, recs[i].site_len) == 0) {
                done[j] = 1;
                count++;
            }
        }
        memcpy(site, recs[i].site, recs[i].site_len);
        site[recs[i].site_len] = '\0';
        snprintf(hits, sizeof hits, "%ld", count);
        log_warn("spool: %ld hits of %s older than retention.raw_max_age dropped", count, site);
        const char *argv[] = {"XADD", KEYS_AUDIT, "*", "action", "spool_expired", "by", "collector",
                              "site", site, "hits", hits, "t", t};
        size_t len = store_format(buf, sizeof buf, 13, argv, NULL);
        if (len && store_formatted(a->store, replay_done, a, buf, len) == 0) a->replay->inflight++;
        else a->replay->failed = 1;
    }
}

/* Sends the next chunk of the spool when Redis is up and no chunk is in
 * flight; the chunk's position moves only once every write is answered. */
static void replay_step(struct api *a)
{
    struct replay *rp = a->replay;
    if (rp->inflight || !store_is_up(a->store) || !spool_pending(a->spool)) return;
    size_t n;
    if (spool_replay_begin(a->spool, rp->recs, REPLAY_CHUNK, &n) < 0) return;
    rp->n = n;
    rp->failed = 0;
    rp->inflight = 1;           /* held until every command of the chunk is sent */
    int64_t oldest = clock_now_ms() - (int64_t)a->cfg->retention.raw_max_age_s * 1000;
    unsigned char expired[REPLAY_CHUNK] = {0};
    int any_expired = 0;
    for (size_t i = 0; i < n && !rp->failed; i++) {
        const struct spool_rec *x = &rp->recs[i];
        char site[SPOOL_SITE_MAX + 1], hit[RAWHIT_MAX];
        struct rawhit h;
        if (x->t_ms < oldest) {
            expired[i] = 1;
            any_expired = 1;
            METRIC_INC(a->m.spool_expired);
            continue;
        }
        memcpy(site, x->site, x->site_len);
        site[x->site_len] = '\0';
        if (rawhit_decode(x->hit, x->hit_len, &h) < 0) {
            METRIC_INC(a->m.spool_corrupt);
            continue;
        }
        /* Replayed, with the time it was taken: the stream id is later. */
        h.flags |= RAWHIT_F_REPLAYED | RAWHIT_F_TIME;
        h.t_ms = x->t_ms;
        size_t hl = rawhit_encode(&h, hit, sizeof hit);
        size_t len = format_xadd(a->hits->resp, sizeof a->hits->resp, site, hit, hl);
        if (len && store_formatted(a->store, replay_done, a, a->hits->resp, len) == 0) rp->inflight++;
        else rp->failed = 1;
    }
    if (any_expired && !rp->failed) audit_expired(a, rp->recs, n, expired);
    struct redisReply ok = {.type = REDIS_REPLY_STATUS};
    replay_done(&ok, a);        /* the hold */
}

static void on_spool_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct api *a = arg;
    long long now = clock_mono_us();
    if (now - a->replay->last_sync_us >= 1000000) {
        spool_sync(a->spool);
        a->replay->last_sync_us = now;
    }
    replay_step(a);
}

int hit_spool_start(struct api *a, struct event_base *base, int worker, char *err, size_t errlen)
{
    const struct cfg *c = a->cfg;
    if (!c->collector.spool_dir || !c->collector.spool_dir[0]) return 0;
    size_t share = c->collector.spool_max_bytes / (size_t)c->collector.threads;
    if (!(a->spool = spool_open(c->collector.spool_dir, worker, c->collector.threads, share, err,
                                errlen)))
        return -1;
    struct timeval tv = {0, HIT_SPOOL_TICK_MS * 1000};
    if (!(a->replay = calloc(1, sizeof *a->replay)) ||
        !(a->ev_spool = event_new(base, -1, EV_PERSIST, on_spool_timer, a)) ||
        event_add(a->ev_spool, &tv) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->m.spool = a->spool;
    return 0;
}

void hit_spool_stop(struct api *a)
{
    a->m.spool = NULL;
    if (a->ev_spool) event_free(a->ev_spool);
    a->ev_spool = NULL;
    spool_close(a->spool);      /* fsyncs what was appended */
    a->spool = NULL;
    free(a->replay);
    a->replay = NULL;
}

void hit_handle(struct api *a, struct http_conn *c, const struct http_request *r,
                const char *cors, int pixel)
{
    struct hit h;               /* not zeroed: each step fills what it uses */
    h.pixel = pixel;
    h.cors = cors;
    if (gate(a, c, r, &h) < 0 || enrich(a, c, &h) < 0) return;
    store_hit(a, c, &h);
}
