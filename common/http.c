/* http.c -- the request parser, connections, limits and responses (see http.h).
 *
 * Sections: the parser (http_feed: bytes in, requests out, no sockets),
 * connection lifetime, dispatch and responses, reading, the server.
 *
 * A connection moves through three states: READING (bytes go to the parser),
 * HANDLING (a complete request is with the handler, perhaps waiting for
 * Redis) and WRITING (a response did not fit in one write()). Bytes that
 * arrive while HANDLING are kept in a bounded pending buffer and parsed once
 * the response is out, so pipelined requests are answered in order.
 *
 * Every limit is enforced here, before the handler sees anything: header
 * bytes (431), body bytes (413, checked against Content-Length before the
 * body arrives), a deadline from a request's first byte to its last (408,
 * re-armed only per request, so trickling bytes never extend it), an idle
 * keep-alive timeout, and a connection cap per worker. The byte limits live
 * in the parser; the clocks and the cap live with the connections.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define FIELD_MAX 32
#define ADDR_KEY 9              /* family byte + IPv4 address or IPv6 /64 */
#define LINGER_MS 2000          /* lingering close: how long to read and discard */
#define LINGER_BYTES (4 * 1024 * 1024)  /* ... and how much at most */

enum conn_state { C_READING, C_HANDLING, C_WRITING, C_LINGERING };

/* The headers the handler sees (up to H_COUNT), then those the parser reads
 * for the framing. */
enum header_id { H_NONE = -1, H_COOKIE, H_ORIGIN, H_USER_AGENT, H_CONTENT_TYPE,
                 H_FORWARDED_FOR, H_ACCEPT_ENCODING, H_SEC_GPC, H_DNT, H_EXPECT, H_AUTHORIZATION,
                 H_COUNT, H_CONTENT_LENGTH = H_COUNT, H_TRANSFER_ENCODING, H_CONNECTION, H_ALL };

#define HEADER(name) {name, sizeof name - 1}
static const struct { const char *name; size_t len; } header_names[H_ALL] = {
    HEADER("cookie"), HEADER("origin"), HEADER("user-agent"), HEADER("content-type"),
    HEADER("x-forwarded-for"), HEADER("accept-encoding"), HEADER("sec-gpc"), HEADER("dnt"),
    HEADER("expect"), HEADER("authorization"),
    HEADER("content-length"), HEADER("transfer-encoding"), HEADER("connection"),
};
#undef HEADER

/* The request being read. started and expect_continue report what the last
 * http_feed() saw, for the connection to act on (arm the deadline, send 100
 * Continue): the parser itself never touches a socket or a clock. */
struct http_parse {
    int state;                  /* enum pstate */
    size_t max_header, max_body;
    int refused;                /* the status that spent this parser, or 0 */
    int in_message;             /* a request has begun and not ended */
    int in_trailer;             /* header lines after a chunked body: not captured */
    int keepalive;
    int started;                /* a request began during the last feed */
    int expect_continue;        /* its headers asked for 100 Continue (0 once refused) */

    char method[8];
    size_t method_len;          /* sizeof method + 1: longer than any we know */
    enum http_verb verb;
    int vpos;                   /* how far into "HTTP/1.d" */
    int minor;                  /* the d of HTTP/1.d */
    int has_length, conn_close, conn_keep;
    unsigned long long length;  /* body bytes (or chunk bytes) still to come */
    unsigned long long chunk;   /* the chunk size being read */
    int chunk_digits;

    char *arena;                /* the target and header values, max_header bytes */
    size_t arena_len, header_bytes;
    char *body;                 /* max_body bytes */
    size_t body_len;

    char field[FIELD_MAX];      /* the header name being read */
    size_t name_len;            /* FIELD_MAX + 1: longer than any we read */
    int cur_header;             /* the header whose value is being read, or H_NONE */
    struct http_str value;      /* its value so far, in the arena */
    struct http_str url;
    struct http_str headers[H_ALL];
};

struct http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *ev_resume;    /* re-enables accepting after EMFILE */
    struct http_limits lim;
    http_handler handler;
    void *arg;
    const struct timeval *read_tv, *idle_tv,    /* libevent common timeouts */
                         *pressure_tv, *linger_tv;
    struct http_conn *conns;                    /* all open connections */
    struct http_conn *idle_head, *idle_tail;    /* no request under way, oldest first */
    struct addr_count { unsigned char key[ADDR_KEY]; unsigned count; } *addrs;
    size_t addr_cap;                            /* a power of two; 0 without a cap */
    uint64_t addr_seed;
    int n_conns;
    int stopping;
    struct http_stats stats;
    char date[40];                              /* cached "Date: ...\r\n" */
    time_t date_sec;
    time_t last_emfile_log;
};

struct http_conn {
    struct http_server *srv;
    evutil_socket_t fd;
    struct event ev_read, ev_write, ev_timer;
    struct http_parse parse;
    enum conn_state state;
    int gone;                   /* fatal error while handling: free when answered */
    int keepalive;
    int read_paused;
    int linger;                 /* close lingering: input may be left unread */
    int counted;                /* holds a slot in the per-address count */
    int idle;                   /* on the server's idle list */
    long long idle_since_ms;
    size_t linger_left;
    struct http_conn *idle_prev, *idle_next;

    char *pending;              /* what a read() brought beyond one request */
    size_t pending_len, pending_off;

    char *out;
    size_t out_len, out_off, out_cap;

    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct http_conn *prev, *next;
};

/* ------------------------------------------------------------------------ */
/* The parser                                                                */
/* ------------------------------------------------------------------------ */

