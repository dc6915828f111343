/* test_cmp.c -- the consent managers' cookies: for each preset, what the
 * manager writes for accept and for reject, then garbage and oversized
 * values; the gate per site (cmp_check) with the TC string from a cookie
 * and from the beacon; the custom pattern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmp.h"
#include "consent.h"
#include "tcf_strings.h"

#define S(lit) lit, sizeof lit - 1

static char big[CMP_VALUE_MAX + 64];

/* A value just over the cap, made of what the parser would otherwise take. */
static const char *oversized(const char *head)
{
    size_t n = strlen(head);
    memcpy(big, head, n);
    memset(big + n, 'a', sizeof big - n - 1);
    big[sizeof big - 1] = '\0';
    return big;
}

static void cookiebot_grants_on_statistics_true_only(void **state)
{
    (void)state;
    assert_int_equal(cmp_cookiebot(S("{stamp:%27-1jYOnr2H3iQh0bdZQvFtqUy/Uc0SflgKyJ4AqB1PBwIm==%27%2Cnecessary:true"
                                     "%2Cpreferences:false%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27"
                                     "%2Cver:1%2Cutc:1716451200000%2Cregion:%27de%27}")),
                     CMP_GRANTED);
    assert_int_equal(cmp_cookiebot(S("{stamp:%27abc%27%2Cnecessary:true%2Cpreferences:true%2Cstatistics:false"
                                     "%2Cmarketing:true%2Cmethod:%27explicit%27%2Cver:1%2Cutc:1716451200000}")),
                     CMP_DENIED);
    assert_int_equal(cmp_cookiebot(S("{necessary:true,statistics:true}")), CMP_GRANTED);   /* not encoded */
    assert_int_equal(cmp_cookiebot(S("-1")), CMP_DENIED);                   /* no consent asked */
    static const char *const bad[] = {
        "", "{}", "{necessary:true}", "{statistics:'true'}", "{statistics:1}", "{statistics:true",
        "statistics:true}", "{statistics:true,statistics:false}", "{statistics:true}x",
        "{statistics:true,}", "{stamp:'a,statistics:true}", "{stamp:%27a%2}", "{statistics:true%00}",
        "{\"statistics\":true}", "{statistics:tru}", "{a:-}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cmp_cookiebot(bad[i], strlen(bad[i])) != CMP_INVALID) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(cmp_cookiebot(oversized("{statistics:true,x:'"), CMP_VALUE_MAX + 1), CMP_INVALID);
}

static void onetrust_grants_on_the_configured_group(void **state)
{
    (void)state;
    const char accept[] = "isGpcEnabled=0&datestamp=Thu+May+23+2024+10%3A00%3A00+GMT%2B0200"
                          "&version=202403.1.0&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=abc"
                          "&interactionCount=1&landingPath=NotLandingPage"
                          "&groups=C0001%3A1%2CC0002%3A1%2CC0003%3A0%2CC0004%3A0&AwaitingReconsent=false";
    const char reject[] = "isGpcEnabled=0&version=202403.1.0"
                          "&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A0%2CC0004%3A0";
    assert_int_equal(cmp_onetrust(accept, strlen(accept), "C0002"), CMP_GRANTED);
    assert_int_equal(cmp_onetrust(accept, strlen(accept), "C0004"), CMP_DENIED);
    assert_int_equal(cmp_onetrust(reject, strlen(reject), "C0002"), CMP_DENIED);
    assert_int_equal(cmp_onetrust(S("groups=C0001:1,C0002:1"), "C0002"), CMP_GRANTED);
    assert_int_equal(cmp_onetrust(S("groups=C0001%3A1"), "C0002"), CMP_DENIED);   /* not listed */
    assert_int_equal(cmp_onetrust(S("groups=C00021%3A1"), "C0002"), CMP_DENIED);  /* a prefix is not it */
    static const char *const bad[] = {
        "", "version=1", "groups=", "groups=C0002", "groups=C0002:2", "groups=C0002:1,",
        "groups=:1", "groups=C0002:1&groups=C0002:1", "groups=C0002:1,C0002:1", "groups=C0002%3", "groups=C0002:11",
        "version=%zz&groups=C0002:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cmp_onetrust(bad[i], strlen(bad[i]), "C0002") != CMP_INVALID) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(cmp_onetrust(oversized("groups=C0002:1&x="), CMP_VALUE_MAX + 1, "C0002"), CMP_INVALID);
}

static void klaro_grants_on_the_configured_service(void **state)
{
    (void)state;
    assert_int_equal(cmp_klaro(S("%7B%22fairstat%22%3Atrue%2C%22youtube%22%3Afalse%7D"), "fairstat"), CMP_GRANTED);
    assert_int_equal(cmp_klaro(S("%7B%22fairstat%22%3Afalse%2C%22youtube%22%3Atrue%7D"), "fairstat"), CMP_DENIED);
    assert_int_equal(cmp_klaro(S("{\"youtube\":true}"), "fairstat"), CMP_DENIED);
    assert_int_equal(cmp_klaro(S("{\"matomo\":true}"), "matomo"), CMP_GRANTED);
    static const char *const bad[] = {
        "", "{", "[]", "true", "{\"fairstat\":1}", "{\"fairstat\":\"true\"}",
        "{\"fairstat\":true,\"fairstat\":true}", "%7B%22fairstat%22%3Atrue%7", "{\"fairstat\":true}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cmp_klaro(bad[i], strlen(bad[i]), "fairstat") != CMP_INVALID) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(cmp_klaro(oversized("{\"fairstat\":true,\"x\":\""), CMP_VALUE_MAX + 1, "fairstat"), CMP_INVALID);
}

static void cookieconsent_grants_on_the_configured_category(void **state)
{
    (void)state;
    const char v3[] = "%7B%22categories%22%3A%5B%22necessary%22%2C%22analytics%22%5D%2C%22revision%22%3A0"
                      "%2C%22data%22%3Anull%2C%22consentTimestamp%22%3A%222024-05-23T10%3A00%3A00.000Z%22"
                      "%2C%22consentId%22%3A%22a1%22%2C%22services%22%3A%7B%22necessary%22%3A%5B%5D%2C"
                      "%22analytics%22%3A%5B%5D%7D%2C%22languageCode%22%3A%22en%22%7D";
    const char v3_reject[] = "%7B%22categories%22%3A%5B%22necessary%22%5D%2C%22revision%22%3A0%7D";
    assert_int_equal(cmp_cookieconsent(v3, strlen(v3), "analytics"), CMP_GRANTED);
    assert_int_equal(cmp_cookieconsent(v3_reject, strlen(v3_reject), "analytics"), CMP_DENIED);
    assert_int_equal(cmp_cookieconsent(S("{\"level\":[\"necessary\",\"analytics\"],\"revision\":0}"), "analytics"),
                     CMP_GRANTED);
    assert_int_equal(cmp_cookieconsent(S("{\"level\":[\"necessary\"]}"), "analytics"), CMP_DENIED);
    static const char *const bad[] = {
        "", "{}", "{\"categories\":\"analytics\"}", "{\"categories\":[1]}", "[\"analytics\"]",
        "{\"categories\":[\"analytics\"],\"categories\":[]}", "{\"categories\":[\"analytics\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cmp_cookieconsent(bad[i], strlen(bad[i]), "analytics") != CMP_INVALID) fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(cmp_cookieconsent(oversized("{\"categories\":[\"analytics\"],\"x\":\""), CMP_VALUE_MAX + 1,
                                       "analytics"),
                     CMP_INVALID);
}

static json_t *tcf_cases;

static const char *tc(const char *name)
{
    return tcf_string(tcf_cases, name);
}

static void tcf_requires_every_purpose_and_the_vendor(void **state)
{
    (void)state;
    tcf_cases = tcf_strings_load();
    const unsigned long p18 = 1ul << 0 | 1ul << 7;
    const char *s = tc("purposes_1_8_vendor_range");
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 0), CMP_GRANTED);
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 300), CMP_GRANTED);
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 301), CMP_DENIED);
    assert_int_equal(cmp_tcf(s, strlen(s), p18 | 1ul << 1, 0), CMP_DENIED);
    s = tc("purpose_8_withheld");
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 0), CMP_DENIED);
    assert_int_equal(cmp_tcf(s, strlen(s), 1, 0), CMP_GRANTED);
    s = tc("purpose_1_withheld");
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 0), CMP_DENIED);
    s = tc("single_vendor_755");
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 755), CMP_GRANTED);
    assert_int_equal(cmp_tcf(s, strlen(s), p18, 754), CMP_DENIED);
    assert_int_equal(cmp_tcf(S("CP99dOAP"), p18, 0), CMP_INVALID);
    assert_int_equal(cmp_tcf(S("not a tc string"), p18, 0), CMP_INVALID);
    unsigned long m;
    assert_int_equal(cmp_parse_purposes("1,8", &m), 0);
    assert_int_equal(m, p18);
    assert_int_equal(cmp_parse_purposes(" 1, 24 ", &m), 0);
    assert_int_equal(cmp_parse_purposes("0", &m), -1);
    assert_int_equal(cmp_parse_purposes("25", &m), -1);
    assert_int_equal(cmp_parse_purposes("", &m), -1);
    assert_int_equal(cmp_parse_purposes("1x", &m), -1);
    json_decref(tcf_cases);
}

