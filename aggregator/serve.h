/* serve.h -- `fairstat-aggregator serve`: the dashboard and the Stats API.
 *
 * An HTTP server on serve.listen, on the collector's HTTP layer
 * (common/http.h), single-threaded on libevent, reading the aggregates (never
 * raw hits) through the aggregator's synchronous Redis connection: a query is
 * one pipelined round trip, short enough to answer inline. Routes:
 *
 *   GET  /healthz                               no auth; 200, or 503 when Redis is down
 *   GET  /login, POST /login, POST /logout      the dashboard's session (auth.h)
 *   GET  /share/SITE?auth=SECRET                a read-only session for SITE
 *   GET  /                                      the dashboard (aggregator/web/), or 303 /login
 *   GET  /static/NAME                           the other files of aggregator/web/
 *   GET  /api/sites                             {"sites":[{"site_id","timezone"}]}
 *   POST /api/v2/query                          Plausible Stats API v2 (query.h)
 *   GET  /api/v1/stats/realtime/visitors?site_id=S   a bare number: visitors of the
 *                                               last 5 minutes
 *
 * Every /api route takes "Authorization: Bearer TOKEN" or the session cookie:
 * 401 (WWW-Authenticate: Bearer) without or with a wrong one, 403 for a site
 * outside its scope. CORS headers only for the origins in serve.cors_origins.
 */
#ifndef FAIRSTAT_SERVE_H
#define FAIRSTAT_SERVE_H

struct agg;

/* Serves until SIGTERM or SIGINT. Exit status: 0, 1 (cannot listen), 2
 * (configuration). */
int serve_run(struct agg *a);

#endif
