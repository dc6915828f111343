/* fuzz_ua.c -- libFuzzer target for ua_classify() (collector/ua.c).
 *
 * Feeds arbitrary bytes as a User-Agent. Besides the sanitizers' checks it
 * asserts the contract of ua.h: NUL-terminated, printable outputs, a known
 * device class, and the same answer from the cache as from a fresh
 * classification. The input is passed in an exact-size buffer (libFuzzer's),
 * so any read past len is an ASan report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ua *fuzz_cached, *fuzz_uncached;

static void fuzz_check_string(const char *s, size_t cap)
{
    const char *end = memchr(s, '\0', cap);
    if (!end || end == s)
        abort();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!fuzz_cached) {
        /* A small cache, so that evictions happen within a run. */
        fuzz_cached = ua_new(16, err, sizeof err);
        fuzz_uncached = ua_new(0, err, sizeof err);
        if (!fuzz_cached || !fuzz_uncached)
            abort();
    }

    const struct ua_info *a = ua_classify(fuzz_cached, (const char *)data, size);
    if (!a)
        abort();
    fuzz_check_string(a->browser, sizeof a->browser);
    fuzz_check_string(a->os, sizeof a->os);
    if (strcmp(a->device, "desktop") && strcmp(a->device, "mobile") &&
        strcmp(a->device, "tablet") && strcmp(a->device, "other"))
        abort();
    if (a->bot != 0 && a->bot != 1)
        abort();

    struct ua_info first = *a;
    const struct ua_info *b = ua_classify(fuzz_cached, (const char *)data, size);
    const struct ua_info *c = ua_classify(fuzz_uncached, (const char *)data, size);
    if (memcmp(&first, b, sizeof first) != 0 || memcmp(&first, c, sizeof first) != 0)
        abort();
    return 0;
}
