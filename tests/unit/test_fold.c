/* test_fold.c -- a raw hit becomes the right counter updates (fold.h).
 *
 * The tests decode the EVALSHA vector the fold builds with the layout enums
 * of fold.h, as fold.lua does, and check which key/member each hit
 * increments. What the script then does with it: test_fold_script.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "fold.h"

#define NOW 1714564800000LL     /* 2024-05-01T12:00:00Z */

/* What an op does: an op of FOLD_OP_HINCR or FOLD_OP_PFADD, or a visit op. */
enum op_kind { HINCR, PFADD, VISIT };

struct op {
    enum op_kind kind;
    const char *key, *member;
};

struct entry {
    const char *id, *t, *kind, *page;
    const char *sess, *totals, *exit;
    long long ttl;
    struct op ops[64];
    size_t nops;
};

struct decoded {
    char **owned;
    size_t nowned;
    size_t nkeys, nentries;
    const char **keys;
    struct entry entries[16];
};

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void release(struct decoded *d)
{
    for (size_t i = 0; i < d->nowned; i++) free(d->owned[i]);
    free(d->owned);
    d->owned = NULL;
    d->nowned = 0;
}

/* The key an item names by its KEYS index, or NULL for FOLD_KEY_NONE. */
static const char *key_at(const struct decoded *d, const char *index)
{
    size_t k = (size_t)atoi(index);
    if (k == FOLD_KEY_NONE) return NULL;
    assert_in_range(k, 1, d->nkeys);
    return d->keys[k - 1];
}

/* Decodes b's vector into copies that d owns until release() (or the next decode). */
static void decode(struct fold_batch *b, struct decoded *d)
{
    const char **argv;
    const size_t *len;
    size_t argc;
    assert_int_equal(fold_batch_argv(b, "sha", "fairstat", "me-1", &argv, &len, &argc), 0);
    char **a = calloc(argc, sizeof *a);
    for (size_t i = 0; i < argc; i++) a[i] = dup_n(argv[i], len[i]);
    d->owned = a;
    d->nowned = argc;
    assert_string_equal(a[0], "EVALSHA");
    assert_string_equal(a[1], "sha");
    d->nkeys = (size_t)atoi(a[2]);
    /* KEYS[i] and ARGV[i], 1-based as in the script. */
    d->keys = (const char **)a + 3;
    const char *const *arg = (const char *const *)a + 3 + d->nkeys - 1;
    size_t nargv = argc - 3 - d->nkeys;
    assert_string_equal(d->keys[FOLD_KEY_STREAM - 1], "fs:{example.com}:hits");
    assert_string_equal(arg[FOLD_ARGV_GROUP], "fairstat");
    assert_string_equal(arg[FOLD_ARGV_CONSUMER], "me-1");
    assert_int_equal(atoll(arg[FOLD_ARGV_IDLE_MS]), FOLD_IDLE_MS);
    d->nentries = (size_t)atoi(arg[FOLD_ARGV_ENTRIES]);
    size_t i = FOLD_ARGV_FIRST_ENTRY;
    for (size_t e = 0; e < d->nentries; e++) {
        struct entry *en = &d->entries[e];
        assert_true(i + FOLD_E_HEAD - 1 <= nargv);
        en->id = arg[i + FOLD_E_ID];
        en->t = arg[i + FOLD_E_TIME];
        en->kind = arg[i + FOLD_E_KIND];
        en->sess = key_at(d, arg[i + FOLD_E_SESS]);
        en->totals = key_at(d, arg[i + FOLD_E_TOTALS]);
        en->exit = key_at(d, arg[i + FOLD_E_EXIT]);
        en->page = arg[i + FOLD_E_PAGE];
        en->ttl = atoll(arg[i + FOLD_E_TTL]);
        size_t always = (size_t)atoi(arg[i + FOLD_E_NOPS]);
        size_t visit = (size_t)atoi(arg[i + FOLD_E_NVISIT]);
        en->nops = always + visit;
        i += FOLD_E_HEAD;
        for (size_t k = 0; k < always; k++, i += FOLD_OP_WIDTH) {
            const char *code = arg[i + FOLD_OP_CODE];
            assert_true(strcmp(code, FOLD_OP_HINCR) == 0 || strcmp(code, FOLD_OP_PFADD) == 0);
            en->ops[k].kind = strcmp(code, FOLD_OP_HINCR) == 0 ? HINCR : PFADD;
            en->ops[k].key = key_at(d, arg[i + FOLD_OP_KEY]);
            en->ops[k].member = arg[i + FOLD_OP_MEMBER];
        }
        for (size_t k = always; k < en->nops; k++, i += FOLD_VISIT_WIDTH) {
            en->ops[k].kind = VISIT;
            en->ops[k].key = key_at(d, arg[i + FOLD_VISIT_KEY]);
            en->ops[k].member = arg[i + FOLD_VISIT_MEMBER];
        }
    }
    /* The last entry ends the vector. */
    assert_int_equal(i, nargv + 1);
}

