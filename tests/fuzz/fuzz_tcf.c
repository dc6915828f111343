/* fuzz_tcf.c -- libFuzzer target for the TC string decoder: any bytes give
 * a status, never a crash or an over-read; what decodes is a version 2
 * string whose letters are A-Z and whose vendor sets stay within their
 * MaxVendorId. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tcf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_letters(const char *s)
{
    if (strlen(s) != 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z') __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tcf t;
    /* An exact-size copy, so that ASan sees a read past size. */
    char *s = malloc(size ? size : 1);
    if (!s) return 0;
    memcpy(s, data, size);
    int rc = tcf_decode(s, size, &t);
    free(s);
    if (rc != TCF_OK) {
        if (t.version > 2 && rc != TCF_BAD_VERSION) __builtin_trap();
        return 0;
    }
    if (size == 0 || size > TCF_STRING_MAX || t.version != 2) __builtin_trap();
    check_letters(t.consent_language);
    check_letters(t.publisher_cc);
    if (t.max_vendor > TCF_VENDOR_MAX || t.max_vendor_li > TCF_VENDOR_MAX) __builtin_trap();
    if ((t.purposes | t.purposes_li) >> TCF_PURPOSES || t.special_features >> 12) __builtin_trap();
    for (int id = 0; id <= TCF_VENDOR_MAX; id++) {
        int in_c = t.vendors[id / 8] >> (id % 8) & 1, in_li = t.vendors_li[id / 8] >> (id % 8) & 1;
        if ((in_c && (id == 0 || id > t.max_vendor)) || (in_li && (id == 0 || id > t.max_vendor_li)))
            __builtin_trap();
        if (in_c != tcf_vendor_consent(&t, id)) __builtin_trap();
    }
    return 0;
}
