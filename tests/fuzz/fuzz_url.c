/* fuzz_url.c -- libFuzzer target for the URL toolkit (collector/url.c) as
 * the beacon's page URL and referrer go through it: url_split, then
 * url_host_norm on the host, url_query_get on the query, url_decode.
 *
 * Beyond the sanitizers: every span lies inside the input, a path starts
 * with '/', a normalised host is lower case, has no trailing dot and (unless
 * it still starts with "www.") normalises to itself, a decoded value fits its buffer
 * and is NUL-terminated at its length. The input is libFuzzer's exact-size
 * buffer, so any read past len is an ASan report. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *s, size_t n, struct url_span sp)
{
    if (sp.n && (sp.p < s || sp.p + sp.n > s + n)) __builtin_trap();
}

static void check_host(const char *h, size_t n)
{
    char out[256], again[256];
    int len = url_host_norm(h, n, out, sizeof out);
    if (len < 0) return;
    if ((size_t)len >= sizeof out || out[len] != '\0' || strlen(out) != (size_t)len) __builtin_trap();
    if (len == 0 || out[len - 1] == '.') __builtin_trap();
    for (int i = 0; i < len; i++)
        if (out[i] >= 'A' && out[i] <= 'Z') __builtin_trap();
    /* One leading "www." goes ("www.www.a" becomes "www.a"): past that, a
     * normalised host normalises to itself. */
    if (strncmp(out, "www.", 4) == 0) return;
    int len2 = url_host_norm(out, (size_t)len, again, sizeof again);
    if (len2 != len || memcmp(out, again, (size_t)len) != 0) __builtin_trap();
}

static void check_query(const char *q, size_t n)
{
    static const char *const names[] = {"utm_source", "u", "r", "d", ""};
    char out[64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int len = url_query_get(q, n, names[i], out, sizeof out);
        if (len < -2 || len >= (int)sizeof out) __builtin_trap();
        if (len >= 0 && out[len] != '\0') __builtin_trap();
    }
    for (int plus = 0; plus < 2; plus++) {
        int len = url_decode(q, n, plus, out, sizeof out);
        if (len < -1 || len >= (int)sizeof out) __builtin_trap();
        if (len >= 0 && (out[len] != '\0' || (size_t)len > n)) __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct url_parts u;
    check_host(s, size);        /* the raw input as a host, too */
    check_query(s, size);
    if (url_split(s, size, &u) < 0) return 0;
    inside(s, size, u.host);
    inside(s, size, u.query);
    if (!u.path.p || u.path.n == 0 || u.path.p[0] != '/') __builtin_trap();
    if (u.path.p != s && (u.path.p < s || u.path.p + u.path.n > s + size) &&
        !(u.path.n == 1 && u.path.p[0] == '/'))
        __builtin_trap();
    check_host(u.host.p, u.host.n);
    check_query(u.query.p, u.query.n);
    return 0;
}
