/* fuzz_cfg.c -- libFuzzer target for the config parser (common/cfg.c, on
 * libinih): any file content must load or give one error line, never crash,
 * leak (LeakSanitizer runs at exit and on -detect_leaks) or read out of
 * bounds. cfg_load() reads a path, so the input goes to a memfd opened by
 * its /proc/self/fd path: no file on disk. Overrides (-o) are fuzzed too:
 * the first line of the input, when it has a '=', is applied as one. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-cfg", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();

    char override[256];
    char *ov[1] = {override};
    size_t n_ov = 0;
    const char *nl = memchr(data, '\n', size);
    size_t first = nl ? (size_t)(nl - (const char *)data) : size;
    if (first < sizeof override && memchr(data, '=', first) && !memchr(data, '\0', first)) {
        memcpy(override, data, first);
        override[first] = '\0';
        n_ov = 1;
    }

    char err[512];
    err[0] = '\0';
    struct cfg *c = cfg_load(path, ov, n_ov, err, sizeof err);
    if (!c) {
        if (!memchr(err, '\0', sizeof err) || err[0] == '\0') __builtin_trap();  /* one line, always */
        return 0;
    }
    cfg_free(c);
    return 0;
}
