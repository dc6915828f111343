/* geo.c -- country and region lookup with libmaxminddb (see geo.h).
 *
 * Sits in the collector's hit path just before the client address is dropped:
 * the address goes in, two short codes come out, and nothing else of the
 * database record is kept. The MMDB_s is opened once and only read afterwards,
 * which libmaxminddb documents as safe to share between threads.
 *
 * Every step of a lookup can fail on a bad or unexpected database, so each one
 * is checked in turn (the lookup status, then whether an entry was found, then
 * the path, then the data type) and any failure is an unknown answer.
 */
#include "geo.h"

#include <maxminddb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Real schemas need two or three components; the bound keeps the path array
 * fixed-size. */
#define GEO_MAX_COMPONENTS 8

struct geo_path {
    char *buf;                              /* the path, '.' replaced by NUL */
    const char *part[GEO_MAX_COMPONENTS + 1];   /* NULL-terminated, into buf */
    int n;                                  /* 0 = not looked up */
};

struct geo {
    MMDB_s mmdb;
    int open;                               /* 0: the "no database" geo */
    struct geo_path country, region;
};

/* Splits a dotted path once, at open, into the array MMDB_aget_value() takes.
 * Numeric components need no special handling: libmaxminddb reads them as array
 * indexes when the data at that point is an array. */
static int geo_path_parse(struct geo_path *p, const char *what, const char *s, char *err,
                          size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!s || !*s)
        return 0;
    if (!(p->buf = strdup(s))) {
        snprintf(err, errlen, "geo: out of memory");
        return -1;
    }
    char *c = p->buf;
    for (;;) {
        char *dot = strchr(c, '.');
        if (dot) *dot = '\0';
        if (*c == '\0') {
            snprintf(err, errlen, "geo: %s \"%s\": empty component", what, s);
            return -1;
        }
        if (p->n == GEO_MAX_COMPONENTS) {
            snprintf(err, errlen, "geo: %s \"%s\": more than %d components", what, s,
                     GEO_MAX_COMPONENTS);
            return -1;
        }
        p->part[p->n++] = c;
        if (!dot) break;
        c = dot + 1;
    }
    p->part[p->n] = NULL;
    return 0;
}

struct geo *geo_open(const char *path, const char *country_path, const char *region_path,
                     char *err, size_t errlen)
{
    struct geo *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "geo: out of memory");
        return NULL;
    }
    if (!path || !*path)
        return g;

    if (geo_path_parse(&g->country, "country_path", country_path, err, errlen) < 0 ||
        geo_path_parse(&g->region, "region_path", region_path, err, errlen) < 0)
        goto error;

    int st = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
    if (st != MMDB_SUCCESS) {
        snprintf(err, errlen, "geo: %s: %s", path, MMDB_strerror(st));
        if (st == MMDB_IO_ERROR)
            snprintf(err + strlen(err), errlen - strlen(err), " (%m)");
        goto error;
    }
    g->open = 1;
    return g;
error:
    geo_close(g);
    return NULL;
}

void geo_close(struct geo *g)
{
    if (!g) return;
    if (g->open)
        MMDB_close(&g->mmdb);
    free(g->country.buf);
    free(g->region.buf);
    free(g);
}

/* Copies the UTF-8 string at p in entry into out (NUL-terminated). Returns its
 * length, or -1 when the path is missing, the data is not a string, or it does
 * not fit. The string in the database is not NUL-terminated. */
static int geo_string(MMDB_entry_s *entry, const struct geo_path *p, char *out, size_t cap)
{
    MMDB_entry_data_s d;
    if (p->n == 0)
        return -1;
    if (MMDB_aget_value(entry, &d, p->part) != MMDB_SUCCESS)
        return -1;
    if (!d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size >= cap)
        return -1;
    memcpy(out, d.utf8_string, d.data_size);
    out[d.data_size] = '\0';
    return (int)d.data_size;
}

static int geo_is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int geo_is_alnum(char c)
{
    return geo_is_alpha(c) || (c >= '0' && c <= '9');
}

static char geo_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

void geo_lookup(const struct geo *g, const struct sockaddr *sa, char country[3],
                char region[16])
{
    country[0] = '\0';
    region[0] = '\0';
    if (!g || !g->open || !sa || g->country.n == 0)
        return;

    /* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d. Not every
     * database aliases that range to its IPv4 tree, so look up the IPv4 form. */
    struct sockaddr_in v4;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            memcpy(&v4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
            sa = (const struct sockaddr *)&v4;
        }
    } else if (sa->sa_family != AF_INET) {
        return;
    }

    /* libmaxminddb's const-less API takes the MMDB_s it only reads. */
    int mmdb_error = MMDB_SUCCESS;
    MMDB_lookup_result_s res = MMDB_lookup_sockaddr((MMDB_s *)&g->mmdb, sa, &mmdb_error);
    if (mmdb_error != MMDB_SUCCESS || !res.found_entry)
        return;

    char cc[8];
    if (geo_string(&res.entry, &g->country, cc, sizeof cc) != 2 || !geo_is_alpha(cc[0]) ||
        !geo_is_alpha(cc[1]))
        return;
    country[0] = geo_upper(cc[0]);
    country[1] = geo_upper(cc[1]);
    country[2] = '\0';

    /* The subdivision code alone ("ENG") is prefixed with the country; a value
     * already in ISO 3166-2 form ("GB-ENG") is taken as it is. Either way only
     * letters, digits and one '-' after the country may reach a report. */
    char sub[16];
    int n = geo_string(&res.entry, &g->region, sub, sizeof sub);
    if (n <= 0)
        return;
    const char *code = sub;
    if (n > 3 && geo_upper(sub[0]) == country[0] && geo_upper(sub[1]) == country[1] &&
        sub[2] == '-')
        code = sub + 3;
    size_t len = strlen(code);
    if (len == 0 || len > 12)
        return;
    for (size_t i = 0; i < len; i++)
        if (!geo_is_alnum(code[i]))
            return;
    region[0] = country[0];
    region[1] = country[1];
    region[2] = '-';
    for (size_t i = 0; i < len; i++) region[3 + i] = geo_upper(code[i]);
    region[3 + len] = '\0';
}
