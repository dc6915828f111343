/* auth.c -- tokens, sessions and share links (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

struct token {
    unsigned char sha[32];
    char *site;                 /* NULL: every site */
};

struct session {
    unsigned char id[32];
    int64_t expires_ms;         /* 0: free slot */
    char *scope;                /* NULL: every site */
};

struct auth {
    const struct cfg *cfg;
    struct token *tokens;
    size_t ntokens;
    struct session sessions[AUTH_SESSION_MAX];
};

static int sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

static int unhex(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

static void tohex(const unsigned char *p, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[p[i] >> 4];
        out[2 * i + 1] = hexd[p[i] & 15];
    }
    out[2 * n] = '\0';
}

#define TOKENS_FILE_MAX (1 << 20)

/* The entries of a tokens file: separated by commas or white space, '#'
 * comments to the end of a line. Malloc'd, NULL with err. */
static char *read_tokens_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf = f ? malloc(TOKENS_FILE_MAX + 1) : NULL;
    size_t n = buf ? fread(buf, 1, TOKENS_FILE_MAX + 1, f) : 0;
    if (!f || !buf || ferror(f) || n > TOKENS_FILE_MAX) {
        snprintf(err, errlen, "serve.tokens: %s: %s", path, !f ? strerror(errno) : "cannot read (at most 1 MiB)");
        if (f) fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    for (char *p = buf; *p; p++) {
        if (*p == '#')
            while (*p && *p != '\n') *p++ = ' ';
        if (*p == '\n' || *p == '\r') *p = ' ';
        if (!*p) break;
    }
    return buf;
}

struct auth *auth_new(const struct cfg *cfg, char *err, size_t errlen)
{
    struct auth *a = calloc(1, sizeof *a);
    char *file = NULL;
    if (!a) goto oom;
    a->cfg = cfg;
    const char *v = cfg->serve.tokens ? cfg->serve.tokens : "";
    if (strncmp(v, "file:", 5) == 0 && !(v = file = read_tokens_file(v + 5, err, errlen))) goto error;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        size_t n = strcspn(v, ", \t");
        if (!n) break;
        if (n < 71 || strncmp(v, "sha256:", 7) != 0) {
            snprintf(err, errlen, "serve.tokens: not sha256:HEX[@SITE]: '%.*s'", (int)(n > 80 ? 80 : n), v);
            goto error;
        }
        struct token *t = realloc(a->tokens, (a->ntokens + 1) * sizeof *t);
        if (!t) goto oom;
        a->tokens = t;
        t = &a->tokens[a->ntokens++];
        t->site = NULL;
        if (unhex(v + 7, 32, t->sha) < 0) {
            snprintf(err, errlen, "serve.tokens: not hex: '%.*s'", (int)(n > 80 ? 80 : n), v);
            goto error;
        }
        if (n > 71 && (v[71] != '@' || n == 72)) {
            snprintf(err, errlen, "serve.tokens: not sha256:HEX[@SITE]: '%.*s'", (int)(n > 80 ? 80 : n), v);
            goto error;
        }
        if (n > 72 && !(t->site = strndup(v + 72, n - 72))) goto oom;
        v += n;
    }
    free(file);
    return a;
oom:
    snprintf(err, errlen, "out of memory");
error:
    free(file);
    auth_free(a);
    return NULL;
}

void auth_free(struct auth *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->ntokens; i++) free(a->tokens[i].site);
    free(a->tokens);
    for (size_t i = 0; i < AUTH_SESSION_MAX; i++) free(a->sessions[i].scope);
    free(a);
}

int auth_token(const struct auth *a, const char *tok, size_t n, const char **scope)
{
    unsigned char h[32];
    if (n == 0 || n > 512 || sha256(tok, n, h) < 0) return 0;
    int found = 0;
    /* every entry compared, whatever matched, each in constant time */
    for (size_t i = 0; i < a->ntokens; i++) {
        int eq = CRYPTO_memcmp(h, a->tokens[i].sha, 32) == 0;
        if (eq && !found) {
            found = 1;
            *scope = a->tokens[i].site;
        }
    }
    return found;
}

