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

#include <errno.h>
#include <limits.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
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

enum header_id { H_NONE = -1, H_COOKIE, H_ORIGIN, H_USER_AGENT, H_CONTENT_TYPE,
                 H_FORWARDED_FOR, H_ACCEPT_ENCODING, H_SEC_GPC, H_DNT, H_EXPECT, H_AUTHORIZATION,
                 H_COUNT };

#define HEADER(name) {name, sizeof name - 1}
static const struct { const char *name; size_t len; } header_names[H_COUNT] = {
    HEADER("cookie"), HEADER("origin"), HEADER("user-agent"), HEADER("content-type"),
    HEADER("x-forwarded-for"), HEADER("accept-encoding"), HEADER("sec-gpc"), HEADER("dnt"),
    HEADER("expect"), HEADER("authorization"),
};
#undef HEADER

/* The request being read: http-parser's state and what its callbacks keep.
 * started and expect_continue report what the last http_feed() saw, for the
 * connection to act on (arm the deadline, send 100 Continue): the parser
 * itself never touches a socket or a clock. */
struct http_parse {
    http_parser parser;
    size_t max_header, max_body;
    int error_status;           /* set by a callback that refused */
    int refused;                /* the status that spent this parser, or 0 */
    int scan;                   /* where head_scan() stands (enum scan_state) */
    int in_message;             /* a request has begun and not ended */
    int in_trailer;             /* headers after a chunked body: not captured */
    int keepalive;
    int started;                /* a request began during the last feed */
    int expect_continue;        /* its headers asked for 100 Continue */

    char *arena;                /* url and header values, max_header bytes */
    size_t arena_len, header_bytes;
    char *body;                 /* max_body bytes */
    size_t body_len;

    char field[FIELD_MAX];
    size_t field_len;
    int field_state;            /* 0 none, 1 in field, 2 in value */
    int cur_header;
    struct http_str url;
    struct http_str headers[H_COUNT];
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

/* http-parser as Debian builds it is lenient where RFC 9112 is not: it takes
 * bare LF line ends, obs-fold continuation lines and spaces in a header name
 * ("Transfer-Encoding : chunked" is honoured as chunked, a request smuggling
 * risk behind a proxy that reads it differently). head_scan() walks the
 * request line and the headers before the parser sees them and refuses
 * those with 400, as nginx does for all but bare LF (RFC 9112 5.1 and 5.2
 * say a server MUST reject whitespace before the colon and MAY reject
 * obs-fold; we take the strict reading of 2.2 for bare LF too). The body,
 * chunk framing included, stays the parser's. */
enum scan_state {
    S_PRE,          /* before the request line: empty lines (CRLF) skipped */
    S_PRE_CR,
    S_REQLINE,
    S_LINE_CR,      /* a CR that must be followed by LF */
    S_FIELD_START,  /* start of a header line, or of the empty line */
    S_NAME,
    S_VALUE,
    S_END_CR,       /* the CR of the empty line that ends the head */
    S_BODY,         /* head done: the parser alone until the request ends */
};

/* Byte classes for head_scan()'s long runs, so that it looks at most bytes
 * once with one table load (it was as costly as the parser itself):
 * C_TCHAR, an RFC 9110 tchar (a header name's characters); C_VSTOP, a byte
 * that ends or breaks a header value (CR, LF, a control but TAB, DEL);
 * C_RSTOP, one that ends or breaks the request line (CR, LF). */
enum { C_TCHAR = 1, C_VSTOP = 2, C_RSTOP = 4 };
#define TCHAR_(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || \
                   (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' || \
                   (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
                   (c) == '`' || (c) == '|' || (c) == '~')
#define CLASS_(c) ((TCHAR_(c) ? C_TCHAR : 0) | (((c) < 0x20 && (c) != '\t') || (c) == 0x7f ? C_VSTOP : 0) | \
                   ((c) == '\r' || (c) == '\n' ? C_RSTOP : 0))
#define CLASS4_(c) CLASS_(c), CLASS_((c) + 1), CLASS_((c) + 2), CLASS_((c) + 3)
#define CLASS16_(c) CLASS4_(c), CLASS4_((c) + 4), CLASS4_((c) + 8), CLASS4_((c) + 12)
#define CLASS64_(c) CLASS16_(c), CLASS16_((c) + 16), CLASS16_((c) + 32), CLASS16_((c) + 48)
static const unsigned char byte_class[256] = {CLASS64_(0), CLASS64_(64), CLASS64_(128), CLASS64_(192)};

