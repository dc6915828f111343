/* test_tcf.c -- the TC string decoder against strings made by the official
 * IAB encoder (tcf_strings.h), and every way a string can be cut, garbled or
 * inflated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcf.h"
#include "tcf_strings.h"

static int decode(const char *s, struct tcf *t)
{
    return tcf_decode(s, strlen(s), t);
}

/* The ids of a vendor set, checked against a JSON array of them. */
static void assert_ids(json_t *want, int max, int (*has)(const struct tcf *, int), const struct tcf *t)
{
    size_t n = 0;
    for (int id = 0; id <= max + 1; id++) {
        if (!has(t, id)) continue;
        assert_true(n < json_array_size(want));
        assert_int_equal(json_integer_value(json_array_get(want, n)), id);
        n++;
    }
    assert_int_equal(n, json_array_size(want));
}

static void official_strings_decode_to_what_the_library_reads(void **state)
{
    (void)state;
    json_t *root = tcf_strings_load(), *c;
    size_t i;
    int ranged = 0, bitfield = 0;
    static struct tcf t;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        const char *tc = json_string_value(json_object_get(c, "tc"));
        json_t *x = json_object_get(c, "expect");
        assert_int_equal(decode(tc, &t), TCF_OK);
#define INT(f, k) assert_int_equal(t.f, json_integer_value(json_object_get(x, k)))
#define BOOL(f, k) assert_int_equal(t.f, json_is_true(json_object_get(x, k)))
        INT(version, "version");
        INT(created_ds, "created_ds");
        INT(updated_ds, "updated_ds");
        INT(cmp_id, "cmp_id");
        INT(cmp_version, "cmp_version");
        INT(consent_screen, "consent_screen");
        INT(vendor_list_version, "vendor_list_version");
        INT(policy_version, "policy_version");
        INT(max_vendor, "max_vendor");
        BOOL(service_specific, "service_specific");
        BOOL(non_standard_texts, "non_standard_texts");
        BOOL(purpose_one_treatment, "purpose_one_treatment");
        assert_string_equal(t.consent_language, json_string_value(json_object_get(x, "consent_language")));
        assert_string_equal(t.publisher_cc, json_string_value(json_object_get(x, "publisher_cc")));
        int is_range = strcmp(json_string_value(json_object_get(x, "vendor_encoding")), "range") == 0;
        assert_int_equal(t.vendor_ranges, is_range);
        ranged += is_range;
        bitfield += !is_range;
        uint32_t p = 0, li = 0, sf = 0;
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(x, "purposes"), k, v) p |= 1u << (json_integer_value(v) - 1);
        json_array_foreach(json_object_get(x, "purposes_li"), k, v) li |= 1u << (json_integer_value(v) - 1);
        json_array_foreach(json_object_get(x, "special_features"), k, v) sf |= 1u << (json_integer_value(v) - 1);
        assert_int_equal(t.purposes, p);
        assert_int_equal(t.purposes_li, li);
        assert_int_equal(t.special_features, sf);
        assert_ids(json_object_get(x, "vendors"), TCF_VENDOR_MAX, tcf_vendor_consent, &t);
        assert_ids(json_object_get(x, "vendors_li"), TCF_VENDOR_MAX, tcf_vendor_li, &t);
    }
    assert_true(ranged >= 2);
    assert_true(bitfield >= 2);
    json_decref(root);
}

static void purposes_and_vendors_granted_and_withheld(void **state)
{
    (void)state;
    json_t *root = tcf_strings_load();
    static struct tcf t;
    assert_int_equal(decode(tcf_string(root, "purposes_1_8_vendor_range"), &t), TCF_OK);
    assert_true(tcf_purpose_consent(&t, 1) && tcf_purpose_consent(&t, 8));
    assert_false(tcf_purpose_consent(&t, 2) || tcf_purpose_consent(&t, 0) || tcf_purpose_consent(&t, 25));
    assert_true(tcf_vendor_consent(&t, 1) && tcf_vendor_consent(&t, 300));
    assert_false(tcf_vendor_consent(&t, 301) || tcf_vendor_consent(&t, 0) || tcf_vendor_consent(&t, -1));
    assert_int_equal(decode(tcf_string(root, "purpose_8_withheld"), &t), TCF_OK);
    assert_true(tcf_purpose_consent(&t, 1));
    assert_false(tcf_purpose_consent(&t, 8));
    assert_int_equal(decode(tcf_string(root, "ranges_with_gaps"), &t), TCF_OK);
    assert_false(tcf_vendor_consent(&t, 1));
    assert_true(tcf_vendor_consent(&t, 2) && tcf_vendor_consent(&t, 200) && tcf_vendor_consent(&t, 790));
    assert_false(tcf_vendor_consent(&t, 121) || tcf_vendor_consent(&t, 399));
    assert_int_equal(decode(tcf_string(root, "nothing_granted"), &t), TCF_OK);
    assert_int_equal(t.purposes, 0);
    assert_int_equal(t.max_vendor, 0);
    json_decref(root);
}

