/* assets.c -- loads and serves the snippet and the demo files (assets.h). */
#include "assets.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEMO_MAX (1 << 20)

static char *root;
/* The snippets, each with its gzip twin: [ASSET_FS] fs.js, [ASSET_FS_CMP] fs-cmp.js. */
static const char *const snippet_names[ASSET_SNIPPETS] = {"fs.js", "fs-cmp.js"};
static struct asset snippet[ASSET_SNIPPETS], snippet_gz[ASSET_SNIPPETS];

static int read_file(const char *path, struct asset *out, size_t max)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    struct stat st;
    if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        fclose(fp);
        return -1;
    }
    out->data = malloc((size_t)st.st_size + 1);
    out->len = out->data ? fread(out->data, 1, (size_t)st.st_size, fp) : 0;
    fclose(fp);
    return out->data ? 0 : -1;
}

void assets_load(const char *dir)
{
    if (!dir || !*dir) return;
    root = strdup(dir);
    char path[4096];
    for (int i = 0; i < ASSET_SNIPPETS; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, snippet_names[i]);
        if (read_file(path, &snippet[i], DEMO_MAX) < 0)
            log_warn("snippet %s not found: /%s will answer 404 (run make)", path, snippet_names[i]);
        snprintf(path, sizeof path, "%s/%s.gz", dir, snippet_names[i]);
        read_file(path, &snippet_gz[i], DEMO_MAX);
    }
}

const struct asset *assets_snippet(enum asset_snippet which, int gzip)
{
    if (gzip && snippet_gz[which].data) return &snippet_gz[which];
    return snippet[which].data ? &snippet[which] : NULL;
}

static const char *type_of(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "application/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"}, {".svg", "image/svg+xml"}, {".png", "image/png"},
        {".ico", "image/x-icon"}, {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

int assets_demo(const char *rel, size_t n, struct asset *out, const char **content_type)
{
    if (!root) return 404;
    if (n > 256) return 404;
    char clean[300];
    memcpy(clean, rel, n);
    clean[n] = '\0';
    /* Only plain names: no "..", no hidden files, no backslashes or NULs. */
    for (size_t i = 0; i < n; i++) {
        char c = clean[i];
        if (!(c == '/' || c == '-' || c == '_' || c == '.' || (c >= 'a' && c <= 'z') ||
              (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 404;
        if (c == '.' && (i == 0 || clean[i - 1] == '/')) return 404;
    }
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/demo/%s", root, clean);
    if (len <= 0 || (size_t)len >= sizeof path - 16) return 404;
    struct stat st;
    if (n == 0 || path[len - 1] == '/' || (stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
        snprintf(path + len, sizeof path - (size_t)len, "%sindex.html",
                 path[len - 1] == '/' ? "" : "/");
    if (read_file(path, out, DEMO_MAX) < 0) return 404;
    *content_type = type_of(path);
    return 0;
}
