/* test_rconn.c -- [redis] url parsing, shared by both programs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "rconn.h"

static void tcp_urls_with_and_without_parts(void **state)
{
    (void)state;
    struct rconn_url u;
    char err[256];
    assert_int_equal(rconn_parse_url("redis://127.0.0.1:6390/2", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 2);
    assert_int_equal(rconn_parse_url("redis://bob:s3cret@db.internal", &u, err, sizeof err), 0);
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.pass, "s3cret");
    assert_int_equal(u.port, 6379);
    assert_int_equal(rconn_parse_url("redis://[::1]:7000/0", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
}

static void unix_urls_and_db(void **state)
{
    (void)state;
    struct rconn_url u;
    char err[256];
    assert_int_equal(rconn_parse_url("unix:///run/redis.sock?db=3", &u, err, sizeof err), 0);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_int_equal(u.db, 3);
}

static void bad_urls_are_refused_with_the_key_named(void **state)
{
    (void)state;
    struct rconn_url u;
    char err[256];
    const char *bad[] = {"", "http://x", "redis://", "redis://:1", "redis://h:0", "redis://h:99999",
                         "redis://h:12x", "redis://h/db", "unix://relative", "unix:///s?db=x",
                         "redis://[::1", "redis://h/-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rconn_parse_url(bad[i], &u, err, sizeof err), -1);
        assert_non_null(strstr(err, "redis.url"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_urls_with_and_without_parts),
        cmocka_unit_test(unix_urls_and_db),
        cmocka_unit_test(bad_urls_are_refused_with_the_key_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
