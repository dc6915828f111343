/* test_archive.c -- the encrypted, chained receipt archive (archive.h),
 * on files in a temporary directory: what goes in comes out, and every
 * kind of tampering (a flipped byte, a removed or reordered record, a
 * swapped or removed file, a cut tail, a wrong key) is reported with the
 * file and the record index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "archive.h"
#include "consents.h"

#define KEY_A "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
#define KEY_B "k1:HxAREhMUFRYXGBkaGxwdHh8AAQIDBAUGBwgJCgsMDQ4=\n"
#define KEY_NEW "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=\n"
#define JAN "a.test.2024-01.fsa"
#define FEB "a.test.2024-02.fsa"

/* 2024-01-10 and 2024-02-10, ms */
#define T_JAN 1704844800000LL
#define T_FEB 1707523200000LL

struct fx {
    char dir[64], keyfile[96], keyfile_b[96], keyfile_rot[96];
    struct archive *ar;
};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static struct consent_record rec(const char *id, int64_t t, const char *action)
{
    struct consent_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.record_id, sizeof r.record_id, "%s", id);
    snprintf(r.receipt_id, sizeof r.receipt_id, "receipt-%s", id);
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.policy_version, sizeof r.policy_version, "3");
    snprintf(r.method, sizeof r.method, "%s", strcmp(action, "withdraw") == 0 ? "withdrawal" : "banner");
    r.t_ms = t;
    r.analytics = strcmp(action, "grant") == 0;
    r.schema = 1;
    return r;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/fs-archive-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->keyfile, sizeof f->keyfile, "%s/key", f->dir);
    snprintf(f->keyfile_b, sizeof f->keyfile_b, "%s/key-b", f->dir);
    snprintf(f->keyfile_rot, sizeof f->keyfile_rot, "%s/key-rot", f->dir);
    write_text(f->keyfile, KEY_A);
    write_text(f->keyfile_b, KEY_B);
    write_text(f->keyfile_rot, KEY_NEW KEY_A);
    chmod(f->keyfile, 0600);
    chmod(f->keyfile_b, 0600);
    chmod(f->keyfile_rot, 0600);
    char data[96], err[ARCHIVE_ERRLEN];
    snprintf(data, sizeof data, "%s/data", f->dir);
    f->ar = archive_open(data, f->keyfile, err, sizeof err);
    assert_non_null(f->ar);
    /* Two months: three records in January (two runs), two in February. */
    struct consent_record jan[] = {rec(
        "1704844800000-0", T_JAN, "grant"), rec("1704844800001-0", T_JAN + 1, "deny")};
    struct consent_record more[] = {rec("1704844800002-0", T_JAN + 2, "withdraw"),
                                    rec("1707523200000-0", T_FEB, "grant"),
                                    rec("1707523200000-1", T_FEB, "grant")};
    size_t n;
    assert_int_equal(archive_append(f->ar, "a.test", jan, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(archive_append(f->ar, "a.test", more, 3, &n), 0);
    assert_int_equal(n, 3);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    archive_free(f->ar);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static char *path(struct fx *f, const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/data/%s", f->dir, name);
    return p;
}

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    rewind(fp);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, fp), *n);
    fclose(fp);
    return b;
}