const char *auth_bearer(const char *hdr, size_t n, size_t *len)
{
    if (!hdr || n < 7 || strncasecmp(hdr, "Bearer ", 7) != 0) return NULL;
    hdr += 7;
    n -= 7;
    while (n && *hdr == ' ') hdr++, n--;
    while (n && (hdr[n - 1] == ' ' || hdr[n - 1] == '\t')) n--;
    *len = n;
    return hdr;
}

int auth_share(const struct auth *a, const char *site, const char *secret, size_t n)
{
    const struct cfg_site *s = cfg_site_find(a->cfg, site, strlen(site));
    unsigned char want[32], got[32];
    if (!s || !s->share || strlen(s->share) != 71 || unhex(s->share + 7, 32, want) < 0) return 0;
    if (n == 0 || n > 512 || sha256(secret, n, got) < 0) return 0;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

int auth_session_new(struct auth *a, const char *scope, int64_t now_ms, char value[65])
{
    struct session *slot = &a->sessions[0];
    for (size_t i = 0; i < AUTH_SESSION_MAX; i++) {
        struct session *s = &a->sessions[i];
        if (s->expires_ms <= now_ms) {      /* free or expired */
            slot = s;
            break;
        }
        if (s->expires_ms < slot->expires_ms) slot = s;
    }
    char *copy = scope ? strdup(scope) : NULL;
    if (scope && !copy) return -1;
    if (getrandom(slot->id, sizeof slot->id, 0) != (ssize_t)sizeof slot->id) {
        free(copy);
        return -1;
    }
    free(slot->scope);
    slot->scope = copy;
    slot->expires_ms = now_ms + (int64_t)a->cfg->serve.session_ttl_s * 1000;
    tohex(slot->id, sizeof slot->id, value);
    return 0;
}

/* The session id of the AUTH_COOKIE cookie in a Cookie header; 0 or -1. */
static int cookie_id(const char *c, size_t n, unsigned char id[32])
{
    static const char name[] = AUTH_COOKIE "=";
    const size_t k = sizeof name - 1;
    size_t i = 0;
    while (i < n) {
        while (i < n && (c[i] == ' ' || c[i] == ';')) i++;
        size_t end = i;
        while (end < n && c[end] != ';') end++;
        if (end - i == k + 64 && memcmp(c + i, name, k) == 0) return unhex(c + i + k, 32, id);
        i = end;
    }
    return -1;
}

static struct session *session_of(struct auth *a, const char *cookie, size_t n, int64_t now_ms)
{
    unsigned char id[32];
    struct session *found = NULL;
    if (!cookie || cookie_id(cookie, n, id) < 0) return NULL;
    for (size_t i = 0; i < AUTH_SESSION_MAX; i++) {
        struct session *s = &a->sessions[i];
        if (CRYPTO_memcmp(s->id, id, 32) == 0 && s->expires_ms > now_ms && !found) found = s;
    }
    return found;
}

int auth_session_find(struct auth *a, const char *cookie, size_t n, int64_t now_ms, const char **scope)
{
    struct session *s = session_of(a, cookie, n, now_ms);
    if (!s) return 0;
    *scope = s->scope;
    return 1;
}

void auth_session_end(struct auth *a, const char *cookie, size_t n)
{
    struct session *s = session_of(a, cookie, n, 0);
    if (!s) return;
    free(s->scope);
    memset(s, 0, sizeof *s);
}

int auth_allows(const char *scope, const char *site)
{
    return !scope || strcmp(scope, site) == 0;
}

int auth_token_generate(char token[64], char sha_hex[65])
{
    unsigned char raw[AUTH_TOKEN_BYTES], h[32];
    unsigned char b64[64];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) return -1;
    int n = EVP_EncodeBlock(b64, raw, sizeof raw);      /* 44 chars with one '=' */
    int k = 0;
    for (int i = 0; i < n && b64[i] != '='; i++)
        token[k++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    token[k] = '\0';
    if (sha256(token, (size_t)k, h) < 0) return -1;
    tohex(h, 32, sha_hex);
    return 0;
}
