/* json.h -- a strict JSON event parser for the beacon body (beacon.c).
 *
 * json_parse() walks one JSON text and calls back for each value, as yajl's
 * event parser does, but allocates nothing: strings without escapes point
 * into buf, escaped ones are decoded into the caller's scratch buffer, and
 * nesting is bounded (JSON_DEPTH_MAX). It answers like yajl 2.1 with its
 * default options, the parser the collector used before (see json.c for
 * the quirks kept). The caller checks that buf is valid UTF-8 first.
 */
#ifndef FAIRSTAT_JSON_H
#define FAIRSTAT_JSON_H

#include <stddef.h>

#define JSON_DEPTH_MAX 32           /* arrays and objects open at once */

enum json_status {
    JSON_OK = 0,
    JSON_SYNTAX,                    /* not one JSON value (or nested past JSON_DEPTH_MAX) */
    JSON_CANCELLED,                 /* a callback returned 0 */
};

/* A string or key as the callback sees it: n bytes once decoded, of which
 * the first kept (n, or the scratch size when longer) are at s. Valid only
 * during the callback. */
struct json_str {
    const char *s;
    size_t n;
    size_t kept;
    int decoded;                    /* it had escapes: s is the scratch buffer */
    /* The decoded text is not UTF-8: it holds a lone low surrogate escape
     * (\uDC00). Otherwise a string of valid UTF-8 decodes to valid UTF-8. */
    int bad;
};

/* Each returns 1 to go on, 0 to stop the parse (JSON_CANCELLED). Numbers
 * come as their text, as written. */
struct json_callbacks {
    int (*null)(void *ctx);
    int (*boolean)(void *ctx, int value);
    int (*number)(void *ctx, const char *s, size_t n);
    int (*string)(void *ctx, const struct json_str *str);
    int (*start_map)(void *ctx);
    int (*map_key)(void *ctx, const struct json_str *key);
    int (*end_map)(void *ctx);
    int (*start_array)(void *ctx);
    int (*end_array)(void *ctx);
};

/* Parses the len bytes at buf (never reads past len); scratch (cap bytes)
 * receives decoded strings. */
int json_parse(const char *buf, size_t len, const struct json_callbacks *cb, void *ctx,
               char *scratch, size_t cap);

#endif
