/* main.c -- fairstat-collector: options, start-up checks, worker threads.
 *
 * Each worker thread owns an event base, an HTTP server on its own
 * SO_REUSEPORT socket, a Redis connection and its caches; workers share
 * nothing but the read-only config, the GeoIP database and the salt table.
 * The main thread handles signals, refreshes the daily salts and, on SIGHUP,
 * loads the config again and offers the workers a new generation of what
 * may change without a restart (gen.h).
 */
#include "api.h"
#include "assets.h"
#include "cfg.h"
#include "clock.h"
#include "gen.h"
#include "geo.h"
#include "http.h"
#include "log.h"
#include "revoke.h"
#include "salt.h"
#include "store.h"

#include <pthread.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OVERRIDES 128

struct worker {
    pthread_t thread;
    int index;
    const struct cfg *cfg;      /* the start-up one: limits, listen, timeouts */
    struct gen *gen;            /* the first generation; api_new() takes it */
    struct gen_box box;         /* reloads offered to this worker */
    struct event_base *base;
    struct api *api;
    struct http_server *http;
    struct event *ev_tick;
    long long stop_started_ms;
    /* start-up handshake with the main thread */
    pthread_mutex_t *lock;
    pthread_cond_t *cond;
    int ready;                  /* 1 ok, -1 failed */
    char err[256];
};

/* Set by the handler, read by every thread: lock-free atomics are both
 * signal-safe and race-free. */
static atomic_int stopping, reload_wanted;

/* Keys the running process cannot change: its sockets, threads, Redis
 * connections and spool were made from them at start. */
static const char *const restart_sections[] = {"collector", "redis"};

static void usage(FILE *fp)
{
    fputs("usage: fairstat-collector -c FILE [-o section.key=value]...\n"
          "  -c FILE   configuration file (see config/fairstat.conf)\n"
          "  -o S.K=V  override one key of the file; repeatable\n"
          "  -t        check the configuration and exit\n"
          "signals: SIGHUP reloads the [site] sections, consent secrets and GeoIP database\n"
          "         (a bad file is logged and ignored); SIGTERM, SIGINT stop gracefully\n", fp);
}

/* Polled by every worker: cheap, and needs no cross-thread libevent calls.
 * On SIGTERM a worker stops accepting, lets its open connections finish what
 * they asked (their hits answered: stored, or spooled) within
 * collector.shutdown_timeout, then leaves its loop; api_free() answers what
 * is left and fsyncs the spool. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker *w = arg;
    api_reload(w->api);         /* an idle worker lets go of an old generation too */
    if (!stopping) return;
    if (!w->stop_started_ms) {
        w->stop_started_ms = (clock_mono_us() / 1000);
        http_server_stop(w->http);
    }
    if (http_server_connections(w->http) == 0 ||
        (clock_mono_us() / 1000) - w->stop_started_ms > w->cfg->collector.shutdown_timeout_ms)
        event_base_loopbreak(w->base);
}

