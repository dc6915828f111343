/* rconn.c -- parses redis URLs and opens synchronous connections (rconn.h). */
#include "rconn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rconn_parse_url(const char *url, struct rconn_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7, *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (*p != '/' || n >= sizeof out->path) goto bad;
        memcpy(out->path, p, n);
        if (q) {
            char *e;
            long db = strncmp(q, "?db=", 4) == 0 ? strtol(q + 4, &e, 10) : -1;
            if (db < 0 || db > 10000 || *e) goto bad;
            out->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) goto bad;
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *ue = colon ? colon : at;
        if ((size_t)(ue - p) >= sizeof out->user) goto bad;
        memcpy(out->user, p, (size_t)(ue - p));
        if (colon) {
            if ((size_t)(at - colon - 1) >= sizeof out->pass) goto bad;
            memcpy(out->pass, colon + 1, (size_t)(at - colon - 1));
        }
        p = at + 1;
    }
    const char *hostend = end;
    const char *colon = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) goto bad;
        if ((size_t)(rb - p - 1) >= sizeof out->host) goto bad;
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        if (colon) hostend = colon;
        if ((size_t)(hostend - p) >= sizeof out->host || hostend == p) goto bad;
        memcpy(out->host, p, (size_t)(hostend - p));
    }
    if (colon) {
        char *e;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535) goto bad;
        out->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 10000) goto bad;
        out->db = (int)db;
    }
    return 0;
bad:
    snprintf(err, errlen, "redis.url: not redis://[user:pass@]host:port/db or unix:///path: '%s'", url);
    return -1;
}

redisContext *rconn_connect(const struct rconn_url *u, long timeout_ms, char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv)
                                 : redisConnectWithTimeout(u->host, u->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "cannot connect to redis: %s", c ? c->errstr : "out of memory");
        goto error;
    }
    redisSetTimeout(c, tv);
    redisReply *r;
    if (u->pass[0]) {
        r = u->user[0] ? redisCommand(c, "AUTH %s %s", u->user, u->pass)
                       : redisCommand(c, "AUTH %s", u->pass);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis AUTH failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            goto error;
        }
        freeReplyObject(r);
    }
    if (u->db) {
        r = redisCommand(c, "SELECT %d", u->db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "redis SELECT failed: %s", r ? r->str : c->errstr);
            freeReplyObject(r);
            goto error;
        }
        freeReplyObject(r);
    }
    return c;
error:
    if (c) redisFree(c);
    return NULL;
}
