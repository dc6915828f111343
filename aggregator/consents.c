/* consents.c -- reads consent receipts and exports them (consents.h). */
#include "consents.h"

#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "archive.h"
#include "clock.h"
#include "keys.h"
#include "log.h"

#define PAGE 1000                   /* entries per XRANGE */

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

static void copy(char *dst, size_t cap, const redisReply *v)
{
    size_t n = v->len < cap - 1 ? v->len : cap - 1;
    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

/* One stream entry [id, [field, value, ...]] as a record. 0, or -1 when it is
 * not a receipt (no id, action or time; a value too long for its field). */
int consents_parse_entry(const redisReply *e, struct consent_record *rec)
{
    memset(rec, 0, sizeof *rec);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[0]->len >= sizeof rec->record_id)
        return -1;
    copy(rec->record_id, sizeof rec->record_id, e->element[0]);
    const redisReply *kv = e->element[1];
    int have_id = 0, have_action = 0, have_t = 0;
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        const char *name = k->str;
        struct { const char *field; char *dst; size_t cap; int *seen; } text[] = {
            {RECEIPT_ID, rec->receipt_id, sizeof rec->receipt_id, &have_id},
            {RECEIPT_ACTION, rec->action, sizeof rec->action, &have_action},
            {RECEIPT_POLICY, rec->policy_version, sizeof rec->policy_version, NULL},
            {RECEIPT_POLICY_HASH, rec->policy_sha256, sizeof rec->policy_sha256, NULL},
            {RECEIPT_METHOD, rec->method, sizeof rec->method, NULL},
        };
        int done = 0;
        for (size_t t = 0; t < sizeof text / sizeof text[0] && !done; t++) {
            if (strcmp(name, text[t].field) != 0) continue;
            if (v->len >= text[t].cap) return -1;
            copy(text[t].dst, text[t].cap, v);
            if (text[t].seen) *text[t].seen = 1;
            done = 1;
        }
        if (done) continue;
        if (strcmp(name, RECEIPT_CHOICE) == 0) {
            rec->analytics = strcmp(v->str, "1") == 0;
        } else if (strcmp(name, RECEIPT_TIME) == 0) {
            char *end;
            rec->t_ms = strtoll(v->str, &end, 10);
            have_t = end != v->str && *end == '\0';
        } else if (strcmp(name, RECEIPT_SCHEMA) == 0) {
            rec->schema = atoi(v->str);
        }
    }
    if (!have_id || !have_action || !have_t) return -1;
    /* Before schema 1, only withdrawals and erasures said how by their action. */
    if (!rec->method[0] && strcmp(rec->action, "withdraw") == 0) strcpy(rec->method, "withdrawal");
    if (!rec->method[0] && strcmp(rec->action, "forget") == 0) strcpy(rec->method, "forget");
    return 0;
}

/* Receipts in Redis, by their time (the t field; the stream id is the time
 * Redis took them, within ms of it). */
static int read_redis(struct agg *a, const char *site, int64_t from_ms, int64_t to_ms,
                      const char *after_id, consents_fn fn, void *arg)
{
    char key[320], start[48], end[32];
    if (keys_consent(key, sizeof key, site) < 0) {
        snprintf(a->err, sizeof a->err, "bad site name");
        return -1;
    }
    /* A margin of a minute either side: a receipt's t and its stream id are
     * taken moments apart. */
    snprintf(start, sizeof start, "%lld", (long long)(from_ms > 60000 ? from_ms - 60000 : 0));
    snprintf(end, sizeof end, "%lld", (long long)(to_ms < INT64_MAX - 60000 ? to_ms + 60000 : INT64_MAX));
    long skipped = 0;
    for (;;) {
        redisReply *r = agg_command(a, "XRANGE %s %s %s COUNT %d", key, start, end, PAGE);
        if (!r) return -1;
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(a->err, sizeof a->err, "XRANGE %.200s: %.40s", key, r->str);
            freeReplyObject(r);
            return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return 0;
        }
        size_t n = r->elements;
        for (size_t i = 0; i < n; i++) {
            struct consent_record rec;
            if (consents_parse_entry(r->element[i], &rec) < 0) {
                skipped++;
                continue;
            }
            if (rec.t_ms < from_ms || rec.t_ms >= to_ms) continue;
            if (after_id[0] && archive_id_cmp(rec.record_id, after_id) <= 0) continue;
            if (fn(&rec, arg) < 0) {
                freeReplyObject(r);
                return -1;
            }
        }
        if (n > 0) {
            const redisReply *last = r->element[n - 1];
            if (last->type == REDIS_REPLY_ARRAY && last->elements == 2)
                snprintf(start, sizeof start, "(%.40s", last->element[0]->str);
        }
        freeReplyObject(r);
        if (n < PAGE) break;
    }
    if (skipped) log_info("consents: %s: %ld entries that are not receipts skipped", site, skipped);
    return 0;
}

int consents_read(struct agg *a, const char *site, int64_t from_ms, int64_t to_ms,
                  consents_fn fn, void *arg)
{
    a->err[0] = '\0';
    /* The archive of older receipts first. A receipt archived and not yet
     * deleted from Redis (a run interrupted between the two) is shown once:
     * Redis is read past the newest archived id. */
    struct archive *ar;
    char err[ARCHIVE_ERRLEN], last_id[48] = "";
    if (archive_from_cfg(a->cfg, &ar, err, sizeof err) < 0) {
        snprintf(a->err, sizeof a->err, "%.250s", err);
        return -1;
    }
    if (ar) {
        int rc = archive_read(ar, site, from_ms, to_ms, fn, arg);
        if (rc == 0) rc = archive_last_id(ar, site, last_id);
        if (rc < 0 && !a->err[0]) snprintf(a->err, sizeof a->err, "archive: %.240s", archive_error(ar));
        archive_free(ar);
        if (rc < 0) return -1;
    }
    return read_redis(a, site, from_ms, to_ms, last_id, fn, arg);
}

