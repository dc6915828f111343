/* test_cfg.c -- the configuration loader: values, overrides, and errors that
 * name the file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "cfg.h"

static char path[64];

static void write_conf(const char *text)
{
    strcpy(path, "/tmp/fs-test-cfg-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static struct cfg *load(const char *text, char *const *over, size_t n, char *err)
{
    write_conf(text);
    struct cfg *c = cfg_load(path, over, n, err, 512);
    unlink(path);
    return c;
}

static void defaults_are_safe(void **state)
{
    (void)state;
    char err[512];
    struct cfg *c = load("[collector]\n", NULL, 0, err);
    assert_non_null(c);
    assert_int_equal(c->collector.max_body, 4096);
    assert_true(c->consent.honor_gpc);
    assert_true(c->consent.honor_dnt);
    assert_true(c->consent.secure);
    assert_string_equal(c->consent.cookie, "fs_consent");
    assert_int_equal(c->retention.raw_max_age_s, 86400);
    assert_null(c->consent.secret);
    cfg_free(c);
}

static void reads_sections_sites_and_units(void **state)
{
    (void)state;
    char err[512];
    struct cfg *c = load("; comment\n[collector]\nmax_body = 8k\nread_timeout = 2s\n"
                         "trusted_proxies = 10.0.0.0/8, ::1\n"
                         "[consent]\nsecret = 0123456789abcdef0123456789abcdef\nhonor_dnt = no\n"
                         "[retention]\nraw_max_age = 12h\naggregates = 25mo\n"
                         "[site example.com]\norigins = https://example.com, https://www.example.com/\n"
                         "consent = tcf\n",
                         NULL, 0, err);
    assert_non_null(c);
    assert_int_equal(c->collector.max_body, 8192);
    assert_int_equal(c->collector.read_timeout_ms, 2000);
    assert_int_equal(c->collector.n_trusted_proxies, 2);
    assert_int_equal(c->consent.secret_len, 32);
    assert_false(c->consent.honor_dnt);
    assert_int_equal(c->retention.raw_max_age_s, 12 * 3600);
    assert_int_equal(c->retention.aggregates_s, 25L * 30 * 86400);
    const struct cfg_site *s = cfg_site_find(c, "example.com", 11);
    assert_non_null(s);
    assert_int_equal(s->n_origins, 2);
    assert_string_equal(s->origins[1], "https://www.example.com");
    assert_int_equal(s->consent, CFG_CONSENT_TCF);
    assert_null(cfg_site_find(c, "example.org", 11));
    cfg_free(c);
}

static void overrides_win_and_can_create_sites(void **state)
{
    (void)state;
    char err[512];
    char *over[] = {"collector.max_body=1k", "site shop.test.origins=https://shop.test"};
    struct cfg *c = load("[collector]\nmax_body = 8k\n", over, 2, err);
    assert_non_null(c);
    assert_int_equal(c->collector.max_body, 1024);
    assert_non_null(cfg_site_find(c, "shop.test", 9));
    cfg_free(c);
}

static void bad_value_names_file_line_and_key(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("[collector]\nthreads = 2\nmax_body = 4q\n", NULL, 0, err));
    assert_non_null(strstr(err, ":3:"));
    assert_non_null(strstr(err, "collector.max_body"));
    assert_non_null(strstr(err, path));
}

static void unknown_key_and_section_are_errors(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("[collector]\nlisten = 1.2.3.4:1\nlsiten = x\n", NULL, 0, err));
    assert_non_null(strstr(err, ":3:"));
    assert_non_null(strstr(err, "collector.lsiten: unknown key"));
    assert_null(load("[colector]\nlisten = x\n", NULL, 0, err));
    assert_non_null(strstr(err, "unknown key"));
}

static void short_secret_is_refused(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("[consent]\nsecret = tooshort\n", NULL, 0, err));
    assert_non_null(strstr(err, "consent.secret"));
    assert_non_null(strstr(err, "32 bytes"));
}

static void bad_override_is_reported_as_such(void **state)
{
    (void)state;
    char err[512];
    char *over[] = {"nodot=1"};
    assert_null(load("[collector]\n", over, 1, err));
    assert_non_null(strstr(err, "-o"));
    char *over2[] = {"consent.honor_gpc=maybe"};
    assert_null(load("[collector]\n", over2, 1, err));
    assert_non_null(strstr(err, "consent.honor_gpc"));
}

static void syntax_errors_and_long_lines_are_reported(void **state)
{
    (void)state;
    char err[512];
    assert_null(load("[collector]\nthis line has no equals sign\n", NULL, 0, err));
    assert_non_null(strstr(err, ":2:"));
    char text[600] = "[collector]\nlisten = ";
    memset(text + strlen(text), 'a', 300);
    strcat(text, "\n");
    assert_null(load(text, NULL, 0, err));
    assert_non_null(strstr(err, "longer than"));
}

static void missing_file_is_an_error(void **state)
{
    (void)state;
    char err[512];
    assert_null(cfg_load("/nonexistent/fairstat.conf", NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/fairstat.conf"));
}

static void value_parsers_reject_garbage(void **state)
{
    (void)state;
    long s;
    size_t b;
    bool yes;
    struct cfg_cidr cidr;
    assert_int_equal(cfg_parse_duration("5y", &s), 0);
    assert_int_equal(s, 5L * 365 * 86400);
    assert_int_equal(cfg_parse_duration("-1h", &s), -1);
    assert_int_equal(cfg_parse_duration("h", &s), -1);
    assert_int_equal(cfg_parse_duration("3 parsecs", &s), -1);
    assert_int_equal(cfg_parse_size("1MiB", &b), 0);
    assert_int_equal(b, 1048576);
    assert_int_equal(cfg_parse_size("", &b), -1);
    assert_int_equal(cfg_parse_bool("On", &yes), 0);
    assert_true(yes);
    assert_int_equal(cfg_parse_bool("sure", &yes), -1);
    assert_int_equal(cfg_parse_cidr("10.0.0.0/33", &cidr), -1);
    assert_int_equal(cfg_parse_cidr("not-an-ip", &cidr), -1);
    assert_int_equal(cfg_parse_cidr("192.168.0.0/16", &cidr), 0);
    unsigned char in[4] = {192, 168, 7, 9}, out[4] = {192, 169, 0, 1};
    assert_true(cfg_cidr_match(&cidr, 1, AF_INET, in));
    assert_false(cfg_cidr_match(&cidr, 1, AF_INET, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_safe),
        cmocka_unit_test(reads_sections_sites_and_units),
        cmocka_unit_test(overrides_win_and_can_create_sites),
        cmocka_unit_test(bad_value_names_file_line_and_key),
        cmocka_unit_test(unknown_key_and_section_are_errors),
        cmocka_unit_test(short_secret_is_refused),
        cmocka_unit_test(bad_override_is_reported_as_such),
        cmocka_unit_test(syntax_errors_and_long_lines_are_reported),
        cmocka_unit_test(missing_file_is_an_error),
        cmocka_unit_test(value_parsers_reject_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
