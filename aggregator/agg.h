/* agg.h -- the aggregator's shared state: config, Redis connection, sites.
 *
 * Every command (run, report, purge, forget) starts from one struct agg: it
 * owns the loaded config, one synchronous hiredis connection (a batch daemon
 * waits for each reply anyway, and the synchronous API keeps the exactly-once
 * reasoning linear) and the list of known sites with their timezones.
 *
 * Sites are the configured [site] sections plus every fs:{S}:hits stream
 * found by SCAN (agg_discover): the collector may be configured with a site
 * the aggregator's copy of the file does not know yet, and its hits must
 * still be counted and purged. Unknown sites use aggregator.timezone.
 */
#ifndef FAIRSTAT_AGG_H
#define FAIRSTAT_AGG_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "clock.h"
#include "erase.h"

#define AGG_ERRLEN 256

struct fold;

struct agg_site {
    char *name;
    char stream[512];           /* fs:{S}:hits */
    char cursor_key[512];       /* fs:{S}:cursor */
    char lease_key[512];        /* fs:{S}:lease */
    char gen_key[512];          /* fs:{S}:withdrawn:gen */
    struct clock_zone *zone;    /* owned */
    struct fold *fold;          /* owned, created on first use */
    char cursor[64];            /* the last id counted, as last read; "" = none */
    int cursor_known;           /* cursor read on this connection */
    int64_t lease_until;        /* ms: this process holds the lease until then */
    int64_t busy_until;         /* ms: another aggregator holds it; look again then */
    int ready;                  /* hits may be waiting past the cursor: fold it next turn */
};

struct agg_stats {
    uint64_t read, counted, skipped, dropped, batches;
};

struct agg {
    struct cfg *cfg;            /* borrowed */
    redisContext *rc;           /* NULL when disconnected */
    char consumer[128];         /* hostname-pid */
    struct agg_site *sites;
    size_t nsites, sites_alloc;
    struct clock_zone *default_zone;
    volatile sig_atomic_t *stop;   /* set by SIGTERM/SIGINT; may be NULL */
    struct agg_stats stats;
    size_t visit_cache_used;    /* visit states the sites' folds hold (fold_set_visit_cache) */
    char *fmt;                  /* agg_append_argv's command, in the protocol */
    size_t fmtcap;
    char *held;                 /* agg_hold_argv's */
    size_t heldcap, heldlen;
    char err[AGG_ERRLEN];
};


/* State for cfg (borrowed; must outlive the result). Validates every site's
 * timezone. NULL with one line in err (a config error: exit 2). */
struct agg *agg_new(struct cfg *cfg, char *err, size_t errlen);
void agg_free(struct agg *a);

/* Connects (2 s timeout) and authenticates; commands time out after
 * block_ms + 5 s. 0, or -1 with a->err set. */
int agg_connect(struct agg *a);
void agg_disconnect(struct agg *a);

/* Runs a command. Returns the reply (caller frees with freeReplyObject), or
 * NULL on a connection error, after which the connection is closed and
 * a->err says why. An error reply is returned like any other. */
redisReply *agg_command(struct agg *a, const char *fmt, ...);
redisReply *agg_command_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen);

/* Pipelining: queue commands with agg_append_argv(), then read each reply in
 * order with agg_get_reply() (NULL on a connection error, as above). */
int agg_append_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen);
redisReply *agg_get_reply(struct agg *a);
/* agg_append_argv() in two steps: the command is formatted (copied) now and
 * appended by agg_append_held(), after whatever is appended meanwhile. Held
 * commands add up until agg_append_held() sends them, in their order, as
 * one block. 0, or -1. */
int agg_hold_argv(struct agg *a, int argc, const char **argv, const size_t *argvlen);
int agg_append_held(struct agg *a);
/* Sends what was appended without waiting for an answer. 0, or -1. */
int agg_flush(struct agg *a);

/* agg_get_reply(), the reply built in a region: its objects are freed all
 * together by agg_region_free(), never by freeReplyObject(). A zeroed
 * region is empty. */
struct agg_region {
    struct region_block *blocks;
    char *at;
    size_t left, grow;          /* grow: the last block's size; they double up to 1 MiB */
};
redisReply *agg_get_reply_in(struct agg *a, struct agg_region *rg);
/* The next reply, an XRANGE's, read flat into the region (resp.h): 0 with
 * *out (out->error set when Redis answered an error), or -1. */
struct resp_entries;
int agg_get_entries_in(struct agg *a, struct agg_region *rg, struct resp_entries *out);
void agg_region_free(struct agg_region *rg);
/* n bytes in rg, aligned for any object, or NULL. */
void *agg_region_alloc(struct agg_region *rg, size_t n);

/* Reads the next reply in order, an HGETALL's, calling each(arg, field, len,
 * value) for every field in turn with its value read as an integer, without
 * building a reply object (a 30-day report reads ~200,000 fields: their
 * objects were a third of its time). A reply that is not an array (an error,
 * WRONGTYPE) holds no fields. Once each returns nonzero (by convention a
 * positive value, 1 when memory ran out) it is not called again, and that
 * value is returned after the whole reply is read, so the pipeline stays in
 * step; 1 too when copying a field name runs out of memory. -1 on a
 * connection error (as above), else 0. */
int agg_hash_each(struct agg *a, int (*each)(void *arg, const char *field, size_t len, long long value),
                  void *arg);

/* Adds the configured sites and every fs:{S}:hits stream in Redis to
 * a->sites. 0 or -1 (connection error). */
int agg_discover(struct agg *a);

/* The site named name, adding it (with the default zone) if new; NULL when
 * out of memory. */
struct agg_site *agg_site(struct agg *a, const char *name);

/* Sleeps ms, waking early when *a->stop is set. */
void agg_sleep(struct agg *a, long ms);
int agg_stopping(const struct agg *a);

/* The daemon (run.c): drains every site's stream into aggregates until
 * stopped (once = until nothing is queued). Exit status: 0 or 1. */
int agg_run(struct agg *a, int once);

#endif