/* Our own HTTP/1.1 request parser, strict where RFC 9112 lets a server be.
 * It replaced Debian's http-parser (2.9) in this hot path: that parser walks
 * every byte through a state machine and, being lenient (bare LF line ends,
 * obs-fold, spaces in a header name: "Transfer-Encoding : chunked" honoured
 * as chunked, a smuggling risk behind a proxy that reads it otherwise),
 * needed a pre-scan of its own in front of it. Together they cost ~12,000
 * instructions per beacon, a third of the collector's work per stored hit
 * (callgrind, the bench's realistic load). Here the long runs of a head cost
 * eight bytes at a time (the target, a value) or one table load a byte (a
 * name), and the body one memcpy.
 *
 * Refused with 400: a line ended by a bare LF or a bare CR, an obs-fold
 * line, a header name with a non-token byte (whitespace before the colon
 * included) or empty, control bytes in a value or the target, anything but
 * "METHOD SP target SP HTTP/1.d", a repeated or malformed Content-Length, a
 * Transfer-Encoding other than "chunked" or next to a Content-Length, and
 * a malformed chunk. Every byte of the request line, the headers, chunk
 * extensions and trailers counts against max_header (414 when the limit is
 * crossed in the target, 431 elsewhere); the body against max_body (413,
 * checked against Content-Length before the body arrives). */
enum pstate {
    P_START,        /* before the request line: empty lines (CRLF) skipped */
    P_START_LF,
    P_METHOD,
    P_TARGET,
    P_VERSION,      /* "HTTP/1.d", then CR */
    P_LINE_LF,      /* the LF that must follow a CR in the head */
    P_FIELD,        /* the start of a header line, or of the empty line */
    P_NAME,
    P_OWS,          /* after the colon, before the value */
    P_VALUE,
    P_END_LF,       /* the LF of the empty line: the head (or trailer) ends */
    P_BODY,         /* Content-Length bytes */
    P_CHUNK_SIZE,
    P_CHUNK_EXT,
    P_CHUNK_SIZE_LF,
    P_CHUNK_DATA,
    P_CHUNK_DATA_CR,
    P_CHUNK_DATA_LF,
    P_DONE,         /* a request came out: the next feed starts the next one */
};

/* Byte classes, one table load per byte in the long runs: C_TCHAR, an RFC
 * 9110 tchar (a method, a header name); C_VSTOP, a byte that ends or breaks
 * a header value (CR, LF, a control but TAB, DEL); C_TSTOP, one that ends or
 * breaks the request target (SP, a control, DEL); C_HEX, a hex digit. */
enum { C_TCHAR = 1, C_VSTOP = 2, C_TSTOP = 4, C_HEX = 8 };
#define TCHAR_(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
                   (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' || \
                   (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
                   (c) == '`' || (c) == '|' || (c) == '~')
#define HEX_(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define CLASS_(c) ((TCHAR_(c) ? C_TCHAR : 0) | (((c) < 0x20 && (c) != '\t') || (c) == 0x7f ? C_VSTOP : 0) | \
                   ((c) <= 0x20 || (c) == 0x7f ? C_TSTOP : 0) | (HEX_(c) ? C_HEX : 0))
#define CLASS4_(c) CLASS_(c), CLASS_((c) + 1), CLASS_((c) + 2), CLASS_((c) + 3)
#define CLASS16_(c) CLASS4_(c), CLASS4_((c) + 4), CLASS4_((c) + 8), CLASS4_((c) + 12)
#define CLASS64_(c) CLASS16_(c), CLASS16_((c) + 16), CLASS16_((c) + 32), CLASS16_((c) + 48)
static const unsigned char byte_class[256] = {CLASS64_(0), CLASS64_(64), CLASS64_(128), CLASS64_(192)};

/* Eight bytes at a time over the two long runs of a head, a header value
 * and the target: a word with any byte below lo (0x20 or 0x21) or a DEL
 * ends the fast part, and the table finds which byte it was (a TAB in a
 * value costs its word a second look, nothing more). Exact: the bit trick
 * finds every byte below lo, and may only stop early. */
static size_t run_until(const unsigned char *b, size_t i, size_t len, uint64_t lo, unsigned stop)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    for (; i + 8 <= len; i += 8) {
        uint64_t x, d;
        memcpy(&x, b + i, 8);
        d = x ^ (0x7f * ones);
        if (((x - lo * ones) & ~x & highs) | ((d - ones) & ~d & highs)) break;
    }
    while (i < len && !(byte_class[b[i]] & stop)) i++;
    return i;
}

/* Appends a run to a small buffer of cap bytes; a run that does not fit
 * marks *n as cap + 1: longer than anything the caller looks for. */
static void take_short(char *buf, size_t cap, size_t *n, const unsigned char *s, size_t k)
{
    if (*n + k > cap) {
        *n = cap + 1;
    } else {
        memcpy(buf + *n, s, k);
        *n += k;
    }
}

/* Copies head bytes into the arena: http_feed's room check bounds them. */
static void arena_put(struct http_parse *p, const unsigned char *s, size_t k)
{
    memcpy(p->arena + p->arena_len, s, k);
    p->arena_len += k;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Which header a name is, in any case. A name holds tchars only, and of
 * those only the letters change under | 0x20, so the fold is exact. */
static int header_id(const char *name, size_t n)
{
    for (int i = 0; i < H_ALL; i++) {
        if (header_names[i].len != n) continue;
        size_t k = 0;
        while (k < n && (name[k] | 0x20) == header_names[i].name[k]) k++;
        if (k == n) return i;
    }
    return H_NONE;
}

static int is_one(struct http_str v)
{
    return v.n == 1 && v.p[0] == '1';
}

/* Which occurrence of a repeated header counts. X-Forwarded-For: the last,
 * the one the nearest proxy added. Sec-GPC and DNT: any "1" refuses, so a
 * "1" is never replaced. Others: the first. */
static int takes_repeat(const struct http_parse *p, int h)
{
    if (h == H_FORWARDED_FOR) return 1;
    if (h == H_SEC_GPC || h == H_DNT) return !is_one(p->headers[h]);
    return 0;
}

/* Does the comma-separated list v name token t (lower case), in any case? */
static int list_has(struct http_str v, const char *t, size_t tn)
{
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (is_ows(v.p[i]) || v.p[i] == ',')) i++;
        size_t s = i;
        while (i < v.n && v.p[i] != ',') i++;
        size_t e = i;
        while (e > s && is_ows(v.p[e - 1])) e--;
        if (e - s == tn && strncasecmp(v.p + s, t, tn) == 0) return 1;
    }
    return 0;
}

