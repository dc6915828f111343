/* keys.c -- builds and reads back the Redis key names declared in keys.h. */
#include "keys.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

static int fit(int n, size_t len)
{
    return n < 0 || (size_t)n >= len ? -1 : n;
}

int keys_hits(char *buf, size_t len, const char *site)
{
    /* Once per stored hit: put together without printf. */
    size_t n = strlen(site);
    if (n + sizeof "fs:{}:hits" > len || n > INT_MAX - sizeof "fs:{}:hits") return -1;
    memcpy(buf, "fs:{", 4);
    memcpy(buf + 4, site, n);
    memcpy(buf + 4 + n, "}:hits", sizeof "}:hits");
    return (int)(n + sizeof "fs:{}:hits" - 1);
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

int keys_bypage(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *dim)
{
    return fit(snprintf(buf, len, "fs:{%s}:d:%s:bypage:%s", site, yyyymmdd, dim), len);
}

int keys_prop(char *buf, size_t len, const char *site, const char *yyyymmdd, const char *name)
{
    return fit(snprintf(buf, len, "fs:{%s}:d:%s:prop:%s", site, yyyymmdd, name), len);
}

#define MINUTE_MS 60000LL
#define DAY_MINUTES (CLOCK_DAY_MS / MINUTE_MS)

int keys_realtime_minute(char *buf, size_t len, const char *site, int64_t unix_minute)
{
    int64_t day = unix_minute >= 0 ? unix_minute / DAY_MINUTES : -1 - (-unix_minute - 1) / DAY_MINUTES;
    int64_t m = unix_minute - day * DAY_MINUTES;
    char d[CLOCK_DAY_LEN + 1];
    clock_format_day(day, d);
    return fit(snprintf(buf, len, "fs:{%s}:rt:%s%02d%02d", site, d, (int)(m / 60), (int)(m % 60)), len);
}

int64_t keys_realtime_expires_ms(int64_t unix_minute)
{
    return (unix_minute + 1) * MINUTE_MS + KEYS_REALTIME_KEEP_MS;
}

int keys_hour(char *buf, size_t len, const char *site, const char *yyyymmddhh)
{
    return fit(snprintf(buf, len, "fs:{%s}:h:%s", site, yyyymmddhh), len);
}

int keys_cursor(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:cursor", site), len);
}

int keys_lease(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:lease", site), len);
}

int keys_withdrawn(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:withdrawn", site), len);
}

int keys_withdrawn_gen(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:withdrawn:gen", site), len);
}

int keys_merge(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:pfmerge", site), len);
}

int keys_visits(char *buf, size_t len, const char *site, const char *yyyymmdd)
{
    return fit(snprintf(buf, len, "fs:{%s}:v:%s", site, yyyymmdd), len);
}

int keys_twins(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:twins", site), len);
}

int keys_seq(char *buf, size_t len, const char *site)
{
    return fit(snprintf(buf, len, "fs:{%s}:seq", site), len);
}

int keys_salt(char *buf, size_t len, const char *yyyymmdd)
{
    return fit(snprintf(buf, len, "fs:salt:%s", yyyymmdd), len);
}

int64_t keys_salt_expires_ms(int64_t day)
{
    return (day + 2) * CLOCK_DAY_MS;
}

/* ------------------------------------------------------------------------ */
/* Patterns and parsing                                                      */
/* ------------------------------------------------------------------------ */

int keys_hits_pattern(char *buf, size_t len)
{
    return fit(snprintf(buf, len, "fs:{*}:hits"), len);
}

int keys_salt_pattern(char *buf, size_t len)
{
    return fit(snprintf(buf, len, "fs:salt:*"), len);
}

int keys_aggregates_pattern(char *buf, size_t len, const char *site)
{
    char esc[600];
    size_t n = 0;
    for (const char *s = site; *s; s++) {
        if (n + 3 > sizeof esc) return -1;
        if (strchr("*?[]\\", *s)) esc[n++] = '\\';
        esc[n++] = *s;
    }
    esc[n] = '\0';
    return fit(snprintf(buf, len, "fs:{%s}:[dh]:*", esc), len);
}

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* The day of the 8 digits at s, or -1. */
static int64_t day_at(const char *s)
{
    char day[CLOCK_DAY_LEN + 1];
    int64_t days;
    if (!digits(s, CLOCK_DAY_LEN)) return -1;
    memcpy(day, s, CLOCK_DAY_LEN);
    day[CLOCK_DAY_LEN] = '\0';
    return clock_parse_day(day, &days) < 0 ? -1 : days;
}

int keys_site_of_hits(const char *key, size_t len, char *site, size_t cap)
{
    static const char head[] = "fs:{", tail[] = "}:hits";
    size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    if (len <= hl + tl || memcmp(key, head, hl) != 0 || memcmp(key + len - tl, tail, tl) != 0)
        return -1;
    size_t n = len - hl - tl;
    if (n + 1 > cap || memchr(key + hl, '\0', n)) return -1;
    memcpy(site, key + hl, n);
    site[n] = '\0';
    return (int)n;
}

int64_t keys_aggregate_day(const char *key, size_t len, const char *site)
{
    char prefix[600];
    int pl = fit(snprintf(prefix, sizeof prefix, "fs:{%s}:", site), sizeof prefix);
    if (pl < 0 || len < (size_t)pl + 2 + CLOCK_DAY_LEN || memcmp(key, prefix, (size_t)pl) != 0)
        return -1;
    const char *p = key + pl, *end = key + len;
    if (p[0] == 'd' && p[1] == ':') {
        /* d:YYYYMMDD:<dim>, dim not empty */
        if (end - p < 2 + CLOCK_DAY_LEN + 2 || p[2 + CLOCK_DAY_LEN] != ':') return -1;
    } else if (p[0] == 'h' && p[1] == ':') {
        /* h:YYYYMMDDHH */
        if (end - p != 2 + CLOCK_HOUR_LEN || !digits(p + 2 + CLOCK_DAY_LEN, 2)) return -1;
    } else {
        return -1;
    }
    return day_at(p + 2);
}

int64_t keys_salt_day(const char *key, size_t len)
{
    static const char head[] = "fs:salt:";
    size_t hl = sizeof head - 1;
    if (len != hl + CLOCK_DAY_LEN || memcmp(key, head, hl) != 0) return -1;
    return day_at(key + hl);
}
