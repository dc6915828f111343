/* ua.h -- User-Agent classification and bot filter for the collector.
 *
 * Names the browser family, OS family and device class of a hit and says whether
 * it comes from a bot, using uap-core's rules and the crawler-user-agents list
 * (compiled from collector/ua_data.inc; see scripts/gen-ua-data.mjs). Only these
 * coarse families leave the collector; the User-Agent itself is never stored or
 * logged.
 *
 * One struct ua per worker thread: it holds the PCRE2 match state and a small
 * result cache, and is not safe to share. The compiled rules behind it are shared
 * by every struct ua of the process, so a second ua_new() is cheap.
 */
#ifndef FAIRSTAT_UA_H
#define FAIRSTAT_UA_H

#include <stddef.h>

/* Only the first UA_MAX_LEN bytes of a User-Agent are looked at: the cap
 * bounds the regex work per distinct string and the cache entry size. A miss
 * runs every rule that does not match over the whole string, so its cost
 * grows with the length: measured with bench/ua_cost.c (CPU time), distinct
 * crafted strings cost about 2x a distinct real one at 256 bytes, 2-3.5x at
 * 512. Real ones are shorter (uap-core's 1,717 test strings: median 141
 * bytes, longest 276, whose first 256 bytes classify it the same). */
#define UA_MAX_LEN 256

struct ua_info {
    char browser[32];   /* uap-core family, e.g. "Firefox", "Chrome Mobile"; "Other" */
    char os[32];        /* uap-core OS family, e.g. "Windows", "iOS"; "Other" */
    char device[8];     /* "desktop" | "mobile" | "tablet" | "other" */
    int bot;            /* 1: crawler, spider, monitor or empty User-Agent */
};

struct ua;

/* Compiles the rules (first call in the process, about 100 ms; later calls
 * share them) and makes a cache of cache_entries results, rounded down to a
 * power of two and capped at 2^20 (0 = no cache). The cache costs about
 * cache_entries * (UA_MAX_LEN + 96) bytes, e.g. 1.4 MB for 4096. Returns NULL
 * and a message in err on failure. Free with ua_free(). */
struct ua *ua_new(size_t cache_entries, char *err, size_t errlen);

/* Frees u; the shared rules go with the last struct ua. NULL is allowed. */
void ua_free(struct ua *u);

/* Classifies the len bytes at s (any bytes: NULs, non-UTF-8; never read past
 * len). Never NULL. The result is owned by u and valid until the next
 * ua_classify() on the same u. Every output string is NUL-terminated, valid
 * UTF-8 without control characters. */
const struct ua_info *ua_classify(struct ua *u, const char *s, size_t len);

#endif
