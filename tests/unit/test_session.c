/* test_session.c -- the C side of visits (session.h).
 *
 * The visit state machine itself runs inside Redis (session_script) and is
 * covered end to end by tests/integration/aggregator_session.test.mjs; here:
 * how long session state lives, and that the script keeps its promises in
 * its text (what it checks before counting).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "session.h"

#define MIN (60 * 1000LL)
#define DAY (24 * 60 * MIN)

static void live_hit_keeps_state_for_the_idle_time(void **state)
{
    (void)state;
    assert_int_equal(session_ttl_ms(SESSION_IDLE_MS, 1000 * MIN, 1000 * MIN, DAY), 30 * MIN);
    /* A hit from the near future (clock skew) does not shorten it. */
    assert_int_equal(session_ttl_ms(SESSION_IDLE_MS, 1001 * MIN, 1000 * MIN, DAY), 30 * MIN);
}

static void backlog_extends_state_by_the_lag(void **state)
{
    (void)state;
    /* Folded an hour late: the next hit of the visit is also an hour late. */
    assert_int_equal(session_ttl_ms(SESSION_IDLE_MS, 1000 * MIN, 1060 * MIN, DAY), 90 * MIN);
}

static void state_never_outlives_the_raw_retention(void **state)
{
    (void)state;
    assert_int_equal(session_ttl_ms(SESSION_IDLE_MS, 0, 10 * DAY, DAY + 30 * MIN), DAY + 30 * MIN);
}

static void ttl_is_never_zero(void **state)
{
    (void)state;
    assert_true(session_ttl_ms(0, 5, 5, DAY) >= 1000);
}

static void script_counts_only_entries_still_pending_and_present(void **state)
{
    (void)state;
    const char *claim = strstr(session_script, "redis.call('XCLAIM'");
    const char *justid = strstr(session_script, "'JUSTID'");
    const char *ack = strstr(session_script, "redis.call('XACK'");
    const char *del = strstr(session_script, "redis.call('XDEL'");
    const char *cond = strstr(session_script, "if valid[id] and kind ~= 'X' then");
    const char *first_count = strstr(session_script, "HINCRBY");
    assert_non_null(claim);
    assert_non_null(justid);
    assert_non_null(ack);
    assert_non_null(del);
    assert_non_null(cond);
    /* Pending-and-present is learnt before anything is acknowledged or deleted. */
    assert_true(claim < ack && ack < del && del < cond && cond < first_count);
}

static void script_does_not_read_the_server_clock(void **state)
{
    (void)state;
    /* Time comes from the hits and from C, so a replayed batch decides the same. */
    assert_null(strstr(session_script, "'TIME'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(live_hit_keeps_state_for_the_idle_time),
        cmocka_unit_test(backlog_extends_state_by_the_lag),
        cmocka_unit_test(state_never_outlives_the_raw_retention),
        cmocka_unit_test(ttl_is_never_zero),
        cmocka_unit_test(script_counts_only_entries_still_pending_and_present),
        cmocka_unit_test(script_does_not_read_the_server_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
