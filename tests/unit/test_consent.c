/* test_consent.c -- the signed consent cookie: issue, verify, rotate, expire,
 * and every way a cookie can be forged or broken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"

#define NOW 1764400000LL
#define SECRET "0123456789abcdef0123456789abcdef-current"
#define OLD "fedcba9876543210fedcba9876543210-previous"

static struct cfg *make_cfg(const char *secret, const char *previous)
{
    static char path[] = "/tmp/fs-consent-cfg";
    FILE *fp = fopen(path, "w");
    fprintf(fp, "[consent]\nsecret = %s\nprevious_secrets = %s\nmax_age_days = 10\n", secret,
            previous ? previous : "");
    fclose(fp);
    char err[256];
    struct cfg *c = cfg_load(path, NULL, 0, err, sizeof err);
    assert_non_null(c);
    remove(path);
    return c;
}

#define SITE "example.com"

/* A site as cfg_load() leaves it: its own cookie name. */
static struct cfg_site site_cfg = {.name = (char *)SITE, .cookie = (char *)"fs_consent"};
static struct cfg_site other_cfg = {.name = (char *)"other.org", .cookie = (char *)"fs_consent_other.org"};

static int issue(struct consent *k, int analytics, long long t, const char *rid, char *out)
{
    return consent_issue(k, SITE, analytics, t, rid, out, CONSENT_COOKIE_MAX + 1);
}

static void issued_cookie_verifies_and_carries_the_choice(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char rid[CONSENT_RECEIPT_LEN + 1], v[CONSENT_COOKIE_MAX + 1];
    assert_int_equal(consent_new_receipt(rid), 0);
    assert_int_equal(strlen(rid), CONSENT_RECEIPT_LEN);
    int n = issue(k, 1, NOW, rid, v);
    assert_true(n > 0);
    struct consent_cookie cc;
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW + 60, &cc), CONSENT_GRANTED);
    assert_string_equal(cc.receipt, rid);
    assert_int_equal(cc.issued, NOW);
    n = issue(k, 0, NOW, rid, v);
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW, &cc), CONSENT_DENIED);
    assert_int_equal(cc.analytics, 0);
    consent_free(k);
    cfg_free(c);
}

static void tampering_anywhere_breaks_the_signature(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char v[CONSENT_COOKIE_MAX + 1];
    int n = issue(k, 0, NOW, "AAAAAAAAAAAAAAAAAAAAAA", v);
    /* Flip "declined" to "accepted": the signature no longer matches. */
    v[2] = '1';
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW, NULL), CONSENT_INVALID);
    v[2] = '0';
    for (int i = 4; i < n; i++) {
        char saved = v[i];
        v[i] = saved == 'A' ? 'B' : (saved == '.' ? 'x' : 'A');
        assert_int_not_equal(consent_verify(k, SITE, v, (size_t)n, NOW, NULL), CONSENT_DENIED);
        v[i] = saved;
    }
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW, NULL), CONSENT_DENIED);
    consent_free(k);
    cfg_free(c);
}

static void other_secret_is_invalid_but_previous_secret_still_verifies(void **state)
{
    (void)state;
    struct cfg *old = make_cfg(OLD, NULL);
    struct consent *ko = consent_new(old);
    char v[CONSENT_COOKIE_MAX + 1];
    int n = issue(ko, 1, NOW, "BBBBBBBBBBBBBBBBBBBBBB", v);
    struct cfg *fresh = make_cfg(SECRET, NULL);
    struct consent *kf = consent_new(fresh);
    assert_int_equal(consent_verify(kf, SITE, v, (size_t)n, NOW, NULL), CONSENT_INVALID);
    struct cfg *rotated = make_cfg(SECRET, OLD);
    struct consent *kr = consent_new(rotated);
    assert_int_equal(consent_verify(kr, SITE, v, (size_t)n, NOW, NULL), CONSENT_GRANTED);
    consent_free(ko);
    consent_free(kf);
    consent_free(kr);
    cfg_free(old);
    cfg_free(fresh);
    cfg_free(rotated);
}

static void a_cookie_is_consent_for_its_site_and_policy_only(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char v[CONSENT_COOKIE_MAX + 1];
    int n = issue(k, 1, NOW, "EEEEEEEEEEEEEEEEEEEEEE", v);
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW, NULL), CONSENT_GRANTED);
    assert_int_equal(consent_verify(k, "shop.test", v, (size_t)n, NOW, NULL), CONSENT_INVALID);
    /* A new policy version asks again: the old cookie no longer verifies. */
    free(c->consent.policy_version);
    c->consent.policy_version = strdup("2");
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW, NULL), CONSENT_INVALID);
    consent_free(k);
    cfg_free(c);
}

static void expired_and_future_cookies_are_refused(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char v[CONSENT_COOKIE_MAX + 1];
    int n = issue(k, 1, NOW, "CCCCCCCCCCCCCCCCCCCCCC", v);
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW + 10 * 86400, NULL), CONSENT_GRANTED);
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW + 10 * 86400 + 1, NULL), CONSENT_EXPIRED);
    assert_int_equal(consent_verify(k, SITE, v, (size_t)n, NOW - 3600, NULL), CONSENT_INVALID);
    consent_free(k);
    cfg_free(c);
}

