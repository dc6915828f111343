/* erase.h -- a visitor's withdrawal and erasure, by receipt id, in one atomic
 * step whose cost does not grow with the backlog.
 *
 * Both programs erase: the collector on DELETE /consent (and counts on GET
 * /consent), the aggregator on `forget`. The raw hits hold no receipt id, only
 * the visitor hash of (site, receipt) under the salt of the day they arrived
 * (visitor.h), so an erasure hashes the receipt under every salt that may
 * still be held (keys.h, KEYS_SALT_FIRST_HELD..KEYS_SALT_LAST_HELD) and one
 * script (erase.lua) does the rest inside Redis:
 *
 *   - it adds those hashes to the site's withdrawn set (fs:{S}:withdrawn,
 *     score = when the entry may go: once no raw hit of that day can be held,
 *     retention.raw_max_age after the day) and raises fs:{S}:withdrawn:gen;
 *     the fold drops every hit of a withdrawn visitor uncounted and deletes it
 *     with its range (fold.h), and purge deletes any left at raw_max_age;
 *   - it deletes at once the visitor's hits among the newest ERASE_SCAN
 *     entries of the stream (all of them when the aggregator keeps up), and
 *     their visit states (fs:{S}:v:DAY);
 *   - it writes the withdrawal receipt to fs:{S}:consent and one fs:audit
 *     record.
 *
 * No step walks the stream past ERASE_SCAN entries, so a withdrawal costs
 * Redis the same with 10 or 500,000 hits waiting. GET /consent counts within
 * the same bound and says whether the count covers the whole backlog. A script
 * runs to its end before Redis serves anyone else and is logged to the AOF as
 * one block: whoever dies when, either all of it happened or none of it did.
 *
 * This module does no I/O: erase_command() builds the command, the caller
 * sends it (the collector asynchronously, the aggregator synchronously), and
 * erase_reply() reads the answer.
 *
 * The fs:audit record, one per site erased on: action ("withdraw" from the
 * collector, "forget" from the aggregator), by ("collector" | "aggregator"),
 * site, hits (how many were erased at once; the fold writes its own record,
 * action "drop", for those it drops later), t (ms) -- counts only, never the
 * receipt id or a visitor hash. (fs:audit is outside the site's hash slot: on
 * Redis Cluster the record would have to move to a per-site stream.)
 */
#ifndef FAIRSTAT_ERASE_H
#define FAIRSTAT_ERASE_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "rawhit.h"
#include "visitor.h"

/* What the script does (ARGV[ERASE_ARG_MODE]). */
enum erase_mode {
    ERASE_COUNT = 0,      /* count the hits, change nothing (GET /consent) */
    ERASE_ALWAYS = 1,     /* erase, then write receipt and audit record (DELETE /consent,
                             forget --site S) */
    ERASE_IF_KNOWN = 2,   /* erase; write receipt and audit record only when hits were
                             found or the receipt is in the site's consent stream (forget
                             over every site) */
};

/* Who asks: sets the receipt's action and the audit record's action and by. */
enum erase_by {
    ERASE_BY_COLLECTOR,   /* a=withdraw, by=collector */
    ERASE_BY_AGGREGATOR,  /* a=forget, by=aggregator */
};

/* The script's KEYS and ARGV positions (Lua counts from 1). ARGV from
 * ERASE_ARG_HASHES on are (visitor hash, withdrawn-set expiry ms) pairs, one
 * per salt held; KEYS from ERASE_KEY_VISITS on are the visit-state hashes of
 * the same days, in the same order. */
enum erase_lua_slots {
    ERASE_KEY_HITS = 1,       /* fs:{S}:hits */
    ERASE_KEY_CONSENT = 2,    /* fs:{S}:consent */
    ERASE_KEY_AUDIT = 3,      /* fs:audit */
    ERASE_KEY_WITHDRAWN = 4,  /* fs:{S}:withdrawn */
    ERASE_KEY_GEN = 5,        /* fs:{S}:withdrawn:gen */
    ERASE_KEY_VISITS = 6,     /* fs:{S}:v:YYYYMMDD, one per hash */
    ERASE_NKEYS = 5,          /* before the visit-state keys */
    ERASE_ARG_MODE = 1,
    ERASE_ARG_RECEIPT = 2,
    ERASE_ARG_TIME = 3,       /* ms since the epoch */
    ERASE_ARG_SITE = 4,
    ERASE_ARG_ACTION = 5,     /* "withdraw" | "forget" */
    ERASE_ARG_BY = 6,         /* "collector" | "aggregator" */
    ERASE_ARG_HASHES = 7,
    ERASE_PAGE = 500,         /* consent entries read per XRANGE (forget only) */
    ERASE_SCAN = 100,         /* newest raw entries a call looks at, at most */
};

