/* forget.c -- erasure: a visitor's buffered hits, found by receipt id.
 *
 * Salts are looked up by date (UTC today +-) rather than by SCAN: the
 * collector keeps at most yesterday's and today's, and a keyspace walk per
 * erasure would cost more than the four GETs. The stream is read in pages;
 * a hit that arrives during the walk is newer than the erasure request and
 * is not this command's to remove (the collector refuses it once the cookie
 * is cleared).
 */
#include "forget.h"

#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "keys.h"
#include "log.h"
#include "visitor.h"

#define MAX_SALTS 4

int forget_receipt_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~') return 0;
    return 1;
}

/* The salts still held: up to MAX_SALTS, copied into salt[]/saltlen[]. */
static int load_salts(struct agg *a, char salt[MAX_SALTS][256], size_t saltlen[MAX_SALTS], int *n)
{
    int64_t today = clock_now_ms() / 86400000;
    *n = 0;
    for (int64_t d = today + 1; d >= today - 2; d--) {
        char day[CLOCK_DAY_LEN + 1], key[64];
        clock_format_day(d, day);
        keys_salt(key, sizeof key, day);
        redisReply *r = agg_command(a, "GET %s", key);
        if (!r) return -1;
        if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len <= 256) {
            memcpy(salt[*n], r->str, r->len);
            saltlen[(*n)++] = r->len;
        }
        freeReplyObject(r);
    }
    return 0;
}

static const char *entry_field(const redisReply *e, const char *name)
{
    const redisReply *f = e->element[1];
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        if (f->element[i]->str && strcmp(f->element[i]->str, name) == 0) return f->element[i + 1]->str;
    return NULL;
}

/* Walks stream in pages; for each entry where match(entry) holds, calls
 * XDEL+XACK (when erase) and counts it in *n. */
static int walk(struct agg *a, const char *stream, int erase, const char *field,
                char (*values)[VISITOR_HEX_LEN + 129], int nvalues, long long *n)
{
    char start[64] = "-";
    *n = 0;
    for (;;) {
        redisReply *r = agg_command(a, "XRANGE %s %s + COUNT 1000", stream, start);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY) {
            snprintf(a->err, sizeof a->err, "XRANGE %.120s: %.100s", stream, r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            freeReplyObject(r);
            return -1;
        }
        size_t k = r->elements;
        for (size_t i = 0; i < k; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
            const char *v = entry_field(e, field);
            int hit = 0;
            for (int j = 0; v && j < nvalues && !hit; j++) hit = strcmp(v, values[j]) == 0;
            if (!hit) continue;
            if (erase) {
                redisReply *x = agg_command(a, "XDEL %s %s", stream, e->element[0]->str);
                if (x && x->type == REDIS_REPLY_INTEGER) *n += x->integer;
                if (x) freeReplyObject(x);
                x = x ? agg_command(a, "XACK %s %s %s", stream, AGG_GROUP, e->element[0]->str) : NULL;
                if (!x) {
                    freeReplyObject(r);
                    return -1;
                }
                freeReplyObject(x);
            } else {
                (*n)++;
            }
        }
        if (k < 1000) {
            freeReplyObject(r);
            return 0;
        }
        snprintf(start, sizeof start, "(%s", r->element[k - 1]->element[0]->str);
        freeReplyObject(r);
    }
}

int forget_run(struct agg *a, const char *receipt, const char *site, FILE *out)
{
    char salt[MAX_SALTS][256];
    size_t saltlen[MAX_SALTS];
    int nsalts;
    if (load_salts(a, salt, saltlen, &nsalts) < 0) return -1;
    long long erased = 0;
    int marked = 0;
    char now[32];
    snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
    for (size_t i = 0; i < a->nsites; i++) {
        struct agg_site *s = &a->sites[i];
        if (site && strcmp(site, s->name) != 0) continue;
        char hashes[MAX_SALTS][VISITOR_HEX_LEN + 129];
        for (int j = 0; j < nsalts; j++)
            if (visitor_hash(salt[j], saltlen[j], s->name, strlen(s->name), receipt, strlen(receipt),
                             hashes[j]) < 0) {
                snprintf(a->err, sizeof a->err, "visitor hash failed");
                return -1;
            }
        long long n = 0, known = 0;
        if (walk(a, s->stream, 1, HIT_VISITOR, hashes, nsalts, &n) < 0) return -1;
        char consent[512], id[VISITOR_HEX_LEN + 129];
        snprintf(id, sizeof id, "%s", receipt);
        if (keys_consent(consent, sizeof consent, s->name) < 0) continue;
        if (!site && n == 0 && walk(a, consent, 0, RECEIPT_ID, &id, 1, &known) < 0) return -1;
        erased += n;
        if (site || n > 0 || known > 0) {
            redisReply *r = agg_command(a, "XADD %s * %s %s %s forget %s %s", consent, RECEIPT_ID,
                                        receipt, RECEIPT_ACTION, RECEIPT_TIME, now);
            if (!r) return -1;
            freeReplyObject(r);
            marked++;
        }
    }
    redisReply *r = agg_command(a, "XADD %s * action forget t %s sites %d hits %lld", KEYS_AUDIT,
                                now, marked, erased);
    if (!r) return -1;
    freeReplyObject(r);
    log_info("forget: %lld buffered hits erased on %d sites", erased, marked);
    if (out)
        fprintf(out, "erased %lld buffered hits; receipt marked withdrawn on %d site%s\n", erased,
                marked, marked == 1 ? "" : "s");
    return 0;
}
