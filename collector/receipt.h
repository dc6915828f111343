/* receipt.h -- the consent endpoints: a visitor records, reads and
 * withdraws their choice, and every step leaves a receipt.
 *
 *   POST /consent            records a receipt in fs:{site}:consent and sets
 *                            the signed cookie (consent.h); a visitor who
 *                            chooses again keeps their receipt id
 *   GET /consent?domain=     the receipt, and how many of its hits Redis
 *                            still holds
 *   DELETE /consent?domain=  withdraws: records the withdrawal, erases those
 *                            hits, clears the cookie, and refuses copies of
 *                            it from now on (revoke.h)
 *
 * A receipt holds an id, a time, the choice and the policy version: no IP
 * address, no User-Agent. The answer to POST comes only once the receipt is
 * stored: consent that cannot be proved is no consent.
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
