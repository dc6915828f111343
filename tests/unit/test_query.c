/* test_query.c -- the Stats API's parser and validator (query.h): what it
 * accepts, what it refuses and why, and the date ranges it resolves to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "dates.h"
#include "query.h"

static struct query *parse(const char *json, char *err)
{
    return query_parse(json, strlen(json), err, 512);
}

/* The query is refused and the message holds want. */
static void refused(const char *json, const char *want)
{
    char err[512] = "";
    struct query *q = parse(json, err);
    if (q) {
        query_free(q);
        fail_msg("accepted: %s", json);
    }
    if (!strstr(err, want)) fail_msg("%s: expected '%s' in '%s'", json, want, err);
}

static void accepted(const char *json)
{
    char err[512] = "";
    struct query *q = parse(json, err);
    if (!q) fail_msg("refused: %s: %s", json, err);
    query_free(q);
}

#define Q(rest) "{\"site_id\":\"a.test\",\"date_range\":\"7d\"," rest "}"

static void the_shapes_the_aggregates_hold_are_accepted(void **state)
{
    (void)state;
    accepted(Q("\"metrics\":[\"visitors\",\"visits\",\"pageviews\",\"bounce_rate\",\"visit_duration\","
               "\"views_per_visit\",\"events\"]"));
    accepted(Q("\"metrics\":[\"visitors\",\"bounce_rate\"],\"dimensions\":[\"time:day\"]"));
    accepted(Q("\"metrics\":[\"pageviews\",\"visits\",\"events\"],\"dimensions\":[\"time:hour\"]"));
    accepted(Q("\"metrics\":[\"visitors\",\"pageviews\"],\"dimensions\":[\"event:page\"]"));
    accepted(Q("\"metrics\":[\"events\"],\"dimensions\":[\"event:name\"]"));
    accepted(Q("\"metrics\":[\"events\"],\"dimensions\":[\"event:props:plan\"],"
               "\"filters\":[[\"is_not\",\"event:props:plan\",[\"free\"]]],\"order_by\":[[\"event:props:plan\",\"asc\"]]"));
    accepted(Q("\"metrics\":[\"pageviews\",\"time_on_page\",\"scroll_depth\"],\"dimensions\":[\"event:page\"]"));
    accepted(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:utm_campaign\"],"
               "\"filters\":[[\"contains\",\"visit:utm_campaign\",[\"spring\"]]],"
               "\"order_by\":[[\"visit:utm_campaign\",\"asc\"]],\"pagination\":{\"limit\":5,\"offset\":5},"
               "\"include\":{\"total_rows\":true,\"imports\":false}"));
    accepted(Q("\"metrics\":[\"visits\"],\"filters\":[[\"is\",\"visit:country\",[\"DE\",\"FR\"]]]"));
    accepted(Q("\"metrics\":[\"visitors\",\"pageviews\"],\"dimensions\":[\"time:day\"],"
               "\"filters\":[[\"is\",\"event:page\",[\"/a\"]]]"));
    accepted(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:source\"],"
               "\"filters\":[[\"is\",\"visit:entry_page\",[\"/a\"]]]"));
    accepted(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"time:day\"],\"include\":{\"time_labels\":true}"));
}

static void malformed_queries_are_refused_with_the_reason(void **state)
{
    (void)state;
    refused("", "Invalid JSON");
    refused("{\"site_id\":", "Invalid JSON");
    refused("[1]", "must be a JSON object");
    refused("{\"metrics\":[\"visits\"],\"date_range\":\"7d\"}", "`site_id` is required");
    refused("{\"site_id\":\"a.test\",\"metrics\":[\"visits\"]}", "`date_range` is required");
    refused(Q("\"metrics\":[]"), "non-empty list");
    refused(Q("\"metrics\":[1]"), "list of strings");
    refused(Q("\"metrics\":[\"visits\",\"visits\"]"), "multiple times");
    refused(Q("\"metrics\":[\"visits\"],\"surprise\":1"), "Unknown key `surprise`");
    refused("{\"site_id\":\"a\",\"site_id\":\"b\",\"metrics\":[\"visits\"],\"date_range\":\"7d\"}", "Invalid JSON");
    refused(Q("\"metrics\":[\"visits\"],\"pagination\":{\"limit\":0}"), "pagination.limit");
    refused(Q("\"metrics\":[\"visits\"],\"pagination\":{\"limit\":10001}"), "pagination.limit");
    refused(Q("\"metrics\":[\"visits\"],\"pagination\":{\"page\":1}"), "Unknown pagination key");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"is\"]]"), "Invalid filter");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"is\",\"visit:country\",[]]]"), "values must be a list");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"is\",\"visit:country\",[1]]]"), "values must be strings");
}

