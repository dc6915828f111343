/* forget.c -- erasure: a visitor's buffered hits, found by receipt id.
 *
 * The work is common/erase.h's: one atomic script per site, the same one the
 * collector runs on DELETE /consent. This file picks the sites and the mode,
 * reads the salts the script's hashes need (GET fs:salt:DAY for the days
 * whose salt may be held), and sums up. With --site the receipt is marked
 * withdrawn on that site whatever is found; over every site, only where hits
 * were found or the receipt was issued. A killed `forget` leaves each site
 * either erased and recorded or untouched; running it again finishes the
 * rest.
 */
#include "forget.h"

#include <string.h>

#include "agg.h"
#include "erase.h"
#include "keys.h"
#include "log.h"

int forget_receipt_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~') return 0;
    return 1;
}

/* erase_salt_fn over the aggregator's connection: GET fs:salt:YYYYMMDD. */
static int stored_salt(void *arg, int64_t day, char *buf, size_t cap)
{
    struct agg *a = arg;
    char yyyymmdd[CLOCK_DAY_LEN + 1], key[64];
    clock_format_day(day, yyyymmdd);
    if (keys_salt(key, sizeof key, yyyymmdd) < 0) return -1;
    redisReply *r = agg_command(a, "GET %s", key);
    if (!r) return -1;
    int n = 0;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len <= cap) {
        memcpy(buf, r->str, r->len);
        n = (int)r->len;
    }
    freeReplyObject(r);
    return n;
}

/* Erases receipt on one site; *hits gets the count, *recorded 1 when the
 * receipt and audit record were written. 0, or -1 with a->err set. */
static int forget_site(struct agg *a, const struct erase_request *req, long long *hits,
                       int *recorded)
{
    struct erase_call call;
    if (erase_command(&call, req, stored_salt, a) < 0) {
        if (!a->err[0]) snprintf(a->err, sizeof a->err, "cannot build the erase of %.200s", req->site);
        return -1;
    }
    redisReply *r = agg_command_argv(a, call.argc, call.argv, call.len);
    if (!r) return -1;
    int rc = erase_reply(r, hits, recorded, NULL);
    if (rc < 0)
        snprintf(a->err, sizeof a->err, "erase on %.120s: %.100s", req->site,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

int forget_run(struct agg *a, const char *receipt, const char *site, FILE *out)
{
    long long erased = 0;
    int marked = 0;
    a->err[0] = '\0';
    int64_t now = clock_now_ms();
    for (size_t i = 0; i < a->nsites; i++) {
        struct agg_site *s = &a->sites[i];
        if (site && strcmp(site, s->name) != 0) continue;
        struct erase_request req = {.site = s->name, .receipt = receipt, .now_ms = now,
                                    .raw_max_age_ms = a->cfg->retention.raw_max_age_s * 1000LL,
                                    .mode = site ? ERASE_ALWAYS : ERASE_IF_KNOWN,
                                    .by = ERASE_BY_AGGREGATOR};
        long long n;
        int recorded;
        if (forget_site(a, &req, &n, &recorded) < 0) return -1;
        erased += n;
        marked += recorded;
    }
    log_info("forget: %lld buffered hits erased on %d sites", erased, marked);
    if (out)
        fprintf(out, "erased %lld buffered hits; receipt marked withdrawn on %d site%s\n", erased,
                marked, marked == 1 ? "" : "s");
    return 0;
}
