/* fuzz_spool.c -- libFuzzer target for the spool reader (spool.h): any bytes
 * as a spool file parse record by record or are skipped, never read past
 * their length, and the file reader accepts exactly what a walk with
 * spool_parse() accepts.
 *
 * Checks beyond the sanitizers:
 * - an accepted record's CRC32C matches, its pointers lie inside it, and its
 *   fields built back into a record give the very same bytes;
 * - a refused record says how far to go on, within what is left;
 * - the same bytes as a file in a spool directory, replayed by
 *   spool_replay_begin()/_commit(), give the same records in the same order,
 *   the same count of skipped ones, and leave nothing pending. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

#define HEAD_LEN 8
#define FIXED 11
#define MAX_RECS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The record out describes, built again the way spool_append() writes it. */
static size_t rebuild(const struct spool_rec *r, unsigned char *buf, size_t cap)
{
    size_t n = FIXED + r->site_len + r->hit_len;
    if (HEAD_LEN + n > cap) __builtin_trap();
    unsigned char *q = buf + HEAD_LEN;
    q[0] = SPOOL_VERSION;
    q[1] = (unsigned char)r->flags;
    for (int i = 0; i < 8; i++) q[2 + i] = (unsigned char)((uint64_t)r->t_ms >> (8 * i));
    q[10] = (unsigned char)r->site_len;
    memcpy(q + FIXED, r->site, r->site_len);
    memcpy(q + FIXED + r->site_len, r->hit, r->hit_len);
    put_u32(buf, (uint32_t)n);
    put_u32(buf + 4, spool_crc32c(q, n));
    return HEAD_LEN + n;
}

struct walk {
    size_t n, corrupt;
    size_t off[MAX_RECS], len[MAX_RECS];    /* accepted records in the input */
};

/* Walks buf as the reader does, checking each verdict. */
static void walk(const char *buf, size_t len, struct walk *w)
{
    static unsigned char again[HEAD_LEN + FIXED + SPOOL_SITE_MAX + 8192];
    size_t at = 0;
    w->n = w->corrupt = 0;
    while (at < len) {
        struct spool_rec r;
        size_t skip = (size_t)-1;
        long got = spool_parse(buf + at, len - at, &r, &skip);
        if (got > 0) {
            if ((size_t)got > len - at || r.site_len == 0 || r.hit_len == 0) __builtin_trap();
            if (r.site < buf + at || r.hit + r.hit_len > buf + at + got) __builtin_trap();
            size_t n = rebuild(&r, again, sizeof again);
            if (n != (size_t)got || memcmp(again, buf + at, n) != 0) __builtin_trap();
            if (w->n < MAX_RECS) {
                w->off[w->n] = at;
                w->len[w->n] = n;
            }
            w->n++;
            at += n;
        } else {
            if (got != 0 && got != -1) __builtin_trap();
            if (skip == 0 || skip > len - at) __builtin_trap();
            if (got == 0 && skip != len - at) __builtin_trap();     /* torn: the tail */
            w->corrupt++;
            at += skip;
        }
    }
}

static char dir[64];

/* Each input's file is deleted by its replay: the directory is empty. */
static void remove_dir(void)
{
    rmdir(dir);
}

/* The same bytes as the only file of a spool directory, replayed. */
static void replay(const char *buf, size_t len, const struct walk *w)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/w0-0000000001.spool", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) abort();
    struct spool *s = spool_open(dir, 0, 1, (size_t)1 << 30, err, sizeof err);
    if (!s) abort();
    static struct spool_rec recs[64];
    size_t seen = 0;
    for (int step = 0; spool_pending(s); step++) {
        size_t n;
        if (step > 100000 || spool_replay_begin(s, recs, 64, &n) < 0) __builtin_trap();
        for (size_t i = 0; i < n; i++, seen++) {
            if (seen < MAX_RECS && seen < w->n) {
                const char *at = buf + w->off[seen];
                if (recs[i].site_len + recs[i].hit_len + HEAD_LEN + FIXED != w->len[seen] ||
                    memcmp(recs[i].site, at + HEAD_LEN + FIXED, recs[i].site_len) != 0 ||
                    memcmp(recs[i].hit, at + HEAD_LEN + FIXED + recs[i].site_len, recs[i].hit_len) != 0)
                    __builtin_trap();
            }
        }
        if (spool_replay_commit(s) < 0) __builtin_trap();
    }
    struct spool_stats st;
    spool_stats(s, &st);
    if (seen != w->n || st.corrupt != w->corrupt || st.files != 0) __builtin_trap();
    spool_close(s);
    if (access(path, F_OK) == 0) __builtin_trap();      /* read to its end: deleted */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        /* tmpfs when there is one: the reader fsyncs, the disk need not. */
        snprintf(dir, sizeof dir, "%s/fuzz_spool.XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir)) abort();
        atexit(remove_dir);
    }
    /* A copy of exactly size bytes, so that ASan sees any over-read. */
    char *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    static struct walk w;
    walk(buf, size, &w);
    if (size > 0) replay(buf, size, &w);
    free(buf);
    return 0;
}
