/* url.h -- the small URL toolkit the beacon needs: split, decode, query, host.
 *
 * Parsers take (buf, len) and never read past len. Nothing allocates; outputs
 * go to caller buffers, NUL-terminated.
 */
#ifndef FAIRSTAT_URL_H
#define FAIRSTAT_URL_H

#include <stddef.h>

struct url_span {
    const char *p;
    size_t n;
};

struct url_parts {
    struct url_span host;       /* without port and userinfo */
    struct url_span path;       /* "/" when empty */
    struct url_span query;      /* after '?', before '#'; n = 0 when none */
};

/* Splits an absolute http:// or https:// URL. 0, or -1 when s is not one. */
int url_split(const char *s, size_t n, struct url_parts *out);

/* Percent-decodes s (and '+' as space when plus is set) into out. Returns the
 * decoded length, or -1 on a bad escape, a control character or a result
 * that does not fit outlen (NUL included). */
int url_decode(const char *s, size_t n, int plus, char *out, size_t outlen);

/* Decoded value of the first `name=` parameter of a query string: its length,
 * -1 when absent, -2 when malformed or too long for out. */
int url_query_get(const char *q, size_t n, const char *name, char *out, size_t outlen);

/* Lower-cases a host, drops a leading "www." and a trailing dot. Returns the
 * length, or -1 if it is empty, too long or has characters no host has. */
int url_host_norm(const char *h, size_t n, char *out, size_t outlen);

#endif