static void url_decode_and_cookie_lookup_are_strict(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(cmp_url_decode(S("a%3Ab+c"), out, sizeof out, 1), 5);
    assert_string_equal(out, "a:b c");
    assert_int_equal(cmp_url_decode(S("a+c"), out, sizeof out, 0), 3);
    assert_string_equal(out, "a+c");
    assert_int_equal(cmp_url_decode(S("%"), out, sizeof out, 0), -1);
    assert_int_equal(cmp_url_decode(S("%4"), out, sizeof out, 0), -1);
    assert_int_equal(cmp_url_decode(S("%zz"), out, sizeof out, 0), -1);
    assert_int_equal(cmp_url_decode(S("%00"), out, sizeof out, 0), -1);
    assert_int_equal(cmp_url_decode("abc", 3, out, 3, 0), -1);          /* no room for the NUL */
    const char *v;
    size_t n;
    const char h[] = "xklaro=1; klaro=\"{}\"; other=2";
    assert_int_equal(cmp_cookie(h, strlen(h), "klaro", &v, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "{}", 2);
    assert_int_equal(cmp_cookie(h, strlen(h), "missing", &v, &n), -1);
    assert_int_equal(cmp_cookie(NULL, 0, "klaro", &v, &n), -1);
}

static struct cfg *load(const char *text)
{
    static char path[] = "/tmp/fs-test-cmp.conf";
    FILE *fp = fopen(path, "w");
    fprintf(fp, "[consent]\nsecret = 0123456789abcdef0123456789abcdef-cmp\n%s", text);
    fclose(fp);
    char err[256];
    struct cfg *c = cfg_load(path, NULL, 0, err, sizeof err);
    if (!c) fail_msg("%s", err);
    remove(path);
    return c;
}

static void each_site_reads_its_own_manager(void **state)
{
    (void)state;
    tcf_cases = tcf_strings_load();
    struct cfg *c = load("[site t.test]\nconsent = tcf\ntcf_vendor = 755\n"
                         "[site k.test]\nconsent = klaro\nconsent_service = stats\n"
                         "[site c.test]\nconsent = custom\nconsent_cookie = my_choice\n"
                         "consent_match = ^stats=(yes|on)(;|$)\n"
                         "[site r.test]\nconsent = custom\nconsent_cookie = x\nconsent_match = ^(a+)+$\n");
    char err[256];
    struct cmp *m = cmp_new(c, err, sizeof err);
    assert_non_null(m);
    const struct cfg_site *t = cfg_site_find(c, S("t.test")), *k = cfg_site_find(c, S("k.test")),
                          *cu = cfg_site_find(c, S("c.test")), *re = cfg_site_find(c, S("r.test"));
    char h[512];
    const char *granted = tc("single_vendor_755"), *withheld = tc("purposes_1_8_vendor_range");
    snprintf(h, sizeof h, "a=1; euconsent-v2=%s", granted);
    assert_int_equal(cmp_check(m, t, h, strlen(h), "", 0), CMP_GRANTED);
    /* the beacon's TC string is the CMP's latest word: it wins over the cookie */
    assert_int_equal(cmp_check(m, t, h, strlen(h), withheld, strlen(withheld)), CMP_DENIED);
    assert_int_equal(cmp_check(m, t, NULL, 0, granted, strlen(granted)), CMP_GRANTED);
    assert_int_equal(cmp_check(m, t, NULL, 0, "", 0), CMP_NONE);
    assert_int_equal(cmp_check(m, t, S("euconsent-v2=garbage!"), "", 0), CMP_INVALID);
    /* a Fairstat cookie or another manager's cookie is nothing to klaro */
    assert_int_equal(cmp_check(m, k, S("fs_consent=1.1.2.x; CookieConsent={statistics:true}"), "", 0), CMP_NONE);
    assert_int_equal(cmp_check(m, k, S("klaro=%7B%22stats%22%3Atrue%7D"), "", 0), CMP_GRANTED);
    assert_int_equal(cmp_check(m, k, S("klaro=%7B%22fairstat%22%3Atrue%7D"), "", 0), CMP_DENIED);
    assert_int_equal(cmp_check(m, cu, S("my_choice=stats%3Dyes%3Bads%3Dno"), "", 0), CMP_GRANTED);
    assert_int_equal(cmp_check(m, cu, S("my_choice=stats%3Dno"), "", 0), CMP_DENIED);
    assert_int_equal(cmp_check(m, cu, S("my_choice=%zz"), "", 0), CMP_INVALID);
    /* catastrophic backtracking stops at the match limit: refused, not hung */
    static char evil[64];
    memset(evil, 0, sizeof evil);
    strcpy(evil, "x=");
    memset(evil + 2, 'a', 40);
    evil[42] = 'b';
    enum cmp_verdict v = cmp_check(m, re, evil, strlen(evil), "", 0);
    assert_true(v == CMP_INVALID || v == CMP_DENIED);
    cmp_free(m);
    cfg_free(c);
    json_decref(tcf_cases);
}

static void gpc_and_dnt_merged_by_a_proxy_still_count(void **state)
{
    (void)state;
    struct cfg *c = load("");
    assert_string_equal(consent_signal(c, S("1, 1"), NULL, 0), "gpc");
    assert_string_equal(consent_signal(c, S(" 1 "), NULL, 0), "gpc");
    assert_string_equal(consent_signal(c, S("0,1"), NULL, 0), "gpc");
    assert_string_equal(consent_signal(c, NULL, 0, S("1,1")), "dnt");
    assert_null(consent_signal(c, S("0"), S("0, 0")));
    assert_null(consent_signal(c, S("11"), S("1 1")));
    assert_null(consent_signal(c, S(","), S("")));
    cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cookiebot_grants_on_statistics_true_only),
        cmocka_unit_test(onetrust_grants_on_the_configured_group),
        cmocka_unit_test(klaro_grants_on_the_configured_service),
        cmocka_unit_test(cookieconsent_grants_on_the_configured_category),
        cmocka_unit_test(tcf_requires_every_purpose_and_the_vendor),
        cmocka_unit_test(url_decode_and_cookie_lookup_are_strict),
        cmocka_unit_test(each_site_reads_its_own_manager),
        cmocka_unit_test(gpc_and_dnt_merged_by_a_proxy_still_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
