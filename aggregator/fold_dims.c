/* fold_dims.c -- the names of the fold's dimensions in its Redis keys
 * (fold.h, docs/aggregator.md), on their own so that a target built from a
 * few files (tests/fuzz/fuzz_query.c) uses this list, not a copy of it. */
#include "fold.h"

const char *const fold_dim_names[FOLD_NDIMS] = {
    "totals", "page", "entry", "exit", "source", "utm_source", "utm_medium", "utm_campaign",
    "utm_term", "utm_content", "country", "region", "browser", "os", "device", "event",
    "engaged", "scroll", "engagements", "props", "uv",
};
