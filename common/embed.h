/* embed.h -- files compiled into a program at build time.
 *
 * common/gen/embedgen.c turns a list of files into a table of struct
 * embed_file (see common/build.mk, embed_files), ended by an entry whose name
 * is NULL. Everything in it is static data: it lives as long as the program.
 */
#ifndef FAIRSTAT_EMBED_H
#define FAIRSTAT_EMBED_H

#include <stddef.h>

struct embed_file {
    const char *name;           /* the file's base name, "dashboard.html" */
    const char *content_type;   /* from its extension */
    const char *data;           /* its bytes, NUL-terminated for convenience */
    size_t len;
};

/* The file named name[0..len) in set, or NULL. */
const struct embed_file *embed_find(const struct embed_file *set, const char *name, size_t len);

#endif
