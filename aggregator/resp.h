/* resp.h -- a reply of Redis's protocol (RESP2) parsed straight from a
 * buffer into a region's redisReply objects.
 *
 * hiredis's reader is general (any nesting, its callbacks per object, a
 * task stack) and was a fifth of the drain's instructions: ~1,700 per
 * entry of an XRANGE reply, five objects. resp_parse() does the same work
 * for the replies the aggregator reads, and stops at any byte it does not
 * expect. It can be resumed: fed a buffer that holds part of a reply, it
 * builds what is whole, says where to go on, and goes on from there once
 * the buffer holds more (the same bytes, more after them: the part before
 * st->pos may be dropped and st->pos moved back as much).
 */
#ifndef FAIRSTAT_RESP_H
#define FAIRSTAT_RESP_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "agg.h"

#define RESP_DEPTH 8            /* hiredis's reader allows 7 levels of arrays */

struct resp_parse {
    redisReply *root;           /* the reply, once resp_parse() said 1 */
    size_t pos;                 /* the next byte to read: where the reply is whole up to */
    int depth;                  /* arrays open */
    struct {
        redisReply *array;
        size_t next;            /* its next element */
    } open[RESP_DEPTH];
};

/* A zeroed st begins a reply at buf[pos]. 1: the reply is whole (st->root;
 * st->pos past it); 0: buf ends inside it (call again with the same st and
 * more bytes); -1: errno EPROTO, not a reply we read (a protocol error: the
 * connection cannot be trusted past it), or ENOMEM. */
int resp_parse(struct resp_parse *st, const char *buf, size_t len, struct agg_region *rg);

#endif