static void spit(const char *p, const unsigned char *b, size_t n)
{
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

/* Offsets of the frames of a file: off[i], len (whole frame) in lens[i]. */
static size_t frames(const unsigned char *b, size_t n, size_t *off, size_t *lens, char *types)
{
    size_t k = 0;
    for (size_t o = 8; o + 5 <= n; k++) {
        size_t len = 5 + ((size_t)b[o + 1] << 24 | (size_t)b[o + 2] << 16 | (size_t)b[o + 3] << 8 | b[o + 4]);
        off[k] = o, lens[k] = len, types[k] = (char)b[o];
        o += len;
    }
    return k;
}

struct collect {
    json_t *list;
};

static int collect(const struct consent_record *r, void *arg)
{
    struct collect *c = arg;
    return json_array_append_new(c->list, consents_record_json("a.test", r));
}

static int verify(struct fx *f)
{
    long files, recs;
    FILE *devnull = fopen("/dev/null", "w");
    int rc = archive_verify(f->ar, devnull, &files, &recs);
    fclose(devnull);
    return rc;
}

static void records_come_back_as_they_went_in(void **state)
{
    struct fx *f = *state;
    struct collect c = {json_array()};
    assert_int_equal(archive_read(f->ar, "a.test", 0, INT64_MAX, collect, &c), 0);
    assert_int_equal(json_array_size(c.list), 5);
    struct consent_record w = rec("1704844800002-0", T_JAN + 2, "withdraw");
    json_t *want = consents_record_json("a.test", &w);
    assert_true(json_equal(json_array_get(c.list, 2), want));
    json_decref(want);
    json_decref(c.list);
    long files, recs;
    assert_int_equal(archive_verify(f->ar, NULL, &files, &recs), 0);
    assert_int_equal(files, 2);
    assert_int_equal(recs, 5);
    char last[48];
    assert_int_equal(archive_last_id(f->ar, "a.test", last), 0);
    assert_string_equal(last, "1707523200000-1");
}

static void files_are_private_and_hold_no_plaintext(void **state)
{
    struct fx *f = *state;
    struct stat st;
    assert_int_equal(stat(path(f, JAN), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char d[96];
    snprintf(d, sizeof d, "%s/data", f->dir);
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    size_t n;
    unsigned char *b = slurp(path(f, JAN), &n);
    assert_null(memmem(b, n, "receipt-", 8));
    free(b);
}

static void archived_records_are_not_written_twice(void **state)
{
    struct fx *f = *state;
    struct consent_record again[] = {rec("1707523200000-1", T_FEB, "grant"),
                                     rec("1707523200005-0", T_FEB + 5, "deny")};
    size_t n;
    assert_int_equal(archive_append(f->ar, "a.test", again, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(verify(f), 0);
}

static void a_wrong_key_fails_clearly(void **state)
{
    struct fx *f = *state;
    char data[96], err[ARCHIVE_ERRLEN];
    snprintf(data, sizeof data, "%s/data", f->dir);
    struct archive *b = archive_open(data, f->keyfile_b, err, sizeof err);
    assert_non_null(b);
    long files, recs;
    assert_int_equal(archive_verify(b, NULL, &files, &recs), -1);
    assert_non_null(strstr(archive_error(b), "cannot decrypt "));
    assert_non_null(strstr(archive_error(b), JAN " record 0 with key k1: wrong key?"));
    archive_free(b);
}

static void a_new_key_writes_and_the_old_one_still_reads(void **state)
{
    struct fx *f = *state;
    char data[96], err[ARCHIVE_ERRLEN];
    snprintf(data, sizeof data, "%s/data", f->dir);
    struct archive *r = archive_open(data, f->keyfile_rot, err, sizeof err);
    assert_non_null(r);
    struct consent_record next[] = {rec("1707523200009-0", T_FEB + 9, "grant")};
    size_t n;
    assert_int_equal(archive_append(r, "a.test", next, 1, &n), 0);
    long files, recs;
    assert_int_equal(archive_verify(r, NULL, &files, &recs), 0);
    assert_int_equal(recs, 6);
    archive_free(r);
    /* Without the new key, the newest record and head cannot be read. */
    assert_int_equal(verify(f), -1);
}

static void check_break(struct fx *f, const char *file, const char *what);

/* The bytes of an archive file (caller frees), which must hold want frames,
 * and their offsets and lengths. */
static unsigned char *records_of(const char *file, int want, size_t *n, size_t off[16], size_t len[16])
{
    char t[16];
    unsigned char *b = slurp(file, n);
    assert_int_equal(frames(b, *n, off, len, t), want);
    return b;
}

static void flip_a_byte_of_record_1(struct fx *f)
{
    size_t n, off[16], len[16];
    unsigned char *b = records_of(path(f, JAN), 5, &n, off, len);    /* R R H, then R H of the second run */
    b[off[1] + len[1] - 20] ^= 1;                      /* in record 1's ciphertext */
    spit(path(f, JAN), b, n);
    free(b);
}

static void check_break(struct fx *f, const char *file, const char *what)
{
    long files, recs;
    assert_int_equal(archive_verify(f->ar, NULL, &files, &recs), -1);
    const char *e = archive_error(f->ar);
    assert_non_null(strstr(e, file));
    if (what && !strstr(e, what)) fail_msg("'%s' does not say '%s'", e, what);
}

static void a_flipped_byte_is_reported_with_its_record(void **state)
{
    flip_a_byte_of_record_1(*state);
    check_break(*state, JAN, "record 1 does not authenticate");
}

static void a_removed_record_is_reported(void **state)
{
    struct fx *f = *state;
    size_t n, off[16], len[16];
    unsigned char *b = records_of(path(f, FEB), 3, &n, off, len);
    /* Drop record 0: record 1 no longer follows its predecessor. */
    memmove(b + off[0], b + off[1], n - off[1]);
    spit(path(f, FEB), b, n - len[0]);
    free(b);
    check_break(f, FEB, "record 0 does not authenticate");
}

static void reordered_records_are_reported(void **state)
{
    struct fx *f = *state;
    size_t n, off[16], len[16];
    unsigned char *b = records_of(path(f, FEB), 3, &n, off, len);
    unsigned char *s = malloc(n);
    memcpy(s, b, off[0]);
    memcpy(s + off[0], b + off[1], len[1]);
    memcpy(s + off[0] + len[1], b + off[0], len[0]);
    memcpy(s + off[2], b + off[2], n - off[2]);
    spit(path(f, FEB), s, n);
    free(s);
    free(b);
    check_break(f, FEB, NULL);
}

static void swapped_files_are_reported(void **state)
{
    struct fx *f = *state;
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.x", path(f, JAN));
    assert_int_equal(rename(path(f, JAN), tmp), 0);
    char feb[256];
    snprintf(feb, sizeof feb, "%s", path(f, FEB));
    assert_int_equal(rename(feb, path(f, JAN)), 0);
    assert_int_equal(rename(tmp, feb), 0);
    check_break(f, JAN, "record 0 does not authenticate");
}

static void a_removed_file_is_reported(void **state)
{
    struct fx *f = *state;
    assert_int_equal(unlink(path(f, JAN)), 0);
    check_break(f, FEB, "does not follow the previous file's head");
}

static void a_cut_tail_is_reported(void **state)
{
    struct fx *f = *state;
    assert_int_equal(truncate(path(f, FEB), 100), 0);
    check_break(f, FEB, "truncated");
}

static void an_interrupted_run_is_reported_and_recovered(void **state)
{
    struct fx *f = *state;
    /* A crash before the head: a record after the last head. */
    size_t n, off[16], len[16];
    unsigned char *b = records_of(path(f, FEB), 3, &n, off, len);
    unsigned char *s = malloc(n + len[0]);
    memcpy(s, b, n);
    memcpy(s + n, b + off[0], len[0]);
    spit(path(f, FEB), s, n + len[0]);
    free(s);
    free(b);
    check_break(f, FEB, "unsealed");
    /* Reading skips the tail; the next append cuts it off. */
    struct collect c = {json_array()};
    assert_int_equal(archive_read(f->ar, "a.test", 0, INT64_MAX, collect, &c), 0);
    assert_int_equal(json_array_size(c.list), 5);
    json_decref(c.list);
    struct consent_record next[] = {rec("1707523200009-0", T_FEB + 9, "grant")};
    assert_int_equal(archive_append(f->ar, "a.test", next, 1, &n), 0);
    assert_int_equal(verify(f), 0);
}

static void a_new_file_cut_before_its_first_head_reads_as_empty(void **state)
{
    struct fx *f = *state;
    size_t n, off[16], len[16];
    unsigned char *b = records_of(path(f, FEB), 3, &n, off, len);
    spit(path(f, "a.test.2024-03.fsa"), b, off[0] + len[0]);     /* magic and one record */
    free(b);
    check_break(f, "a.test.2024-03.fsa", "unsealed");
    struct collect c = {json_array()};
    assert_int_equal(archive_read(f->ar, "a.test", 0, INT64_MAX, collect, &c), 0);
    assert_int_equal(json_array_size(c.list), 5);
    json_decref(c.list);
    struct consent_record next[] = {rec("1709251200000-0", T_FEB + 29LL * 86400000, "grant")};
    assert_int_equal(archive_append(f->ar, "a.test", next, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(verify(f), 0);
}

static void purge_drops_expired_files_and_the_chain_still_holds(void **state)
{
    struct fx *f = *state;
    long files, recs;
    /* Nothing older than a cutoff inside January. */
    assert_int_equal(archive_purge_site(f->ar, "a.test", T_JAN, 0, &files, &recs), 0);
    assert_int_equal(files, 0);
    assert_int_equal(archive_purge_site(f->ar, "a.test", T_FEB, 0, &files, &recs), 0);
    assert_int_equal(files, 1);
    assert_int_equal(recs, 3);
    assert_int_equal(access(path(f, JAN), F_OK), -1);
    assert_int_equal(verify(f), 0);
    /* Appending after a purge chains on the marker. */
    struct consent_record next[] = {rec("1709251200000-0", T_FEB + 29LL * 86400000, "grant")};
    size_t n;
    assert_int_equal(archive_append(f->ar, "a.test", next, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(verify(f), 0);
    /* Removing the oldest remaining file is still a break. */
    assert_int_equal(unlink(path(f, FEB)), 0);
    check_break(f, "2024-03", "does not follow");
}

static void key_files_refuse_bad_lines(void **state)
{
    struct fx *f = *state;
    const char *bad[] = {"k1 AAEC\n", "k1:short\n", ":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                         KEY_A KEY_A, "", "k/1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"};
    char p[128], err[ARCHIVE_ERRLEN];
    snprintf(p, sizeof p, "%s/bad", f->dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i]);
        struct archive *a = archive_open(f->dir, p, err, sizeof err);
        if (a) fail_msg("key file %zu accepted", i);
        assert_non_null(strstr(err, "archive.key"));
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(records_come_back_as_they_went_in),
        T(files_are_private_and_hold_no_plaintext),
        T(archived_records_are_not_written_twice),
        T(a_wrong_key_fails_clearly),
        T(a_new_key_writes_and_the_old_one_still_reads),
        T(a_flipped_byte_is_reported_with_its_record),
        T(a_removed_record_is_reported),
        T(reordered_records_are_reported),
        T(swapped_files_are_reported),
        T(a_removed_file_is_reported),
        T(a_cut_tail_is_reported),
        T(an_interrupted_run_is_reported_and_recovered),
        T(a_new_file_cut_before_its_first_head_reads_as_empty),
        T(purge_drops_expired_files_and_the_chain_still_holds),
        T(key_files_refuse_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
