/* audit.c -- prints the fs:audit records (audit.h). */
#include "audit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "clock.h"
#include "keys.h"

#define PAGE 1000

/* The text fields shown as they are; every other field must be a count. */
static const char *const text_fields[] = {"action", "by", "site", "as_of"};

static int is_text_field(const char *name)
{
    for (size_t i = 0; i < sizeof text_fields / sizeof text_fields[0]; i++)
        if (strcmp(name, text_fields[i]) == 0) return 1;
    return 0;
}

static int is_count(const char *s, long long *out)
{
    char *end;
    if (!*s) return 0;
    *out = strtoll(s, &end, 10);
    return *end == '\0';
}

/* A purge record's per-site counts are named "<site>.<what>". With --site,
 * those of other sites are left out; 1 when name is one of them. */
static int other_sites_count(const char *name, const char *site)
{
    const char *dot = strrchr(name, '.');
    if (!site || !dot) return 0;
    size_t n = strlen(site);
    return !((size_t)(dot - name) == n && memcmp(name, site, n) == 0);
}

/* One entry as a JSON object, or NULL when --site leaves it out (or out of
 * memory: *oom set). */
static json_t *record(const redisReply *e, const struct audit_opts *o, int *oom)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *kv = e->element[1];
    json_t *j = json_object();
    if (!j) {
        *oom = 1;
        return NULL;
    }
    json_object_set_new(j, "id", json_string(e->element[0]->str));
    int mine = !o->site;
    long long t = -1;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        long long n;
        if (strcmp(k->str, "t") == 0 && is_count(v->str, &n)) {
            t = n;
            continue;
        }
        if (is_text_field(k->str)) {
            json_object_set_new(j, k->str, json_string(v->str));
            if (o->site && strcmp(k->str, "site") == 0 && strcmp(v->str, o->site) == 0) mine = 1;
        } else if (is_count(v->str, &n)) {
            if (other_sites_count(k->str, o->site)) continue;
            if (o->site && strchr(k->str, '.')) mine = 1;
            json_object_set_new(j, k->str, json_integer(n));
        }
    }
    if (t < 0) t = atoll(e->element[0]->str);    /* the stream id's time */
    int64_t day = clock_utc_day(t);
    if (!mine || (o->from_day >= 0 && day < o->from_day) || (o->to_day >= 0 && day > o->to_day)) {
        json_decref(j);
        return NULL;
    }
    char iso[32];
    clock_format_rfc3339(t, iso);
    json_object_set_new(j, "time", json_string(iso));
    json_object_set_new(j, "t", json_integer(t));
    return j;
}

/* TIME ACTION BY SITE COUNTS: the counts as name=value, in the record's order. */
static int print_row(FILE *out, const json_t *r)
{
    const char *by = json_string_value(json_object_get(r, "by"));
    const char *site = json_string_value(json_object_get(r, "site"));
    const char *action = json_string_value(json_object_get(r, "action"));
    fprintf(out, "%-20s  %-13s  %-10s  %-24s ", json_string_value(json_object_get(r, "time")),
            action ? action : "-", by ? by : "-", site ? site : "-");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)r, k, v) {
        if (strcmp(k, "t") == 0 || strcmp(k, "id") == 0 || strcmp(k, "time") == 0 ||
            strcmp(k, "action") == 0 || strcmp(k, "by") == 0 || strcmp(k, "site") == 0)
            continue;
        if (json_is_integer(v)) fprintf(out, " %s=%lld", k, (long long)json_integer_value(v));
        else if (json_is_string(v)) fprintf(out, " %s=%s", k, json_string_value(v));
    }
    return fputc('\n', out) == EOF ? -1 : 0;
}

int audit_run(struct agg *a, const struct audit_opts *o, FILE *out)
{
    a->err[0] = '\0';
    json_t *list = json_array();
    if (!list) goto oom;
    char start[48] = "-", end[32] = "+";
    if (o->from_day >= 0) snprintf(start, sizeof start, "%lld", (long long)(o->from_day - 1) * CLOCK_DAY_MS);
    if (o->to_day >= 0) snprintf(end, sizeof end, "%lld", (long long)(o->to_day + 2) * CLOCK_DAY_MS);
    for (;;) {
        redisReply *r = agg_command(a, "XRANGE %s %s %s COUNT %d", KEYS_AUDIT, start, end, PAGE);
        if (!r) goto error;
        if (r->type != REDIS_REPLY_ARRAY) {
            int err = r->type == REDIS_REPLY_ERROR;
            if (err) snprintf(a->err, sizeof a->err, "XRANGE %s: %.100s", KEYS_AUDIT, r->str);
            freeReplyObject(r);
            if (err) goto error;
            break;
        }
        size_t n = r->elements;
        int oom = 0;
        for (size_t i = 0; i < n && !oom; i++) {
            json_t *j = record(r->element[i], o, &oom);
            if (j && json_array_append_new(list, j) < 0) oom = 1;
        }
        if (n > 0 && r->element[n - 1]->type == REDIS_REPLY_ARRAY)
            snprintf(start, sizeof start, "(%.40s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (oom) goto oom;
        if (n < PAGE) break;
    }
    int rc = 0;
    if (o->format == AUDIT_JSON) {
        json_t *doc = json_pack("{s:O}", "records", list);
        rc = !doc || json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
             fputc('\n', out) == EOF ? -1 : 0;
        json_decref(doc);
    } else {
        fprintf(out, "%-20s  %-13s  %-10s  %-24s  %s\n", "TIME", "ACTION", "BY", "SITE", "COUNTS");
        size_t i;
        json_t *r;
        json_array_foreach(list, i, r) if (rc == 0) rc = print_row(out, r);
    }
    json_decref(list);
    if (rc < 0 || fflush(out) != 0) {
        snprintf(a->err, sizeof a->err, "write error");
        return -1;
    }
    return 0;

oom:
    snprintf(a->err, sizeof a->err, "out of memory");
error:
    json_decref(list);
    return -1;
}