/* ------------------------------------------------------------------------ */
/* The record's canonical form                                               */
/* ------------------------------------------------------------------------ */

/* ISO 8601 in UTC with milliseconds: 2024-05-01T12:00:00.250Z. */
static void format_time(int64_t ms, char out[40])
{
    char s[32];
    int64_t sec_ms = ms - ((ms % 1000) + 1000) % 1000;
    clock_format_rfc3339(sec_ms, s);
    size_t n = strlen(s);
    if (n && s[n - 1] == 'Z') s[n - 1] = '\0';
    snprintf(out, 40, "%s.%03dZ", s, (int)(ms - sec_ms));
}

static json_t *str_or_null(const char *s)
{
    return *s ? json_string(s) : json_null();
}

json_t *consents_record_json(const char *site, const struct consent_record *rec)
{
    char time[40];
    format_time(rec->t_ms, time);
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:b, s:o, s:s, s:o}",
                     "schema_version", rec->schema, "record_id", rec->record_id,
                     "receipt_id", rec->receipt_id, "site", site, "time", time,
                     "time_ms", (json_int_t)rec->t_ms, "action", rec->action,
                     "purpose", "analytics", "analytics", rec->analytics,
                     "method", str_or_null(rec->method), "policy_version", rec->policy_version,
                     "policy_sha256", str_or_null(rec->policy_sha256));
}

/* ------------------------------------------------------------------------ */
/* The export                                                                */
/* ------------------------------------------------------------------------ */

/* The columns of the CSV, in the order of the JSON object. */
static const char *const columns[] = {
    "schema_version", "record_id", "receipt_id", "site", "time", "time_ms", "action",
    "purpose", "analytics", "method", "policy_version", "policy_sha256",
};

struct export {
    struct agg *a;
    const struct consents_opts *o;
    struct clock_zone *zone;
    json_t *list;                   /* JSON: the receipts */
    FILE *out;                      /* CSV: written as read */
    long n;
};

/* A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
 * break. */
static int csv_field(FILE *out, const char *s, int last)
{
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote) {
        fputc('"', out);
        for (const char *p = s; *p; p++) {
            if (*p == '"') fputc('"', out);
            fputc(*p, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
    return fputc(last ? '\n' : ',', out) == EOF ? -1 : 0;
}

static int csv_row(FILE *out, const json_t *rec)
{
    size_t n = sizeof columns / sizeof columns[0];
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(rec, columns[i]);
        char num[32];
        const char *s = "";
        if (json_is_string(v)) s = json_string_value(v);
        else if (json_is_integer(v)) snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)), s = num;
        else if (json_is_boolean(v)) s = json_is_true(v) ? "true" : "false";
        if (csv_field(out, s, i + 1 == n) < 0) return -1;
    }
    return 0;
}

static int on_record(const struct consent_record *rec, void *arg)
{
    struct export *x = arg;
    const struct consents_opts *o = x->o;
    int64_t day = clock_local_days(x->zone, rec->t_ms);
    if ((o->from_day >= 0 && day < o->from_day) || (o->to_day >= 0 && day > o->to_day)) return 0;
    if (o->receipt && strcmp(o->receipt, rec->receipt_id) != 0) return 0;
    json_t *j = consents_record_json(o->site, rec);
    if (!j) {
        snprintf(x->a->err, sizeof x->a->err, "out of memory");
        return -1;
    }
    x->n++;
    if (x->list) return json_array_append_new(x->list, j);
    int rc = csv_row(x->out, j);
    json_decref(j);
    if (rc < 0) snprintf(x->a->err, sizeof x->a->err, "write error");
    return rc;
}

int consents_run(struct agg *a, const struct consents_opts *o, FILE *out)
{
    struct agg_site *s = agg_site(a, o->site);
    if (!s) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    struct export x = {.a = a, .o = o, .zone = s->zone, .out = out};
    /* Local days: a day either side in UTC covers every time zone. */
    int64_t from_ms = o->from_day >= 0 ? (o->from_day - 1) * CLOCK_DAY_MS : 0;
    int64_t to_ms = o->to_day >= 0 ? (o->to_day + 2) * CLOCK_DAY_MS : INT64_MAX;
    if (o->format == CONSENTS_JSON) {
        if (!(x.list = json_array())) {
            snprintf(a->err, sizeof a->err, "out of memory");
            return -1;
        }
    } else {
        for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++)
            csv_field(out, columns[i], i + 1 == sizeof columns / sizeof columns[0]);
    }
    int rc = consents_read(a, o->site, from_ms, to_ms, on_record, &x);
    if (rc == 0 && x.list) {
        json_t *doc = json_pack("{s:o}", "receipts", x.list);
        x.list = NULL;
        rc = !doc || json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ||
             fputc('\n', out) == EOF ? -1 : 0;
        if (rc < 0) snprintf(a->err, sizeof a->err, "write error");
        json_decref(doc);
    }
    json_decref(x.list);
    if (rc == 0 && fflush(out) != 0) {
        snprintf(a->err, sizeof a->err, "write error");
        rc = -1;
    }
    if (rc == 0) log_info("consents: %ld receipts of %s exported", x.n, o->site);
    return rc;
}
