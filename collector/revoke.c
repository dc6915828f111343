/* revoke.c -- the set of withdrawn receipts, kept from fs:{site}:consent
 * (see revoke.h). An open-addressing table of 64-bit keyed hashes of
 * (site, receipt), rebuilt when it fills; expired entries are dropped at
 * each rebuild.
 *
 * The streams are read with one XREAD per BATCH sites over one connection
 * kept open between refreshes, so an idle collector's polling costs Redis a
 * handful of commands every two seconds however many sites it serves. (A
 * multi-key XREAD needs every key on one node: on a Redis Cluster the batch
 * would have to be grouped by slot.) */
#include "revoke.h"
#include "consent.h"
#include "hash.h"
#include "keys.h"
#include "rconn.h"
#include "sites.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    unsigned long long key;     /* 0 = empty */
    long long expires_s;
};

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static struct slot *table;
static size_t cap, used;
static unsigned long long seed;
static unsigned generation;
static char (*last_id)[48];     /* per configured site: last stream id read */
static unsigned char *not_stream; /* per configured site: its key is of another type */
static redisContext *conn;      /* main thread's, kept between refreshes */

#define PAGE 1000               /* entries per stream per read */
#define BATCH 512               /* streams per XREAD */

static unsigned long long key_of(const char *site, const char *receipt)
{
    uint64_t h = hash_fnv1a(seed ^ HASH_FNV_OFFSET, site, strlen(site));
    h = hash_fnv1a(h, "\n", 1);
    h = hash_fnv1a(h, receipt, strlen(receipt));
    h ^= h >> 29;
    return h ? h : 1;
}

/* Caller holds the write lock. */
static void put(unsigned long long key, long long expires_s)
{
    size_t i = key & (cap - 1);
    while (table[i].key && table[i].key != key) i = (i + 1) & (cap - 1);
    if (!table[i].key) used++;
    table[i].key = key;
    if (table[i].expires_s < expires_s) table[i].expires_s = expires_s;
}

/* Caller holds the write lock. Makes room for one more entry. */
static int grow(long long now_s)
{
    if (cap && (used + 1) * 2 <= cap) return 0;
    size_t live = 0;
    for (size_t i = 0; i < cap; i++)
        if (table[i].key && table[i].expires_s > now_s) live++;
    size_t ncap = 1024;
    while (ncap < (live + 1) * 4) ncap *= 2;
    struct slot *old = table;
    size_t ocap = cap;
    if (!(table = calloc(ncap, sizeof *table))) {
        table = old;
        return -1;
    }
    cap = ncap;
    used = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key && old[i].expires_s > now_s) put(old[i].key, old[i].expires_s);
    free(old);
    return 0;
}

static void add_locked(const char *site, const char *receipt, long long expires_s)
{
    long long now_s = (long long)time(NULL);
    if (expires_s <= now_s || grow(now_s) < 0) return;
    put(key_of(site, receipt), expires_s);
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
}

void revoke_add(const char *site, const char *receipt, long long expires_s)
{
    pthread_rwlock_wrlock(&lock);
    if (!seed) RAND_bytes((unsigned char *)&seed, sizeof seed);
    add_locked(site, receipt, expires_s);
    pthread_rwlock_unlock(&lock);
}

int revoke_contains(const char *site, const char *receipt, long long now_s)
{
    int found = 0;
    pthread_rwlock_rdlock(&lock);
    if (cap) {
        unsigned long long key = key_of(site, receipt);
        for (size_t i = key & (cap - 1); table[i].key; i = (i + 1) & (cap - 1)) {
            if (table[i].key == key) {
                found = table[i].expires_s > now_s;
                break;
            }
        }
    }
    pthread_rwlock_unlock(&lock);
    return found;
}

unsigned revoke_generation(void)
{
    return __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
}

/* Redis refused a read because a key is not a stream. */
static int wrong_type(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "WRONGTYPE", 9) == 0;
}

/* Records the entries of one site's stream reply (an array of [id, fields])
 * and moves its last_id past them. Caller holds the write lock. */
static void take_entries(const struct cfg *c, size_t i, const redisReply *entries)
{
    const char *site = c->sites[i].name;
    long long max_age = consent_max_age_s(c);
    for (size_t e = 0; e < entries->elements; e++) {
        redisReply *entry = entries->element[e];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
        redisReply *id = entry->element[0], *kv = entry->element[1];
        if (id->type != REDIS_REPLY_STRING) continue;
        const char *receipt = NULL, *action = NULL;
        for (size_t f = 0; kv->type == REDIS_REPLY_ARRAY && f + 1 < kv->elements; f += 2) {
            const char *name = kv->element[f]->str, *val = kv->element[f + 1]->str;
            if (!name || !val) continue;
            if (strcmp(name, RECEIPT_ID) == 0) receipt = val;
            else if (strcmp(name, RECEIPT_ACTION) == 0) action = val;
        }
        if (receipt && action && (strcmp(action, "withdraw") == 0 || strcmp(action, "forget") == 0))
            add_locked(site, receipt, atoll(id->str) / 1000 + max_age);
        snprintf(last_id[i], sizeof last_id[i], "%s", id->str);
    }
}

/* Reads the receipts of one site after last_id, page by page: 0, 1 when its
 * key is not a stream (nothing to read), or -1. The slow path, for keys of
 * another type, which make a whole XREAD fail. */
static int read_site(redisContext *rc, const struct cfg *c, size_t i)
{
    char key[300];
    if (keys_consent(key, sizeof key, c->sites[i].name) < 0) return 1;
    for (;;) {
        redisReply *r = redisCommand(rc, "XRANGE %s (%s + COUNT %d", key, last_id[i], PAGE);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY) {
            int other_type = wrong_type(r);
            freeReplyObject(r);
            return other_type ? 1 : -1;
        }
        size_t n = r->elements;
        pthread_rwlock_wrlock(&lock);
        take_entries(c, i, r);
        pthread_rwlock_unlock(&lock);
        freeReplyObject(r);
        if (n < PAGE) return 0;
    }
}

