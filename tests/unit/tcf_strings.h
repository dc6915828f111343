/* tcf_strings.h -- the TC strings made by the official IAB encoder
 * (tests/data/tcf/strings.json, from tests/lib/tcf-strings.mjs), for the unit
 * tests of the decoder and of the consent managers' cookies. Include after
 * cmocka.h and jansson.h; the tests run from the repository root. */
#ifndef FAIRSTAT_TEST_TCF_STRINGS_H
#define FAIRSTAT_TEST_TCF_STRINGS_H

#include <string.h>

/* The fixture's cases; the caller json_decref()s them. */
static inline json_t *tcf_strings_load(void)
{
    json_error_t e;
    json_t *root = json_load_file("tests/data/tcf/strings.json", 0, &e);
    if (!root) fail_msg("tests/data/tcf/strings.json: %s", e.text);
    return root;
}

/* The TC string of the case called name; fails the test without one. */
static inline const char *tcf_string(json_t *root, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(root, "cases"), i, c)
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            return json_string_value(json_object_get(c, "tc"));
    fail_msg("no case %s", name);
    return NULL;
}

#endif