static void worker_report(struct worker *w, int ready)
{
    pthread_mutex_lock(w->lock);
    w->ready = ready;
    pthread_cond_broadcast(w->cond);
    pthread_mutex_unlock(w->lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct cfg *c = w->cfg;
    struct http_limits lim = {
        .max_header = c->collector.max_header,
        .max_body = c->collector.max_body,
        .read_timeout_ms = c->collector.read_timeout_ms,
        .idle_timeout_ms = c->collector.idle_timeout_ms,
        .max_connections = c->collector.max_connections,
    };
    struct timeval tick = {0, 100000};
    w->base = event_base_new();
    if (!w->base || event_base_priority_init(w->base, STORE_PRIORITIES) < 0) {
        snprintf(w->err, sizeof w->err, "cannot create event base");
        goto error;
    }
    struct gen *g = w->gen;
    w->gen = NULL;
    if (!(w->api = api_new(w->base, g, &w->box, w->index, w->err, sizeof w->err))) goto error;
    w->http = http_server_new(w->base, c->collector.listen, &lim, api_handle, w->api,
                              w->err, sizeof w->err);
    if (!w->http) goto error;
    api_attach_http(w->api, w->http);
    w->ev_tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    if (!w->ev_tick || event_add(w->ev_tick, &tick) < 0) {
        snprintf(w->err, sizeof w->err, "cannot add timer");
        goto error;
    }
    worker_report(w, 1);
    event_base_dispatch(w->base);

    http_server_stop(w->http);
    api_free(w->api);           /* answers what is still pending */
    http_server_free(w->http);
    event_free(w->ev_tick);
    event_base_free(w->base);
    return NULL;

error:
    worker_report(w, -1);
    return NULL;
}

/* Every connection is a descriptor: make sure the configured connections
 * fit in RLIMIT_NOFILE, raising the soft limit when allowed, else lowering
 * collector.max_connections (with a warning) rather than failing accept()
 * at run time. A reload fits its copy quietly, so that the lowered value is
 * not taken for an edit that needs a restart. */
static void fit_file_limit(struct cfg *c, int quiet)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    rlim_t need = (rlim_t)c->collector.threads * (rlim_t)c->collector.max_connections + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need) {
        long fit = ((long)rl.rlim_cur - 64) / c->collector.threads;
        if (fit < 1) fit = 1;
        if (!quiet)
            log_warn("collector.max_connections = %d does not fit the open-file limit %ld: using %ld",
                     c->collector.max_connections, (long)rl.rlim_cur, fit);
        c->collector.max_connections = (int)fit;
    }
}

static void on_signal(int sig)
{
    if (sig == SIGHUP) reload_wanted = 1;
    else stopping = 1;
}

static void on_restart_key(const char *section, const char *key, void *arg)
{
    (void)arg;
    log_warn("reload: %s.%s changed: needs a restart; keeping the running value", section, key);
}

/* Loads conf again and, when all of it is good, offers the workers a new
 * generation; returns it (the caller's reference) or NULL, having logged
 * one line, when the running one stays. */
