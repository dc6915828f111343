/* beacon.h -- turns a beacon (JSON body or pixel query) into a normalised hit.
 *
 * Accepts the Plausible Events API body, long or short keys:
 *   {"domain"|"d", "name"|"n", "url"|"u", "referrer"|"r", "props"|"p", "sd", "e"}
 * and two consent signals of the site's consent manager: "tc" (a TC string
 * of base64url and '.') and "analytics_storage" ("denied" or "granted").
 * and the pixel's query string d=&u=&r=&n=. What comes out holds no more than
 * the product keeps: the path, the referrer's host, the utm_* values, the
 * custom props (an object of scalars, or that object JSON-encoded in a
 * string, as the older plausible-tracker sends it) and, for Plausible's
 * "engagement" events, the scroll depth and engaged time, each bounded.
 * Parsers never read past len.
 */
#ifndef FAIRSTAT_BEACON_H
#define FAIRSTAT_BEACON_H

#include <stddef.h>
#include <stdint.h>

#include "rawhit.h"

#define BEACON_DOMAIN_MAX 253
#define BEACON_NAME_MAX 120
#define BEACON_PATH_MAX 1024
#define BEACON_URL_MAX 4096
#define BEACON_UTM_MAX 128
#define BEACON_PROPS_MAX 1024
#define BEACON_PROPS_KEYS 30
#define BEACON_ENGAGEMENT "engagement"       /* the event name that carries sd and e */
#define BEACON_SCROLL_MAX RAWHIT_SCROLL_MAX  /* sd: percent */
#define BEACON_ENGAGED_MAX_MS RAWHIT_ENGAGED_MAX_MS
#define BEACON_TC_MAX 4096          /* a TC string (collector/tcf.h) */

enum beacon_utm { UTM_SOURCE, UTM_MEDIUM, UTM_CAMPAIGN, UTM_TERM, UTM_CONTENT, UTM_COUNT };

struct beacon {
    char domain[BEACON_DOMAIN_MAX + 1];     /* lower case */
    char name[BEACON_NAME_MAX + 1];         /* "pageview" by default */
    char path[BEACON_PATH_MAX + 1];
    char host[BEACON_DOMAIN_MAX + 1];       /* the page's host, normalised */
    char referrer[BEACON_DOMAIN_MAX + 1];   /* referrer host; "" when none or self */
    char utm[UTM_COUNT][BEACON_UTM_MAX + 1];
    char props[BEACON_PROPS_MAX + 1];       /* compact JSON object, or "" */
    int engagement;                         /* name is BEACON_ENGAGEMENT: the two below */
    unsigned scroll_depth;                  /* sd, 0..BEACON_SCROLL_MAX */
    uint32_t engaged_ms;                    /* e, 0..BEACON_ENGAGED_MAX_MS */
    /* Consent signals the snippet read from the page's consent manager
     * (collector/cmp.h): never stored with the hit. */
    char tc[BEACON_TC_MAX + 1];             /* "tc": the CMP's TC string, or "" */
    size_t tc_len;
    int analytics_storage;                  /* Google Consent Mode: -1 absent, 0 denied, 1 granted */
};

enum beacon_status {
    BEACON_OK = 0,
    BEACON_BAD_JSON,            /* not JSON, bad UTF-8, duplicate keys */
    BEACON_NOT_OBJECT,
    BEACON_MISSING,             /* domain or url absent */
    BEACON_TOO_LONG,            /* a field over its limit */
    BEACON_BAD_URL,
    BEACON_BAD_FIELD,           /* wrong type or forbidden characters */
    BEACON_BAD_ENGAGEMENT,      /* an engagement without sd and e in range */
};

int beacon_parse_json(const char *buf, size_t len, struct beacon *b);
int beacon_parse_query(const char *q, size_t len, struct beacon *b);
const char *beacon_strerror(int status);

/* Parses {"domain": "...", "analytics": true|false} for POST /consent.
 * Returns BEACON_OK and fills domain (BEACON_DOMAIN_MAX + 1 bytes) and
 * *analytics. */
int beacon_parse_consent(const char *buf, size_t len, char *domain, int *analytics);

#endif
