/* receipt.h -- the consent endpoints: a visitor records, reads and
 * withdraws their choice, and every step leaves a receipt.
 *
 *   POST /consent            records a receipt in fs:{site}:consent and sets
 *                            the site's signed cookie (consent.h); a visitor
 *                            who chooses again keeps their receipt id;
 *                            ?method=banner|settings says how
 *   GET /consent?domain=     the receipt, and how many of its hits Redis
 *                            still holds
 *   DELETE /consent?domain=  withdraws: records the withdrawal, erases those
 *                            hits, clears the cookie, and refuses copies of
 *                            it from now on (revoke.h)
 *
 * A receipt (schema 1, docs/protocol.md) holds an id, a time, the choice,
 * how it was given, the policy version and the SHA-256 of the site's policy
 * text: no IP address, no User-Agent, no visitor hash. The answer to POST
 * comes only once the receipt is stored: consent that cannot be proved is no
 * consent. Every endpoint reads, sets and clears the requested site's own
 * cookie only (cfg_site.cookie, .cookie_domain): never another site's.
 */
#ifndef FAIRSTAT_RECEIPT_H
#define FAIRSTAT_RECEIPT_H

#include "http.h"

struct api;

/* Each answers r now or from a Redis callback. cors: the CORS lines for
 * r's Origin, copied. */
void receipt_record(struct api *a, struct http_conn *c, const struct http_request *r,
                    const char *cors);
void receipt_show(struct api *a, struct http_conn *c, const struct http_request *r,
                  const char *cors);
void receipt_withdraw(struct api *a, struct http_conn *c, const struct http_request *r,
                      const char *cors);

#endif
