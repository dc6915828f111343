/* test_spool.c -- the spool's record parser (spool_parse(), spool.h) fed
 * with good, torn and corrupt records: a record either comes back whole and
 * checked or is refused with a way to go on, never read past its length;
 * and the file reader's count of skipped records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>
#include <unistd.h>

#include "spool.h"

#define HEAD 8
#define FIXED 11

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A record as spool_append() writes it; its length. */
static size_t record(unsigned char *buf, unsigned flags, int64_t t_ms, const char *site,
                     const char *hit, size_t hit_len)
{
    size_t sl = strlen(site), n = FIXED + sl + hit_len;
    unsigned char *q = buf + HEAD;
    q[0] = SPOOL_VERSION;
    q[1] = (unsigned char)flags;
    for (int i = 0; i < 8; i++) q[2 + i] = (unsigned char)((uint64_t)t_ms >> (8 * i));
    q[10] = (unsigned char)sl;
    memcpy(q + FIXED, site, sl);
    memcpy(q + FIXED + sl, hit, hit_len);
    put_u32(buf, (uint32_t)n);
    put_u32(buf + 4, spool_crc32c(q, n));
    return HEAD + n;
}

/* Two records back to back in buf; the length of the first in *first. */
static size_t two_records(unsigned char *buf, size_t *first)
{
    *first = record(buf, 0, 1714564800123LL, "example.com", "hit-one", 7);
    return *first + record(buf + *first, SPOOL_F_AMBIGUOUS, 1714564801000LL, "shop.example.org",
                           "the second hit", 14);
}

/* Parses exactly len bytes from a heap copy, so an over-read is caught by
 * the sanitizers (make unit SANITIZER=address). */
static long parse_copy(const unsigned char *src, size_t len, struct spool_rec *r, size_t *skip)
{
    static char *copy;
    free(copy);
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, src, len);
    return spool_parse(copy, len, r, skip);
}

static void a_valid_record_comes_back_whole(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = record(buf, SPOOL_F_AMBIGUOUS, 1714564800123LL, "example.com", "packed", 6);
    struct spool_rec r;
    size_t skip;
    assert_int_equal(parse_copy(buf, n, &r, &skip), (long)n);
    assert_int_equal(skip, n);
    assert_int_equal(r.flags, SPOOL_F_AMBIGUOUS);
    assert_true(r.t_ms == 1714564800123LL);
    assert_int_equal(r.site_len, 11);
    assert_memory_equal(r.site, "example.com", 11);
    assert_int_equal(r.hit_len, 6);
    assert_memory_equal(r.hit, "packed", 6);
}

static void two_records_parse_one_after_the_other(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    struct spool_rec r;
    size_t skip;
    assert_int_equal(spool_parse((char *)buf, n, &r, &skip), (long)first);
    assert_memory_equal(r.hit, "hit-one", 7);
    assert_int_equal(spool_parse((char *)buf + first, n - first, &r, &skip), (long)(n - first));
    assert_memory_equal(r.site, "shop.example.org", 16);
    assert_memory_equal(r.hit, "the second hit", 14);
}

/* Every prefix of two records: the whole ones parse, a cut one is torn (0)
 * and says "skip the rest", never an invented record. */
static void every_truncation_of_two_records_is_torn_not_wrong(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    for (size_t cut = 0; cut < n; cut++) {
        struct spool_rec r;
        size_t skip, at = 0;
        int whole = 0;
        long got;
        while ((got = parse_copy(buf + at, cut - at, &r, &skip)) > 0) {
            at += (size_t)got;
            whole++;
        }
        assert_int_equal(got, 0);                       /* torn, not corrupt */
        assert_int_equal(skip, cut - at);               /* the tail is skipped */
        assert_int_equal(whole, cut >= first ? 1 : 0);
        assert_int_equal(at, cut >= first ? first : 0);
    }
}

static void a_flipped_bit_anywhere_in_a_record_is_refused(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    for (size_t i = 0; i < first; i++) {
        for (int bit = 0; bit < 8; bit++) {
            unsigned char bad[256];
            memcpy(bad, buf, n);
            bad[i] ^= (unsigned char)(1 << bit);
            struct spool_rec r;
            size_t skip;
            long got = parse_copy(bad, n, &r, &skip);
            /* A length made longer can leave the record torn; anything else
             * fails its checksum or its bounds. */
            assert_true(got == -1 || (got == 0 && i < 4));
            assert_true(skip >= 1 && skip <= n);
            if (i >= 4) assert_int_equal(skip, first);  /* length intact: just this record */
        }
    }
}

static void a_flipped_payload_byte_skips_only_its_record(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    buf[HEAD + FIXED + 3] ^= 0x20;                      /* in the site name */
    struct spool_rec r;
    size_t skip;
    assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
    assert_int_equal(skip, first);
    assert_int_equal(parse_copy(buf + skip, n - skip, &r, &skip), (long)(n - first));
    assert_memory_equal(r.hit, "the second hit", 14);
}

static void a_flipped_checksum_byte_is_refused(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    buf[5] ^= 0x01;
    struct spool_rec r;
    size_t skip;
    assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
    assert_int_equal(skip, first);
}

static void an_absurd_length_is_not_trusted(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    const uint32_t lengths[] = {0xffffffffu, 0x7fffffffu, 1u << 20, 8192 + FIXED + SPOOL_SITE_MAX + 1};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        put_u32(buf, lengths[i]);
        struct spool_rec r;
        size_t skip;
        assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
        assert_int_equal(skip, n);                      /* nothing after it can be trusted */
    }
}

