/* salt.c -- keeps the daily salts in memory, loaded from Redis (salt.h). */
#include "salt.h"
#include "clock.h"
#include "keys.h"
#include "rconn.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SLOTS 3

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int64_t day;
    char hex[SALT_HEX_LEN + 1];
} slots[SLOTS];

static int fetch(redisContext *rc, int64_t day, int create, char out[SALT_HEX_LEN + 1])
{
    char key[32], ds[CLOCK_DAY_LEN + 1];
    clock_format_day(day, ds);
    keys_salt(key, sizeof key, ds);
    if (create) {
        unsigned char raw[SALT_HEX_LEN / 2];
        char hex[SALT_HEX_LEN + 1];
        if (RAND_bytes(raw, sizeof raw) != 1) return -1;
        for (size_t i = 0; i < sizeof raw; i++) sprintf(hex + 2 * i, "%02x", raw[i]);
        long long exat = (long long)(keys_salt_expires_ms(day) / 1000);
        redisReply *r = redisCommand(rc, "SET %s %s NX EXAT %lld", key, hex, exat);
        if (!r) return -1;
        freeReplyObject(r);
    }
    redisReply *r = redisCommand(rc, "GET %s", key);
    if (!r) return -1;
    int rc2 = -1;
    if (r->type == REDIS_REPLY_STRING && r->len == SALT_HEX_LEN) {
        memcpy(out, r->str, SALT_HEX_LEN + 1);
        rc2 = 0;
    }
    freeReplyObject(r);
    return rc2;
}

int salt_refresh(const struct cfg *c, char *err, size_t errlen)
{
    struct rconn_url u;
    if (rconn_parse_url(c->redis.url, &u, err, errlen) < 0) return -1;
    redisContext *rc = rconn_connect(&u, c->collector.redis_timeout_ms, err, errlen);
    if (!rc) return -1;
    int64_t today = clock_utc_today();
    int ok = 0;
    for (int i = 0; i < SLOTS; i++) {
        int64_t day = today - 1 + i;
        char hex[SALT_HEX_LEN + 1];
        /* Yesterday's is only read: if it is gone, it stays gone. */
        if (fetch(rc, day, day >= today, hex) < 0) {
            if (day == today) ok = -1;
            continue;
        }
        pthread_mutex_lock(&lock);
        slots[day % SLOTS].day = day;
        memcpy(slots[day % SLOTS].hex, hex, sizeof hex);
        pthread_mutex_unlock(&lock);
    }
    if (ok < 0) snprintf(err, errlen, "cannot create or read today's salt: %s", rc->err ? rc->errstr : "bad reply");
    redisFree(rc);
    return ok;
}

int salt_get(int64_t day, char out[SALT_HEX_LEN + 1])
{
    int rc = -1;
    pthread_mutex_lock(&lock);
    if (day >= 0 && slots[day % SLOTS].day == day && slots[day % SLOTS].hex[0]) {
        memcpy(out, slots[day % SLOTS].hex, SALT_HEX_LEN + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
