/* cmp.c -- reads the consent managers' cookies and TC strings (cmp.h).
 *
 * Every parser is strict: a value it does not fully understand is
 * CMP_INVALID, never a guess. The JSON ones go through jansson with
 * duplicate keys refused; Cookiebot's JavaScript-like object and
 * OneTrust's query string have small hand-written readers here, fuzzed by
 * tests/fuzz/fuzz_cmp.c. Cookie formats, as the managers write them:
 *   cookiebot      CookieConsent={stamp:%27..%27%2Cnecessary:true%2C
 *                  preferences:false%2Cstatistics:true%2Cmarketing:false%2C
 *                  method:%27explicit%27%2Cver:1%2Cutc:1700000000000%2C
 *                  region:%27de%27}
 *   onetrust       OptanonConsent=isGpcEnabled=0&datestamp=..&version=..&
 *                  groups=C0001%3A1%2CC0002%3A0&..
 *   klaro          klaro=%7B%22fairstat%22%3Atrue%7D
 *   cookieconsent  cc_cookie=%7B%22categories%22%3A%5B%22necessary%22%5D..
 */
#include "cmp.h"
#include "consent.h"
#include "tcf.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TCF_COOKIE "euconsent-v2"

struct cmp_site {
    unsigned long purposes;     /* tcf */
    int vendor;                 /* tcf; 0 = none */
    pcre2_code *re;             /* custom */
};

struct cmp {
    const struct cfg *cfg;
    struct cmp_site *sites;     /* parallel to cfg->sites */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    char buf[CMP_VALUE_MAX + 1];    /* a URL-decoded value */
};

/* ------------------------------------------------------------------------ */
/* Shared readers                                                            */
/* ------------------------------------------------------------------------ */