/* A header line is complete: its value trimmed of trailing whitespace,
 * kept if it is one the handler reads and not empty (an empty value is no
 * value), the framing headers read. Returns 0 or 400. */
static int field_done(struct http_parse *p)
{
    int h = p->cur_header;
    struct http_str v = p->value;
    if (h == H_NONE) return 0;
    while (v.n && is_ows(v.p[v.n - 1])) v.n--;
    if (h == H_CONNECTION) {
        p->conn_close |= list_has(v, "close", 5);
        p->conn_keep |= list_has(v, "keep-alive", 10);
        return 0;
    }
    if (h == H_CONTENT_LENGTH) {
        if (p->has_length || v.n == 0) return 400;
        unsigned long long n = 0;
        for (size_t i = 0; i < v.n; i++) {
            if (v.p[i] < '0' || v.p[i] > '9') return 400;
            unsigned d = (unsigned)(v.p[i] - '0');
            if (n > ULLONG_MAX / 10 || (n == ULLONG_MAX / 10 && d > ULLONG_MAX % 10)) return 400;
            n = n * 10 + d;             /* past 2^64 above: not a length */
        }
        p->has_length = 1;
        p->length = n;
        return 0;
    }
    if (h == H_TRANSFER_ENCODING && v.n == 0) return 400;
    if (v.n) p->headers[h] = v;
    return 0;
}

/* The head is complete: how the body comes, and whether it may. */
static int head_done(struct http_parse *p)
{
    struct http_str te = p->headers[H_TRANSFER_ENCODING];
    p->in_trailer = 1;
    /* RFC 9112 9.3: "close" wins; 6.1: HTTP/1.0 with a Transfer-Encoding
     * is badly framed, and the connection closes after it. */
    p->keepalive = !p->conn_close && (p->minor != 0 || (p->conn_keep && !te.p));
    struct http_str e = p->headers[H_EXPECT];
    /* RFC 9110 10.1.1: ignored in an HTTP/1.0 request */
    p->expect_continue = p->minor != 0 && e.p && e.n == 12 && strncasecmp(e.p, "100-continue", 12) == 0;
    if (te.p) {
        if (p->has_length || te.n != 7 || strncasecmp(te.p, "chunked", 7) != 0) return 400;
        p->state = P_CHUNK_SIZE;
        return 0;
    }
    if (p->length > p->max_body) return 413;   /* 0 without a Content-Length */
    p->state = p->length ? P_BODY : P_DONE;
    return 0;
}

/* origin-form ("/path?query"), asterisk-form ("*") or absolute-form
 * ("scheme://..."): RFC 9112 3.2. Anything else is not a request target. */
static int target_form(struct http_str u)
{
    if (u.n == 0) return 0;
    if (u.p[0] == '/' || (u.n == 1 && u.p[0] == '*')) return 1;
    size_t i = 0;
    while (i < u.n && ((u.p[i] | 0x20) >= 'a' && (u.p[i] | 0x20) <= 'z')) i++;
    while (i > 0 && i < u.n && (isalnum((unsigned char)u.p[i]) || u.p[i] == '+' || u.p[i] == '-' || u.p[i] == '.')) i++;
    return i > 0 && u.n - i >= 3 && memcmp(u.p + i, "://", 3) == 0;
}

static enum http_verb verb_of(const char *m, size_t n)
{
    if (n == 3 && memcmp(m, "GET", 3) == 0) return HTTP_VERB_GET;
    if (n == 4 && memcmp(m, "POST", 4) == 0) return HTTP_VERB_POST;
    if (n == 4 && memcmp(m, "HEAD", 4) == 0) return HTTP_VERB_HEAD;
    if (n == 6 && memcmp(m, "DELETE", 6) == 0) return HTTP_VERB_DELETE;
    if (n == 7 && memcmp(m, "OPTIONS", 7) == 0) return HTTP_VERB_OPTIONS;
    return HTTP_VERB_OTHER;
}

static void message_begin(struct http_parse *p)
{
    p->arena_len = p->header_bytes = p->body_len = 0;
    p->method_len = p->name_len = 0;
    p->vpos = 0;
    p->cur_header = H_NONE;
    p->url.p = p->arena;
    p->url.n = 0;
    memset(p->headers, 0, sizeof p->headers);
    p->has_length = p->conn_close = p->conn_keep = 0;
    p->length = p->chunk = 0;
    p->chunk_digits = 0;
    p->in_message = 1;
    p->in_trailer = 0;
    p->started = 1;
    p->state = P_METHOD;
}

/* Walks head (or trailer) bytes, at most len of them: stops where the head
 * ends. Returns the bytes taken, or minus the refusing status. */
