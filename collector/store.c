/* store.c -- hiredis async on libevent, with our own timeout (store.h).
 *
 * Rules kept from hiredis' README: attach once per context; reconnect only
 * from the disconnect (or failed connect) callback, through a timer; never
 * keep a reply past its callback; never free a context hiredis is already
 * tearing down. The only redisAsyncFree() here is the timeout path, which
 * runs from our own timer, outside any hiredis callback.
 *
 * The event hooks are our own rather than hiredis' libevent adapter. That
 * adapter waits for EV_WRITE after every queued command, which costs two
 * epoll_ctl calls per loop turn and flushes as soon as the first HTTP
 * request of a turn is handled. Here a queued command activates a "flush"
 * event of the lowest priority: libevent runs it only once no connection
 * has anything left to do, so every XADD of a busy turn leaves in one
 * write(). Only a write that would block waits for EV_WRITE.
 */
#include "store.h"
#include "clock.h"
#include "log.h"
#include "rconn.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

struct pending {
    struct store *s;
    store_cb cb;
    void *arg;
    long long t0_us;
    struct pending *next_free;
};

struct store {
    struct event_base *base;
    /* our hiredis event hooks */
    struct event *ev_rd, *ev_wr, *ev_flush;
    int flushing, flush_queued;
    struct rconn_url url;
    long timeout_ms;
    redisAsyncContext *ac;
    int up;                     /* connected and usable */
    long long connect_started_us;
    long long last_progress_us; /* last reply, or when inflight went 0 -> 1 */
    long backoff_ms;
    struct event *ev_watch, *ev_reconnect;
    struct pending *free_list;
    int ping_inflight;
    long long last_pong_us;     /* 0: never */
    struct store_stats st;
};

static void connect_now(struct store *s);

static void schedule_reconnect(struct store *s)
{
    struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};
    event_add(s->ev_reconnect, &tv);
    s->backoff_ms = s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct store *s = ac->data;
    if (ac != s->ac) return;
    if (status != REDIS_OK) {
        log_warn("redis: connect failed: %s; retrying in %ld ms", ac->errstr, s->backoff_ms);
        s->ac = NULL;           /* hiredis frees it after this callback */
        schedule_reconnect(s);
        return;
    }
    log_info("redis: connected");
    s->up = 1;
    s->ping_inflight = 0;
    s->backoff_ms = 100;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct store *s = ac->data;
    if (ac != s->ac) return;    /* our own drop(): already handled */
    log_warn("redis: disconnected: %s", ac->errstr[0] ? ac->errstr : "closed");
    s->ac = NULL;
    s->up = 0;
    schedule_reconnect(s);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *reply = r;
    if (reply && reply->type == REDIS_REPLY_ERROR) log_error("redis: AUTH/SELECT failed: %s", reply->str);
}

/* ------------------------------------------------------------------------ */
/* Event hooks for hiredis                                                   */
/* ------------------------------------------------------------------------ */

static void on_rd(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct store *s = arg;
    if (s->ac) redisAsyncHandleRead(s->ac);
}

static void on_wr(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct store *s = arg;
    if (s->ac) redisAsyncHandleWrite(s->ac);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct store *s = arg;
    s->flush_queued = 0;
    if (!s->ac) return;
    s->flushing = 1;
    redisAsyncHandleWrite(s->ac);   /* may call hook_add_write again: see there */
    s->flushing = 0;
}

static void hook_add_read(void *priv)
{
    struct store *s = priv;
    if (!event_pending(s->ev_rd, EV_READ, NULL)) event_add(s->ev_rd, NULL);
}

static void hook_del_read(void *priv)
{
    struct store *s = priv;
    event_del(s->ev_rd);
}

static void hook_add_write(void *priv)
{
    struct store *s = priv;
    /* While connecting, or when a flush could not write everything, wait
     * until the socket is writable; otherwise flush when the loop is idle. */
    if (!s->ac || !(s->ac->c.flags & REDIS_CONNECTED) || s->flushing) {
        if (!event_pending(s->ev_wr, EV_WRITE, NULL)) event_add(s->ev_wr, NULL);
    } else if (!s->flush_queued) {
        s->flush_queued = 1;
        event_active(s->ev_flush, EV_TIMEOUT, 0);
    }
}