static void what_the_aggregates_do_not_hold_is_refused_never_estimated(void **state)
{
    (void)state;
    refused(Q("\"metrics\":[\"bogus\"]"), "Unknown metric `bogus`");
    refused(Q("\"metrics\":[\"time_on_page\"]"), "Metric `time_on_page` can only be queried with dimension `event:page`");
    refused(Q("\"metrics\":[\"scroll_depth\"],\"dimensions\":[\"time:day\"]"),
            "Metric `scroll_depth` cannot be queried with dimension `time:day`");
    refused(Q("\"metrics\":[\"pageviews\",\"time_on_page\"],\"dimensions\":[\"event:page\"],"
              "\"order_by\":[[\"time_on_page\",\"desc\"]]"), "order by pageviews");
    refused(Q("\"metrics\":[\"percentage\"]"), "Metric `percentage` is not supported");
    refused(Q("\"metrics\":[\"bounce_rate\"],\"dimensions\":[\"visit:country\"]"),
            "Metric `bounce_rate` cannot be queried with dimension `visit:country`");
    refused(Q("\"metrics\":[\"visitors\"],\"dimensions\":[\"visit:source\"]"),
            "Metric `visitors` cannot be queried with dimension `visit:source`");
    refused(Q("\"metrics\":[\"visitors\"],\"dimensions\":[\"time:hour\"]"),
            "Metric `visitors` cannot be queried with dimension `time:hour`");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"event:page\"]"),
            "Metric `visits` cannot be queried with dimension `event:page`");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:city\"]"), "Invalid dimension `visit:city`");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:source\",\"visit:country\"]"),
            "more than one dimension");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:source\"],"
              "\"filters\":[[\"is\",\"visit:country\",[\"DE\"]]]"),
            "Filtering by `visit:country` with dimension `visit:source` is not supported");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"visit:source\"],"
              "\"filters\":[[\"is\",\"event:page\",[\"/a\"]]]"), "filter by visit:entry_page");
    refused(Q("\"metrics\":[\"bounce_rate\"],\"filters\":[[\"is\",\"visit:country\",[\"DE\"]]]"),
            "Metric `bounce_rate` cannot be queried with a filter on `visit:country`");
    refused(Q("\"metrics\":[\"visitors\"],\"filters\":[[\"contains\",\"event:page\",[\"/a\"]]]"),
            "Metric `visitors` cannot be queried with a filter on `event:page`");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"is\",\"visit:country\",[\"DE\"]],"
              "[\"is\",\"visit:os\",[\"Linux\"]]]"), "more than one dimension");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"matches\",\"visit:country\",[\"D.\"]]]"),
            "operator `matches` is not supported");
    refused(Q("\"metrics\":[\"visits\"],\"filters\":[[\"or\",[]]]"), "operator `or` is not supported");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"time:hour\"],"
              "\"filters\":[[\"is\",\"visit:country\",[\"DE\"]]]"), "with dimension `time:hour`");
    refused(Q("\"metrics\":[\"pageviews\",\"visitors\"],\"dimensions\":[\"event:page\"],"
              "\"order_by\":[[\"visitors\",\"desc\"]]"), "order by pageviews");
    refused(Q("\"metrics\":[\"visits\"],\"order_by\":[[\"pageviews\",\"desc\"]]"), "not a queried metric");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"time:day\"],\"order_by\":[[\"visits\",\"desc\"]]"),
            "ordered by time only");
    refused(Q("\"metrics\":[\"visits\"],\"include\":{\"comparisons\":true}"), "not supported");
    refused(Q("\"metrics\":[\"visits\"],\"include\":{\"time_labels\":true}"), "requires a time dimension");
    refused(Q("\"metrics\":[\"visits\"],\"dimensions\":[\"event:props:plan\"]"),
            "Metric `visits` cannot be queried with dimension `event:props:plan`");
    refused(Q("\"metrics\":[\"events\"],\"dimensions\":[\"event:props:\"]"), "Invalid dimension");
    refused(Q("\"metrics\":[\"events\"],\"filters\":[[\"is\",\"event:props:plan\",[\"pro\"]]]"),
            "supported with dimension `event:props:plan` only");
    refused(Q("\"metrics\":[\"events\"],\"dimensions\":[\"event:props:plan\"],"
              "\"filters\":[[\"is\",\"event:props:size\",[\"L\"]]]"), "supported with dimension `event:props:size` only");
}