static int has_op(const struct entry *e, enum op_kind kind, const char *key, const char *member)
{
    for (size_t i = 0; i < e->nops; i++)
        if (e->ops[i].kind == kind && strcmp(e->ops[i].key, key) == 0 &&
            strcmp(e->ops[i].member, member) == 0)
            return 1;
    return 0;
}

static size_t count_kind(const struct entry *e, enum op_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nops; i++) n += e->ops[i].kind == kind;
    return n;
}

static void add(struct fold_batch *b, const char *id, const char *const *kv)
{
    const char *fv[40];
    size_t fl[40], n = 0;
    for (; kv[n]; n++) {
        fv[n] = kv[n];
        fl[n] = strlen(kv[n]);
    }
    assert_int_equal(fold_batch_add(b, id, strlen(id), fv, fl, n, NOW), 0);
}

static struct clock_zone *utc;

static int setup(void **state)
{
    (void)state;
    char err[128];
    utc = clock_zone_new("UTC", err, sizeof err);
    return utc ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    clock_zone_free(utc);
    return 0;
}

static void pageview_counts_page_totals_hour_and_visitors(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *hit[] = {"t", "1714564800000", "n", "pageview", "p", "/pricing", "r", "google.com",
                         "c", "DE", "rg", "DE-BE", "b", "Firefox", "o", "Linux", "dv", "desktop",
                         "v", "0123456789abcdef", "us", "news", NULL};
    add(b, "1714564800000-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_int_equal(d.nentries, 1);
    assert_string_equal(d.keys[0], "fs:{example.com}:hits");
    const struct entry *e = &d.entries[0];
    assert_string_equal(e->kind, FOLD_KIND_PAGEVIEW);
    assert_string_equal(e->page, "/pricing");
    assert_string_equal(e->sess, "fs:{example.com}:sess:0123456789abcdef");
    assert_string_equal(e->totals, "fs:{example.com}:d:20240501:totals");
    assert_string_equal(e->exit, "fs:{example.com}:d:20240501:exit");
    /* Every pageview. */
    assert_true(has_op(e, HINCR, "fs:{example.com}:d:20240501:totals", "pageviews"));
    assert_true(has_op(e, HINCR, "fs:{example.com}:h:2024050112", "pageviews"));
    assert_true(has_op(e, HINCR, "fs:{example.com}:d:20240501:page", "/pricing"));
    assert_true(has_op(e, PFADD, "fs:{example.com}:d:20240501:uv", "0123456789abcdef"));
    assert_true(has_op(e, PFADD, "fs:{example.com}:d:20240501:uv:/pricing", "0123456789abcdef"));
    /* Only when the pageview starts a visit. */
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:totals", "visits"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:totals", "bounces"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:h:2024050112", "visits"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:entry", "/pricing"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:exit", "/pricing"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:source", "google.com"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:utm_source", "news"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:country", "DE"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:region", "DE-BE"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:browser", "Firefox"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:os", "Linux"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:device", "desktop"));
    assert_int_equal(count_kind(e, HINCR), 3);
    assert_int_equal(count_kind(e, PFADD), 2);
    assert_int_equal(count_kind(e, VISIT), 12);
    release(&d);
    fold_batch_free(b);
}

static void empty_dimensions_fall_back_or_are_skipped(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *hit[] = {"t", "1714564800000", "n", "pageview", "p", "/", "r", "", "c", "",
                         "v", "0123456789abcdef", "us", "", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    const struct entry *e = &d.entries[0];
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:source", "(direct)"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:country", "(unknown)"));
    assert_true(has_op(e, VISIT, "fs:{example.com}:d:20240501:browser", "(unknown)"));
    for (size_t i = 0; i < e->nops; i++) {
        assert_null(strstr(e->ops[i].key, ":utm_source"));
        assert_null(strstr(e->ops[i].key, ":region"));
    }
    release(&d);
    fold_batch_free(b);
}

