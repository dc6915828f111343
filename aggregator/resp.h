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

/* An XRANGE reply, flat: per entry its id and its strings (field, value,
 * field, value...), each copied into the region and NUL ended, without a
 * redisReply per string. Five objects an entry, ~500 bytes of region and
 * ~780 instructions, had been the largest part of the aggregator's work
 * on a drain; this is ~150 bytes an entry. */
struct resp_entry {
    const char *id;
    size_t idlen;
    size_t n;                   /* strings */
    const char *const *s;
    const size_t *len;
};

struct resp_entries {
    redisReply *error;          /* the reply was an error (in the region), not entries */
    size_t n;
    struct resp_entry *e;
};

struct resp_entries_parse {
    size_t pos;                 /* the next byte to read */
    int begun;                  /* the array's length is read: out->n entries, out->e */
    size_t done;                /* entries read */
    struct resp_entries *out;
};

/* resp_parse() for an XRANGE reply into st->out (which st zeroed but for
 * out begins): 1 whole, 0 buf ends inside it (an entry is read whole or
 * not at all: called again, it begins that entry again), -1 errno EPROTO
 * (not an array of [id, [strings]] entries, nor an error) or ENOMEM. */
int resp_parse_entries(struct resp_entries_parse *st, const char *buf, size_t len, struct agg_region *rg);

#endif