static void date_ranges_resolve_to_local_days(void **state)
{
    (void)state;
    char err[512];
    struct clock_zone *z = clock_zone_new("Europe/Berlin", err, sizeof err);
    assert_non_null(z);
    /* 2024-03-31T22:30Z is already 2024-04-01 in Berlin (UTC+2) */
    int64_t now = day("20240331") * 86400000LL + 22 * 3600000LL + 30 * 60000LL;
    static const struct { const char *range, *from, *to; } cases[] = {
        {"\"day\"", "20240401", "20240401"}, {"\"7d\"", "20240326", "20240401"},
        {"\"30d\"", "20240303", "20240401"}, {"\"month\"", "20240401", "20240401"},
        {"\"6mo\"", "20231101", "20240401"}, {"\"12mo\"", "20230501", "20240401"},
        {"\"year\"", "20240101", "20240401"}, {"\"all\"", "20230402", "20240401"},
        {"[\"2024-02-28\",\"2024-03-01\"]", "20240228", "20240301"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"date_range\":%s}", cases[i].range);
        struct query *q = parse(json, err);
        assert_non_null(q);
        assert_int_equal(query_resolve(q, z, now, 365, err, sizeof err), 0);
        int64_t from, to;
        query_days(q, &from, &to);
        if (from != day(cases[i].from) || to != day(cases[i].to))
            fail_msg("%s: got %lld..%lld", cases[i].range, (long long)from, (long long)to);
        query_free(q);
    }
    refused("{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"date_range\":\"yesterday\"}", "Invalid date_range");
    refused("{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"date_range\":[\"2024-03-02\",\"2024-03-01\"]}",
            "after the second");
    refused("{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"date_range\":[\"2024-01-01T00:00:00Z\",\"2024-01-02\"]}",
            "date-times are not supported");
    refused("{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"date_range\":[\"2024-02-30\",\"2024-03-01\"]}",
            "Invalid date_range");
    struct query *q = parse("{\"site_id\":\"a\",\"metrics\":[\"visits\"],\"dimensions\":[\"time:hour\"],"
                            "\"date_range\":[\"2020-01-01\",\"2024-01-01\"]}", err);
    assert_non_null(q);
    assert_int_equal(query_resolve(q, z, now, 365, err, sizeof err), -1);
    assert_non_null(strstr(err, "time:hour covers at most"));
    query_free(q);
    /* visitors of 100 pages over ten years would read 365,300 HyperLogLogs at once */
    char json[4096];
    int n = snprintf(json, sizeof json, "{\"site_id\":\"a\",\"metrics\":[\"visitors\"],"
                     "\"date_range\":[\"2015-01-01\",\"2024-12-31\"],\"filters\":[[\"is\",\"event:page\",[");
    for (int i = 0; i < 100; i++) n += snprintf(json + n, sizeof json - (size_t)n, "%s\"/%d\"", i ? "," : "", i);
    snprintf(json + n, sizeof json - (size_t)n, "]]]}");
    assert_non_null(q = parse(json, err));
    assert_int_equal(query_resolve(q, z, now, 365, err, sizeof err), -1);
    assert_non_null(strstr(err, "page-days"));
    query_free(q);
    clock_zone_free(z);
}

static void hostile_input_is_refused_not_crashed_on(void **state)
{
    (void)state;
    char err[512];
    char big[20000];
    /* deep nesting, long strings, many values */
    size_t n = 0;
    for (int i = 0; i < 5000; i++) big[n++] = '[';
    big[n] = '\0';
    assert_null(query_parse(big, n, err, sizeof err));
    n = (size_t)snprintf(big, sizeof big, "{\"site_id\":\"a\",\"date_range\":\"7d\",\"metrics\":[\"visits\"],"
                         "\"filters\":[[\"is\",\"visit:country\",[");
    for (int i = 0; i < 101; i++) n += (size_t)snprintf(big + n, sizeof big - n, "%s\"x\"", i ? "," : "");
    n += (size_t)snprintf(big + n, sizeof big - n, "]]]}");
    assert_null(query_parse(big, n, err, sizeof err));
    assert_non_null(strstr(err, "1 to 100"));
    /* a NUL inside the body is not the end of it */
    static const char nul[] = "{\"site_id\":\"a\0b\",\"metrics\":[\"visits\"],\"date_range\":\"7d\"}";
    assert_null(query_parse(nul, sizeof nul - 1, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_shapes_the_aggregates_hold_are_accepted),
        cmocka_unit_test(malformed_queries_are_refused_with_the_reason),
        cmocka_unit_test(what_the_aggregates_do_not_hold_is_refused_never_estimated),
        cmocka_unit_test(date_ranges_resolve_to_local_days),
        cmocka_unit_test(hostile_input_is_refused_not_crashed_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