static int is_tchar(unsigned char ch)
{
    return byte_class[ch] & C_TCHAR;
}

/* Scans up to len bytes of a request's head. Returns how many bytes the
 * parser may take now (all of them, or up to the end of the head), or -1
 * when the head breaks the framing rules above. */
static long head_scan(struct http_parse *p, const char *buf, size_t len)
{
    const unsigned char *b = (const unsigned char *)buf;
    for (size_t i = 0; i < len; i++) {
        /* The long runs first: the bytes that cannot change the state. */
        if (p->scan == S_VALUE) while (i < len && !(byte_class[b[i]] & C_VSTOP)) i++;
        else if (p->scan == S_NAME) while (i < len && (byte_class[b[i]] & C_TCHAR)) i++;
        else if (p->scan == S_REQLINE) while (i < len && !(byte_class[b[i]] & C_RSTOP)) i++;
        if (i == len) break;
        unsigned char ch = b[i];
        switch (p->scan) {
        case S_PRE:
            if (ch == '\r') p->scan = S_PRE_CR;
            else if (ch == '\n') return -1;
            else p->scan = S_REQLINE;
            break;
        case S_PRE_CR:
            if (ch != '\n') return -1;
            p->scan = S_PRE;
            break;
        case S_REQLINE:
            if (ch == '\r') p->scan = S_LINE_CR;
            else if (ch == '\n') return -1;
            break;
        case S_LINE_CR:
            if (ch != '\n') return -1;
            p->scan = S_FIELD_START;
            break;
        case S_FIELD_START:
            if (ch == '\r') p->scan = S_END_CR;
            else if (is_tchar(ch)) p->scan = S_NAME;
            else return -1;     /* obs-fold, a bare LF, an empty name */
            break;
        case S_NAME:
            if (ch == ':') p->scan = S_VALUE;
            else if (!is_tchar(ch)) return -1;  /* whitespace before the colon */
            break;
        case S_VALUE:
            if (ch == '\r') p->scan = S_LINE_CR;
            else if (ch < 0x20 && ch != '\t') return -1;    /* bare LF, NUL, CTLs */
            else if (ch == 0x7f) return -1;
            break;
        case S_END_CR:
            if (ch != '\n') return -1;
            p->scan = S_BODY;
            return (long)(i + 1);
        default:
            return (long)len;
        }
    }
    return (long)len;
}

static int on_message_begin(http_parser *hp)
{
    struct http_parse *p = hp->data;
    p->arena_len = p->header_bytes = p->body_len = 0;
    p->field_len = 0;
    p->field_state = 0;
    p->cur_header = H_NONE;
    p->url.p = NULL;
    p->url.n = 0;
    memset(p->headers, 0, sizeof p->headers);
    p->in_message = 1;
    p->in_trailer = 0;
    p->started = 1;
    return 0;
}

static int arena_append(struct http_parse *p, const char *at, size_t len)
{
    p->header_bytes += len;
    if (p->arena_len + len > p->max_header || p->header_bytes > p->max_header) {
        p->error_status = 431;
        return -1;
    }
    memcpy(p->arena + p->arena_len, at, len);
    p->arena_len += len;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct http_parse *p = hp->data;
    if (!p->url.p) p->url.p = p->arena + p->arena_len;
    if (arena_append(p, at, len) < 0) {
        p->error_status = 414;
        return -1;
    }
    p->url.n += len;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct http_parse *p = hp->data;
    if (p->field_state != 1) {
        p->field_len = 0;
        p->field_state = 1;
        p->cur_header = H_NONE;
        p->header_bytes += 4;   /* ": " and CRLF: count what is on the wire */
    }
    p->header_bytes += len;
    if (p->header_bytes > p->max_header) {
        p->error_status = 431;
        return -1;
    }
    for (size_t i = 0; i < len && p->field_len < FIELD_MAX; i++)
        p->field[p->field_len++] = at[i];
    if (len && p->field_len == FIELD_MAX) p->field_len = FIELD_MAX; /* too long: no match */
    return 0;
}

