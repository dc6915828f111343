/* consent.c -- verifies and issues the signed consent cookie (consent.h).
 *
 * HMAC-SHA256 comes from OpenSSL's EVP_MAC. Each secret gets one keyed
 * context at start; EVP_MAC_init() with a NULL key re-arms it with the same
 * key, which saves the key schedule on every request. Signatures are
 * compared with CRYPTO_memcmp so timing tells an attacker nothing.
 */
#include "consent.h"
#include "clock.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAC_LEN 32
#define MAC_B64_LEN 43
#define MAX_KEYS 8

struct consent {
    const struct cfg *cfg;
    EVP_MAC *mac;
    EVP_MAC_CTX *ctx[MAX_KEYS];     /* [0] current secret, then previous ones */
    int n;
};

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

struct consent *consent_new(const struct cfg *c)
{
    if (!c->consent.secret) return NULL;
    struct consent *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->cfg = c;
    k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!k->mac) goto error;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    for (size_t i = 0; i <= c->consent.n_previous && i < MAX_KEYS; i++) {
        const unsigned char *key = i == 0 ? c->consent.secret : c->consent.previous_secrets[i - 1];
        size_t len = i == 0 ? c->consent.secret_len : c->consent.previous_lens[i - 1];
        k->ctx[i] = EVP_MAC_CTX_new(k->mac);
        if (!k->ctx[i] || !EVP_MAC_init(k->ctx[i], key, len, params)) goto error;
        k->n++;
    }
    return k;

error:
    consent_free(k);
    return NULL;
}

void consent_free(struct consent *k)
{
    if (!k) return;
    for (int i = 0; i < MAX_KEYS; i++) EVP_MAC_CTX_free(k->ctx[i]);
    EVP_MAC_free(k->mac);
    free(k);
}

/* The MAC covers the site and the policy version too, though neither is in
 * the cookie: consent given on one site is no consent on another, and a new
 * policy version asks everyone again. */
static int sign(struct consent *k, int key, const char *site, size_t sitelen,
                const char *msg, size_t n, char out[MAC_B64_LEN + 1])
{
    unsigned char mac[MAC_LEN];
    size_t maclen = 0;
    EVP_MAC_CTX *ctx = k->ctx[key];
    const char *pv = k->cfg->consent.policy_version;
    if (!EVP_MAC_init(ctx, NULL, 0, NULL) ||
        !EVP_MAC_update(ctx, (const unsigned char *)site, sitelen) ||
        !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)pv, strlen(pv)) ||
        !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)msg, n) ||
        !EVP_MAC_final(ctx, mac, &maclen, sizeof mac) || maclen != MAC_LEN)
        return -1;
    b64url_encode(mac, MAC_LEN, out);
    return 0;
}

int consent_new_receipt(char out[CONSENT_RECEIPT_LEN + 1])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return -1;
    b64url_encode(raw, sizeof raw, out);
    return 0;
}

int consent_issue(struct consent *k, const char *site, int analytics, long long issued,
                  const char *receipt, char *out, size_t outlen)
{
    char mac[MAC_B64_LEN + 1];
    int n = snprintf(out, outlen, "1.%d.%lld.%s", analytics ? 1 : 0, issued, receipt);
    if (n < 0 || (size_t)n + 1 + MAC_B64_LEN + 1 > outlen) return -1;
    if (sign(k, 0, site, strlen(site), out, (size_t)n, mac) < 0) return -1;
    out[n] = '.';
    memcpy(out + n + 1, mac, MAC_B64_LEN + 1);
    return n + 1 + MAC_B64_LEN;
}

static int is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