static struct gen *reload(const struct gen *cur, const char *conf, char *const *overrides,
                          size_t n_over, struct worker *workers, int n)
{
    char err[512];
    struct cfg *c = cfg_load(conf, overrides, n_over, err, sizeof err);
    if (!c) goto error;
    if (!c->consent.secret) {
        snprintf(err, sizeof err, "%s: consent.secret: required", conf);
        goto error;
    }
    fit_file_limit(c, 1);
    for (size_t i = 0; i < sizeof restart_sections / sizeof *restart_sections; i++) {
        if (cfg_keep(c, cur->cfg, restart_sections[i], on_restart_key, NULL) < 0) {
            snprintf(err, sizeof err, "[%s]: cannot keep its running values", restart_sections[i]);
            goto error;
        }
    }
    struct geo *geo = geo_open(c->geoip.database, c->geoip.country_path, c->geoip.region_path,
                               err, sizeof err);
    if (!geo) goto error;
    struct gen *g = gen_new(c, 1, geo, n, err, sizeof err);
    c = NULL;                   /* the generation's now, freed with it on failure */
    if (!g) goto error;
    if (revoke_rebind(cur->cfg, cur->sites, g->cfg) < 0) {
        gen_release(g);
        snprintf(err, sizeof err, "out of memory");
        goto error;
    }
    for (int i = 0; i < n; i++) gen_offer(&workers[i].box, g);
    log_info("reloaded %s: %zu site%s", conf, g->cfg->n_sites, g->cfg->n_sites == 1 ? "" : "s");
    return g;

error:
    cfg_free(c);
    log_error("reload failed, keeping the running configuration: %s", err);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    char *overrides[MAX_OVERRIDES];
    size_t n_over = 0;
    int check_only = 0, opt;
    char err[512];

    log_set_name("fairstat-collector");
    while ((opt = getopt(argc, argv, "c:o:th")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'o':
            if (n_over == MAX_OVERRIDES) {
                fprintf(stderr, "fairstat-collector: too many -o options\n");
                return 2;
            }
            overrides[n_over++] = optarg;
            break;
        case 't': check_only = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!conf || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct cfg *c = cfg_load(conf, overrides, n_over, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fairstat-collector: %s\n", err);
        return 2;
    }
    if (!c->consent.secret) {
        fprintf(stderr, "fairstat-collector: %s: consent.secret: required (at least 32 bytes, "
                        "or file:PATH)\n", conf);
        cfg_free(c);
        return 2;
    }
    if (c->n_sites == 0) log_warn("no [site NAME] section: every beacon will be refused with 403");
    fit_file_limit(c, 0);

    struct geo *geo = geo_open(c->geoip.database, c->geoip.country_path, c->geoip.region_path,
                               err, sizeof err);
    if (!geo) {
        /* A broken database must not take analytics down: run without geo. */
        log_error("geoip.database: %s; continuing without geolocation", err);
        geo = geo_open("", "", "", err, sizeof err);
        if (!geo) {
            fprintf(stderr, "fairstat-collector: geoip: %s\n", err);
            return 1;
        }
    }
    if (check_only) {
        printf("%s: configuration ok\n", conf);
        geo_close(geo);
        cfg_free(c);
        return 0;
    }
    struct gen *cur = gen_new(c, 0, geo, c->collector.threads, err, sizeof err);
    if (!cur) {
        fprintf(stderr, "fairstat-collector: %s\n", err);
        return 1;
    }
    assets_load(c->collector.static_dir);
    int salt_ok = salt_refresh(c, err, sizeof err) == 0;
    if (!salt_ok) log_warn("salts: %s; hits answer 503 until Redis is reachable", err);
    if (revoke_refresh(c, err, sizeof err) < 0) log_warn("withdrawals: %s", err);

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* Workers are born with these blocked, so that the main thread, which
     * acts on them, is the one they interrupt. */
    sigset_t sigs, main_mask;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, &main_mask);

    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int n = c->collector.threads;
    struct worker *workers = calloc((size_t)n, sizeof *workers);
    if (!workers) return 1;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        struct worker *w = &workers[i];
        w->index = i;
        w->cfg = c;
        w->gen = gen_hold(cur);
        w->lock = &lock;
        w->cond = &cond;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            fprintf(stderr, "fairstat-collector: cannot start thread %d\n", i);
            return 1;
        }
        pthread_mutex_lock(&lock);
        while (!w->ready) pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        if (w->ready < 0) {
            fprintf(stderr, "fairstat-collector: %s\n", w->err);
            failed = 1;
            stopping = 1;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &main_mask, NULL);
    if (!failed)
        log_info("listening on %s with %d thread%s", c->collector.listen, n, n == 1 ? "" : "s");

    /* The main thread's duties now: keep the salts fresh and learn of
     * withdrawals made elsewhere. */
    long long next_salt = (clock_mono_us() / 1000) + (salt_ok ? 60000 : 1000);
    long long next_revoke = (clock_mono_us() / 1000) + 2000;
    int revoke_failing = 0;
    while (!stopping) {
        usleep(100000);
        if (atomic_exchange(&reload_wanted, 0) && !failed) {
            struct gen *g = reload(cur, conf, overrides, n_over, workers, n);
            if (g) {
                gen_release(cur);
                cur = g;
            }
        }
        if ((clock_mono_us() / 1000) >= next_salt) {
            int ok = salt_refresh(c, err, sizeof err) == 0;
            if (!ok) log_warn("salts: %s", err);
            next_salt = (clock_mono_us() / 1000) + (ok ? 60000 : 1000);
        }
        if ((clock_mono_us() / 1000) >= next_revoke) {
            int ok = revoke_refresh(cur->cfg, err, sizeof err) == 0;
            if (!ok && !revoke_failing) log_warn("withdrawals: %s", err);
            revoke_failing = !ok;
            next_revoke = (clock_mono_us() / 1000) + 2000;
        }
    }
    for (int i = 0; i < n; i++)
        if (workers[i].ready) pthread_join(workers[i].thread, NULL);
    if (!failed) log_info("stopped");
    for (int i = 0; i < n; i++) gen_release(gen_take(&workers[i].box));
    free(workers);
    gen_release(cur);
    cfg_free(c);                /* after every generation: the first one reads it */
    return failed ? 1 : 0;
}
