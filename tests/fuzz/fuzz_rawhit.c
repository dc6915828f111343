/* fuzz_rawhit.c -- libFuzzer target for the packed raw hit (rawhit.h): any
 * bytes decode or are refused, never read past their length; what decodes
 * encodes back to the same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rawhit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that ASan sees any over-read. */
    char *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    struct rawhit h;
    if (rawhit_decode(buf, size, &h) == 0) {
        char out[RAWHIT_MAX * 2];
        size_t n = rawhit_encode(&h, out, sizeof out);
        if (n != size || memcmp(out, buf, size) != 0) __builtin_trap();
    }
    free(buf);
    return 0;
}