enum consent_verdict consent_verify(struct consent *k, const char *site, const char *v,
                                    size_t n, long long now, struct consent_cookie *out)
{
    /* 1.<a>.<issued>.<receipt>.<mac>: five fields, fixed shapes. */
    if (n > CONSENT_COOKIE_MAX || n < 2 + 2 + 2 + CONSENT_RECEIPT_LEN + 1 + MAC_B64_LEN)
        return CONSENT_INVALID;
    if (v[0] != '1' || v[1] != '.' || (v[2] != '0' && v[2] != '1') || v[3] != '.')
        return CONSENT_INVALID;
    size_t i = 4;
    long long issued = 0;
    size_t digits = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9' && digits < 12) {
        issued = issued * 10 + (v[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0 || i >= n || v[i] != '.') return CONSENT_INVALID;
    size_t rid = ++i;
    if (rid + CONSENT_RECEIPT_LEN + 1 + MAC_B64_LEN != n) return CONSENT_INVALID;
    if (!is_b64url(v + rid, CONSENT_RECEIPT_LEN) || v[rid + CONSENT_RECEIPT_LEN] != '.')
        return CONSENT_INVALID;
    size_t signed_len = rid + CONSENT_RECEIPT_LEN;
    const char *given = v + signed_len + 1;

    int ok = 0;
    for (int key = 0; key < k->n && !ok; key++) {
        char mac[MAC_B64_LEN + 1];
        if (sign(k, key, site, strlen(site), v, signed_len, mac) < 0) return CONSENT_INVALID;
        ok = CRYPTO_memcmp(mac, given, MAC_B64_LEN) == 0;
    }
    if (!ok) return CONSENT_INVALID;

    if (issued > now + 300) return CONSENT_INVALID;    /* from the future: forged clock */
    if (now - issued > consent_max_age_s(k->cfg)) return CONSENT_EXPIRED;
    if (out) {
        out->analytics = v[2] == '1';
        out->issued = issued;
        memcpy(out->receipt, v + rid, CONSENT_RECEIPT_LEN);
        out->receipt[CONSENT_RECEIPT_LEN] = '\0';
    }
    return v[2] == '1' ? CONSENT_GRANTED : CONSENT_DENIED;
}

long long consent_max_age_s(const struct cfg *c)
{
    return (long long)c->consent.max_age_days * CLOCK_DAY_S;
}

int consent_cookie_named(const char *name, const char *h, size_t n, const char **value, size_t *len)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (h && i < n) {
        while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == ';')) i++;
        size_t start = i;
        const char *semi = memchr(h + i, ';', n - i);    /* a cookie is ~100 bytes */
        i = semi ? (size_t)(semi - h) : n;
        size_t end = i;
        while (end > start && (h[end - 1] == ' ' || h[end - 1] == '\t')) end--;
        if (end - start > nl && memcmp(h + start, name, nl) == 0 && h[start + nl] == '=') {
            const char *v = h + start + nl + 1;
            size_t vn = end - start - nl - 1;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            *value = v;
            *len = vn;
            return 0;
        }
    }
    return -1;
}

int consent_find(const struct cfg_site *site, const char *h, size_t n,
                 const char **value, size_t *len)
{
    return consent_cookie_named(site->cookie, h, n, value, len);
}

enum consent_verdict consent_check(struct consent *k, const struct cfg_site *site, const char *h,
                                   size_t n, long long now, struct consent_cookie *out)
{
    const char *v;
    size_t vn;
    if (consent_find(site, h, n, &v, &vn) < 0) return CONSENT_NONE;
    return consent_verify(k, site->name, v, vn, now, out);
}

/* A proxy that merges repeated headers joins them with commas ("1, 1"):
 * the signal is on when any element is "1". */
static int is_one(const char *s, size_t n)
{
    while (n) {
        const char *comma = memchr(s, ',', n);
        size_t len = comma ? (size_t)(comma - s) : n, e = len;
        const char *b = s;
        while (e && (*b == ' ' || *b == '\t')) b++, e--;
        while (e && (b[e - 1] == ' ' || b[e - 1] == '\t')) e--;
        if (e == 1 && b[0] == '1') return 1;
        if (!comma) break;
        s = comma + 1;
        n -= len + 1;
    }
    return 0;
}

const char *consent_signal(const struct cfg *c, const char *gpc, size_t gpc_n,
                           const char *dnt, size_t dnt_n)
{
    if (c->consent.honor_gpc && gpc && is_one(gpc, gpc_n)) return "gpc";
    if (c->consent.honor_dnt && dnt && is_one(dnt, dnt_n)) return "dnt";
    return NULL;
}
