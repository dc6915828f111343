/* client.c -- the client address and the per-client rate limit (client.h). */
#include "client.h"
#include "clock.h"
#include "hash.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 4096

static int parse_ip(const char *s, size_t n, struct sockaddr_storage *out)
{
    char buf[64];
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, buf, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

static const void *addr_bytes(const struct sockaddr *sa, size_t *len)
{
    if (sa->sa_family == AF_INET) {
        *len = 4;
        return &((const struct sockaddr_in *)sa)->sin_addr;
    }
    *len = 16;
    return &((const struct sockaddr_in6 *)sa)->sin6_addr;
}

static int trusted(const struct cfg *cfg, const struct sockaddr *sa)
{
    size_t len;
    const void *b = addr_bytes(sa, &len);
    return cfg_cidr_match(cfg->collector.trusted_proxies, cfg->collector.n_trusted_proxies,
                          sa->sa_family, b);
}

int client_is_trusted_proxy(const struct sockaddr *sa, void *cfg)
{
    const struct cfg *c = cfg;
    return c->collector.n_trusted_proxies && trusted(c, sa);
}

void client_addr(const struct cfg *cfg, const struct http_request *r, struct sockaddr_storage *out)
{
    memcpy(out, r->peer, r->peer_len < sizeof *out ? r->peer_len : sizeof *out);
    if (!cfg->collector.n_trusted_proxies || !r->forwarded_for.p || !trusted(cfg, r->peer)) return;
    const char *s = r->forwarded_for.p;
    size_t end = r->forwarded_for.n;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && s[start - 1] != ',') start--;
        struct sockaddr_storage ip;
        if (parse_ip(s + start, end - start, &ip) < 0) return;  /* garbage: keep what we have */
        *out = ip;
        if (!trusted(cfg, (struct sockaddr *)&ip)) return;
        end = start ? start - 1 : 0;
    }
}

struct slot {
    uint64_t key;
    double tokens;
    long long last_us;
};

struct client_limit {
    double rate;
    uint64_t seed;
    struct slot *slots;
};

struct client_limit *client_limit_new(double rate)
{
    struct client_limit *l = calloc(1, sizeof *l);
    if (!l || !(l->slots = calloc(SLOTS, sizeof *l->slots))) {
        free(l);
        return NULL;
    }
    l->rate = rate;
    RAND_bytes((unsigned char *)&l->seed, sizeof l->seed);
    return l;
}

void client_limit_free(struct client_limit *l)
{
    if (!l) return;
    free(l->slots);
    free(l);
}

int client_limited(struct client_limit *l, const struct sockaddr *sa)
{
    double rate = l->rate;
    if (rate <= 0) return 0;
    size_t len;
    const void *b = addr_bytes(sa, &len);
    /* An IPv6 client usually has a whole /64: count it as one client. */
    if (len == 16) len = 8;
    uint64_t h = hash_fnv1a(l->seed ^ HASH_FNV_OFFSET, b, len);
    struct slot *s = &l->slots[h % SLOTS];
    double burst = rate * 2 > 20 ? rate * 2 : 20;
    long long now = clock_mono_us();
    /* A slot changes hands only once its bucket would be full anyway;
     * before that, colliding clients share it rather than reset it. */
    if (s->key != h && (double)(now - s->last_us) / 1e6 * rate >= burst) {
        s->key = h;
        s->tokens = burst;
        s->last_us = now;
    }
    s->tokens += (double)(now - s->last_us) / 1e6 * rate;
    if (s->tokens > burst) s->tokens = burst;
    s->last_us = now;
    if (s->tokens < 1) return 1;
    s->tokens -= 1;
    return 0;
}
