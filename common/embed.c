/* embed.c -- looks up the files embedded at build time (see embed.h). */
#include "embed.h"

#include <string.h>

const struct embed_file *embed_find(const struct embed_file *set, const char *name, size_t len)
{
    for (; set && set->name; set++)
        if (strlen(set->name) == len && memcmp(set->name, name, len) == 0) return set;
    return NULL;
}
