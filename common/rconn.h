/* rconn.h -- Redis connection settings shared by both programs.
 *
 * Parses [redis] url (redis://[user:pass@]host:port/db or unix:///path[?db=N]) and
 * opens a synchronous hiredis connection with timeouts, authenticated and on
 * the right database. The collector's asynchronous glue (collector/store.c)
 * uses the same parsed form.
 */
#ifndef FAIRSTAT_RCONN_H
#define FAIRSTAT_RCONN_H

#include <hiredis/hiredis.h>

struct rconn_url {
    char host[256];             /* empty for unix sockets */
    int port;
    char path[256];             /* unix socket path, or empty */
    char user[128];
    char pass[256];
    int db;
};

/* 0, or -1 with a message in err. */
int rconn_parse_url(const char *url, struct rconn_url *out, char *err, size_t errlen);

/* Connects, AUTHs and SELECTs. timeout_ms bounds connect and every command.
 * NULL with a message in err on failure; free with redisFree(). */
redisContext *rconn_connect(const struct rconn_url *u, long timeout_ms, char *err, size_t errlen);

#endif