static long head_step(struct http_parse *p, const char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        size_t s = i;
        unsigned char ch = b[i];
        switch (p->state) {
        case P_START:
            if (ch == '\r') p->state = P_START_LF;
            else if (byte_class[ch] & C_TCHAR) {
                message_begin(p);
                return (long)i;     /* the method's bytes count against max_header */
            } else {
                return -400;
            }
            i++;
            break;
        case P_METHOD:
            while (i < len && (byte_class[b[i]] & C_TCHAR)) i++;
            take_short(p->method, sizeof p->method, &p->method_len, b + s, i - s);
            if (i == len) break;
            if (b[i] != ' ') return -400;
            p->verb = verb_of(p->method, p->method_len);   /* none is longer than method */
            p->state = P_TARGET;
            i++;
            break;
        case P_TARGET:
            i = run_until(b, i, len, 0x21, C_TSTOP);
            arena_put(p, b + s, i - s);
            p->url.n += i - s;
            if (i == len) break;
            if (b[i] != ' ' || !target_form(p->url)) return -400;
            p->state = P_VERSION;
            i++;
            break;
        case P_VERSION:
            /* "HTTP/1.d" and CR: HTTP/2 and later do not come as text */
            if (p->vpos < 8) {
                if (p->vpos == 7 ? !(ch >= '0' && ch <= '9') : ch != (unsigned char)"HTTP/1."[p->vpos])
                    return -400;
                if (p->vpos == 7) p->minor = ch - '0';
                p->vpos++;
            } else {
                if (ch != '\r') return -400;
                p->state = P_LINE_LF;
            }
            i++;
            break;
        case P_START_LF:
        case P_LINE_LF:
            if (ch != '\n') return -400;
            p->state = p->state == P_START_LF ? P_START : P_FIELD;
            i++;
            break;
        case P_FIELD:
            if (ch == '\r') {
                p->state = P_END_LF;
                i++;
            } else if (byte_class[ch] & C_TCHAR) {
                p->name_len = 0;
                p->state = P_NAME;
            } else {
                return -400;    /* obs-fold, a bare LF, an empty name */
            }
            break;
        case P_NAME:
            while (i < len && (byte_class[b[i]] & C_TCHAR)) i++;
            take_short(p->field, FIELD_MAX, &p->name_len, b + s, i - s);
            if (i == len) break;
            if (b[i] != ':') return -400;           /* whitespace before the colon */
            p->cur_header = H_NONE;
            if (!p->in_trailer && p->name_len <= FIELD_MAX) {
                int h = header_id(p->field, p->name_len);
                if (h == H_TRANSFER_ENCODING && p->headers[h].p) return -400;
                if (h != H_NONE && (!p->headers[h].p || takes_repeat(p, h))) p->cur_header = h;
            }
            p->value.p = p->arena + p->arena_len;
            p->value.n = 0;
            p->state = P_OWS;
            i++;
            break;
        case P_OWS:
            while (i < len && is_ows((char)b[i])) i++;
            if (i < len) p->state = P_VALUE;
            break;
        case P_VALUE:
            i = run_until(b, i, len, 0x20, C_VSTOP);
            if (p->cur_header != H_NONE) {
                arena_put(p, b + s, i - s);
                p->value.n += i - s;
            }
            if (i == len) break;
            if (b[i] != '\r') return -400;          /* bare LF, NUL, CTLs */
            if (field_done(p)) return -400;
            p->state = P_LINE_LF;
            i++;
            break;
        case P_END_LF:
            if (ch != '\n') return -400;
            i++;
            if (p->in_trailer) {
                p->state = P_DONE;
            } else {
                int st = head_done(p);
                if (st) return -st;
            }
            return (long)i;
        default:
            return (long)i;
        }
    }
    return (long)i;
}

/* Walks body bytes (Content-Length or chunked framing), at most len. Chunk
 * size lines and extensions count against max_header. Returns the bytes
 * taken, or minus the refusing status. */
static long body_step(struct http_parse *p, const char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len && p->state != P_DONE) {
        unsigned char ch = b[i];
        switch (p->state) {
        case P_BODY:
        case P_CHUNK_DATA: {
            size_t k = len - i < p->length ? len - i : (size_t)p->length;
            memcpy(p->body + p->body_len, b + i, k);
            p->body_len += k;
            p->length -= k;
            i += k;
            if (p->length == 0) p->state = p->state == P_BODY ? P_DONE : P_CHUNK_DATA_CR;
            break;
        }
        case P_CHUNK_SIZE:
            if (byte_class[ch] & C_HEX) {
                unsigned d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
                if (p->chunk > ULLONG_MAX >> 4) return -400;   /* past 2^64: not a size */
                p->chunk = p->chunk * 16 + d;
                p->chunk_digits = 1;
            } else if (p->chunk_digits && (ch == ';' || ch == '\r')) {
                if (p->chunk > p->max_body - p->body_len) return -413;
                p->state = ch == ';' ? P_CHUNK_EXT : P_CHUNK_SIZE_LF;
            } else {
                return -400;
            }
            if (++p->header_bytes > p->max_header) return -431;
            i++;
            break;
        case P_CHUNK_EXT:
            if (ch == '\r') p->state = P_CHUNK_SIZE_LF;
            else if (byte_class[ch] & C_VSTOP) return -400;
            if (++p->header_bytes > p->max_header) return -431;
            i++;
            break;
        case P_CHUNK_SIZE_LF:
            if (ch != '\n') return -400;
            p->length = p->chunk;
            p->state = p->chunk ? P_CHUNK_DATA : P_FIELD;     /* the last chunk: a trailer */
            p->chunk = 0;
            p->chunk_digits = 0;
            i++;
            if (p->state == P_FIELD) return (long)i;
            break;
        case P_CHUNK_DATA_CR:
        case P_CHUNK_DATA_LF:
            if (ch != (p->state == P_CHUNK_DATA_CR ? '\r' : '\n')) return -400;
            p->state = p->state == P_CHUNK_DATA_CR ? P_CHUNK_DATA_LF : P_CHUNK_SIZE;
            i++;
            break;
        default:
            return (long)i;
        }
    }
    return (long)i;
}