static void hook_del_write(void *priv)
{
    struct store *s = priv;
    event_del(s->ev_wr);
}

static void hook_cleanup(void *priv)
{
    struct store *s = priv;
    event_del(s->ev_rd);
    event_del(s->ev_wr);
    event_del(s->ev_flush);
    /* A flush queued for the old context will never run: forget it, or the
     * next context would never flush at all. */
    s->flush_queued = 0;
    s->flushing = 0;
}

static int attach(struct store *s, redisAsyncContext *ac)
{
    evutil_socket_t fd = ac->c.fd;
    if (s->ev_rd) event_free(s->ev_rd);
    if (s->ev_wr) event_free(s->ev_wr);
    s->ev_rd = event_new(s->base, fd, EV_READ | EV_PERSIST, on_rd, s);
    s->ev_wr = event_new(s->base, fd, EV_WRITE, on_wr, s);
    if (!s->ev_rd || !s->ev_wr) return -1;
    s->flush_queued = s->flushing = 0;
    ac->ev.data = s;
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
    hook_add_read(s);
    hook_add_write(s);
    return 0;
}

static void connect_now(struct store *s)
{
    redisAsyncContext *ac = s->url.path[0] ? redisAsyncConnectUnix(s->url.path)
                                           : redisAsyncConnect(s->url.host, s->url.port);
    if (!ac || ac->err) {
        log_warn("redis: cannot connect: %s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    ac->data = s;
    s->ac = ac;
    s->st.reconnects++;
    s->connect_started_us = clock_mono_us();
    if (attach(s, ac) < 0) {
        log_error("redis: out of memory");
        s->ac = NULL;
        redisAsyncFree(ac);
        schedule_reconnect(s);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (s->url.pass[0]) {
        if (s->url.user[0])
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s %s", s->url.user, s->url.pass);
        else
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", s->url.pass);
    }
    if (s->url.db) redisAsyncCommand(ac, on_auth, NULL, "SELECT %d", s->url.db);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}

/* Gives up on the current connection: pending callbacks get NULL. */
static void drop(struct store *s, const char *why)
{
    redisAsyncContext *ac = s->ac;
    log_warn("redis: %s; reconnecting", why);
    s->ac = NULL;
    s->up = 0;
    if (ac) redisAsyncFree(ac);
    schedule_reconnect(s);
}

static int store_send(struct store *s, store_cb cb, void *arg, int argc, const char **argv,
                      const size_t *lens, const char *cmd, size_t len);

static void on_pong(redisReply *reply, void *arg)
{
    struct store *s = arg;
    s->ping_inflight = 0;
    if (reply && reply->type != REDIS_REPLY_ERROR) s->last_pong_us = clock_mono_us();
}

/* The watch: a connection that does not connect, or a command unanswered,
 * within collector.redis_timeout is dropped. A PING every tick while idle
 * (or busy) keeps that true of a Redis that accepts connections but does
 * not run (frozen), and tells store_ready() when Redis last answered. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct store *s = arg;
    long long now = clock_mono_us(), limit = (long long)s->timeout_ms * 1000;
    if (s->ac && !s->up && now - s->connect_started_us > limit)
        drop(s, "connect timed out");
    else if (s->ac && s->st.inflight > 0 && now - s->last_progress_us > limit)
        drop(s, "no reply within collector.redis_timeout");
    else if (s->up && !s->ping_inflight) {
        static const char ping[] = "*1\r\n$4\r\nPING\r\n";
        if (store_send(s, on_pong, s, 0, NULL, NULL, ping, sizeof ping - 1) == 0) s->ping_inflight = 1;
    }
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    (void)ac;
    struct pending *p = priv;
    struct store *s = p->s;
    long long now = clock_mono_us();
    s->st.inflight--;
    s->last_progress_us = now;
    redisReply *reply = r;
    if (reply) {
        static const long long bounds[] = STORE_BUCKETS_US;
        long long us = now - p->t0_us;
        s->st.replied++;
        s->st.latency_us_sum += (unsigned long long)us;
        for (int i = 0; i < 8; i++)
            if (us <= bounds[i]) s->st.latency_le[i]++;
    } else {
        s->st.failed++;
    }
    store_cb cb = p->cb;
    void *arg = p->arg;
    p->next_free = s->free_list;
    s->free_list = p;
    cb(reply, arg);
}

static int store_send(struct store *s, store_cb cb, void *arg, int argc, const char **argv,
                      const size_t *lens, const char *cmd, size_t len)
{
    if (!s->up || !s->ac) return -1;
    struct pending *p = s->free_list;
    if (p) s->free_list = p->next_free;
    else if (!(p = malloc(sizeof *p))) return -1;
    p->s = s;
    p->cb = cb;
    p->arg = arg;
    p->t0_us = clock_mono_us();
    int rc = cmd ? redisAsyncFormattedCommand(s->ac, on_reply, p, cmd, len)
                 : redisAsyncCommandArgv(s->ac, on_reply, p, argc, argv, lens);
    if (rc != REDIS_OK) {
        p->next_free = s->free_list;
        s->free_list = p;
        return -1;
    }
    if (s->st.inflight++ == 0) s->last_progress_us = p->t0_us;
    s->st.sent++;
    return 0;
}

int store_command(struct store *s, store_cb cb, void *arg,
                  int argc, const char **argv, const size_t *lens)
{
    return store_send(s, cb, arg, argc, argv, lens, NULL, 0);
}

int store_formatted(struct store *s, store_cb cb, void *arg, const char *cmd, size_t len)
{
    return store_send(s, cb, arg, 0, NULL, NULL, cmd, len);
}

#define COUNT_MAX 23             /* '*' or '$', up to 20 digits, CRLF */

static char *put_count(char *o, char tag, size_t n)
{
    char tmp[20];
    int k = 0;
    do tmp[k++] = (char)('0' + n % 10); while ((n /= 10));
    *o++ = tag;
    while (k) *o++ = tmp[--k];
    *o++ = '\r';
    *o++ = '\n';
    return o;
}

size_t store_format(char *buf, size_t len, int argc, const char **argv, const size_t *lens)
{
    char *o = buf, *end = buf + len;
    if (len < COUNT_MAX) return 0;
    o = put_count(o, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        if ((size_t)(end - o) < COUNT_MAX + n + 2) return 0;
        o = put_count(o, '$', n);
        memcpy(o, argv[i], n);
        o += n;
        *o++ = '\r';
        *o++ = '\n';
    }
    return (size_t)(o - buf);
}

struct store *store_new(struct event_base *base, const struct cfg *c, char *err, size_t errlen)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (rconn_parse_url(c->redis.url, &s->url, err, errlen) < 0) goto error;
    s->base = base;
    s->timeout_ms = c->collector.redis_timeout_ms;
    s->backoff_ms = 100;
    s->ev_watch = event_new(base, -1, EV_PERSIST, on_watch, s);
    s->ev_reconnect = evtimer_new(base, on_reconnect, s);
    s->ev_flush = event_new(base, -1, 0, on_flush, s);
    if (!s->ev_watch || !s->ev_reconnect || !s->ev_flush) goto error;
    /* The lowest priority: runs after every connection event of a turn. */
    event_priority_set(s->ev_flush, STORE_FLUSH_PRIORITY);
    long tick = s->timeout_ms / 4 > 0 ? s->timeout_ms / 4 : 10;
    struct timeval tv = {tick / 1000, (tick % 1000) * 1000};
    event_add(s->ev_watch, &tv);
    connect_now(s);
    return s;

error:
    store_free(s);
    return NULL;
}

void store_free(struct store *s)
{
    if (!s) return;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac);
    }
    if (s->ev_watch) event_free(s->ev_watch);
    if (s->ev_reconnect) event_free(s->ev_reconnect);
    if (s->ev_flush) event_free(s->ev_flush);
    if (s->ev_rd) event_free(s->ev_rd);
    if (s->ev_wr) event_free(s->ev_wr);
    while (s->free_list) {
        struct pending *p = s->free_list;
        s->free_list = p->next_free;
        free(p);
    }
    free(s);
}

int store_is_up(const struct store *s)
{
    return s->up;
}

int store_ready(const struct store *s)
{
    return s->up && s->last_pong_us &&
           clock_mono_us() - s->last_pong_us <= (long long)s->timeout_ms * 1000;
}

unsigned long long store_generation(const struct store *s)
{
    return s->st.reconnects;
}

void store_stats(const struct store *s, struct store_stats *out)
{
    *out = s->st;
    out->up = s->up;
}