static int is_one(struct http_str v)
{
    while (v.n && (*v.p == ' ' || *v.p == '\t')) v.p++, v.n--;
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t')) v.n--;
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

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct http_parse *p = hp->data;
    if (p->field_state != 2) {
        p->field_state = 2;
        p->cur_header = H_NONE;
        for (int i = 0; i < H_COUNT && !p->in_trailer; i++) {
            if (p->field_len == header_names[i].len &&
                strncasecmp(p->field, header_names[i].name, p->field_len) == 0) {
                if (!p->headers[i].p || takes_repeat(p, i)) {
                    p->cur_header = i;
                    p->headers[i].p = p->arena + p->arena_len;
                    p->headers[i].n = 0;
                }
                break;
            }
        }
    }
    if (p->cur_header == H_NONE) {
        p->header_bytes += len;
        if (p->header_bytes > p->max_header) {
            p->error_status = 431;
            return -1;
        }
        return 0;
    }
    if (arena_append(p, at, len) < 0) return -1;
    p->headers[p->cur_header].n += len;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct http_parse *p = hp->data;
    if (hp->http_major != 1) {  /* HTTP/2.0 or HTTP/9.9 spelled as text */
        p->error_status = 400;
        return -1;
    }
    if (hp->content_length != ULLONG_MAX && hp->content_length > p->max_body) {
        p->error_status = 413;
        return -1;
    }
    p->keepalive = http_should_keep_alive(hp);
    p->in_trailer = 1;          /* header callbacks from now on are trailers */
    struct http_str e = p->headers[H_EXPECT];
    p->expect_continue = e.p && e.n == 12 && strncasecmp(e.p, "100-continue", 12) == 0;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct http_parse *p = hp->data;
    if (p->body_len + len > p->max_body) {
        p->error_status = 413;
        return -1;
    }
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct http_parse *p = hp->data;
    p->keepalive = http_should_keep_alive(hp);
    p->in_message = 0;
    p->scan = S_PRE;
    http_parser_pause(hp, 1);   /* one request at a time: the rest waits */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static enum http_verb verb_of(unsigned method)
{
    switch (method) {
    case HTTP_GET: return HTTP_VERB_GET;
    case HTTP_HEAD: return HTTP_VERB_HEAD;
    case HTTP_POST: return HTTP_VERB_POST;
    case HTTP_DELETE: return HTTP_VERB_DELETE;
    case HTTP_OPTIONS: return HTTP_VERB_OPTIONS;
    default: return HTTP_VERB_OTHER;
    }
}

/* The complete request, as the handler sees it (peer aside). */
static void request_of(const struct http_parse *p, struct http_request *req)
{
    memset(req, 0, sizeof *req);
    req->verb = verb_of(p->parser.method);
    const char *u = p->url.p ? p->url.p : "/";
    size_t n = p->url.p ? p->url.n : 1;
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
    http_parser_init(&p->parser, HTTP_REQUEST);
    p->parser.data = p;
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

int http_feed(struct http_parse *p, const char *buf, size_t len, size_t *used,
              struct http_request *req)
{
    p->started = p->expect_continue = 0;
    *used = 0;
    if (p->refused) return p->refused;
    /* Paused after the previous request: its caller is done with it. */
    if (HTTP_PARSER_ERRNO(&p->parser) == HPE_PAUSED) http_parser_pause(&p->parser, 0);
    while (*used < len) {
        size_t chunk = len - *used;
        if (p->scan != S_BODY) {
            long k = head_scan(p, buf + *used, chunk);
            if (k < 0) return p->refused = 400;
            chunk = (size_t)k;
        }
        size_t n = http_parser_execute(&p->parser, &parser_settings, buf + *used, chunk);
        *used += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&p->parser);
        if (e == HPE_PAUSED) {
            request_of(p, req);
            return HTTP_FEED_REQUEST;
        }
        if (e != HPE_OK) return p->refused = p->error_status ? p->error_status : 400;
        if (n < chunk) break;   /* the parser takes no more (after an Upgrade) */
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
    int head = c->parse.parser.method == HTTP_HEAD;
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
    else if (c->parse.parser.http_minor == 0) o = put(o, "Connection: keep-alive\r\n", 24);
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
    if (c->parse.started) arm_timer(c, c->srv->read_tv);
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