static void a_zero_or_too_short_length_is_refused(void **state)
{
    (void)state;
    unsigned char buf[256];
    for (uint32_t len = 0; len <= FIXED; len++) {
        memset(buf, 0, sizeof buf);
        put_u32(buf, len);
        buf[HEAD] = SPOOL_VERSION;
        put_u32(buf + 4, spool_crc32c(buf + HEAD, len));    /* a checksum that matches */
        struct spool_rec r;
        size_t skip;
        assert_int_equal(parse_copy(buf, HEAD + 32, &r, &skip), -1);
        assert_true(skip >= 1);
    }
}

static void a_record_without_a_hit_or_a_site_is_refused(void **state)
{
    (void)state;
    unsigned char buf[256];
    struct spool_rec r;
    size_t skip;
    size_t n = record(buf, 0, 1, "example.com", "", 0);    /* the site fills the payload */
    assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
    assert_int_equal(skip, n);
    n = record(buf, 0, 1, "", "a hit", 5);                  /* no site */
    assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
    assert_int_equal(skip, n);
}

static void another_version_is_refused(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = record(buf, 0, 1, "example.com", "hit", 3);
    buf[HEAD] = SPOOL_VERSION + 1;
    put_u32(buf + 4, spool_crc32c(buf + HEAD, n - HEAD));
    struct spool_rec r;
    size_t skip;
    assert_int_equal(parse_copy(buf, n, &r, &skip), -1);
    assert_int_equal(skip, n);
}

static void the_checksum_is_crc32c(void **state)
{
    (void)state;
    assert_int_equal(spool_crc32c("123456789", 9), 0xe3069283u);     /* the standard check value */
    assert_int_equal(spool_crc32c("", 0), 0);
}

/* ------------------------------------------------------------------------ */
/* The file reader                                                           */
/* ------------------------------------------------------------------------ */

/* A spool directory holding one file with bytes; its path in file. */
static char *spool_dir_with(const unsigned char *bytes, size_t len, char *file, size_t cap)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_spool.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(file, cap, "%s/w0-0000000001.spool", dir);
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return dir;
}

static void a_skipped_record_is_counted_once_when_a_replay_is_sent_again(void **state)
{
    (void)state;
    unsigned char buf[512];
    size_t first, n = two_records(buf, &first);
    memcpy(buf + n, buf, first);                            /* the first again, corrupt */
    buf[n + HEAD + FIXED] ^= 0x01;
    memcpy(buf + n + first, buf, first);                    /* and again, intact */
    n += 2 * first;
    char file[128], err[256];
    char *dir = spool_dir_with(buf, n, file, sizeof file);
    struct spool *s = spool_open(dir, 0, 1, 1 << 20, err, sizeof err);
    assert_non_null(s);
    struct spool_rec recs[8];
    size_t got;
    assert_int_equal(spool_replay_begin(s, recs, 8, &got), 0);
    assert_int_equal(got, 3);
    spool_replay_abort(s);                                  /* Redis failed: again later */
    assert_int_equal(spool_replay_begin(s, recs, 8, &got), 0);
    assert_int_equal(got, 3);
    assert_int_equal(spool_replay_commit(s), 0);
    struct spool_stats st;
    spool_stats(s, &st);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.files, 0);
    assert_false(spool_pending(s));
    assert_int_equal(access(file, F_OK), -1);              /* read to its end: deleted */
    spool_close(s);
    rmdir(dir);
}

/* A file cut short while the spool is open (by hand): the reader reaches its
 * new end and deletes it, rather than waiting for bytes that will not come. */
static void a_file_cut_under_an_open_spool_is_read_to_its_new_end(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t first, n = two_records(buf, &first);
    const size_t cuts[] = {first + 3, 0};
    for (size_t i = 0; i < 2; i++) {
        char file[128], err[256];
        char *dir = spool_dir_with(buf, n, file, sizeof file);
        struct spool *s = spool_open(dir, 0, 1, 1 << 20, err, sizeof err);
        assert_non_null(s);
        assert_int_equal(truncate(file, (off_t)cuts[i]), 0);
        struct spool_rec recs[8];
        size_t got, total = 0;
        for (int step = 0; spool_pending(s); step++) {
            assert_true(step < 10);
            assert_int_equal(spool_replay_begin(s, recs, 8, &got), 0);
            total += got;
            assert_int_equal(spool_replay_commit(s), 0);
        }
        struct spool_stats st;
        spool_stats(s, &st);
        assert_int_equal(total, cuts[i] ? 1 : 0);
        assert_int_equal(st.corrupt, cuts[i] ? 1 : 0);      /* the torn tail */
        assert_int_equal(st.bytes, 0);
        assert_int_equal(access(file, F_OK), -1);
        spool_close(s);
        rmdir(dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_record_comes_back_whole),
        cmocka_unit_test(two_records_parse_one_after_the_other),
        cmocka_unit_test(every_truncation_of_two_records_is_torn_not_wrong),
        cmocka_unit_test(a_flipped_bit_anywhere_in_a_record_is_refused),
        cmocka_unit_test(a_flipped_payload_byte_skips_only_its_record),
        cmocka_unit_test(a_flipped_checksum_byte_is_refused),
        cmocka_unit_test(an_absurd_length_is_not_trusted),
        cmocka_unit_test(a_zero_or_too_short_length_is_refused),
        cmocka_unit_test(a_record_without_a_hit_or_a_site_is_refused),
        cmocka_unit_test(another_version_is_refused),
        cmocka_unit_test(the_checksum_is_crc32c),
        cmocka_unit_test(a_skipped_record_is_counted_once_when_a_replay_is_sent_again),
        cmocka_unit_test(a_file_cut_under_an_open_spool_is_read_to_its_new_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