static void custom_event_counts_event_not_pageview_nor_visit(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *hit[] = {"t", "1714564800000", "n", "signup", "p", "/join", "v", "0123456789abcdef",
                         "pr", "{\"plan\":\"pro\"}", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    const struct entry *e = &d.entries[0];
    assert_string_equal(e->kind, FOLD_KIND_EVENT);
    assert_null(e->sess);
    assert_true(has_op(e, HINCR, "fs:{example.com}:d:20240501:event", "signup"));
    assert_true(has_op(e, HINCR, "fs:{example.com}:d:20240501:totals", "events"));
    assert_true(has_op(e, PFADD, "fs:{example.com}:d:20240501:uv", "0123456789abcdef"));
    assert_false(has_op(e, HINCR, "fs:{example.com}:d:20240501:totals", "pageviews"));
    assert_int_equal(count_kind(e, VISIT), 0);
    release(&d);
    fold_batch_free(b);
}

static void hit_is_filed_in_the_site_timezone(void **state)
{
    (void)state;
    char err[128];
    struct clock_zone *ny = clock_zone_new("America/New_York", err, sizeof err);
    struct fold_batch *b = fold_batch_new("example.com", ny, CLOCK_DAY_MS);
    /* 2024-05-01T02:00Z is 22:00 on April 30th in New York (EDT). */
    const char *hit[] = {"t", "1714528800000", "p", "/", "v", "0123456789abcdef", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_true(has_op(&d.entries[0], HINCR, "fs:{example.com}:d:20240430:page", "/"));
    assert_true(has_op(&d.entries[0], HINCR, "fs:{example.com}:h:2024043022", "pageviews"));
    release(&d);
    fold_batch_free(b);
    clock_zone_free(ny);
}

static void missing_time_falls_back_to_the_stream_id(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *hit[] = {"t", "soon", "p", "/", NULL};
    add(b, "1714564800000-3", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_string_equal(d.entries[0].t, "1714564800000");
    /* No visitor: no session key and no HyperLogLog, but still a visit. */
    assert_null(d.entries[0].sess);
    assert_int_equal(count_kind(&d.entries[0], PFADD), 0);
    assert_true(has_op(&d.entries[0], VISIT, "fs:{example.com}:d:20240501:totals", "visits"));
    release(&d);
    fold_batch_free(b);
}

static void bad_visitor_hash_is_ignored(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *hit[] = {"t", "1714564800000", "p", "/", "v", "../../*", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_null(d.entries[0].sess);
    release(&d);
    fold_batch_free(b);
}

static void entry_without_fields_is_still_sent_for_ack(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *none[] = {NULL};
    add(b, "1714564800000-0", none);
    struct decoded d = {0};
    decode(b, &d);
    assert_int_equal(d.nentries, 1);
    assert_string_equal(d.entries[0].id, "1714564800000-0");
    assert_string_equal(d.entries[0].page, "/");
    release(&d);
    fold_batch_free(b);
}

static void keys_are_sent_once_per_batch(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    const char *h1[] = {"t", "1714564800000", "p", "/a", "v", "00000000000000aa", NULL};
    const char *h2[] = {"t", "1714564801000", "p", "/a", "v", "00000000000000aa", NULL};
    add(b, "1-0", h1);
    add(b, "1-1", h2);
    struct decoded d = {0};
    decode(b, &d);
    assert_int_equal(d.nentries, 2);
    for (size_t i = 0; i < d.nkeys; i++)
        for (size_t j = i + 1; j < d.nkeys; j++) assert_string_not_equal(d.keys[i], d.keys[j]);
    assert_string_equal(d.entries[0].sess, d.entries[1].sess);
    fold_batch_reset(b);
    add(b, "1-2", h1);
    release(&d);
    decode(b, &d);
    assert_int_equal(d.nentries, 1);
    assert_string_equal(d.keys[0], "fs:{example.com}:hits");
    release(&d);
    fold_batch_free(b);
}

static void long_path_is_cut_not_rejected(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    char *path = malloc(5000);
    memset(path, 'a', 4999);
    path[0] = '/';
    path[4999] = '\0';
    const char *hit[] = {"t", "1714564800000", "p", path, "v", "0123456789abcdef", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_int_equal(strlen(d.entries[0].page), FOLD_MAX_PATH);
    free(path);
    release(&d);
    fold_batch_free(b);
}

static void many_hits_many_days_build_a_consistent_vector(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, CLOCK_DAY_MS);
    for (int i = 0; i < 2000; i++) {
        char t[24], p[16], v[17], id[32];
        snprintf(t, sizeof t, "%lld", NOW + (long long)i * 3600 * 1000);
        snprintf(p, sizeof p, "/p%d", i % 50);
        snprintf(v, sizeof v, "%016x", i % 300);
        snprintf(id, sizeof id, "%d-0", i);
        const char *hit[] = {"t", t, "p", p, "v", v, NULL};
        add(b, id, hit);
    }
    assert_int_equal(fold_batch_entries(b), 2000);
    const char **argv;
    const size_t *len;
    size_t argc;
    assert_int_equal(fold_batch_argv(b, "sha", "fairstat", "me-1", &argv, &len, &argc), 0);
    assert_true(argc > 2000 * 10);
    fold_batch_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pageview_counts_page_totals_hour_and_visitors),
        cmocka_unit_test(empty_dimensions_fall_back_or_are_skipped),
        cmocka_unit_test(custom_event_counts_event_not_pageview_nor_visit),
        cmocka_unit_test(hit_is_filed_in_the_site_timezone),
        cmocka_unit_test(missing_time_falls_back_to_the_stream_id),
        cmocka_unit_test(bad_visitor_hash_is_ignored),
        cmocka_unit_test(entry_without_fields_is_still_sent_for_ack),
        cmocka_unit_test(keys_are_sent_once_per_batch),
        cmocka_unit_test(long_path_is_cut_not_rejected),
        cmocka_unit_test(many_hits_many_days_build_a_consistent_vector),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