/* Reads sites [from, from + n) with one XREAD per round: an idle collector
 * with thousands of sites asks Redis a few times per refresh, not once per
 * site. XREAD answers only the streams with something new; a stream that
 * filled its page is asked again. A site whose key is of another type would
 * fail the whole XREAD: it is read alone. 0 or -1. */
static int read_batch(redisContext *rc, const struct cfg *c, size_t from, size_t n)
{
    static char keys[BATCH][300];
    static const char *argv[4 + 2 * BATCH];
    static size_t site_of[BATCH];
    static char count[16];
    snprintf(count, sizeof count, "%d", PAGE);
    size_t todo[BATCH], n_todo = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = from + k;
        if (!not_stream[i]) {
            todo[n_todo++] = i;
            continue;
        }
        int got = read_site(rc, c, i);
        if (got < 0) return -1;
        not_stream[i] = got == 1;
    }
    while (n_todo) {
        int argc = 0;
        argv[argc++] = "XREAD";
        argv[argc++] = "COUNT";
        argv[argc++] = count;
        argv[argc++] = "STREAMS";
        size_t m = 0;
        for (size_t k = 0; k < n_todo; k++)
            if (keys_consent(keys[m], sizeof keys[m], c->sites[todo[k]].name) >= 0) site_of[m++] = todo[k];
        if (!m) return 0;
        for (size_t k = 0; k < m; k++) argv[argc++] = keys[k];
        for (size_t k = 0; k < m; k++) argv[argc++] = last_id[site_of[k]];
        redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
        if (!r) return -1;
        if (wrong_type(r)) {
            /* Find the culprits once; later refreshes leave them out. */
            freeReplyObject(r);
            for (size_t k = 0; k < m; k++) {
                int got = read_site(rc, c, site_of[k]);
                if (got < 0) return -1;
                not_stream[site_of[k]] = got == 1;
            }
            return 0;
        }
        n_todo = 0;
        if (r->type == REDIS_REPLY_ARRAY) {
            pthread_rwlock_wrlock(&lock);
            for (size_t e = 0; e < r->elements; e++) {
                redisReply *st = r->element[e];
                if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
                    st->element[0]->type != REDIS_REPLY_STRING || st->element[1]->type != REDIS_REPLY_ARRAY)
                    continue;
                for (size_t k = 0; k < m; k++) {
                    if (strcmp(keys[k], st->element[0]->str) != 0) continue;
                    take_entries(c, site_of[k], st->element[1]);
                    if (st->element[1]->elements >= PAGE) todo[n_todo++] = site_of[k];
                    break;
                }
            }
            pthread_rwlock_unlock(&lock);
        } else if (r->type != REDIS_REPLY_NIL) {
            freeReplyObject(r);     /* any other error: this refresh failed */
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

/* Where a site's stream is read from when nothing was read yet. */
static void start_position(const struct cfg *c, char id[48])
{
    long long from_ms = ((long long)time(NULL) - consent_max_age_s(c)) * 1000;
    snprintf(id, 48, "%lld", from_ms > 0 ? from_ms : 0);
}

int revoke_rebind(const struct cfg *old, const struct sites *old_sites, const struct cfg *c)
{
    if (!last_id) return 0;     /* the first refresh starts from c */
    size_t n = c->n_sites ? c->n_sites : 1;
    char (*ids)[48] = calloc(n, sizeof *ids);
    unsigned char *bad = calloc(n, 1);
    if (!ids || !bad) {
        free(ids);
        free(bad);
        return -1;
    }
    for (size_t j = 0; j < c->n_sites; j++) {
        const char *name = c->sites[j].name;
        const struct cfg_site *s = sites_find(old_sites, name, strlen(name));
        if (s) {
            size_t i = (size_t)(s - old->sites);
            memcpy(ids[j], last_id[i], sizeof ids[j]);
            bad[j] = not_stream[i];
        } else {
            start_position(c, ids[j]);
        }
    }
    free(last_id);
    free(not_stream);
    last_id = ids;
    not_stream = bad;
    return 0;
}

int revoke_refresh(const struct cfg *c, char *err, size_t errlen)
{
    if (!last_id) {
        if (!(not_stream = calloc(c->n_sites ? c->n_sites : 1, 1))) return -1;
        if (!(last_id = calloc(c->n_sites ? c->n_sites : 1, sizeof *last_id))) return -1;
        for (size_t i = 0; i < c->n_sites; i++) start_position(c, last_id[i]);
        pthread_rwlock_wrlock(&lock);
        if (!seed) RAND_bytes((unsigned char *)&seed, sizeof seed);
        pthread_rwlock_unlock(&lock);
    }
    if (!conn) {
        struct rconn_url u;
        if (rconn_parse_url(c->redis.url, &u, err, errlen) < 0) return -1;
        if (!(conn = rconn_connect(&u, c->collector.redis_timeout_ms, err, errlen))) return -1;
    }
    int rc2 = 0;
    for (size_t i = 0; i < c->n_sites && rc2 == 0; i += BATCH)
        rc2 = read_batch(conn, c, i, c->n_sites - i < BATCH ? c->n_sites - i : BATCH);
    if (rc2 < 0) {
        snprintf(err, errlen, "reading withdrawals: %s", conn->err ? conn->errstr : "bad reply");
        redisFree(conn);        /* reconnect on the next refresh */
        conn = NULL;
    }
    return rc2;
}
