/* fuzz_http.c -- libFuzzer target for the request parser (http_feed): any
 * bytes must give requests or a refusal, never a crash or an over-read, and
 * the same bytes fed whole and fed one at a time must give the same requests
 * and end the same way: waiting for more, or refused. (Which status refuses
 * may differ: a limit is counted as the bytes arrive, so fed whole, a
 * malformed byte after the limit can be seen first and give 400 for 431.)
 * Small limits, so that 413, 414 and 431 are reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define MAX_HEADER 512
#define MAX_BODY 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the parser made of the input, as one byte string to compare. */
struct transcript {
    char *buf;
    size_t len, cap;
};

static void put(struct transcript *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = (t->len + n) * 2;
        char *b = realloc(t->buf, cap);
        if (!b) abort();
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static void put_str(struct transcript *t, struct http_str s)
{
    put(t, &s.n, sizeof s.n);
    if (s.p) put(t, s.p, s.n);
    else if (s.n) __builtin_trap();
}

static void put_request(struct transcript *t, const struct http_request *r)
{
    if (r->path.n + r->query.n > MAX_HEADER || r->body.n > MAX_BODY) __builtin_trap();
    put(t, &r->verb, sizeof r->verb);
    put(t, &r->keep_alive, sizeof r->keep_alive);
    const struct http_str fields[] = {
        r->path, r->query, r->body, r->cookie, r->origin, r->user_agent, r->content_type,
        r->forwarded_for, r->accept_encoding, r->sec_gpc, r->dnt,
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) put_str(t, fields[i]);
}

static int known_verdict(int rc)
{
    return rc == HTTP_FEED_MORE || rc == HTTP_FEED_REQUEST || rc == 400 || rc == 413 ||
           rc == 414 || rc == 431;
}

/* Feeds data in pieces of at most step bytes, as a connection would: after
 * a request, what it did not take is fed again. Stops at a refusal, or where
 * the parser takes no more (it leaves the bytes after an Upgrade alone). */
static void run(const uint8_t *data, size_t size, size_t step, struct transcript *t)
{
    struct http_parse *p = http_parse_new(MAX_HEADER, MAX_BODY);
    if (!p) abort();
    size_t off = 0;
    int rc = HTTP_FEED_MORE;
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used;
        struct http_request req;
        rc = http_feed(p, (const char *)data + off, n, &used, &req);
        if (!known_verdict(rc) || used > n) __builtin_trap();
        off += used;
        if (rc == HTTP_FEED_REQUEST) put_request(t, &req);
        else if (rc != HTTP_FEED_MORE || used < n) break;
    }
    int refused = rc != HTTP_FEED_MORE && rc != HTTP_FEED_REQUEST;
    put(t, &refused, sizeof refused);
    http_parse_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct transcript whole = {0}, bytes = {0};
    run(data, size, size ? size : 1, &whole);
    run(data, size, 1, &bytes);
    if (whole.len != bytes.len || memcmp(whole.buf, bytes.buf, whole.len) != 0) __builtin_trap();
    free(whole.buf);
    free(bytes.buf);
    return 0;
}
