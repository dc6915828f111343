/* clock.c -- calendar days, site timezones and RFC 3339 times (see clock.h).
 *
 * Civil dates use Howard Hinnant's days-from-civil algorithm (public domain
 * arithmetic, re-derived here), so that day ranges, retention cut-offs and
 * key dates never depend on the process timezone. Offsets come from glibc's
 * tzfile reader via TZ + localtime_r, behind a small per-zone cache.
 */
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SLOT_S 900              /* a quarter hour */
#define CACHE_SLOTS 64

struct clock_zone {
    char *name;
    int utc;                    /* fast path: no TZ switching at all */
    int64_t slot[CACHE_SLOTS];  /* UTC quarter-hour index, or INT64_MIN if empty */
    long offset[CACHE_SLOTS];
};

/* The zone TZ is currently set to, so that consecutive lookups of one zone
 * do not call setenv + tzset again. */
static char current_tz[256];

static int is_utc_name(const char *n)
{
    return strcmp(n, "UTC") == 0 || strcmp(n, "Etc/UTC") == 0 || strcmp(n, "GMT") == 0 ||
           strcmp(n, "Etc/GMT") == 0 || strcmp(n, "Z") == 0 || strcmp(n, "Zulu") == 0;
}

struct clock_zone *clock_zone_new(const char *name, char *err, size_t errlen)
{
    struct clock_zone *z = NULL;
    if (!name || !*name) name = "UTC";
    size_t len = strlen(name);
    if (len >= sizeof current_tz || strstr(name, "..") || name[0] == '/' || name[0] == ':') {
        snprintf(err, errlen, "not a timezone name: '%.100s'", name);
        return NULL;
    }
    int utc = is_utc_name(name);
    if (!utc) {
        const char *dir = getenv("TZDIR");
        char path[512];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(err, errlen, "unknown timezone '%.100s' (no %.200s)", name, path);
            return NULL;
        }
    }
    z = calloc(1, sizeof *z);
    if (!z) goto error;
    z->name = strdup(name);
    if (!z->name) goto error;
    z->utc = utc;
    for (int i = 0; i < CACHE_SLOTS; i++) z->slot[i] = INT64_MIN;
    return z;

error:
    snprintf(err, errlen, "out of memory");
    clock_zone_free(z);
    return NULL;
}

void clock_zone_free(struct clock_zone *z)
{
    if (!z) return;
    free(z->name);
    free(z);
}

const char *clock_zone_name(const struct clock_zone *z)
{
    return z->name;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

long clock_zone_offset(struct clock_zone *z, int64_t t_ms)
{
    if (z->utc) return 0;
    int64_t slot = floor_div(floor_div(t_ms, 1000), SLOT_S);
    size_t i = (size_t)(slot & (CACHE_SLOTS - 1));
    if (z->slot[i] == slot) return z->offset[i];
    if (strcmp(current_tz, z->name) != 0) {
        setenv("TZ", z->name, 1);
        tzset();
        snprintf(current_tz, sizeof current_tz, "%s", z->name);
    }
    time_t t = (time_t)(slot * SLOT_S);
    struct tm tm;
    long off = 0;
    if (localtime_r(&t, &tm)) off = tm.tm_gmtoff;
    z->slot[i] = slot;
    z->offset[i] = off;
    return off;
}

int64_t clock_local_days(struct clock_zone *z, int64_t t_ms)
{
    int64_t local_s = floor_div(t_ms, 1000) + clock_zone_offset(z, t_ms);
    return floor_div(local_s, CLOCK_DAY_S);
}

void clock_buckets(struct clock_zone *z, int64_t t_ms, char day[CLOCK_DAY_LEN + 1],
                   char hour[CLOCK_HOUR_LEN + 1])
{
    int64_t local_s = floor_div(t_ms, 1000) + clock_zone_offset(z, t_ms);
    int64_t days = floor_div(local_s, CLOCK_DAY_S);
    int h = (int)((local_s - days * CLOCK_DAY_S) / 3600);
    char d[CLOCK_DAY_LEN + 1];
    clock_format_day(days, d);
    if (day) memcpy(day, d, sizeof d);
    if (hour) {
        memcpy(hour, d, CLOCK_DAY_LEN);
        hour[8] = (char)('0' + h / 10);
        hour[9] = (char)('0' + h % 10);
        hour[10] = '\0';
    }
}

/* ------------------------------------------------------------------------ */
/* Civil dates                                                               */
/* ------------------------------------------------------------------------ */

int64_t clock_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;                                        /* [0, 399] */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;     /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void clock_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int valid_date(int y, int m, int d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* Parses YYYY-MM-DD or YYYYMMDD at s; sets *used to the characters read. */
static int parse_date_prefix(const char *s, int64_t *days, size_t *used)
{
    int y, m, d;
    if (digits(s, 4, &y) < 0) return -1;
    if (s[4] == '-') {
        if (digits(s + 5, 2, &m) < 0 || s[7] != '-' || digits(s + 8, 2, &d) < 0) return -1;
        *used = 10;
    } else {
        if (digits(s + 4, 2, &m) < 0 || digits(s + 6, 2, &d) < 0) return -1;
        *used = 8;
    }
    if (!valid_date(y, m, d)) return -1;
    *days = clock_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int clock_parse_day(const char *s, int64_t *days)
{
    size_t used;
    if (!s || strlen(s) < 8 || parse_date_prefix(s, days, &used) < 0) return -1;
    return s[used] == '\0' ? 0 : -1;
}

void clock_format_day(int64_t days, char out[CLOCK_DAY_LEN + 1])
{
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) y = 0;
    snprintf(out, CLOCK_DAY_LEN + 1, "%04d%02u%02u", (int)y, m % 100, d % 100);
}

void clock_format_day_dashed(int64_t days, char out[11])
{
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) y = 0;
    snprintf(out, 11, "%04d-%02u-%02u", (int)y, m % 100, d % 100);
}

int clock_parse_rfc3339(const char *s, int64_t *ms)
{
    int64_t days;
    size_t used;
    if (!s || strlen(s) < 10 || parse_date_prefix(s, &days, &used) < 0 || used != 10) return -1;
    const char *p = s + 10;
    int64_t secs = days * CLOCK_DAY_S, frac_ms = 0;
    if (*p == '\0') {
        *ms = secs * 1000;
        return 0;
    }
    if (*p != 'T' && *p != 't' && *p != ' ') return -1;
    p++;
    int hh, mm, ss;
    if (digits(p, 2, &hh) < 0 || p[2] != ':' || digits(p + 3, 2, &mm) < 0 || p[5] != ':' ||
        digits(p + 6, 2, &ss) < 0 || hh > 23 || mm > 59 || ss > 60)
        return -1;
    p += 8;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 3) frac_ms = frac_ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0) return -1;
        for (; n < 3; n++) frac_ms *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) < 0 || p[3] != ':' || digits(p + 4, 2, &om) < 0 || oh > 23 ||
            om > 59)
            return -1;
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    secs += hh * 3600L + mm * 60L + ss - off;
    *ms = secs * 1000 + frac_ms;
    return 0;
}

void clock_format_rfc3339(int64_t ms, char out[32])
{
    int64_t s = floor_div(ms, 1000);
    int64_t days = floor_div(s, CLOCK_DAY_S), rem = s - days * CLOCK_DAY_S;
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(days, &y, &m, &d);
    snprintf(out, 32, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60));
}

int64_t clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_utc_day(int64_t t_ms)
{
    return floor_div(t_ms, CLOCK_DAY_MS);
}

int64_t clock_utc_today(void)
{
    return clock_utc_day(clock_now_ms());
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
