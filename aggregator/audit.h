/* audit.h -- `fairstat-aggregator audit`: the fs:audit stream for people.
 *
 * fs:audit records what was removed and when -- purge, withdraw, forget,
 * drop, spool_expired (docs/protocol.md, Audit records) -- with counts only.
 * This command prints them as a table or JSON and adds nothing: a text
 * field is shown only when it is one of action, by, site, as_of; any other
 * field only when its value is a whole number, so that nothing else a
 * record might carry can leave through it.
 */
#ifndef FAIRSTAT_AUDIT_H
#define FAIRSTAT_AUDIT_H

#include <stdint.h>
#include <stdio.h>

struct agg;

enum audit_format { AUDIT_TABLE, AUDIT_JSON };

struct audit_opts {
    const char *site;           /* NULL: every site; a purge record shows only this site's counts */
    int64_t from_day, to_day;   /* UTC days, inclusive; -1 = open */
    enum audit_format format;
};

/* Prints the records to out, oldest first. 0, or -1 with a->err set. */
int audit_run(struct agg *a, const struct audit_opts *o, FILE *out);

#endif
