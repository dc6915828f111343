/* consent.h -- decides whether a hit may be stored.
 *
 * The native consent cookie is
 *     1.<a>.<issued>.<receipt>.<mac>
 * version 1; a = 1 analytics allowed, 0 declined; issued = Unix seconds;
 * receipt = 22 chars of base64url (16 random bytes), the id of the visitor's
 * receipt in fs:{site}:consent; mac = base64url HMAC-SHA256, keyed with
 * consent.secret (or one of consent.previous_secrets, so a rotated secret
 * keeps old cookies valid), over
 *     site "\n" policy_version "\n" everything before the last dot
 * so a cookie is consent for one site and one policy version only.
 * Expired, tampered, malformed or unsigned cookies count as no consent.
 * Each site has its own cookie name and domain (cfg_site.cookie,
 * .cookie_domain): a choice on one site never touches another's. The
 * cookie is not HttpOnly: the snippet reads field a to know a choice exists.
 *
 * One struct consent per worker thread: it holds keyed MAC contexts that are
 * reused per request and are not thread-safe.
 */
#ifndef FAIRSTAT_CONSENT_H
#define FAIRSTAT_CONSENT_H

#include <stddef.h>

#include "cfg.h"

#define CONSENT_RECEIPT_LEN 22
#define CONSENT_COOKIE_MAX 128

enum consent_verdict {
    CONSENT_GRANTED = 0,
    CONSENT_NONE,               /* no cookie */
    CONSENT_DENIED,             /* valid cookie, analytics declined */
    CONSENT_INVALID,            /* malformed or bad signature */
    CONSENT_EXPIRED,
    CONSENT_WITHDRAWN,          /* valid, but its receipt was withdrawn (revoke.h) */
};

struct consent_cookie {
    int analytics;
    long long issued;
    char receipt[CONSENT_RECEIPT_LEN + 1];
};

struct consent;

/* NULL when the secret is missing or the crypto library fails. The cfg
 * must outlive the returned struct. */
struct consent *consent_new(const struct cfg *c);
void consent_free(struct consent *k);

/* Finds site's own cookie (site->cookie) in a Cookie header and verifies
 * it for site. Another site's cookie is never looked at. Fills out (when
 * not NULL) for CONSENT_GRANTED and CONSENT_DENIED. */
enum consent_verdict consent_check(struct consent *k, const struct cfg_site *site,
                                   const char *cookie_header, size_t n,
                                   long long now, struct consent_cookie *out);

/* Finds site's cookie's value in a Cookie header (quotes removed). 0 with
 * value and len set, or -1 when the header has no such cookie. */
/* The value of cookie `name` in a Cookie header h[0..n) (surrounding quotes
 * dropped): 0, or -1 when absent. The one cookie reader, for our cookie and
 * the consent managers' (cmp.c). */
int consent_cookie_named(const char *name, const char *h, size_t n, const char **value, size_t *len);
int consent_find(const struct cfg_site *site, const char *cookie_header, size_t n,
                 const char **value, size_t *len);

/* Verifies one cookie value (what follows "name=") for site. */
enum consent_verdict consent_verify(struct consent *k, const char *site, const char *value,
                                    size_t n, long long now, struct consent_cookie *out);

/* Writes the signed cookie value of a choice on site; its length or -1. */
int consent_issue(struct consent *k, const char *site, int analytics, long long issued,
                  const char *receipt, char *out, size_t outlen);

/* How long a cookie, and so its receipt, counts: consent.max_age_days in
 * seconds. */
long long consent_max_age_s(const struct cfg *c);

/* A fresh random receipt id (CONSENT_RECEIPT_LEN chars + NUL). 0 or -1. */
int consent_new_receipt(char out[CONSENT_RECEIPT_LEN + 1]);

/* The browser's own refusal, when honoured: "gpc", "dnt" or NULL. A header
 * counts when its value, or any of its comma-separated elements (a proxy
 * merges repeated headers: "1, 1"), is "1", spaces allowed around it. */
const char *consent_signal(const struct cfg *c, const char *gpc, size_t gpc_n,
                           const char *dnt, size_t dnt_n);

#endif
