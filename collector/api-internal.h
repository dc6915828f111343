/* api-internal.h -- what the endpoint rooms (hit.c, receipt.c) share with
 * the router (api.c): the worker's struct api, the state a request keeps
 * while it waits for Redis, and the reply helpers. No other module includes
 * it.
 */
#ifndef FAIRSTAT_API_INTERNAL_H
#define FAIRSTAT_API_INTERNAL_H

#include "api.h"
#include "beacon.h"
#include "consent.h"
#include "metrics.h"
#include "rawhit.h"

/* The CORS lines of one answer (see api.c's cors_headers). */
#define API_CORS_MAX 1024

struct client_limit;
struct hit_cache;
struct sites;
struct spool;
struct api_pending;
struct replay;

/* One per worker thread; everything in it is that thread's. cfg, geo,
 * sites and consent belong to gen, the reloadable generation in use
 * (gen.h), and change together in api_reload(), between requests. */
struct api {
    struct gen *gen;
    struct gen_box *box;
    int worker;
    const struct cfg *cfg;
    const struct geo *geo;
    struct store *store;
    struct consent *consent;
    struct cmp *cmp;            /* the sites' consent managers (cmp.h) */
    struct ua *ua;
    struct client_limit *limit;
    struct hit_cache *hits;     /* hit.c's caches */
    const struct sites *sites;  /* the config's sites and origins by hash */
    struct spool *spool;        /* NULL: collector.spool_dir is empty */
    struct replay *replay;      /* hit.c: the spool's replay in progress */
    struct event *ev_spool;     /* hit.c: replay and fsync timer */
    int scans;                  /* receipt.c: consent scans in flight */
    struct api_pending *free_list;
    struct metrics m;
};

enum api_pending_kind { API_HIT, API_PIXEL, API_CONSENT, API_WITHDRAW };

/* What a request needs once Redis answers: the store callback's arg. */
struct api_pending {
    struct api *a;
    struct http_conn *c;
    enum api_pending_kind kind;
    char site[BEACON_DOMAIN_MAX + 1];
    char headers[API_CORS_MAX + 640];  /* CORS and Set-Cookie lines, ready to send */
    char body[512];                     /* consent: the JSON body before "held" */
    char receipt[CONSENT_RECEIPT_LEN + 1];  /* withdrawal: whose */
    long long expires_s;
    /* hit: the packed hit and its time, kept for the spool should Redis
     * not take it */
    int64_t t_ms;
    size_t hit_len;
    char hit[RAWHIT_MAX];
    struct api_pending *next_free;
};

/* Taken when a command is sent, with headers, body and site empty; given
 * back by its reply callback, or at once when the store refused the command.
 * NULL when out of memory. */
struct api_pending *api_pending_get(struct api *a, struct http_conn *c, enum api_pending_kind kind);
void api_pending_put(struct api_pending *p);

/* Answers {"error":"msg"} with status, and counts it. cors: header lines,
 * or "". */
void api_reply_error(struct api *a, struct http_conn *c, int status, const char *cors,
                     const char *msg);

/* The configured site named domain, if r's Origin (when it has one) is one
 * of that site's origins. Otherwise answers 403 and returns NULL. */
const struct cfg_site *api_site(struct api *a, struct http_conn *c, const struct http_request *r,
                                const char *domain, const char *cors);

#endif
