/* url.c -- splits and decodes URLs for the beacon (see url.h). */
#include "url.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

int url_split(const char *s, size_t n, struct url_parts *out)
{
    size_t i;
    if (n >= 7 && strncasecmp(s, "http://", 7) == 0) i = 7;
    else if (n >= 8 && strncasecmp(s, "https://", 8) == 0) i = 8;
    else return -1;

    size_t auth = i;
    while (i < n && s[i] != '/' && s[i] != '?' && s[i] != '#') i++;
    size_t auth_end = i;
    /* Drop userinfo (last '@') and port (a ':' after any IPv6 ']'). */
    for (size_t k = auth; k < auth_end; k++)
        if (s[k] == '@') auth = k + 1;
    size_t host_end = auth_end;
    if (auth < auth_end && s[auth] == '[') {
        const char *rb = memchr(s + auth, ']', auth_end - auth);
        if (!rb) return -1;
        host_end = (size_t)(rb - s) + 1;
    } else {
        const char *colon = memchr(s + auth, ':', auth_end - auth);
        if (colon) host_end = (size_t)(colon - s);
    }
    if (host_end == auth) return -1;
    out->host.p = s + auth;
    out->host.n = host_end - auth;

    size_t path = i;
    while (i < n && s[i] != '?' && s[i] != '#') i++;
    out->path.p = i > path ? s + path : "/";
    out->path.n = i > path ? i - path : 1;

    out->query.p = s + i;
    out->query.n = 0;
    if (i < n && s[i] == '?') {
        size_t q = ++i;
        while (i < n && s[i] != '#') i++;
        out->query.p = s + q;
        out->query.n = i - q;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int url_decode(const char *s, size_t n, int plus, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c < 0x20 || c == 0x7f) return -1;
        if (o + 1 >= outlen) return -1;
        out[o++] = (char)c;
    }
    if (outlen == 0) return -1;
    out[o] = '\0';
    return (int)o;
}

int url_query_get(const char *q, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && q[i] != '&') i++;
        size_t end = i++;
        if (end - start > nl && memcmp(q + start, name, nl) == 0 && q[start + nl] == '=') {
            int r = url_decode(q + start + nl + 1, end - start - nl - 1, 1, out, outlen);
            return r < 0 ? -2 : r;
        }
    }
    return -1;
}

int url_host_norm(const char *h, size_t n, char *out, size_t outlen)
{
    while (n && h[n - 1] == '.') n--;
    if (n >= 4 && strncasecmp(h, "www.", 4) == 0) {
        h += 4;
        n -= 4;
    }
    if (n == 0 || n + 1 > outlen) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']'))
            return -1;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return (int)n;
}
