/* cmp.h -- consent from a site's own consent manager (a CMP).
 *
 * A site with `consent = tcf|cookiebot|onetrust|klaro|cookieconsent|custom`
 * has no Fairstat banner: the visitor's choice is read from what its
 * consent manager wrote, carried by the beacon request:
 *   tcf            the TC string of cookie euconsent-v2, or the one the
 *                  snippet read from the CMP's __tcfapi and sent in the
 *                  beacon's "tc" field (tcf.h); every purpose of
 *                  tcf_purposes consented (not merely on legitimate
 *                  interest), and tcf_vendor's consent when set
 *   cookiebot      cookie CookieConsent, {stamp:'..',necessary:true,
 *                  statistics:true,...} URL-encoded: statistics:true
 *   onetrust       cookie OptanonConsent, a query string whose groups=
 *                  lists GROUP:0|1: consent_group (C0002) is 1
 *   klaro          cookie klaro, URL-encoded JSON {service: bool}:
 *                  consent_service (fairstat) is true
 *   cookieconsent  cookie cc_cookie of vanilla-cookieconsent, URL-encoded
 *                  JSON: consent_category (analytics) in "categories" (v3)
 *                  or "level" (v2)
 *   custom         cookie consent_cookie, URL-decoded, matches the PCRE2
 *                  pattern consent_match
 * Anything that does not parse is no consent, as is a Cookiebot "-1" (a
 * region where Cookiebot asks nothing: Fairstat asks everywhere).
 *
 * One struct cmp per worker thread: it holds PCRE2 match data, which is not
 * thread-safe. It reads the cfg it was made from, which must outlive it.
 */
#ifndef FAIRSTAT_CMP_H
#define FAIRSTAT_CMP_H

#include <stddef.h>

#include "cfg.h"

#define CMP_VALUE_MAX 4096      /* the longest cookie a browser keeps */
#define CMP_MATCH_LIMIT 100000  /* PCRE2 match limit of consent_match */

enum cmp_verdict {
    CMP_GRANTED = 0,
    CMP_NONE,                   /* no cookie, no TC string */
    CMP_DENIED,                 /* understood: not granted */
    CMP_INVALID,                /* not understood: refused as no consent */
};

struct cmp;

/* Compiles each site's consent_match and reads tcf_purposes and tcf_vendor.
 * NULL and one line in err on failure (cfg.c has checked them already, so
 * only out of memory is expected). */
struct cmp *cmp_new(const struct cfg *c, char *err, size_t errlen);
void cmp_free(struct cmp *m);

/* The verdict of site's consent manager (site->consent is not
 * CFG_CONSENT_FAIRSTAT) for a request with this Cookie header (may be NULL)
 * and the beacon's TC string (tc_n = 0 when none); site is one of the cfg's. */
enum cmp_verdict cmp_check(struct cmp *m, const struct cfg_site *site, const char *cookie,
                           size_t cookie_n, const char *tc, size_t tc_n);

/* The parsers, exposed for tests. Each takes one raw cookie value (as sent,
 * still URL-encoded) and the name that must be granted. */
enum cmp_verdict cmp_cookiebot(const char *v, size_t n);
enum cmp_verdict cmp_onetrust(const char *v, size_t n, const char *group);
enum cmp_verdict cmp_klaro(const char *v, size_t n, const char *service);
enum cmp_verdict cmp_cookieconsent(const char *v, size_t n, const char *category);
/* purposes: bit i-1 = purpose i required; vendor 0 = none required. */
enum cmp_verdict cmp_tcf(const char *v, size_t n, unsigned long purposes, int vendor);

/* The value of cookie name in a Cookie header, quotes removed: 0, or -1
 * when there is none. */
int cmp_cookie(const char *header, size_t n, const char *name, const char **value, size_t *len);

/* Percent-decodes s[0..n) into out (outlen >= n + 1), '+' as a space when
 * plus is set. Its length, or -1 for a bad escape or a NUL. */
int cmp_url_decode(const char *s, size_t n, char *out, size_t outlen, int plus);

/* "1,8" -> bits 0 and 7; -1 when an item is not a purpose 1..24. */
int cmp_parse_purposes(const char *s, unsigned long *mask);

#endif
