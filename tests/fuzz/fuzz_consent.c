/* fuzz_consent.c -- libFuzzer target for the consent cookie: a Cookie header
 * of any shape must give a verdict, never a crash or an over-read, and never
 * "granted" without a signature made with the key. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct consent *k;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!k) {
        static char path[] = "/tmp/fs-fuzz-consent.conf";
        FILE *fp = fopen(path, "w");
        if (!fp) abort();
        fputs("[consent]\nsecret = fuzz-secret-0123456789abcdef0123456789\n", fp);
        fclose(fp);
        char err[256];
        struct cfg *c = cfg_load(path, NULL, 0, err, sizeof err);
        if (!c || !(k = consent_new(c))) abort();
    }
    static struct cfg_site site = {.name = (char *)"example.com", .cookie = (char *)"fs_consent"};
    struct consent_cookie cc;
    /* A random input forging a valid 256-bit MAC would be a finding. */
    if (consent_check(k, &site, (const char *)data, size, 1764400000, &cc) == CONSENT_GRANTED)
        __builtin_trap();
    consent_verify(k, "example.com", (const char *)data, size, 1764400000, &cc);
    return 0;
}
