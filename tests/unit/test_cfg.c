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

static void max_rows_per_day_is_another_name_of_max_members(void **state)
{
    (void)state;
    char err[512];
    struct cfg *c = load("[aggregator]\n", NULL, 0, err);
    assert_non_null(c);
    assert_int_equal(c->aggregator.max_members, 2000);
    cfg_free(c);
    assert_non_null(c = load("[aggregator]\nmax_rows_per_day = 300\n", NULL, 0, err));
    assert_int_equal(c->aggregator.max_members, 300);
    cfg_free(c);
    assert_null(load("[aggregator]\nmax_rows_per_day = 5\n", NULL, 0, err));
}

static void every_default_passes_its_own_checks(void **state)
{
    (void)state;
    char err[512] = "";
    /* Defaults go through the parsers and range checks: a bad one fails here. */
    struct cfg *c = load("[site a.test]\norigins =\n", NULL, 0, err);
    assert_non_null(c);
    assert_string_equal(c->collector.listen, "127.0.0.1:8080");
    assert_int_equal(c->collector.threads, 1);
    assert_true(c->collector.rate_limit == 0);
    assert_int_equal(c->collector.idle_timeout_ms, 60000);
    assert_int_equal(c->collector.n_trusted_proxies, 0);
    assert_int_equal(c->consent.n_previous, 0);
    assert_int_equal(c->retention.aggregates_s, 25L * 30 * 86400);
    assert_string_equal(c->aggregator.timezone, "UTC");
    const struct cfg_site *s = cfg_site_find(c, "a.test", 6);
    assert_non_null(s);
    assert_int_equal(s->consent, CFG_CONSENT_FAIRSTAT);
    assert_int_equal(s->n_origins, 0);
    assert_null(s->timezone);
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
                         "consent = fairstat\n",
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
    assert_int_equal(s->consent, CFG_CONSENT_FAIRSTAT);
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

static void an_override_replaces_a_site_key_from_the_file(void **state)
{
    (void)state;
    char err[512];
    char *over[] = {"site A.test.origins=https://b.test", "site a.test.timezone=Europe/Berlin"};
    struct cfg *c = load("[site a.test]\norigins = https://a.test, https://www.a.test\n",
                         over, 2, err);
    assert_non_null(c);
    assert_int_equal(c->n_sites, 1);
    const struct cfg_site *s = cfg_site_find(c, "a.test", 6);
    assert_int_equal(s->n_origins, 1);
    assert_string_equal(s->origins[0], "https://b.test");
    assert_string_equal(s->timezone, "Europe/Berlin");
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

static void a_bad_value_of_each_type_names_key_and_reason(void **state)
{
    (void)state;
    static const struct { const char *arg, *says; } bad[] = {
        {"collector.threads=many", "-o: collector.threads: not an integer: 'many'"},
        {"collector.threads=0", "-o: collector.threads: must be between 1 and 256: '0'"},
        {"collector.rate_limit=-1", "-o: collector.rate_limit: must be between 0 and 1e9"},
        {"collector.rate_limit=nan", "-o: collector.rate_limit: not a number"},
        {"collector.max_body=4q", "-o: collector.max_body: not a size (4096, 4k, 1m): '4q'"},
        {"collector.max_body=2m", "-o: collector.max_body: must be between 64 and 1m: '2m'"},
        {"collector.read_timeout=soon", "-o: collector.read_timeout: not a duration in ms"},
        {"collector.read_timeout=99", "-o: collector.read_timeout: must be at least 100ms"},
        {"retention.raw_max_age=3 parsecs", "-o: retention.raw_max_age: not a duration"},
        {"retention.raw_max_age=59s", "-o: retention.raw_max_age: must be at least 1m"},
        {"consent.honor_gpc=maybe", "-o: consent.honor_gpc: not yes or no: 'maybe'"},
        {"consent.cookie=a;b", "-o: consent.cookie: not a valid cookie name: 'a;b'"},
        {"consent.policy_version=", "-o: consent.policy_version: 1 to 64 characters"},
        {"consent.secret=tooshort", "-o: consent.secret: secret is shorter than 32 bytes"},
        {"consent.secret=file:/nonexistent", "-o: consent.secret: cannot read secret file"},
        {"consent.previous_secrets=0123456789abcdef0123456789abcdef, short",
         "-o: consent.previous_secrets: secret is shorter than 32 bytes"},
        {"consent.previous_secrets="
         "0123456789abcdef0123456789abcde1,0123456789abcdef0123456789abcde2,"
         "0123456789abcdef0123456789abcde3,0123456789abcdef0123456789abcde4,"
         "0123456789abcdef0123456789abcde5,0123456789abcdef0123456789abcde6,"
         "0123456789abcdef0123456789abcde7,0123456789abcdef0123456789abcde8",
         "-o: consent.previous_secrets: at most 7 items"},
        {"collector.trusted_proxies=10.0.0.0/8, 10.0.0.0/33",
         "-o: collector.trusted_proxies: not an address or CIDR: '10.0.0.0/33'"},
        {"site a.test.origins=a.test", "-o: site a.test.origins: origin must start with http"},
        {"site a.test.consent=banner", "-o: site a.test.consent: not one of fairstat|tcf|cookiebot|onetrust|klaro|cookieconsent|custom: 'banner'"},
        {"site a.test.colour=blue", "-o: site a.test.colour: unknown key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        char *over[] = {(char *)bad[i].arg};
        assert_null(load("[collector]\n", over, 1, err));
        if (strncmp(err, bad[i].says, strlen(bad[i].says)) != 0)
            fail_msg("-o %s: expected '%s...', got '%s'", bad[i].arg, bad[i].says, err);
    }
}

static void serve_keys_are_checked(void **state)
{
    (void)state;
    char err[512];
    const char *h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char text[600];
    snprintf(text, sizeof text, "[serve]\nlisten = 127.0.0.1:9\ntokens = sha256:%s, sha256:%s@a.test\n"
             "cors_origins = https://x.test\n[site a.test]\nshare = sha256:%s\n", h, h, h);
    struct cfg *c = load(text, NULL, 0, err);
    assert_non_null(c);
    assert_string_equal(c->serve.listen, "127.0.0.1:9");
    assert_int_equal(c->serve.n_cors_origins, 1);
    assert_false(c->serve.secure_cookie);
    assert_int_equal(c->serve.session_ttl_s, 12 * 3600);
    assert_non_null(c->sites[0].share);
    cfg_free(c);
    static const char *const bad[] = {
        "[serve]\ntokens = abc\n", "[serve]\ntokens = sha256:00\n",
        "[serve]\ntokens = sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
        "[serve]\ntokens = sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef@\n",
        "[site a.test]\nshare = secret\n", "[serve]\ncors_origins = x.test\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(load(bad[i], NULL, 0, err));
        assert_non_null(strstr(err, ":2: "));
    }
}

static void consent_sources_and_their_keys_are_checked_at_load(void **state)
{
    (void)state;
    char err[512];
    static const char *const sources[] = {"tcf", "cookiebot", "onetrust", "klaro",
                                          "cookieconsent"};
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "[site a.test]\nconsent = %s\n", sources[i]);
        struct cfg *c = load(text, NULL, 0, err);
        assert_non_null(c);
        assert_int_equal(c->sites[0].consent, (int)CFG_CONSENT_TCF + (int)i);
        assert_string_equal(c->sites[0].tcf_purposes, "1,8");
        assert_string_equal(c->sites[0].consent_group, "C0002");
        assert_string_equal(c->sites[0].consent_service, "fairstat");
        assert_string_equal(c->sites[0].consent_category, "analytics");
        cfg_free(c);
    }
    struct cfg *c = load("[site a.test]\nconsent = custom\nconsent_cookie = my_consent\n"
                         "consent_match = ^(yes|all)$\ntcf_purposes = 1, 7,8\ntcf_vendor = 755\n",
                         NULL, 0, err);
    assert_non_null(c);
    assert_int_equal(c->sites[0].consent, CFG_CONSENT_CUSTOM);
    cfg_free(c);
    static const struct { const char *text, *says; } bad[] = {
        {"[site a.test]\nconsent = custom\n", "custom needs consent_cookie and consent_match"},
        {"[site a.test]\nconsent = custom\nconsent_cookie = x\n", "custom needs consent_cookie"},
        {"[site a.test]\nconsent = custom\nconsent_match = x\n", "custom needs consent_cookie"},
        {"[site a.test]\nconsent_match = (unclosed\n", "not a PCRE2 pattern"},
        {"[site a.test]\nconsent_cookie = a;b\n", "not a valid cookie name"},
        {"[site a.test]\ntcf_purposes = 0\n", "not a list of TCF purposes"},
        {"[site a.test]\ntcf_purposes = 25\n", "not a list of TCF purposes"},
        {"[site a.test]\ntcf_purposes = 1;8\n", "not a list of TCF purposes"},
        {"[site a.test]\ntcf_purposes = ,\n", "not a list of TCF purposes"},
        {"[site a.test]\ntcf_vendor = 0\n", "not a TCF vendor id"},
        {"[site a.test]\ntcf_vendor = 9000\n", "not a TCF vendor id"},
        {"[site a.test]\ntcf_vendor = 12x\n", "not a TCF vendor id"},
        {"[site a.test]\nconsent_group = C0002:1\n", "1 to 64 characters"},
        {"[site a.test]\nconsent_service =\n", "1 to 64 characters"},
        {"[site a.test]\nconsent = iab\n", "not one of fairstat|tcf|cookiebot|onetrust|klaro|cookieconsent|custom"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(load(bad[i].text, NULL, 0, err));
        if (!strstr(err, bad[i].says)) fail_msg("%s: expected '%s', got '%s'", bad[i].text, bad[i].says, err);
    }
}

static void secret_file_is_read_without_its_final_newline(void **state)
{
    (void)state;
    char err[512], secret_path[64] = "/tmp/fs-test-secret-XXXXXX", text[128];
    int fd = mkstemp(secret_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef!\n", 34), 34);
    close(fd);
    snprintf(text, sizeof text, "[consent]\nsecret = file:%s\n", secret_path);
    struct cfg *c = load(text, NULL, 0, err);
    unlink(secret_path);
    assert_non_null(c);
    assert_int_equal(c->consent.secret_len, 33);
    assert_memory_equal(c->consent.secret, "0123456789abcdef0123456789abcdef!", 33);
    cfg_free(c);
}

static void each_site_gets_its_own_cookie_name_and_domain(void **state)
{
    (void)state;
    char err[512];
    /* One site: the name of every earlier version, so its cookies still count. */
    struct cfg *c = load("[consent]\ncookie_domain = example.com\n[site example.com]\norigins = https://example.com\n", NULL, 0, err);
    assert_non_null(c);
    assert_string_equal(c->sites[0].cookie, "fs_consent");
    assert_string_equal(c->sites[0].cookie_domain, "example.com");
    assert_string_equal(c->sites[0].policy_sha256, "");
    cfg_free(c);
    /* Several: derived from the site unless given; the domain per site. */
    c = load("[site example.com]\ncookie = fs_consent\n[site shop-b.org]\ncookie_domain = shop-b.org\n"
             "[site c.net]\norigins = https://c.net\n", NULL, 0, err);
    if (!c) fail_msg("%s", err);
    assert_string_equal(c->sites[0].cookie, "fs_consent");
    assert_string_equal(c->sites[0].cookie_domain, "");
    assert_string_equal(c->sites[1].cookie, "fs_consent_shop-b.org");
    assert_string_equal(c->sites[1].cookie_domain, "shop-b.org");
    assert_string_equal(c->sites[2].cookie, "fs_consent_c.net");
    cfg_free(c);
    /* Two sites on one cookie (name and domain) would overwrite each other. */
    assert_null(load("[site a.com]\ncookie = x\n[site b.com]\ncookie = x\n", NULL, 0, err));
    assert_non_null(strstr(err, "site b.com.cookie: 'x' is also the cookie of [site a.com]"));
    c = load("[site a.com]\ncookie = x\ncookie_domain = a.com\n[site b.com]\ncookie = x\n", NULL, 0, err);
    assert_non_null(c);
    cfg_free(c);
    assert_null(load("[site a.com]\ncookie = bad;name\n", NULL, 0, err));
    assert_non_null(strstr(err, "not a valid cookie name"));
}

static void policy_hash_is_given_or_computed_from_the_file(void **state)
{
    (void)state;
    char err[512], policy[64] = "/tmp/fs-test-policy-XXXXXX", text[256];
    int fd = mkstemp(policy);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    snprintf(text, sizeof text, "[site a.com]\npolicy_file = %s\n", policy);
    struct cfg *c = load(text, NULL, 0, err);
    if (!c) fail_msg("%s", err);
    /* SHA-256("abc"), FIPS 180-2 appendix B.1 */
    assert_string_equal(c->sites[0].policy_sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cfg_free(c);
    snprintf(text, sizeof text, "[site a.com]\npolicy_file = %s\npolicy_sha256 = %064d\n", policy, 0);
    assert_null(load(text, NULL, 0, err));
    assert_non_null(strstr(err, "not both"));
    unlink(policy);
    assert_null(load("[site a.com]\npolicy_file = /nonexistent/policy.html\n", NULL, 0, err));
    assert_non_null(strstr(err, "a.com.policy_file: cannot read"));
    c = load("[site a.com]\npolicy_sha256 = BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n",
             NULL, 0, err);
    assert_non_null(c);
    assert_string_equal(c->sites[0].policy_sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cfg_free(c);
    assert_null(load("[site a.com]\npolicy_sha256 = abc\n", NULL, 0, err));
    assert_non_null(strstr(err, "not 64 hex digits"));
}

/* The shipped example must start both programs, and so must each key it
 * shows commented out (";key = value"); refused keys it may only mention. */
static void the_example_config_loads_with_its_commented_keys(void **state)
{
    (void)state;
    char err[512];
    struct cfg *c = cfg_load("config/fairstat.conf", NULL, 0, err, sizeof err);
    if (!c) fail_msg("%s", err);
    cfg_free(c);
    FILE *fp = fopen("config/fairstat.conf", "r");
    assert_non_null(fp);
    char text[32768] = "", line[256];
    size_t uncommented = 0;
    while (fgets(line, sizeof line, fp)) {
        const char *p = line;
        if (p[0] == ';' && (p[1] == '[' || (p[1] != ' ' && strchr(p, '=')))) {
            p++;
            uncommented++;
        }
        assert_true(strlen(text) + strlen(p) < sizeof text);
        strcat(text, p);
    }
    fclose(fp);
    assert_true(uncommented >= 3);
    c = load(text, NULL, 0, err);
    if (!c) fail_msg("uncommented example: %s", err);
    cfg_free(c);
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

/* A reload keeps what needs a restart: each changed key of the section is
 * reported once and set back; other sections are left as loaded. */
struct changes {
    int n;
    char names[8][64];
};

static void note_change(const char *section, const char *key, void *arg)
{
    struct changes *ch = arg;
    if (ch->n < 8) snprintf(ch->names[ch->n++], 64, "%s.%s", section, key);
}

static void keep_restores_and_reports_changed_keys(void **state)
{
    (void)state;
    char err[512];
    const char *base = "[collector]\nlisten = 127.0.0.1:1\nthreads = 2\nmax_body = 8k\n"
                       "trusted_proxies = 10.0.0.0/8\n[redis]\nurl = redis://a:1\n"
                       "[site a.test]\n";
    struct cfg *old = load(base, NULL, 0, err);
    assert_non_null(old);
    struct cfg *c = load("[collector]\nlisten = 127.0.0.1:2\nthreads = 2\nmax_body = 4k\n"
                         "trusted_proxies = 10.0.0.0/8, 192.168.0.0/16\n[redis]\nurl = redis://a:1\n"
                         "[site a.test]\ntimezone = UTC\n[site b.test]\ntimezone = UTC\n", NULL, 0, err);
    assert_non_null(c);
    struct changes ch = {0};
    assert_int_equal(cfg_keep(c, old, "collector", note_change, &ch), 0);
    assert_int_equal(cfg_keep(c, old, "redis", note_change, &ch), 0);
    assert_int_equal(ch.n, 3);
    assert_string_equal(ch.names[0], "collector.listen");
    assert_string_equal(ch.names[1], "collector.trusted_proxies");
    assert_string_equal(ch.names[2], "collector.max_body");
    assert_string_equal(c->collector.listen, "127.0.0.1:1");
    assert_int_equal(c->collector.max_body, 8192);
    assert_int_equal(c->collector.n_trusted_proxies, 1);
    assert_int_equal(c->n_sites, 2);    /* the rest is the new file */
    /* Kept values are copies: the old config can go first. */
    cfg_free(old);
    assert_string_equal(c->collector.listen, "127.0.0.1:1");
    ch.n = 0;
    struct cfg *again = load(base, NULL, 0, err);
    assert_int_equal(cfg_keep(c, again, "collector", note_change, &ch), 0);
    assert_int_equal(ch.n, 0);
    cfg_free(again);
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_safe),
        cmocka_unit_test(max_rows_per_day_is_another_name_of_max_members),
        cmocka_unit_test(every_default_passes_its_own_checks),
        cmocka_unit_test(reads_sections_sites_and_units),
        cmocka_unit_test(overrides_win_and_can_create_sites),
        cmocka_unit_test(an_override_replaces_a_site_key_from_the_file),
        cmocka_unit_test(bad_value_names_file_line_and_key),
        cmocka_unit_test(a_bad_value_of_each_type_names_key_and_reason),
        cmocka_unit_test(consent_sources_and_their_keys_are_checked_at_load),
        cmocka_unit_test(secret_file_is_read_without_its_final_newline),
        cmocka_unit_test(the_example_config_loads_with_its_commented_keys),
        cmocka_unit_test(each_site_gets_its_own_cookie_name_and_domain),
        cmocka_unit_test(policy_hash_is_given_or_computed_from_the_file),
        cmocka_unit_test(unknown_key_and_section_are_errors),
        cmocka_unit_test(short_secret_is_refused),
        cmocka_unit_test(bad_override_is_reported_as_such),
        cmocka_unit_test(syntax_errors_and_long_lines_are_reported),
        cmocka_unit_test(missing_file_is_an_error),
        cmocka_unit_test(serve_keys_are_checked),
        cmocka_unit_test(value_parsers_reject_garbage),
        cmocka_unit_test(keep_restores_and_reports_changed_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