static void every_truncation_refuses(void **state)
{
    (void)state;
    json_t *root = tcf_strings_load(), *c;
    size_t i;
    static struct tcf t;
    json_array_foreach(json_object_get(root, "cases"), i, c) {
        const char *tc = json_string_value(json_object_get(c, "tc"));
        size_t core = strcspn(tc, ".");
        /* The encoder pads to 24 bits, so the last few characters may be
         * padding only: every cut that removes a field must refuse. */
        for (size_t n = 0; n + 4 < core; n++) assert_int_not_equal(tcf_decode(tc, n, &t), TCF_OK);
    }
    json_decref(root);
}

static void garbage_refuses(void **state)
{
    (void)state;
    static struct tcf t;
    assert_int_equal(tcf_decode(NULL, 0, &t), TCF_EMPTY);
    assert_int_equal(decode("", &t), TCF_EMPTY);
    assert_int_equal(decode("CP99dOAP+ARZQ", &t), TCF_BAD_CHAR);
    assert_int_equal(decode("CP99dOAP=", &t), TCF_BAD_CHAR);
    assert_int_equal(decode("CP99dOAP-ARZQ..IAAA", &t), TCF_BAD_CHAR);
    assert_int_equal(decode(".IAAA", &t), TCF_BAD_CHAR);
    assert_int_equal(decode("CP99dOAP-ARZQ.", &t), TCF_BAD_CHAR);
    assert_int_equal(decode("CP99 dOAP", &t), TCF_BAD_CHAR);
    /* version 1 (BO...) and 63 */
    assert_int_equal(decode("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", &t), TCF_BAD_VERSION);
    assert_int_equal(decode("________________________________________", &t), TCF_BAD_VERSION);
    assert_int_equal(decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &t), TCF_BAD_VERSION);
    /* a JSON cookie, a URL */
    assert_int_not_equal(decode("{\"tc\":\"CP99\"}", &t), TCF_OK);
    assert_int_not_equal(decode("https://example.com/", &t), TCF_OK);
}

