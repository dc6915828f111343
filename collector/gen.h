/* gen.h -- one generation of what SIGHUP reloads: the config's sites and
 * origins, the consent keys, the consent managers' settings (cmp.h) and the
 * GeoIP database.
 *
 * The main thread builds a generation whole (the parsed config, the sites
 * tables, one consent keyset per worker, the opened database) and only then
 * offers it to each worker through that worker's box; a worker takes it at
 * the start of its next request or timer tick and drops its old one. A
 * generation is never written after gen_new() and is freed when its last
 * holder lets go, so a request never sees half of a reload and nothing is
 * freed while a worker can still read it.
 *
 * References: gen_new() returns one (the caller's); gen_offer() takes one
 * more for the box; gen_take() hands the box's to the worker, who gives it
 * back with gen_release().
 */
#ifndef FAIRSTAT_GEN_H
#define FAIRSTAT_GEN_H

#include <stdatomic.h>
#include <stddef.h>

#include "cfg.h"

struct geo;
struct sites;
struct consent;
struct cmp;

struct gen {
    struct cfg *cfg;
    struct geo *geo;
    struct sites *sites;        /* over cfg's sites, shared read-only */
    struct consent **consent;   /* [worker]: its MAC contexts are not thread-safe */
    struct cmp **cmp;           /* [worker]: consent managers' cookies (match data per thread) */
    int workers;
    int owns_cfg;               /* 0: the start-up cfg, which the caller frees */
    atomic_int refs;
};

/* A worker's mailbox: the newest generation it has not taken yet, or NULL. */
struct gen_box {
    _Atomic(struct gen *) next;
};

/* Builds a generation over c and geo for workers threads; takes geo (and c
 * when owns_cfg). NULL + err when c has no consent secret or out of memory
 * (geo and an owned c are freed then too). */
struct gen *gen_new(struct cfg *c, int owns_cfg, struct geo *geo, int workers, char *err,
                    size_t errlen);

/* Takes one more reference; returns g. */
struct gen *gen_hold(struct gen *g);

/* Drops one reference; the last frees the generation. NULL is allowed. */
void gen_release(struct gen *g);

/* Main thread: puts g (with a reference of its own) in box, releasing an
 * offer the worker never took. */
void gen_offer(struct gen_box *box, struct gen *g);

/* Worker: the offered generation (its reference now the caller's), or NULL.
 * One relaxed load when nothing is offered: cheap enough for every request. */
struct gen *gen_take(struct gen_box *box);

#endif