/* The complete request, as the handler sees it (peer aside). */
static void request_of(const struct http_parse *p, struct http_request *req)
{
    memset(req, 0, sizeof *req);
    req->verb = p->verb;
    const char *u = p->url.p;
    size_t n = p->url.n;
    const char *q = memchr(u, '?', n);
    req->path.p = u;
    req->path.n = q ? (size_t)(q - u) : n;
    if (q) {
        req->query.p = q + 1;
        req->query.n = n - req->path.n - 1;
    }
    const char *hash = req->query.p ? memchr(req->query.p, '#', req->query.n) : NULL;
    if (hash) req->query.n = (size_t)(hash - req->query.p);
    req->body.p = p->body;
    req->body.n = p->body_len;
    req->cookie = p->headers[H_COOKIE];
    req->origin = p->headers[H_ORIGIN];
    req->user_agent = p->headers[H_USER_AGENT];
    req->content_type = p->headers[H_CONTENT_TYPE];
    req->forwarded_for = p->headers[H_FORWARDED_FOR];
    req->accept_encoding = p->headers[H_ACCEPT_ENCODING];
    req->sec_gpc = p->headers[H_SEC_GPC];
    req->dnt = p->headers[H_DNT];
    req->authorization = p->headers[H_AUTHORIZATION];
    req->keep_alive = p->keepalive;
}

static int parse_init(struct http_parse *p, size_t max_header, size_t max_body)
{
    memset(p, 0, sizeof *p);
    p->arena = malloc(max_header);
    p->body = malloc(max_body);
    if (!p->arena || !p->body) {
        free(p->arena);
        free(p->body);
        return -1;
    }
    p->max_header = max_header;
    p->max_body = max_body;
    p->state = P_START;
    return 0;
}

static void parse_release(struct http_parse *p)
{
    free(p->arena);
    free(p->body);
    p->arena = p->body = NULL;
}