static void malformed_values_are_invalid(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    const char *bad[] = {
        "", "1", "1.1", "2.1.1764400000.AAAAAAAAAAAAAAAAAAAAAA.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "1.1..AAAAAAAAAAAAAAAAAAAAAA.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "1.1.1764400000.AAAA$AAAAAAAAAAAAAAAAA.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "1.1.1764400000.AAAAAAAAAAAAAAAAAAAAAA.short",
        "1.1.99999999999999999999.AAAAAAAAAAAAAAAAAAAAAA.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(consent_verify(k, SITE, bad[i], strlen(bad[i]), NOW, NULL), CONSENT_INVALID);
    char huge[4096];
    memset(huge, '1', sizeof huge);
    assert_int_equal(consent_verify(k, SITE, huge, sizeof huge, NOW, NULL), CONSENT_INVALID);
    consent_free(k);
    cfg_free(c);
}

static void cookie_header_is_searched_for_our_name_only(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char v[CONSENT_COOKIE_MAX + 1], hdr[512];
    issue(k, 1, NOW, "DDDDDDDDDDDDDDDDDDDDDD", v);
    snprintf(hdr, sizeof hdr, "a=b; xfs_consent=nope;  fs_consent=%s ; z=1", v);
    assert_int_equal(consent_check(k, &site_cfg, hdr, strlen(hdr), NOW, NULL), CONSENT_GRANTED);
    snprintf(hdr, sizeof hdr, "fs_consentx=%s", v);
    assert_int_equal(consent_check(k, &site_cfg, hdr, strlen(hdr), NOW, NULL), CONSENT_NONE);
    assert_int_equal(consent_check(k, &site_cfg, "", 0, NOW, NULL), CONSENT_NONE);
    assert_int_equal(consent_check(k, &site_cfg, ";;;", 3, NOW, NULL), CONSENT_NONE);
    assert_int_equal(consent_check(k, &site_cfg, "fs_consent=", 11, NOW, NULL), CONSENT_INVALID);
    consent_free(k);
    cfg_free(c);
}

static void each_site_reads_only_its_own_cookie(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    struct consent *k = consent_new(c);
    char mine[CONSENT_COOKIE_MAX + 1], theirs[CONSENT_COOKIE_MAX + 1], hdr[512];
    issue(k, 1, NOW, "DDDDDDDDDDDDDDDDDDDDDD", mine);
    consent_issue(k, "other.org", 0, NOW, "EEEEEEEEEEEEEEEEEEEEEE", theirs, sizeof theirs);
    snprintf(hdr, sizeof hdr, "fs_consent_other.org=%s; fs_consent=%s", theirs, mine);
    struct consent_cookie cc;
    assert_int_equal(consent_check(k, &site_cfg, hdr, strlen(hdr), NOW, &cc), CONSENT_GRANTED);
    assert_string_equal(cc.receipt, "DDDDDDDDDDDDDDDDDDDDDD");
    assert_int_equal(consent_check(k, &other_cfg, hdr, strlen(hdr), NOW, &cc), CONSENT_DENIED);
    assert_string_equal(cc.receipt, "EEEEEEEEEEEEEEEEEEEEEE");
    /* Only the other site's cookie: none for this one, whatever it says. */
    snprintf(hdr, sizeof hdr, "fs_consent_other.org=%s", theirs);
    assert_int_equal(consent_check(k, &site_cfg, hdr, strlen(hdr), NOW, NULL), CONSENT_NONE);
    consent_free(k);
    cfg_free(c);
}

static void gpc_and_dnt_refuse_only_when_honoured(void **state)
{
    (void)state;
    struct cfg *c = make_cfg(SECRET, NULL);
    assert_string_equal(consent_signal(c, "1", 1, NULL, 0), "gpc");
    assert_string_equal(consent_signal(c, " 1 ", 3, NULL, 0), "gpc");
    assert_string_equal(consent_signal(c, NULL, 0, "1", 1), "dnt");
    assert_null(consent_signal(c, "0", 1, "0", 1));
    assert_null(consent_signal(c, "11", 2, NULL, 0));
    c->consent.honor_gpc = false;
    c->consent.honor_dnt = false;
    assert_null(consent_signal(c, "1", 1, "1", 1));
    cfg_free(c);
}

static void no_secret_no_consent_module(void **state)
{
    (void)state;
    struct cfg c;
    memset(&c, 0, sizeof c);
    assert_null(consent_new(&c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(issued_cookie_verifies_and_carries_the_choice),
        cmocka_unit_test(tampering_anywhere_breaks_the_signature),
        cmocka_unit_test(other_secret_is_invalid_but_previous_secret_still_verifies),
        cmocka_unit_test(a_cookie_is_consent_for_its_site_and_policy_only),
        cmocka_unit_test(expired_and_future_cookies_are_refused),
        cmocka_unit_test(malformed_values_are_invalid),
        cmocka_unit_test(cookie_header_is_searched_for_our_name_only),
        cmocka_unit_test(each_site_reads_only_its_own_cookie),
        cmocka_unit_test(gpc_and_dnt_refuse_only_when_honoured),
        cmocka_unit_test(no_secret_no_consent_module),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