/* The constants erase.lua is built with (common/gen/luagen.c). */
#define ERASE_LUA_INTS(X)                                                                   \
    X(ERASE_COUNT) X(ERASE_ALWAYS) X(ERASE_IF_KNOWN) X(ERASE_KEY_HITS) X(ERASE_KEY_CONSENT) \
    X(ERASE_KEY_AUDIT) X(ERASE_ARG_MODE) X(ERASE_ARG_RECEIPT) X(ERASE_ARG_TIME)             \
    X(ERASE_ARG_SITE) X(ERASE_ARG_ACTION) X(ERASE_ARG_BY) X(ERASE_ARG_HASHES) X(ERASE_PAGE)   \
    X(ERASE_KEY_WITHDRAWN) X(ERASE_KEY_GEN) X(ERASE_KEY_VISITS) X(ERASE_SCAN)                \
    X(RAWHIT_VISITOR_AT) X(RAWHIT_VISITOR_LEN) X(RAWHIT_VERSION)
#define ERASE_LUA_STRINGS(X)                                                                \
    X(KEYS_GROUP) X(HIT_VISITOR) X(RAWHIT_FIELD) X(RECEIPT_ID) X(RECEIPT_ACTION)            \
    X(RECEIPT_CHOICE) X(RECEIPT_TIME)

/* Salts that may be held: one hash each. */
#define ERASE_MAX_SALTS (KEYS_SALT_LAST_HELD - KEYS_SALT_FIRST_HELD + 1)
/* The longest salt accepted from a salt_fn. */
#define ERASE_SALT_MAX 256
#define ERASE_ARGC_MAX (3 + ERASE_NKEYS + ERASE_MAX_SALTS + ERASE_ARG_HASHES - 1 + 2 * ERASE_MAX_SALTS)

/* Copies the salt of `day` (days since 1970-01-01 UTC) into buf (cap bytes).
 * Its length, 0 when that salt is not held, -1 on an error (the caller's to
 * report). */
typedef int (*erase_salt_fn)(void *arg, int64_t day, char *buf, size_t cap);

struct erase_request {
    const char *site;       /* borrowed, NUL-terminated */
    const char *receipt;    /* borrowed, NUL-terminated */
    int64_t now_ms;         /* picks the salts and stamps receipt and audit record */
    int64_t raw_max_age_ms; /* retention.raw_max_age: how long a withdrawn visitor is kept */
    enum erase_mode mode;
    enum erase_by by;
};

/* One command ready to send: argv[0..argc) with their lengths. */
struct erase_call {
    int argc;
    const char *argv[ERASE_ARGC_MAX];
    size_t len[ERASE_ARGC_MAX];
    int nhashes;            /* salts found (visitor hashes sent) */
    /* storage argv points into */
    char hits_key[320], consent_key[320], withdrawn_key[320], gen_key[320];
    char time[24], mode[4], nkeys[12];
    char hashes[ERASE_MAX_SALTS][VISITOR_HEX_LEN + 1];
    char expires[ERASE_MAX_SALTS][24];
    char visits_keys[ERASE_MAX_SALTS][320];
};

/* Fills out with the EVAL of erase.lua for req, asking salt(arg, day, ...)
 * for every day whose salt may be held at req->now_ms. out->argv points into
 * out itself and into req's site and receipt: valid while both live (hiredis
 * copies a command when it is sent). 0, or -1 when salt() failed, a key does
 * not fit or a hash cannot be computed. */
int erase_command(struct erase_call *out, const struct erase_request *req, erase_salt_fn salt,
                  void *arg);

/* Reads the script's answer: *hits = hits counted (or erased at once),
 * *recorded = 1 when the receipt and audit record were written, *complete = 1
 * when the count covers the whole backlog (the stream held at most ERASE_SCAN
 * entries); any may be NULL. 0, or -1 when reply is NULL, an error or not the
 * script's answer. */
struct redisReply;
int erase_reply(const struct redisReply *reply, long long *hits, int *recorded, int *complete);

#endif
