/* gen.c -- reference-counted generations of the reloadable config (gen.h).
 *
 * Only atomics cross threads here: libevent is not built with thread
 * support in the collector, so the main thread may not touch a worker's
 * event base, and a box the worker polls needs nothing from it.
 */
#include "gen.h"
#include "cmp.h"
#include "consent.h"
#include "geo.h"
#include "sites.h"

#include <stdio.h>
#include <stdlib.h>

static void gen_free(struct gen *g)
{
    for (int i = 0; g->consent && i < g->workers; i++) consent_free(g->consent[i]);
    free(g->consent);
    for (int i = 0; g->cmp && i < g->workers; i++) cmp_free(g->cmp[i]);
    free(g->cmp);
    sites_free(g->sites);
    geo_close(g->geo);
    if (g->owns_cfg) cfg_free(g->cfg);
    free(g);
}

struct gen *gen_new(struct cfg *c, int owns_cfg, struct geo *geo, int workers, char *err,
                    size_t errlen)
{
    struct gen *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        geo_close(geo);
        if (owns_cfg) cfg_free(c);
        return NULL;
    }
    g->cfg = c;
    g->owns_cfg = owns_cfg;
    g->geo = geo;
    g->workers = workers;
    atomic_init(&g->refs, 1);
    if (!(g->sites = sites_new(c)) || !(g->consent = calloc((size_t)workers, sizeof *g->consent)) ||
        !(g->cmp = calloc((size_t)workers, sizeof *g->cmp))) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    for (int i = 0; i < workers; i++) {
        if (!(g->consent[i] = consent_new(c))) {
            snprintf(err, errlen, "consent.secret: missing or unusable");
            goto error;
        }
        if (!(g->cmp[i] = cmp_new(c, err, errlen))) goto error;
    }
    return g;

error:
    gen_free(g);
    return NULL;
}

struct gen *gen_hold(struct gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void gen_release(struct gen *g)
{
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) gen_free(g);
}

void gen_offer(struct gen_box *box, struct gen *g)
{
    gen_release(atomic_exchange_explicit(&box->next, gen_hold(g), memory_order_acq_rel));
}

struct gen *gen_take(struct gen_box *box)
{
    if (!atomic_load_explicit(&box->next, memory_order_relaxed)) return NULL;
    return atomic_exchange_explicit(&box->next, NULL, memory_order_acq_rel);
}