int cmp_cookie(const char *h, size_t n, const char *name, const char **value, size_t *len)
{
    return consent_cookie_named(name, h, n, value, len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cmp_url_decode(const char *s, size_t n, char *out, size_t outlen, int plus)
{
    size_t o = 0;
    if (outlen < n + 1) return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (n - i < 3) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == '\0') return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return (int)o;
}

int cmp_parse_purposes(const char *s, unsigned long *mask)
{
    unsigned long m = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        if (*p < '0' || *p > '9') return -1;
        int v = 0;
        while (*p >= '0' && *p <= '9' && v <= TCF_PURPOSES) v = v * 10 + (*p++ - '0');
        if (v < 1 || v > TCF_PURPOSES || (*p && *p != ',' && *p != ' ')) return -1;
        m |= 1ul << (v - 1);
    }
    if (!m) return -1;
    *mask = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsers                                                                   */
/* ------------------------------------------------------------------------ */

/* URL-decodes a cookie value into a fresh NUL-terminated buffer of at most
 * CMP_VALUE_MAX bytes: its length, or -1. */
static int decoded(const char *v, size_t n, char *buf, int plus)
{
    if (n == 0 || n > CMP_VALUE_MAX) return -1;
    return cmp_url_decode(v, n, buf, CMP_VALUE_MAX + 1, plus);
}

static int is_ident(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* Cookiebot's object: {key:value,...}, values true, false, an integer or
 * a 'string' without quotes or backslashes inside; keys unique. */
enum cmp_verdict cmp_cookiebot(const char *v, size_t n)
{
    char buf[CMP_VALUE_MAX + 1];
    int len = decoded(v, n, buf, 0);
    if (len < 0) return CMP_INVALID;
    const char *p = buf, *end = buf + len;
    if (len == 2 && memcmp(buf, "-1", 2) == 0) return CMP_DENIED;  /* no consent asked: none given */
    if (*p++ != '{') return CMP_INVALID;
    int statistics = -1, keys = 0;
    char seen[32][24];
    while (p < end && *p != '}') {
        const char *k = p;
        while (p < end && is_ident(*p, p == k)) p++;
        size_t kn = (size_t)(p - k);
        if (kn == 0 || kn >= sizeof seen[0] || p >= end || *p++ != ':') return CMP_INVALID;
        for (int i = 0; i < keys; i++)
            if (strlen(seen[i]) == kn && memcmp(seen[i], k, kn) == 0) return CMP_INVALID;
        if (keys == (int)(sizeof seen / sizeof seen[0])) return CMP_INVALID;
        memcpy(seen[keys], k, kn);
        seen[keys++][kn] = '\0';
        int boolean = -1;
        if ((size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0) boolean = 1, p += 4;
        else if ((size_t)(end - p) >= 5 && memcmp(p, "false", 5) == 0) boolean = 0, p += 5;
        else if (p < end && *p == '\'') {
            const char *q = memchr(p + 1, '\'', (size_t)(end - p - 1));
            if (!q || memchr(p + 1, '\\', (size_t)(q - p - 1))) return CMP_INVALID;
            p = q + 1;
        } else {
            const char *d = p;
            if (p < end && *p == '-') p++;
            while (p < end && *p >= '0' && *p <= '9') p++;
            if (p == d || (p == d + 1 && *d == '-')) return CMP_INVALID;
        }
        if (kn == 10 && memcmp(k, "statistics", 10) == 0) {
            if (boolean < 0) return CMP_INVALID;
            statistics = boolean;
        }
        if (p < end && *p == ',') {
            if (++p < end && *p == '}') return CMP_INVALID;     /* a trailing comma */
        } else if (p >= end || *p != '}') {
            return CMP_INVALID;
        }
    }
    if (p >= end || *p != '}' || p + 1 != end || statistics < 0) return CMP_INVALID;
    return statistics ? CMP_GRANTED : CMP_DENIED;
}

/* OneTrust: the cookie is a query string; groups= holds "ID:0|1" items. */
enum cmp_verdict cmp_onetrust(const char *v, size_t n, const char *group)
{
    if (n == 0 || n > CMP_VALUE_MAX) return CMP_INVALID;
    for (size_t i = 0; i < n; i++)      /* every parameter well escaped, not only groups */
        if (v[i] == '%' && (n - i < 3 || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0)) return CMP_INVALID;
    const char *groups = NULL, *end = v + n;
    size_t gn = 0;
    for (const char *p = v; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e - p >= 7 && memcmp(p, "groups=", 7) == 0) {
            if (groups) return CMP_INVALID;             /* twice */
            groups = p + 7;
            gn = (size_t)(e - groups);
        }
        p = amp ? amp + 1 : end;
    }
    if (!groups) return CMP_INVALID;
    char buf[CMP_VALUE_MAX + 1];
    int len = cmp_url_decode(groups, gn, buf, sizeof buf, 1);
    if (len <= 0) return CMP_INVALID;
    size_t want = strlen(group);
    int verdict = -1;
    for (char *p = buf, *e = buf + len; p < e;) {
        char *comma = memchr(p, ',', (size_t)(e - p));
        char *ie = comma ? comma : e;
        char *colon = memchr(p, ':', (size_t)(ie - p));
        if (!colon || colon == p || ie - colon != 2 || (colon[1] != '0' && colon[1] != '1'))
            return CMP_INVALID;
        if ((size_t)(colon - p) == want && memcmp(p, group, want) == 0) {
            if (verdict >= 0) return CMP_INVALID;
            verdict = colon[1] == '1';
        }
        p = comma ? comma + 1 : e;
        if (comma && p == e) return CMP_INVALID;        /* a trailing comma */
    }
    return verdict < 0 ? CMP_DENIED : verdict ? CMP_GRANTED : CMP_DENIED;
}

static json_t *json_of(const char *v, size_t n)
{
    char buf[CMP_VALUE_MAX + 1];
    int len = decoded(v, n, buf, 0);
    if (len < 0) return NULL;
    json_t *j = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

enum cmp_verdict cmp_klaro(const char *v, size_t n, const char *service)
{
    json_t *j = json_of(v, n), *val;
    if (!j) return CMP_INVALID;
    const char *k;
    enum cmp_verdict verdict = CMP_DENIED;
    json_object_foreach(j, k, val) {
        if (!json_is_boolean(val)) {
            verdict = CMP_INVALID;
            break;
        }
        if (strcmp(k, service) == 0 && json_is_true(val)) verdict = CMP_GRANTED;
    }
    json_decref(j);
    return verdict;
}

/* v3 lists accepted categories in "categories", v2 in "level". */
enum cmp_verdict cmp_cookieconsent(const char *v, size_t n, const char *category)
{
    json_t *j = json_of(v, n);
    if (!j) return CMP_INVALID;
    json_t *list = json_object_get(j, "categories"), *item;
    if (!list) list = json_object_get(j, "level");
    enum cmp_verdict verdict = json_is_array(list) ? CMP_DENIED : CMP_INVALID;
    size_t i;
    json_array_foreach(list, i, item) {
        if (!json_is_string(item)) {
            verdict = CMP_INVALID;
            break;
        }
        if (strcmp(json_string_value(item), category) == 0) verdict = CMP_GRANTED;
    }
    json_decref(j);
    return verdict;
}

enum cmp_verdict cmp_tcf(const char *v, size_t n, unsigned long purposes, int vendor)
{
    struct tcf t;
    if (tcf_decode(v, n, &t) != TCF_OK) return CMP_INVALID;
    for (int p = 1; p <= TCF_PURPOSES; p++)
        if ((purposes >> (p - 1) & 1) && !tcf_purpose_consent(&t, p)) return CMP_DENIED;
    if (vendor && !tcf_vendor_consent(&t, vendor)) return CMP_DENIED;
    return CMP_GRANTED;
}

static enum cmp_verdict custom(struct cmp *m, const struct cmp_site *s, const char *v, size_t n)
{
    int len = decoded(v, n, m->buf, 0);
    if (len < 0) return CMP_INVALID;
    int rc = pcre2_match(s->re, (PCRE2_SPTR)m->buf, (size_t)len, 0, 0, m->md, m->mctx);
    if (rc >= 0) return CMP_GRANTED;
    return rc == PCRE2_ERROR_NOMATCH ? CMP_DENIED : CMP_INVALID;   /* a limit hit: refused */
}

/* ------------------------------------------------------------------------ */
/* Per site                                                                  */
/* ------------------------------------------------------------------------ */

struct cmp *cmp_new(const struct cfg *c, char *err, size_t errlen)
{
    struct cmp *m = calloc(1, sizeof *m);
    if (!m || !(m->sites = calloc(c->n_sites ? c->n_sites : 1, sizeof *m->sites)) ||
        !(m->md = pcre2_match_data_create(1, NULL)) || !(m->mctx = pcre2_match_context_create(NULL))) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    m->cfg = c;
    pcre2_set_match_limit(m->mctx, CMP_MATCH_LIMIT);
    pcre2_set_depth_limit(m->mctx, CMP_MATCH_LIMIT / 10);
    for (size_t i = 0; i < c->n_sites; i++) {
        const struct cfg_site *site = &c->sites[i];
        struct cmp_site *s = &m->sites[i];
        if (site->consent == CFG_CONSENT_TCF) {
            if (cmp_parse_purposes(site->tcf_purposes, &s->purposes) < 0) {
                snprintf(err, errlen, "site %s: tcf_purposes: not a list of purposes 1-24", site->name);
                goto error;
            }
            s->vendor = site->tcf_vendor && *site->tcf_vendor ? atoi(site->tcf_vendor) : 0;
        }
        if (site->consent == CFG_CONSENT_CUSTOM) {
            int code;
            PCRE2_SIZE off;
            s->re = pcre2_compile((PCRE2_SPTR)site->consent_match, PCRE2_ZERO_TERMINATED, PCRE2_UTF,
                                  &code, &off, NULL);
            if (!s->re) {
                snprintf(err, errlen, "site %s: consent_match does not compile", site->name);
                goto error;
            }
            pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE);   /* interpreted when JIT is missing */
        }
    }
    return m;

error:
    cmp_free(m);
    return NULL;
}

void cmp_free(struct cmp *m)
{
    if (!m) return;
    for (size_t i = 0; m->sites && i < m->cfg->n_sites; i++) pcre2_code_free(m->sites[i].re);
    free(m->sites);
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mctx);
    free(m);
}

static const char *cookie_name(const struct cfg_site *site)
{
    switch (site->consent) {
    case CFG_CONSENT_TCF: return TCF_COOKIE;
    case CFG_CONSENT_COOKIEBOT: return "CookieConsent";
    case CFG_CONSENT_ONETRUST: return "OptanonConsent";
    case CFG_CONSENT_KLARO: return "klaro";
    case CFG_CONSENT_COOKIECONSENT: return "cc_cookie";
    case CFG_CONSENT_CUSTOM: return site->consent_cookie;
    default: return NULL;
    }
}

enum cmp_verdict cmp_check(struct cmp *m, const struct cfg_site *site, const char *cookie,
                           size_t cookie_n, const char *tc, size_t tc_n)
{
    const struct cmp_site *s = &m->sites[site - m->cfg->sites];
    const char *v = NULL;
    size_t n = 0;
    const char *name = cookie_name(site);
    /* A TC string sent by the snippet is the CMP's own, read just now:
     * it comes before a cookie that may be stale. */
    if (site->consent == CFG_CONSENT_TCF && tc_n) return cmp_tcf(tc, tc_n, s->purposes, s->vendor);
    if (!name || cmp_cookie(cookie, cookie ? cookie_n : 0, name, &v, &n) < 0) return CMP_NONE;
    switch (site->consent) {
    case CFG_CONSENT_TCF: return cmp_tcf(v, n, s->purposes, s->vendor);
    case CFG_CONSENT_COOKIEBOT: return cmp_cookiebot(v, n);
    case CFG_CONSENT_ONETRUST: return cmp_onetrust(v, n, site->consent_group);
    case CFG_CONSENT_KLARO: return cmp_klaro(v, n, site->consent_service);
    case CFG_CONSENT_COOKIECONSENT: return cmp_cookieconsent(v, n, site->consent_category);
    case CFG_CONSENT_CUSTOM: return custom(m, s, v, n);
    default: return CMP_INVALID;
    }
}
