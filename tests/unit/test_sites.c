/* test_sites.c -- the site and origin tables: every configured site is
 * found by its exact name, among 10,000 as among one, and nothing else is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sites.h"

#define N_SITES 10000

struct fixture {
    struct cfg cfg;
    char (*names)[32];
    char (*origins)[48];
    char **origin_ptrs;
    struct sites *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->names = calloc(N_SITES, sizeof *f->names);
    f->origins = calloc(N_SITES, sizeof *f->origins);
    f->origin_ptrs = calloc(N_SITES, sizeof *f->origin_ptrs);
    f->cfg.sites = calloc(N_SITES, sizeof *f->cfg.sites);
    f->cfg.n_sites = N_SITES;
    for (size_t i = 0; i < N_SITES; i++) {
        snprintf(f->names[i], sizeof f->names[i], "s%zu.example.org", i);
        snprintf(f->origins[i], sizeof f->origins[i], "https://s%zu.example.org", i);
        f->origin_ptrs[i] = f->origins[i];
        f->cfg.sites[i].name = f->names[i];
        f->cfg.sites[i].origins = &f->origin_ptrs[i];
        f->cfg.sites[i].n_origins = 1;
    }
    f->s = sites_new(&f->cfg);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sites_free(f->s);
    free(f->cfg.sites);
    free(f->names);
    free(f->origins);
    free(f->origin_ptrs);
    free(f);
    return 0;
}

static const struct cfg_site *find(struct fixture *f, const char *name)
{
    return sites_find(f->s, name, strlen(name));
}

static void every_site_is_found_the_last_as_the_first(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < N_SITES; i++)
        assert_ptr_equal(sites_find(f->s, f->names[i], strlen(f->names[i])), &f->cfg.sites[i]);
    assert_ptr_equal(find(f, "s9999.example.org"), &f->cfg.sites[N_SITES - 1]);
}

static void only_exact_names_match(void **state)
{
    struct fixture *f = *state;
    assert_null(find(f, "s10000.example.org"));
    assert_null(find(f, "s1.example.or"));
    assert_null(find(f, "s1.example.orgx"));
    assert_null(find(f, "S1.example.org"));
    assert_null(find(f, ""));
    assert_null(sites_find(f->s, "s1.example.org\0x", 16));
    assert_ptr_equal(sites_find(f->s, "s1.example.orgXYZ", 14), &f->cfg.sites[1]);
}

static void origins_match_whole_and_without_regard_to_case(void **state)
{
    struct fixture *f = *state;
    const char *o = "https://s9999.example.org";
    assert_true(sites_origin_known(f->s, o, strlen(o)));
    o = "HTTPS://S42.Example.ORG";
    assert_true(sites_origin_known(f->s, o, strlen(o)));
    o = "https://s42.example.org.evil";
    assert_false(sites_origin_known(f->s, o, strlen(o)));
    assert_false(sites_origin_known(f->s, o, strlen("https://s42.example.or")));
    assert_false(sites_origin_known(f->s, "", 0));
}

static void no_sites_finds_nothing(void **state)
{
    (void)state;
    struct cfg empty;
    memset(&empty, 0, sizeof empty);
    struct sites *s = sites_new(&empty);
    assert_non_null(s);
    assert_null(sites_find(s, "example.com", 11));
    assert_false(sites_origin_known(s, "https://example.com", 19));
    sites_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_site_is_found_the_last_as_the_first, setup, teardown),
        cmocka_unit_test_setup_teardown(only_exact_names_match, setup, teardown),
        cmocka_unit_test_setup_teardown(origins_match_whole_and_without_regard_to_case, setup, teardown),
        cmocka_unit_test(no_sites_finds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
