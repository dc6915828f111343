/* ua_cost.c -- what one User-Agent costs ua_classify(): distinct real ones
 * (each a cache miss), distinct crafted ones (built to make the uap-core
 * regexes backtrack), and a cached one. Prints microseconds per call; no
 * threshold, no assertion: a figure for the README and for issue reports.
 *
 *   make && cc -O2 -D_GNU_SOURCE -Icommon -Icollector bench/ua_cost.c \
 *       build/default/libcollector.a build/default/libcommon.a \
 *       $(pkg-config --libs libpcre2-8) -lpthread -o build/ua_cost
 *   ./build/ua_cost tests/data/ua/browsers.tsv
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ua.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: a busy machine does not count */
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Crafted shapes: long runs the uap rules scan and backtrack over. i makes
 * each one distinct, so that every call misses the cache. */
static size_t crafted(char *out, size_t cap, int shape, int i)
{
    static const char *const unit[] = {
        "Mozilla/5.0 (", "1.", "a;", " like Gecko", "Android ", "Version/9.", "(((", "/",
        "Build/", "; wv) ", "Chrome/1.1.1.1 ", "iPhone OS 1_",
    };
    size_t nunit = sizeof unit / sizeof unit[0];
    const char *u = unit[shape % nunit];
    size_t n = (size_t)snprintf(out, cap, "%d", i);
    while (n + strlen(u) < cap) {
        memcpy(out + n, u, strlen(u));
        n += strlen(u);
    }
    return n;
}

int main(int argc, char **argv)
{
    char err[256];
    struct ua *u = ua_new(4096, err, sizeof err);
    if (!u) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    /* Real User-Agents: the first column of a uap-core test file. */
    static char lines[2000][UA_MAX_LEN + 1];
    int nreal = 0;
    FILE *f = argc > 1 ? fopen(argv[1], "r") : NULL;
    char buf[4096];
    while (f && nreal < 2000 && fgets(buf, sizeof buf, f)) {
        char *tab = strchr(buf, '\t');
        if (tab) *tab = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(lines[nreal++], sizeof lines[0], "%s", buf);
    }
    if (f) fclose(f);

    double t0 = now_us();
    for (int i = 0; i < nreal; i++) ua_classify(u, lines[i], strlen(lines[i]));
    double real = nreal ? (now_us() - t0) / nreal : 0;

    int ncraft = 0;
    double worst = 0, total = 0;
    int worst_shape = 0;
    for (int shape = 0; shape < 12; shape++) {
        double s0 = now_us();
        for (int i = 0; i < 100; i++) {
            char c[UA_MAX_LEN];
            size_t n = crafted(c, sizeof c, shape, 1000000 + shape * 1000 + i);
            ua_classify(u, c, n);
        }
        double per = (now_us() - s0) / 100;
        total += per * 100;
        ncraft += 100;
        if (per > worst) worst = per, worst_shape = shape;
    }

    const char *same = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
    ua_classify(u, same, strlen(same));
    t0 = now_us();
    for (int i = 0; i < 100000; i++) ua_classify(u, same, strlen(same));
    double cached = (now_us() - t0) / 100000;

    printf("distinct real UAs:    %8.1f us each (%d)\n", real, nreal);
    printf("distinct crafted UAs: %8.1f us each on average (%d), worst shape %d: %.1f us\n",
           total / ncraft, ncraft, worst_shape, worst);
    printf("cached UA:            %8.3f us each\n", cached);
    ua_free(u);
    return 0;
}
