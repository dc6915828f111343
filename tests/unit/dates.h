/* dates.h -- written dates for the unit tests: "2024-05-01T08:00:00Z" and
 * "20240501" instead of millisecond and day numbers. Include after cmocka.h. */
#ifndef FAIRSTAT_TEST_DATES_H
#define FAIRSTAT_TEST_DATES_H

#include <stdint.h>

#include "clock.h"

/* ms since the epoch of an RFC 3339 time; fails the test when it is not one. */
static inline int64_t at(const char *rfc3339)
{
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339(rfc3339, &ms), 0);
    return ms;
}

/* Days since 1970-01-01 of "YYYYMMDD" or "YYYY-MM-DD". */
static inline int64_t day(const char *yyyymmdd)
{
    int64_t d;
    assert_int_equal(clock_parse_day(yyyymmdd, &d), 0);
    return d;
}

#endif
