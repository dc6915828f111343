/* test_fold.c -- a raw hit becomes the right counter updates (fold.h).
 *
 * The tests decode the EVALSHA vector the fold builds, as the apply script
 * would, and check which key/member each hit increments.
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
#include "session.h"

#define NOW 1714564800000LL     /* 2024-05-01T12:00:00Z */

struct op {
    char code;
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

/* Decodes b's vector into copies that d owns until release() (or the next decode). */
static void decode(struct fold_batch *b, struct decoded *d)
{
    const char **argv;
    const size_t *len;
    size_t argc;
    assert_int_equal(fold_batch_argv(b, "sha", "fairstat", "me-1", SESSION_IDLE_MS, &argv, &len, &argc), 0);
    char **a = calloc(argc, sizeof *a);
    for (size_t i = 0; i < argc; i++) a[i] = dup_n(argv[i], len[i]);
    d->owned = a;
    d->nowned = argc;
    assert_string_equal(a[0], "EVALSHA");
    assert_string_equal(a[1], "sha");
    d->nkeys = (size_t)atoi(a[2]);
    d->keys = (const char **)a + 3;
    size_t i = 3 + d->nkeys;
    assert_string_equal(a[i], "fairstat");
    assert_string_equal(a[i + 1], "me-1");
    assert_string_equal(a[i + 2], "1800000");
    d->nentries = (size_t)atoi(a[i + 3]);
    i += 4;
    for (size_t e = 0; e < d->nentries; e++) {
        struct entry *en = &d->entries[e];
        en->id = a[i];
        en->t = a[i + 1];
        en->kind = a[i + 2];
        int si = atoi(a[i + 3]), ti = atoi(a[i + 4]), xi = atoi(a[i + 5]);
        en->sess = si ? d->keys[si - 1] : NULL;
        en->totals = ti ? d->keys[ti - 1] : NULL;
        en->exit = xi ? d->keys[xi - 1] : NULL;
        en->page = a[i + 6];
        en->ttl = atoll(a[i + 7]);
        size_t always = (size_t)atoi(a[i + 8]), visit = (size_t)atoi(a[i + 9]);
        en->nops = always + visit;
        i += 10;
        for (size_t k = 0; k < always; k++, i += 3) {
            assert_true(a[i][0] == 'h' || a[i][0] == 'p');
            en->ops[k].code = a[i][0];
            en->ops[k].key = d->keys[atoi(a[i + 1]) - 1];
            en->ops[k].member = a[i + 2];
        }
        /* Visit-only ops are shown as 'H'. */
        for (size_t k = always; k < en->nops; k++, i += 2) {
            en->ops[k].code = 'H';
            en->ops[k].key = d->keys[atoi(a[i]) - 1];
            en->ops[k].member = a[i + 1];
        }
    }
    assert_int_equal(i, argc);
}

static int has_op(const struct entry *e, char code, const char *key, const char *member)
{
    for (size_t i = 0; i < e->nops; i++)
        if (e->ops[i].code == code && strcmp(e->ops[i].key, key) == 0 &&
            strcmp(e->ops[i].member, member) == 0)
            return 1;
    return 0;
}

static size_t count_code(const struct entry *e, char code)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nops; i++) n += e->ops[i].code == code;
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
    const char *hit[] = {"t", "1714564800000", "n", "pageview", "p", "/pricing", "r", "google.com",
                         "c", "DE", "rg", "DE-BE", "b", "Firefox", "o", "Linux", "dv", "desktop",
                         "v", "0123456789abcdef", "us", "news", NULL};
    add(b, "1714564800000-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_int_equal(d.nentries, 1);
    assert_string_equal(d.keys[0], "fs:{example.com}:hits");
    const struct entry *e = &d.entries[0];
    assert_string_equal(e->kind, "P");
    assert_string_equal(e->page, "/pricing");
    assert_string_equal(e->sess, "fs:{example.com}:sess:0123456789abcdef");
    assert_string_equal(e->totals, "fs:{example.com}:d:20240501:totals");
    assert_string_equal(e->exit, "fs:{example.com}:d:20240501:exit");
    /* Every pageview. */
    assert_true(has_op(e, 'h', "fs:{example.com}:d:20240501:totals", "pageviews"));
    assert_true(has_op(e, 'h', "fs:{example.com}:h:2024050112", "pageviews"));
    assert_true(has_op(e, 'h', "fs:{example.com}:d:20240501:page", "/pricing"));
    assert_true(has_op(e, 'p', "fs:{example.com}:d:20240501:uv", "0123456789abcdef"));
    assert_true(has_op(e, 'p', "fs:{example.com}:d:20240501:uv:/pricing", "0123456789abcdef"));
    /* Only when the pageview starts a visit. */
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:totals", "visits"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:totals", "bounces"));
    assert_true(has_op(e, 'H', "fs:{example.com}:h:2024050112", "visits"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:entry", "/pricing"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:exit", "/pricing"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:source", "google.com"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:utm_source", "news"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:country", "DE"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:region", "DE-BE"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:browser", "Firefox"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:os", "Linux"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:device", "desktop"));
    assert_int_equal(count_code(e, 'h'), 3);
    assert_int_equal(count_code(e, 'p'), 2);
    assert_int_equal(count_code(e, 'H'), 12);
    release(&d);
    fold_batch_free(b);
}

static void empty_dimensions_fall_back_or_are_skipped(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
    const char *hit[] = {"t", "1714564800000", "n", "pageview", "p", "/", "r", "", "c", "",
                         "v", "0123456789abcdef", "us", "", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    const struct entry *e = &d.entries[0];
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:source", "(direct)"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:country", "(unknown)"));
    assert_true(has_op(e, 'H', "fs:{example.com}:d:20240501:browser", "(unknown)"));
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
    const char *hit[] = {"t", "1714564800000", "n", "signup", "p", "/join", "v", "0123456789abcdef",
                         "pr", "{\"plan\":\"pro\"}", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    const struct entry *e = &d.entries[0];
    assert_string_equal(e->kind, "E");
    assert_null(e->sess);
    assert_true(has_op(e, 'h', "fs:{example.com}:d:20240501:event", "signup"));
    assert_true(has_op(e, 'h', "fs:{example.com}:d:20240501:totals", "events"));
    assert_true(has_op(e, 'p', "fs:{example.com}:d:20240501:uv", "0123456789abcdef"));
    assert_false(has_op(e, 'h', "fs:{example.com}:d:20240501:totals", "pageviews"));
    assert_int_equal(count_code(e, 'H'), 0);
    release(&d);
    fold_batch_free(b);
}

static void hit_is_filed_in_the_site_timezone(void **state)
{
    (void)state;
    char err[128];
    struct clock_zone *ny = clock_zone_new("America/New_York", err, sizeof err);
    struct fold_batch *b = fold_batch_new("example.com", ny, 86400000);
    /* 2024-05-01T02:00Z is 22:00 on April 30th in New York (EDT). */
    const char *hit[] = {"t", "1714528800000", "p", "/", "v", "0123456789abcdef", NULL};
    add(b, "1-0", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_true(has_op(&d.entries[0], 'h', "fs:{example.com}:d:20240430:page", "/"));
    assert_true(has_op(&d.entries[0], 'h', "fs:{example.com}:h:2024043022", "pageviews"));
    release(&d);
    fold_batch_free(b);
    clock_zone_free(ny);
}

static void missing_time_falls_back_to_the_stream_id(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
    const char *hit[] = {"t", "soon", "p", "/", NULL};
    add(b, "1714564800000-3", hit);
    struct decoded d = {0};
    decode(b, &d);
    assert_string_equal(d.entries[0].t, "1714564800000");
    /* No visitor: no session key and no HyperLogLog, but still a visit. */
    assert_null(d.entries[0].sess);
    assert_int_equal(count_code(&d.entries[0], 'p'), 0);
    assert_true(has_op(&d.entries[0], 'H', "fs:{example.com}:d:20240501:totals", "visits"));
    release(&d);
    fold_batch_free(b);
}

static void bad_visitor_hash_is_ignored(void **state)
{
    (void)state;
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
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
    struct fold_batch *b = fold_batch_new("example.com", utc, 86400000);
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
    assert_int_equal(fold_batch_argv(b, "sha", "fairstat", "me-1", SESSION_IDLE_MS, &argv, &len, &argc), 0);
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
