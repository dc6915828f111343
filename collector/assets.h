/* assets.h -- files the collector serves: the snippet and the demo site.
 *
 * /fs.js and /fs-cmp.js (the snippet for sites whose consent manager
 * decides, docs/snippet.md), each with its gzip twin, are read once at start
 * and served from memory;
 * /demo/... is read from collector.static_dir/demo per request, for the
 * newcomer's demo only. Both are off when collector.static_dir is empty.
 */
#ifndef FAIRSTAT_ASSETS_H
#define FAIRSTAT_ASSETS_H

#include <stddef.h>

struct asset {
    char *data;
    size_t len;
};

enum asset_snippet { ASSET_FS, ASSET_FS_CMP, ASSET_SNIPPETS };

/* Loads dir/fs.js, dir/fs-cmp.js and their .gz twins when present. Never
 * fails: a missing snippet is a 404 later, and a warning now. */
void assets_load(const char *dir);
/* The snippet, gzipped when asked and built; NULL when it is missing. */
const struct asset *assets_snippet(enum asset_snippet which, int gzip);

/* Reads dir/demo/<rel> into *out (malloc'd; caller frees out->data).
 * rel is the path after "/demo/". 0, or the HTTP status to answer. */
int assets_demo(const char *rel, size_t n, struct asset *out, const char **content_type);

#endif