/* Writes the core segment of a bit string as base64url (padded with 0 bits). */
static void encode_bits(const char *bits, char *out)
{
    static const char d[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(bits), o = 0;
    for (size_t i = 0; i < n; i += 6) {
        int v = 0;
        for (size_t j = 0; j < 6; j++) v = v << 1 | (i + j < n && bits[i + j] == '1');
        out[o++] = d[v];
    }
    out[o] = '\0';
}

static void append(char *bits, unsigned long long v, int n)
{
    size_t o = strlen(bits);
    for (int i = n - 1; i >= 0; i--) bits[o++] = (char)('0' + (v >> i & 1));
    bits[o] = '\0';
}

/* A core segment up to the vendor consents, then what the test appends. */
static void header(char *bits, unsigned lang_hi)
{
    bits[0] = '\0';
    append(bits, 2, 6);
    append(bits, 17145648000ULL, 36);
    append(bits, 17145648000ULL, 36);
    append(bits, 31, 12);
    append(bits, 7, 12);
    append(bits, 1, 6);
    append(bits, lang_hi, 6);
    append(bits, 13, 6);
    append(bits, 142, 12);
    append(bits, 5, 6);
    append(bits, 0, 2);
    append(bits, 0, 12);
    append(bits, 0x810000, 24);       /* purposes 1 and 8 */
    append(bits, 0, 24);
    append(bits, 0, 1);
    append(bits, 3, 6);
    append(bits, 4, 6);
}

static void range_entry(char *bits, unsigned a, unsigned b)
{
    append(bits, a != b, 1);
    append(bits, a, 16);
    if (a != b) append(bits, b, 16);
}

static void empty_tail(char *bits)
{
    append(bits, 0, 16 + 1);          /* vendor LI: none */
    append(bits, 0, 12);              /* no publisher restrictions */
}

static int decode_bits(const char *bits, struct tcf *t)
{
    static char s[TCF_STRING_MAX + 1];
    encode_bits(bits, s);
    return decode(s, t);
}

static void hand_built_ranges_decode_and_bad_ones_refuse(void **state)
{
    (void)state;
    static char bits[70000];
    static struct tcf t;
    /* good: 3..5, 9, max 9 */
    header(bits, 4);
    append(bits, 9, 16);
    append(bits, 1, 1);
    append(bits, 2, 12);
    range_entry(bits, 3, 5);
    range_entry(bits, 9, 9);
    empty_tail(bits);
    assert_int_equal(decode_bits(bits, &t), TCF_OK);
    assert_true(tcf_vendor_consent(&t, 3) && tcf_vendor_consent(&t, 5) && tcf_vendor_consent(&t, 9));
    assert_false(tcf_vendor_consent(&t, 6) || tcf_vendor_consent(&t, 2));
    assert_string_equal(t.consent_language, "EN");
    assert_string_equal(t.publisher_cc, "DE");

    struct { unsigned a1, b1, a2, b2, max; } bad[] = {
        {9, 9, 3, 5, 9},        /* out of order */
        {3, 5, 5, 6, 9},        /* overlapping */
        {3, 5, 7, 10, 9},       /* past MaxVendorId */
        {0, 2, 7, 8, 9},        /* vendor 0 */
        {5, 3, 7, 8, 9},        /* a range that ends before it starts */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        header(bits, 4);
        append(bits, bad[i].max, 16);
        append(bits, 1, 1);
        append(bits, 2, 12);
        /* entries written raw so that a reversed range stays reversed */
        append(bits, 1, 1);
        append(bits, bad[i].a1, 16);
        append(bits, bad[i].b1, 16);
        append(bits, 1, 1);
        append(bits, bad[i].a2, 16);
        append(bits, bad[i].b2, 16);
        empty_tail(bits);
        assert_int_equal(decode_bits(bits, &t), TCF_BAD_VENDORS);
    }
    /* MaxVendorId absurd, in either encoding */
    header(bits, 4);
    append(bits, 65535, 16);
    append(bits, 1, 1);
    append(bits, 0, 12);
    empty_tail(bits);
    assert_int_equal(decode_bits(bits, &t), TCF_BAD_VENDORS);
    header(bits, 4);
    append(bits, TCF_VENDOR_MAX + 1, 16);
    append(bits, 0, 1);
    for (int i = 0; i <= TCF_VENDOR_MAX; i++) append(bits, 1, 1);
    empty_tail(bits);
    assert_int_equal(decode_bits(bits, &t), TCF_BAD_VENDORS);
    /* a bitfield longer than the string */
    header(bits, 4);
    append(bits, 4000, 16);
    append(bits, 0, 1);
    append(bits, 0xffff, 16);
    assert_int_equal(decode_bits(bits, &t), TCF_TRUNCATED);
    /* a language letter past Z */
    header(bits, 26);
    append(bits, 0, 17);
    empty_tail(bits);
    assert_int_equal(decode_bits(bits, &t), TCF_BAD_FIELD);
    /* restriction type 3 */
    header(bits, 4);
    append(bits, 0, 17);
    append(bits, 0, 17);
    append(bits, 1, 12);
    append(bits, 1, 6);
    append(bits, 3, 2);
    append(bits, 0, 12);
    assert_int_equal(decode_bits(bits, &t), TCF_BAD_FIELD);
}

static void oversized_refuses(void **state)
{
    (void)state;
    static char big[TCF_STRING_MAX + 2];
    static struct tcf t;
    json_t *root = tcf_strings_load();
    const char *tc = tcf_string(root, "all_granted_bitfield");
    size_t n = strlen(tc);
    memcpy(big, tc, n);
    memset(big + n, 'A', sizeof big - 1 - n);
    big[sizeof big - 1] = '\0';
    assert_int_equal(tcf_decode(big, TCF_STRING_MAX + 1, &t), TCF_TOO_LONG);
    /* at the cap, trailing padding is fine */
    assert_int_equal(tcf_decode(big, TCF_STRING_MAX, &t), TCF_OK);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(official_strings_decode_to_what_the_library_reads),
        cmocka_unit_test(purposes_and_vendors_granted_and_withheld),
        cmocka_unit_test(every_truncation_refuses),
        cmocka_unit_test(garbage_refuses),
        cmocka_unit_test(hand_built_ranges_decode_and_bad_ones_refuse),
        cmocka_unit_test(oversized_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