struct http_parse *http_parse_new(size_t max_header, size_t max_body)
{
    struct http_parse *p = malloc(sizeof *p);
    if (p && parse_init(p, max_header, max_body) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

void http_parse_free(struct http_parse *p)
{
    if (!p) return;
    parse_release(p);
    free(p);
}

static int in_head(const struct http_parse *p)
{
    return p->state <= P_END_LF;
}

int http_feed(struct http_parse *p, const char *buf, size_t len, size_t *used,
              struct http_request *req)
{
    p->started = p->expect_continue = 0;
    *used = 0;
    if (p->refused) return p->refused;
    if (p->state == P_DONE) {                       /* its caller is done with the last one */
        p->state = P_START;
        p->verb = HTTP_VERB_OTHER;  /* a refusal before the next method is no HEAD answer */
    }
    while (*used < len) {
        long n;
        if (in_head(p)) {
            /* Bytes before the request line count nowhere: they are skipped. */
            size_t room = p->state <= P_START_LF ? len - *used : p->max_header - p->header_bytes;
            size_t k = len - *used < room ? len - *used : room;
            int was_start = p->state <= P_START_LF;
            n = room == 0 ? (p->state == P_TARGET ? -414 : -431) : head_step(p, buf + *used, k);
            if (n >= 0 && !was_start) p->header_bytes += (size_t)n;
        } else {
            n = body_step(p, buf + *used, len - *used);
        }
        if (n < 0) {
            p->expect_continue = 0;     /* a refused request's body must not be invited */
            return p->refused = (int)-n;
        }
        *used += (size_t)n;
        if (p->state == P_DONE) {
            p->in_message = 0;
            request_of(p, req);
            return HTTP_FEED_REQUEST;
        }
    }
    return HTTP_FEED_MORE;
}

/* ------------------------------------------------------------------------ */
/* Connection lifetime                                                       */
/* ------------------------------------------------------------------------ */

static long long now_ms(struct http_server *s)
{
    struct timeval tv;
    event_base_gettimeofday_cached(s->base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The per-address count. A peer is keyed by its IPv4 address or its IPv6
 * /64 (what one host usually holds), in an open-addressing table sized at
 * twice max_connections, so it never fills. */
static int addr_key(const struct sockaddr_storage *ss, unsigned char key[ADDR_KEY])
{
    memset(key, 0, ADDR_KEY);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        key[0] = 4;
        memcpy(key + 1, &in->sin_addr, 4);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, v4mapped, 12) == 0) {
            key[0] = 4;
            memcpy(key + 1, b + 12, 4);
        } else {
            key[0] = 6;
            memcpy(key + 1, b, 8);
        }
        return 0;
    }
    return -1;                  /* unix sockets and the like: not counted */
}

/* Where a key's probe chain starts: FNV-1a from a per-server random seed,
 * so that a client cannot pick addresses that collide on purpose. */
static size_t addr_home(const struct http_server *s, const unsigned char key[ADDR_KEY])
{
    uint64_t h = s->addr_seed;
    for (int i = 0; i < ADDR_KEY; i++) h = (h ^ key[i]) * 0x100000001b3ULL;
    return (size_t)(h ^ (h >> 29)) & (s->addr_cap - 1);
}

static size_t addr_slot(const struct http_server *s, const unsigned char key[ADDR_KEY])
{
    size_t i = addr_home(s, key);
    while (s->addrs[i].count && memcmp(s->addrs[i].key, key, ADDR_KEY) != 0)
        i = (i + 1) & (s->addr_cap - 1);
    return i;
}

/* Takes a slot for the peer of c; -1 when its address is at the cap. */
static int addr_take(struct http_server *s, struct http_conn *c)
{
    unsigned char key[ADDR_KEY];
    if (!s->addrs || addr_key(&c->peer, key) < 0) return 0;
    if (s->lim.exempt && s->lim.exempt((const struct sockaddr *)&c->peer, s->lim.exempt_arg))
        return 0;
    size_t i = addr_slot(s, key);
    if (s->addrs[i].count >= (unsigned)s->lim.max_per_address) return -1;
    if (!s->addrs[i].count) memcpy(s->addrs[i].key, key, ADDR_KEY);
    s->addrs[i].count++;
    c->counted = 1;
    return 0;
}

/* Gives the slot back; an emptied entry is removed by shifting its probe
 * chain back (no tombstones, so lookups stay short however long we run). */
static void addr_release(struct http_server *s, struct http_conn *c)
{
    unsigned char key[ADDR_KEY];
    if (!c->counted || addr_key(&c->peer, key) < 0) return;
    c->counted = 0;
    size_t i = addr_slot(s, key), mask = s->addr_cap - 1;
    if (!s->addrs[i].count || --s->addrs[i].count) return;
    for (size_t j = (i + 1) & mask; s->addrs[j].count; j = (j + 1) & mask) {
        size_t home = addr_home(s, s->addrs[j].key);
        /* j may move to i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        s->addrs[i] = s->addrs[j];
        s->addrs[j].count = 0;
        i = j;
    }
}

/* Keep-alive connections idle between requests, oldest first: when a new
 * connection needs a slot, or the server is under pressure, these are
 * closed first. A new connection that has not sent its first request is
 * not on the list: it has read_timeout_ms to send it. */
static void idle_unlink(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (!c->idle) return;
    c->idle = 0;
    if (c->idle_prev) c->idle_prev->idle_next = c->idle_next; else s->idle_head = c->idle_next;
    if (c->idle_next) c->idle_next->idle_prev = c->idle_prev; else s->idle_tail = c->idle_prev;
    c->idle_prev = c->idle_next = NULL;
}

static void idle_link(struct http_conn *c)
{
    struct http_server *s = c->srv;
    idle_unlink(c);
    c->idle = 1;
    c->idle_since_ms = now_ms(s);
    c->idle_prev = s->idle_tail;
    if (s->idle_tail) s->idle_tail->idle_next = c; else s->idle_head = c;
    s->idle_tail = c;
}

static void conn_free(struct http_conn *c)
{
    struct http_server *s = c->srv;
    event_del(&c->ev_read);
    event_del(&c->ev_write);
    event_del(&c->ev_timer);
    if (c->fd >= 0) close(c->fd);
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    idle_unlink(c);
    addr_release(s, c);
    parse_release(&c->parse);
    free(c->pending);
    free(c->out);
    free(c);
}

/* Over three quarters of max_connections open: idle keep-alive connections
 * get the short pressure timeout instead of idle_timeout. */
static int under_pressure(const struct http_server *s)
{
    return (long)s->n_conns * 4 >= (long)s->lim.max_connections * 3;
}

/* Closes idle connections that have waited longer than the pressure
 * timeout (armed before the pressure began, their timers say otherwise),
 * and, when every slot is taken, the oldest idle one. */
static void shed_idle(struct http_server *s)
{
    if (!under_pressure(s)) return;
    long long now = now_ms(s);
    while (s->idle_head && now - s->idle_head->idle_since_ms >= s->lim.pressure_idle_timeout_ms) {
        s->stats.evicted_idle++;
        conn_free(s->idle_head);
    }
    if (s->n_conns >= s->lim.max_connections && s->idle_head) {
        s->stats.evicted_idle++;
        conn_free(s->idle_head);
    }
}

/* The peer is gone (error): close the socket now; the struct waits if the
 * handler still owns it. */
static void conn_close(struct http_conn *c)
{
    if (c->state == C_HANDLING) {
        c->gone = 1;
        event_del(&c->ev_read);
        event_del(&c->ev_timer);
        if (c->fd >= 0) {
            close(c->fd);
            c->fd = -1;
        }
        return;
    }
    conn_free(c);
}

static void arm_timer(struct http_conn *c, const struct timeval *tv)
{
    event_add(&c->ev_timer, tv);
}

/* Stops reading until the current response is out: what the peer sends
 * meanwhile waits in the kernel (and, when that fills, in the peer), so
 * pipelined requests are never read beyond what we hold. */
static void pause_reading(struct http_conn *c)
{
    if (c->read_paused) return;
    event_del(&c->ev_read);
    c->read_paused = 1;
}

static void resume_reading(struct http_conn *c)
{
    if (!c->read_paused) return;
    c->read_paused = 0;
    event_add(&c->ev_read, NULL);
}

/* Closing a socket with unread input makes the kernel send a reset, and a
 * client still sending its large request may then lose our answer before
 * reading it. So, as nginx's lingering_close: stop writing, read and
 * discard for a short while (LINGER_MS, at most LINGER_BYTES), then close. */
static void start_linger(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (c->fd < 0 || shutdown(c->fd, SHUT_WR) < 0) {
        conn_free(c);
        return;
    }
    c->state = C_LINGERING;
    c->linger_left = LINGER_BYTES;
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
    s->stats.lingering_closes++;
    resume_reading(c);
    arm_timer(c, s->linger_tv);
}

static void linger_read(struct http_conn *c)
{
    char buf[READ_CHUNK];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0 || (size_t)n >= c->linger_left) {
        conn_free(c);
        return;
    }
    c->linger_left -= (size_t)n;
}

/* ------------------------------------------------------------------------ */
/* Dispatch and responses                                                    */
/* ------------------------------------------------------------------------ */

static void dispatch(struct http_conn *c, struct http_request *req)
{
    req->peer = (const struct sockaddr *)&c->peer;
    req->peer_len = c->peer_len;
    c->keepalive = req->keep_alive;
    c->state = C_HANDLING;
    event_del(&c->ev_timer);
    c->srv->stats.requests++;
    c->srv->handler(c, req, c->srv->arg);
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static const char *date_header(struct http_server *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof s->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void after_response(struct http_conn *c);

static void flush_out(struct http_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* One deadline for the whole response, armed on the first
             * partial write: a client reading slowly cannot extend it. */
            if (c->state != C_WRITING) arm_timer(c, c->srv->read_tv);
            c->state = C_WRITING;
            event_add(&c->ev_write, NULL);
            return;
        }
        conn_free(c);
        return;
    }
    after_response(c);
}

static char *put(char *o, const void *p, size_t n)
{
    if (n) memcpy(o, p, n);
    return o + n;
}

void http_respond(struct http_conn *c, int status, const char *extra_headers,
                  const char *content_type, const void *body, size_t len)
{
    struct http_server *s = c->srv;
    if (c->gone) {
        conn_free(c);
        return;
    }
    if (s->stopping) c->keepalive = 0;
    size_t extra = extra_headers ? strlen(extra_headers) : 0;
    size_t need = 256 + extra + len + (content_type ? strlen(content_type) : 0);
    if (need > c->out_cap) {
        char *o = realloc(c->out, need);
        if (!o) {
            conn_free(c);
            return;
        }
        c->out = o;
        c->out_cap = need;
    }
    int head = c->parse.verb == HTTP_VERB_HEAD;
    /* Built with memcpy: this runs once per hit, and snprintf showed up in
     * the profile. need above bounds every piece. */
    char *o = c->out;
    o = put(o, "HTTP/1.1 ", 9);
    *o++ = (char)('0' + status / 100 % 10);
    *o++ = (char)('0' + status / 10 % 10);
    *o++ = (char)('0' + status % 10);
    *o++ = ' ';
    const char *reason = http_reason(status);
    o = put(o, reason, strlen(reason));
    o = put(o, "\r\n", 2);
    const char *date = date_header(s);
    o = put(o, date, strlen(date));
    if (content_type) {
        o = put(o, "Content-Type: ", 14);
        o = put(o, content_type, strlen(content_type));
        o = put(o, "\r\n", 2);
    }
    o = put(o, extra_headers, extra);
    if (status != 204 && status != 304) {
        o = put(o, "Content-Length: ", 16);
        char digits[24];
        int k = 0;
        size_t v = len;
        do digits[k++] = (char)('0' + v % 10); while ((v /= 10));
        while (k) *o++ = digits[--k];
        o = put(o, "\r\n", 2);
    } else {
        len = 0;
    }
    if (!c->keepalive) o = put(o, "Connection: close\r\n", 19);
    else if (c->parse.minor == 0) o = put(o, "Connection: keep-alive\r\n", 24);
    o = put(o, "\r\n", 2);
    if (len && !head) o = put(o, body, len);
    c->out_len = (size_t)(o - c->out);
    c->out_off = 0;
    c->state = C_HANDLING;      /* C_WRITING once a write comes up short */
    flush_out(c);
}

/* Answers a request the parser refused, then closes (lingering: the
 * refused request may still be arriving). */
static void respond_error(struct http_conn *c, int status)
{
    c->keepalive = 0;
    c->linger = 1;
    c->state = C_HANDLING;
    event_del(&c->ev_timer);
    char body[96];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n", http_reason(status));
    http_respond(c, status, NULL, "application/json", body, (size_t)n);
}

static void after_response(struct http_conn *c)
{
    struct http_server *s = c->srv;
    if (!c->keepalive || s->stopping) {
        /* Unread input (a refused request, pipelined requests after a
         * "Connection: close") would turn the close into a reset. */
        if (c->linger || c->pending_off < c->pending_len) start_linger(c);
        else conn_free(c);
        return;
    }
    c->state = C_READING;
    resume_reading(c);
    /* Pipelined bytes wait for the next turn of the loop rather than being
     * parsed here: answering them here would recurse once per request. */
    if (c->pending_off < c->pending_len) {
        arm_timer(c, s->read_tv);
        event_active(&c->ev_read, EV_READ, 0);
        return;
    }
    idle_link(c);
    arm_timer(c, under_pressure(s) ? s->pressure_tv : s->idle_tv);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

/* Keeps what one read() brought beyond the request it completed. Reading
 * stops while a request is handled, so this is never more than one read
 * (READ_CHUNK bytes), however many requests the peer pipelines. */
static void stash(struct http_conn *c, const char *data, size_t len)
{
    char *p = malloc(len);
    if (!p) {
        c->keepalive = 0;       /* the rest is lost: say so by closing */
        return;
    }
    memcpy(p, data, len);
    free(c->pending);
    c->pending = p;
    c->pending_len = len;
    c->pending_off = 0;
}

static void drop_pending(struct http_conn *c)
{
    free(c->pending);
    c->pending = NULL;
    c->pending_len = c->pending_off = 0;
}

/* A client that sent "Expect: 100-continue" waits for this before sending
 * the body. Best effort: a client that does not get it sends it anyway. */
static void send_continue(struct http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->fd < 0) return;
    ssize_t w = write(c->fd, cont, sizeof cont - 1);
    (void)w;
}

/* Parses len bytes at data: from a read() into a stack buffer, or the
 * pending buffer itself (from_pending). Every book-keeping step comes
 * before dispatch: the handler may answer, and so free c, at once. */
static void feed(struct http_conn *c, const char *data, size_t len, int from_pending)
{
    struct http_request req;
    size_t used;
    idle_unlink(c);
    int rc = http_feed(&c->parse, data, len, &used, &req);
    /* The deadline runs from a request's first byte to its last: a request
     * that came whole needs none (its timer, idle or not, finds it handled
     * and does nothing; the response arms the next). */
    if (c->parse.started && rc == HTTP_FEED_MORE) arm_timer(c, c->srv->read_tv);
    if (c->parse.expect_continue) send_continue(c);
    if (from_pending) {
        c->pending_off += used;
        if (rc != HTTP_FEED_REQUEST || c->pending_off >= c->pending_len) drop_pending(c);
    } else if (rc == HTTP_FEED_REQUEST && used < len) {
        stash(c, data + used, len - used);
    }
    if (rc == HTTP_FEED_REQUEST) {
        dispatch(c, &req);
    } else if (rc != HTTP_FEED_MORE) {
        struct http_stats *st = &c->srv->stats;
        if (rc == 413) st->too_large++;
        else if (rc == 431 || rc == 414) st->header_too_large++;
        else st->bad_requests++;
        respond_error(c, rc);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct http_conn *c = arg;
    if (c->state == C_LINGERING) {
        linger_read(c);
        return;
    }
    if (c->state != C_READING) {
        pause_reading(c);       /* backpressure: one request at a time */
        return;
    }
    if (c->pending_off < c->pending_len) {
        feed(c, c->pending + c->pending_off, c->pending_len - c->pending_off, 1);
        return;
    }
    char buf[READ_CHUNK];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        feed(c, buf, (size_t)n, 0);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    /* EOF or an error with no request under way: every complete request
     * before it was answered; a half-sent one is simply dropped. */
    conn_close(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_out(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_conn *c = arg;
    if (c->state == C_WRITING || c->state == C_LINGERING) {
        conn_free(c);           /* the response did not drain in time, or lingering is over */
        return;
    }
    if (c->state != C_READING) return;
    if (c->parse.in_message) {
        c->srv->stats.timeouts++;
        respond_error(c, 408);
    } else {
        conn_free(c);           /* idle keep-alive connection */
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l;
    struct http_server *s = arg;
    shed_idle(s);
    if (s->n_conns >= s->lim.max_connections || s->stopping) {
        s->stats.refused_connections++;
        close(fd);
        return;
    }
    struct http_conn *c = calloc(1, sizeof *c);
    if (!c) goto error;
    c->srv = s;
    c->fd = fd;
    memcpy(&c->peer, sa, (size_t)salen < sizeof c->peer ? (size_t)salen : sizeof c->peer);
    c->peer_len = (socklen_t)salen;
    if (addr_take(s, c) < 0) {
        s->stats.refused_per_address++;
        s->stats.refused_connections++;
        goto error;
    }
    if (parse_init(&c->parse, s->lim.max_header, s->lim.max_body) < 0) {
        addr_release(s, c);
        goto error;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    event_assign(&c->ev_read, s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->ev_write, s->base, fd, EV_WRITE, on_write, c);
    evtimer_assign(&c->ev_timer, s->base, on_timer, c);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    event_add(&c->ev_read, NULL);
    arm_timer(c, s->read_tv);
    return;

error:
    free(c);
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_server *s = arg;
    if (s->listener && !s->stopping) evconnlistener_enable(s->listener);
}

/* accept() failed. Out of descriptors, retrying at once would spin: pause
 * accepting for a moment instead (the connections already open go on). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct http_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) return;
    s->stats.refused_connections++;
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    event_add(s->ev_resume, &tv);
    time_t now = time(NULL);
    if (now - s->last_emfile_log >= 10) {
        s->last_emfile_log = now;
        fprintf(stderr, "fairstat-collector: accept: %s; pausing new connections for 100 ms\n",
                strerror(err));
    }
}

static const struct timeval *common_timeout(struct event_base *base, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return event_base_init_common_timeout(base, &tv);
}

struct http_server *http_server_new(struct event_base *base, const char *addr,
                                    const struct http_limits *lim,
                                    http_handler handler, void *arg,
                                    char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errlen, "collector.listen: not host:port: '%s'", addr);
        return NULL;
    }
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->base = base;
    s->lim = *lim;
    s->handler = handler;
    s->arg = arg;
    if (s->lim.pressure_idle_timeout_ms <= 0 ||
        s->lim.pressure_idle_timeout_ms > s->lim.idle_timeout_ms)
        s->lim.pressure_idle_timeout_ms = s->lim.idle_timeout_ms;
    s->read_tv = common_timeout(base, lim->read_timeout_ms);
    s->idle_tv = common_timeout(base, lim->idle_timeout_ms);
    s->pressure_tv = common_timeout(base, s->lim.pressure_idle_timeout_ms);
    s->linger_tv = common_timeout(base, LINGER_MS);
    if (lim->max_per_address > 0) {
        s->addr_cap = 16;
        while (s->addr_cap < 2 * (size_t)lim->max_connections) s->addr_cap *= 2;
        s->addrs = calloc(s->addr_cap, sizeof *s->addrs);
        if (!s->addrs) {
            snprintf(err, errlen, "out of memory");
            free(s);
            return NULL;
        }
        evutil_secure_rng_get_bytes(&s->addr_seed, sizeof s->addr_seed);
    }
    s->listener = evconnlistener_new_bind(base, on_accept, s,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, sslen);
    if (!s->listener) {
        snprintf(err, errlen, "collector.listen: cannot listen on %s: %s", addr, strerror(errno));
        free(s->addrs);
        free(s);
        return NULL;
    }
    s->ev_resume = evtimer_new(base, on_resume, s);
    if (!s->ev_resume) {
        snprintf(err, errlen, "out of memory");
        http_server_free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, on_accept_error);
    return s;
}

void http_server_stop(struct http_server *s)
{
    s->stopping = 1;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    struct http_conn *c = s->conns;
    while (c) {
        struct http_conn *next = c->next;
        if (c->state == C_READING && !c->parse.in_message) conn_free(c);
        c = next;
    }
}

void http_server_free(struct http_server *s)
{
    if (!s) return;
    if (s->listener) evconnlistener_free(s->listener);
    if (s->ev_resume) event_free(s->ev_resume);
    while (s->conns) conn_free(s->conns);
    free(s->addrs);
    free(s);
}

int http_server_connections(const struct http_server *s)
{
    return s->n_conns;
}

void http_server_stats(const struct http_server *s, struct http_stats *out)
{
    *out = s->stats;
}
