/* http.h -- a lean HTTP/1.1 server on libevent's listener and raw events,
 * and the request parser it runs on every connection (http_feed).
 *
 * Why not evhttp: measured here, evhttp answering an empty 204 costs about
 * 1.8x the CPU per request of nginx, before any work is done. This layer
 * does one read() and one write() per request in the common case, parses
 * requests with a strict parser of its own (http.c says why), and keeps
 * everything bounded: header bytes,
 * body bytes, connections, and a whole-request deadline that a trickling
 * client cannot extend.
 *
 * One http_server per worker thread, each on its own SO_REUSEPORT socket.
 * The handler is called once per complete request; it answers with
 * http_respond(), now or later (after Redis replied). Until it does, the
 * connection stays allocated even if the peer went away, so a pending
 * callback may always pass the conn back to http_respond().
 */
#ifndef FAIRSTAT_HTTP_H
#define FAIRSTAT_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <sys/socket.h>

struct http_conn;
struct http_server;

enum http_verb { HTTP_VERB_OTHER = 0, HTTP_VERB_GET, HTTP_VERB_HEAD, HTTP_VERB_POST,
                 HTTP_VERB_DELETE, HTTP_VERB_OPTIONS };

struct http_str {
    const char *p;              /* not NUL-terminated; NULL when absent */
    size_t n;
};

/* Everything points into the connection's buffers and lives until
 * http_respond() is called for this request (from http_feed(): until the
 * next http_feed() or http_parse_free() on the same parser). */
struct http_request {
    enum http_verb verb;
    struct http_str path;       /* "/api/event", no query */
    struct http_str query;      /* after '?', without it */
    struct http_str body;
    struct http_str cookie, origin, user_agent, content_type, forwarded_for,
                    accept_encoding, sec_gpc, dnt, authorization;
    int keep_alive;             /* the client will send more on this connection */
    const struct sockaddr *peer;
    socklen_t peer_len;
};

/* The request parser, one per connection, holding the request target and
 * the header values the handler reads in max_header bytes and the body in
 * max_body bytes. It refuses, before the handler sees anything: more than
 * max_header bytes of request line and header lines, CRLFs included (431,
 * or 414 within the target), a Content-Length or a chunked body over
 * max_body (413), anything but "METHOD SP target SP HTTP/1.d" (400), and
 * with 400 what RFC 9112 forbids or lets a server refuse: a line ended by a
 * bare LF or CR, an obs-fold continuation line, whitespace or another
 * non-token byte in a header name (before the colon), control bytes in a
 * header value or the target, a Transfer-Encoding other than "chunked" or
 * beside a Content-Length, a repeated or malformed Content-Length, sloppy
 * chunk framing. A method the router does not know is HTTP_VERB_OTHER. A
 * value comes without the whitespace around it; a header line with an
 * empty value is as if absent. "Connection: close" wins over keep-alive,
 * and an HTTP/1.0 request with a Transfer-Encoding closes the connection
 * after it (RFC 9112 9.3, 6.1); 100 Continue is asked only by HTTP/1.1
 * and never for a refused request. Of a repeated header the first counts,
 * except X-Forwarded-For (the last) and Sec-GPC and DNT (any "1"); headers
 * in a chunked trailer are not read. */
struct http_parse;

/* A parser with its own buffers. NULL when out of memory. */
struct http_parse *http_parse_new(size_t max_header, size_t max_body);
void http_parse_free(struct http_parse *p);

#define HTTP_FEED_MORE 0        /* every byte taken, the request not complete yet */
#define HTTP_FEED_REQUEST 1     /* *req is a complete request */

/* Parses the len bytes at buf, which continue what was fed before (a
 * request may come in any number of pieces). Returns HTTP_FEED_MORE,
 * HTTP_FEED_REQUEST, or the status that refuses the request (400, 413,
 * 414, 431); after a refusal the parser is spent and answers the same
 * status again. On HTTP_FEED_REQUEST *used is how many bytes the request
 * took: the rest starts the next one, to be fed once this one is answered.
 * req->peer is left NULL. */
int http_feed(struct http_parse *p, const char *buf, size_t len, size_t *used,
              struct http_request *req);

/* Fields added later are 0 in an older caller's initializer: 0 keeps the
 * behaviour from before them. */
struct http_limits {
    size_t max_header;          /* request line + headers */
    size_t max_body;
    long read_timeout_ms;       /* from the first byte of a request to its end */
    long idle_timeout_ms;       /* keep-alive wait for the next request */
    int max_connections;        /* per server (worker) */
    /* Open connections per peer address (an IPv4 address, an IPv6 /64), per
     * server: counted by each worker for its own socket, without locks. 0 =
     * no cap. Peers exempt() says 1 for (trusted proxies, whose clients the
     * per-address count cannot see before the headers) are not counted. */
    int max_per_address;
    int (*exempt)(const struct sockaddr *peer, void *exempt_arg);
    void *exempt_arg;
    /* Once 3/4 of max_connections are open, idle keep-alive connections are
     * closed after this instead of idle_timeout_ms, oldest first; and when
     * all are open, a new connection closes the oldest idle one. 0 (or more
     * than idle_timeout_ms) = idle_timeout_ms. */
    long pressure_idle_timeout_ms;
};

typedef void (*http_handler)(struct http_conn *c, const struct http_request *req, void *arg);

/* Listens on addr ("host:port", "[v6]:port") with SO_REUSEPORT. NULL and a
 * message in err on failure. */
struct http_server *http_server_new(struct event_base *base, const char *addr,
                                    const struct http_limits *lim,
                                    http_handler handler, void *arg,
                                    char *err, size_t errlen);
/* Stops listening and closes idle connections; busy ones finish first. */
void http_server_stop(struct http_server *s);
void http_server_free(struct http_server *s);
int http_server_connections(const struct http_server *s);

/* Sends the response and finishes the request. extra_headers is zero or more
 * complete "Name: value\r\n" lines (or NULL). body is copied. Must be called
 * exactly once per handled request. */
void http_respond(struct http_conn *c, int status, const char *extra_headers,
                  const char *content_type, const void *body, size_t len);

/* Counters the layer keeps by itself (per server). */
struct http_stats {
    unsigned long long requests, bad_requests, too_large, header_too_large, timeouts,
                       refused_connections;
    unsigned long long refused_per_address;     /* also in refused_connections */
    unsigned long long evicted_idle;            /* idle connections closed under pressure */
    unsigned long long lingering_closes;
};
void http_server_stats(const struct http_server *s, struct http_stats *out);

const char *http_reason(int status);

#endif
