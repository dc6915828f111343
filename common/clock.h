/* clock.h -- calendar days, site timezones and RFC 3339 times.
 *
 * The aggregator files every hit under a day (YYYYMMDD) and an hour
 * (YYYYMMDDHH) in the site's timezone; reports and purge count calendar days.
 * Civil-date arithmetic here is pure (proleptic Gregorian, days since
 * 1970-01-01) and needs no timezone at all. Only clock_zone_offset() asks the
 * C library, through the TZ environment variable: this module owns TZ in the
 * process and switches it only when a different zone is asked for and the
 * answer is not cached, so a batch of one site costs a handful of switches,
 * not one per hit. Not thread-safe (the aggregator is single-threaded).
 */
#ifndef FAIRSTAT_CLOCK_H
#define FAIRSTAT_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CLOCK_DAY_LEN 8         /* YYYYMMDD */
#define CLOCK_HOUR_LEN 10       /* YYYYMMDDHH */

/* A day of civil time. Leap seconds do not exist for POSIX time, so every
 * day, UTC or local, has exactly this many seconds between two midnights. */
#define CLOCK_DAY_S 86400LL
#define CLOCK_DAY_MS (CLOCK_DAY_S * 1000)

struct clock_zone;

/* A zone by IANA name ("Europe/Berlin", "UTC"). NULL and one line in err when
 * the name is unknown: glibc would silently treat it as UTC, which would file
 * every hit under the wrong day without anyone noticing. Free with
 * clock_zone_free(). */
struct clock_zone *clock_zone_new(const char *name, char *err, size_t errlen);
void clock_zone_free(struct clock_zone *z);
/* The name given to clock_zone_new(); lives as long as z. */
const char *clock_zone_name(const struct clock_zone *z);

/* Seconds east of UTC in zone z at t_ms. Cached per quarter hour of UTC time:
 * every offset change since 1970 falls on a whole quarter hour. */
long clock_zone_offset(struct clock_zone *z, int64_t t_ms);

/* Local day (days since 1970-01-01 in zone z) of t_ms. */
int64_t clock_local_days(struct clock_zone *z, int64_t t_ms);

/* Writes the local day "YYYYMMDD" and hour "YYYYMMDDHH" of t_ms (each NUL
 * terminated); either may be NULL. */
void clock_buckets(struct clock_zone *z, int64_t t_ms, char day[CLOCK_DAY_LEN + 1],
                   char hour[CLOCK_HOUR_LEN + 1]);

/* Civil dates <-> days since 1970-01-01. */
int64_t clock_days_from_civil(int64_t y, unsigned m, unsigned d);
void clock_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* "YYYY-MM-DD" or "YYYYMMDD" -> days. 0, or -1 when it is not a real date. */
int clock_parse_day(const char *s, int64_t *days);
/* days -> "YYYYMMDD" (compact, key form) or "YYYY-MM-DD" (dashed, for people). */
void clock_format_day(int64_t days, char out[CLOCK_DAY_LEN + 1]);
void clock_format_day_dashed(int64_t days, char out[11]);

/* RFC 3339 ("2024-03-31T01:30:00Z", "...T03:30:00.250+02:00") or a bare
 * date (midnight UTC) -> ms since the epoch. 0, or -1 when malformed. */
int clock_parse_rfc3339(const char *s, int64_t *ms);
/* ms -> "2024-03-31T01:30:00Z" (UTC, seconds precision). */
void clock_format_rfc3339(int64_t ms, char out[32]);

/* Wall-clock time in ms since the epoch. */
int64_t clock_now_ms(void);
/* The UTC day (days since 1970-01-01) of t_ms, rounding towards the past;
 * clock_utc_today() is that of now. Salts and the consent cookie's age count
 * UTC days; aggregates count a site's local days (clock_local_days). */
int64_t clock_utc_day(int64_t t_ms);
int64_t clock_utc_today(void);
/* A monotonic clock in microseconds, for intervals and deadlines. */
int64_t clock_mono_us(void);

#endif
