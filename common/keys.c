/* keys.c -- builds the Redis key names declared in keys.h. */
#include "keys.h"

#include <stdio.h>

static int fit(int n, size_t len)
{
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int keys_hits(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:hits", site), len);
}

int keys_consent(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:consent", site), len);
}

int keys_day(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *dim)
{
    return fit(snprintf(buf, len, "fs:{%s}:d:%s:%s", site, yyyymmdd, dim), len);
}

int keys_uv(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *page)
{
    if (page) return fit(snprintf(buf, len, "fs:{%s}:d:%s:uv:%s", site, yyyymmdd, page), len);
    return fit(snprintf(buf, len, "fs:{%s}:d:%s:uv", site, yyyymmdd), len);
}

int keys_hour(char *buf, size_t len, const char *site, const char *yyyymmddhh)
{
    return fit(snprintf(buf, len, "fs:{%s}:h:%s", site, yyyymmddhh), len);
}

int keys_sess(char *buf, size_t len, const char *site, const char *visitor)
{
    return fit(snprintf(buf, len, "fs:{%s}:sess:%s", site, visitor), len);
}

int keys_salt(char *buf, size_t len, const char *yyyymmdd)
{
    return fit(snprintf(buf, len, "fs:salt:%s", yyyymmdd), len);
}
