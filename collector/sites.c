/* sites.c -- hash tables over the configured sites and origins (sites.h).
 *
 * Open addressing with linear probing, at most half full. The keys come from
 * the config, not from requests, so a request cannot lengthen a probe chain:
 * the unseeded FNV-1a of hash.h is enough. Origins are hashed lower-cased
 * because they are compared without regard to case.
 */
#include "sites.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct sites {
    const struct cfg_site **name;       /* cap_name slots, NULL = empty */
    size_t cap_name;
    const char **origin;                /* cap_origin slots, NULL = empty */
    size_t cap_origin;
};

static size_t capacity_for(size_t n)
{
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    return cap;
}

static uint64_t hash_lower(const char *p, size_t n)
{
    uint64_t h = HASH_FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * HASH_FNV_PRIME;
    }
    return h;
}

struct sites *sites_new(const struct cfg *c)
{
    struct sites *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t n_origins = 0;
    for (size_t i = 0; i < c->n_sites; i++) n_origins += c->sites[i].n_origins;
    s->cap_name = capacity_for(c->n_sites);
    s->cap_origin = capacity_for(n_origins);
    s->name = calloc(s->cap_name, sizeof *s->name);
    s->origin = calloc(s->cap_origin, sizeof *s->origin);
    if (!s->name || !s->origin) goto error;
    for (size_t i = 0; i < c->n_sites; i++) {
        const struct cfg_site *site = &c->sites[i];
        size_t len = strlen(site->name);
        size_t k = hash_fnv1a(HASH_FNV_OFFSET, site->name, len) & (s->cap_name - 1);
        while (s->name[k] && strcmp(s->name[k]->name, site->name) != 0) k = (k + 1) & (s->cap_name - 1);
        if (!s->name[k]) s->name[k] = site;     /* a repeated name: the first wins, as before */
        for (size_t o = 0; o < site->n_origins; o++) {
            const char *org = site->origins[o];
            size_t ol = strlen(org);
            size_t j = hash_lower(org, ol) & (s->cap_origin - 1);
            while (s->origin[j] && strcasecmp(s->origin[j], org) != 0) j = (j + 1) & (s->cap_origin - 1);
            s->origin[j] = org;
        }
    }
    return s;

error:
    sites_free(s);
    return NULL;
}

void sites_free(struct sites *s)
{
    if (!s) return;
    free(s->name);
    free(s->origin);
    free(s);
}

const struct cfg_site *sites_find(const struct sites *s, const char *name, size_t len)
{
    size_t k = hash_fnv1a(HASH_FNV_OFFSET, name, len) & (s->cap_name - 1);
    for (; s->name[k]; k = (k + 1) & (s->cap_name - 1)) {
        const char *n = s->name[k]->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return s->name[k];
    }
    return NULL;
}

int sites_origin_known(const struct sites *s, const char *origin, size_t len)
{
    size_t k = hash_lower(origin, len) & (s->cap_origin - 1);
    for (; s->origin[k]; k = (k + 1) & (s->cap_origin - 1)) {
        const char *o = s->origin[k];
        if (strlen(o) == len && strncasecmp(o, origin, len) == 0) return 1;
    }
    return 0;
}
