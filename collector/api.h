/* api.h -- the collector's endpoints: one struct api per worker thread.
 *
 * api_handle() is the http_handler for every request: it routes, and each
 * route calls the room of its concern -- the beacon path (hit.h), the
 * consent endpoints (receipt.h), the client address and rate limit
 * (client.h). A hit is answered 202 only from the Redis reply callback,
 * once it is stored; a refused hit is answered 204 before anything about it
 * is written anywhere.
 */
#ifndef FAIRSTAT_API_H
#define FAIRSTAT_API_H

#include <event2/event.h>

#include "cfg.h"
#include "http.h"

struct api;
struct gen;
struct gen_box;

/* Takes the reference g (gen.h), released by api_free() or on failure.
 * g's cfg is the start-up one: the Redis and spool sides keep it, so it
 * must outlive the api. box is where the main thread offers reloads; worker
 * numbers the thread (its spool files, its consent keys in g). NULL + err on
 * failure. */
struct api *api_new(struct event_base *base, struct gen *g, struct gen_box *box, int worker,
                    char *err, size_t errlen);
/* Switches to a generation offered in the box, if any: called before every
 * request and on the worker's timer. */
void api_reload(struct api *a);
void api_attach_http(struct api *a, struct http_server *http);
void api_handle(struct http_conn *c, const struct http_request *req, void *arg);
/* Frees the Redis side first, so pending requests are answered (spooled
 * hits 202, others 503), then fsyncs and closes the spool. */
void api_free(struct api *a);

#endif
