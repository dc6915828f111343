/* beacon.c -- parses beacon bodies and pixel queries (beacon.h).
 *
 * yajl validates UTF-8; we add duplicate-key rejection, NUL refusal and our
 * own bounds. The URL is reduced at once to its path and
 * utm_* parameters, the referrer to its host: nothing else of either is kept.
 */
#include "beacon.h"
#include "url.h"

#include <ctype.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <string.h>

static const char *const utm_names[UTM_COUNT] = {
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
};

const char *beacon_strerror(int status)
{
    switch (status) {
    case BEACON_OK: return "ok";
    case BEACON_BAD_JSON: return "body is not valid JSON";
    case BEACON_NOT_OBJECT: return "body is not a JSON object";
    case BEACON_MISSING: return "domain and url are required";
    case BEACON_TOO_LONG: return "a field is too long";
    case BEACON_BAD_URL: return "url is not an absolute http(s) URL";
    case BEACON_BAD_FIELD: return "a field has the wrong type or characters";
    case BEACON_BAD_ENGAGEMENT: return "an engagement event needs sd (percent) and e (ms) as non-negative integers";
    default: return "bad beacon";
    }
}

static int has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

static int set_domain(struct beacon *b, const char *s, size_t n)
{
    if (n == 0) return BEACON_MISSING;
    if (n > BEACON_DOMAIN_MAX) return BEACON_TOO_LONG;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':')) return BEACON_BAD_FIELD;
        b->domain[i] = (char)tolower(c);
    }
    b->domain[n] = '\0';
    return BEACON_OK;
}

static int set_name(struct beacon *b, const char *s, size_t n)
{
    if (n == 0) return BEACON_BAD_FIELD;
    if (n > BEACON_NAME_MAX) return BEACON_TOO_LONG;
    if (has_control(s, n)) return BEACON_BAD_FIELD;
    memcpy(b->name, s, n);
    b->name[n] = '\0';
    return BEACON_OK;
}

static int set_url(struct beacon *b, const char *s, size_t n)
{
    struct url_parts u;
    if (n == 0) return BEACON_MISSING;
    if (n > BEACON_URL_MAX) return BEACON_TOO_LONG;
    if (has_control(s, n) || url_split(s, n, &u) < 0) return BEACON_BAD_URL;
    /* Path parameters (";jsessionid=...") carry session ids, not pages. */
    const char *semi = memchr(u.path.p, ';', u.path.n);
    if (semi) u.path.n = (size_t)(semi - u.path.p);
    if (u.path.n == 0) u.path.p = "/", u.path.n = 1;
    if (u.path.n > BEACON_PATH_MAX) return BEACON_TOO_LONG;
    if (url_host_norm(u.host.p, u.host.n, b->host, sizeof b->host) < 0) return BEACON_BAD_URL;
    memcpy(b->path, u.path.p, u.path.n);
    b->path[u.path.n] = '\0';
    for (int i = 0; i < UTM_COUNT; i++) {
        int r = url_query_get(u.query.p, u.query.n, utm_names[i], b->utm[i], sizeof b->utm[i]);
        if (r == -2) b->utm[i][0] = '\0';   /* a mangled campaign tag is dropped, not fatal */
    }
    return BEACON_OK;
}

/* Only the host of the referrer is kept; a self-referral or anything that is
 * not an http(s) URL (android-app://, about:blank) counts as none. */
static int set_referrer(struct beacon *b, const char *s, size_t n)
{
    struct url_parts u;
    b->referrer[0] = '\0';
    if (n == 0) return BEACON_OK;
    if (n > BEACON_URL_MAX) return BEACON_TOO_LONG;
    if (url_split(s, n, &u) < 0) return BEACON_OK;
    if (url_host_norm(u.host.p, u.host.n, b->referrer, sizeof b->referrer) < 0) {
        b->referrer[0] = '\0';
        return BEACON_OK;
    }
    if (strcmp(b->referrer, b->host) == 0) b->referrer[0] = '\0';
    return BEACON_OK;
}

static void reset(struct beacon *b)
{
    b->domain[0] = b->path[0] = b->host[0] = b->referrer[0] = b->props[0] = '\0';
    for (int i = 0; i < UTM_COUNT; i++) b->utm[i][0] = '\0';
    strcpy(b->name, "pageview");
    b->engagement = 0;
    b->scroll_depth = 0;
    b->engaged_ms = 0;
    b->tc[0] = '\0';
    b->tc_len = 0;
    b->analytics_storage = -1;
}

/* ------------------------------------------------------------------------ */
/* The JSON body: yajl's event parser, no document tree                      */
/* ------------------------------------------------------------------------ */

/* The beacon is parsed on every hit; a streaming parser allocates a handful
 * of buffers where a document tree allocates one node per value, and the
 * profile showed the difference (2 us per hit with jansson). The fields are
 * copied as they stream past; validation happens once the body is complete. */

enum field {
    F_NONE = -1, F_DOMAIN, F_NAME, F_URL, F_REFERRER, F_PROPS, F_ANALYTICS, F_SCROLL, F_ENGAGED,
    F_TC, F_STORAGE, F_COUNT
};

struct parse {
    int status;                 /* first error seen, BEACON_OK so far */
    int depth;                  /* 1 = inside the top-level object */
    int started;
    enum field field;           /* the top-level key whose value comes next */
    unsigned seen;              /* top-level keys met, to refuse duplicates */
    const char *str[F_COUNT];   /* string values, pointing into val[] */
    size_t len[F_COUNT];
    int present[F_COUNT];
    int analytics;              /* -1 absent, 0/1 */
    long num[F_COUNT];          /* sd, e: non-negative integers */
    int props_string;           /* parsing props out of a JSON-encoded string */
    int storage;                /* analytics_storage: -1 absent, 0 denied, 1 granted */
    size_t tc_len;
    char tc[BEACON_TC_MAX + 1];
    char val[4][BEACON_URL_MAX + 1];
    /* props: a flat object of scalars, re-emitted compactly */
    yajl_gen gen;
    int prop_keys;
    char prop_names[BEACON_PROPS_KEYS][65];
};

static const struct { const char *lng, *shrt; } field_names[F_COUNT] = {
    {"domain", "d"}, {"name", "n"}, {"url", "u"}, {"referrer", "r"}, {"props", "p"},
    {"analytics", NULL}, {"sd", NULL}, {"e", NULL}, {"tc", NULL}, {"analytics_storage", NULL},
};

static int fail_with(struct parse *p, int status)
{
    if (p->status == BEACON_OK) p->status = status;
    return 0;                   /* tells yajl to stop */
}

static int in_props(const struct parse *p)
{
    return p->depth == 2 && p->field == F_PROPS;
}

static const yajl_callbacks callbacks;

/* sd and e: a plain non-negative integer of at most 9 digits (no sign,
 * fraction or exponent: the tracker sends whole numbers), else -1; a number
 * past max is taken as max. The tracker can send a scroll depth over 100 (the
 * page shrank after it was measured) and an engaged time over the cap (a tab
 * left open): those are real engagements, kept at the bound rather than
 * refused. Judged once the name is known (set_engagement): other events may
 * carry anything there. */
static int number(struct parse *p, enum field f, int kind, const char *s, size_t n, long max)
{
    long v = kind == 'n' && n > 0 && n <= 9 ? 0 : -1;
    for (size_t i = 0; v >= 0 && i < n; i++)
        v = s[i] >= '0' && s[i] <= '9' ? v * 10 + (s[i] - '0') : -1;
    p->num[f] = v > max ? max : v;
    p->present[f] = 1;
    return 1;
}

/* Props sent as a JSON-encoded string (the older plausible-tracker does):
 * the string is parsed with the same rules, as if its object stood in its
 * place; anything but an object of scalars is refused. */
static int props_string(struct parse *p, const char *s, size_t n)
{
    if (p->props_string) return fail_with(p, BEACON_BAD_FIELD);
    int depth = p->depth;
    p->field = F_PROPS;
    p->props_string = 1;
    yajl_handle h = yajl_alloc(&callbacks, NULL, p);
    if (!h) return fail_with(p, BEACON_BAD_FIELD);
    yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    p->props_string = 0;
    p->field = F_NONE;
    if (p->status != BEACON_OK) return 0;
    if (st != yajl_status_ok || !p->present[F_PROPS] || p->depth != depth)
        return fail_with(p, BEACON_BAD_FIELD);
    return 1;
}

/* A value at the top level of the beacon object, or inside props. */
static int scalar(struct parse *p, int kind, const char *s, size_t n)
{
    if (!p->started) return fail_with(p, BEACON_NOT_OBJECT);
    if (in_props(p)) {
        if (kind == 's' && n > 256) return fail_with(p, BEACON_TOO_LONG);
        yajl_gen_status g = kind == 's' ? yajl_gen_string(p->gen, (const unsigned char *)s, n)
                          : kind == 'n' ? yajl_gen_number(p->gen, s, n)
                          : kind == 'b' ? yajl_gen_bool(p->gen, s != NULL)
                                        : yajl_gen_null(p->gen);
        return g == yajl_gen_status_ok ? 1 : fail_with(p, BEACON_BAD_FIELD);
    }
    if (p->depth != 1 || p->field == F_NONE) return 1;     /* an unknown key: ignored */
    enum field f = p->field;
    p->field = F_NONE;
    if (kind == '0') return 1;                             /* null: as if absent */
    if (f == F_ANALYTICS) {
        if (kind != 'b') return fail_with(p, BEACON_BAD_FIELD);
        p->analytics = s != NULL;
        return 1;
    }
    if (f == F_SCROLL || f == F_ENGAGED)
        return number(p, f, kind, s, n, f == F_SCROLL ? BEACON_SCROLL_MAX : BEACON_ENGAGED_MAX_MS);
    if (f == F_PROPS && kind == 's') return props_string(p, s, n);
    if (f == F_PROPS || kind != 's') return fail_with(p, BEACON_BAD_FIELD);
    if (f == F_STORAGE) {
        if (n == 6 && memcmp(s, "denied", 6) == 0) p->storage = 0;
        else if (n == 7 && memcmp(s, "granted", 7) == 0) p->storage = 1;
        else return fail_with(p, BEACON_BAD_FIELD);
        return 1;
    }
    if (f == F_TC) {
        if (n > BEACON_TC_MAX) return fail_with(p, BEACON_TOO_LONG);
        for (size_t i = 0; i < n; i++)
            if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                return fail_with(p, BEACON_BAD_FIELD);
        memcpy(p->tc, s, n);
        p->tc[n] = '\0';
        p->tc_len = n;
        return 1;
    }
    if (n > BEACON_URL_MAX) return fail_with(p, BEACON_TOO_LONG);
    if (memchr(s, '\0', n)) return fail_with(p, BEACON_BAD_JSON);
    memcpy(p->val[f], s, n);
    p->val[f][n] = '\0';
    p->str[f] = p->val[f];
    p->len[f] = n;
    p->present[f] = 1;
    return 1;
}

static int on_null(void *ctx) { return scalar(ctx, '0', NULL, 0); }
static int on_bool(void *ctx, int b) { return scalar(ctx, 'b', b ? "" : NULL, 0); }
static int on_number(void *ctx, const char *s, size_t n) { return scalar(ctx, 'n', s, n); }
static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    return scalar(ctx, 's', (const char *)s, n);
}

static int on_start_map(void *ctx)
{
    struct parse *p = ctx;
    if (!p->started) {
        p->started = 1;
        p->depth = 1;
        return 1;
    }
    p->depth++;
    if (p->depth == 2 && p->field == F_PROPS) {
        if (!p->gen && !(p->gen = yajl_gen_alloc(NULL))) return fail_with(p, BEACON_BAD_FIELD);
        yajl_gen_config(p->gen, yajl_gen_validate_utf8, 1);
        return yajl_gen_map_open(p->gen) == yajl_gen_status_ok ? 1 : fail_with(p, BEACON_BAD_FIELD);
    }
    if (p->depth == 2 && p->field != F_NONE) return fail_with(p, BEACON_BAD_FIELD);
    if (p->depth > 2 && (p->field != F_NONE)) return fail_with(p, BEACON_BAD_FIELD);
    if (p->depth > 16) return fail_with(p, BEACON_BAD_FIELD);
    return 1;
}

static int on_end_map(void *ctx)
{
    struct parse *p = ctx;
    if (in_props(p)) {
        if (yajl_gen_map_close(p->gen) != yajl_gen_status_ok) return fail_with(p, BEACON_BAD_FIELD);
        p->present[F_PROPS] = 1;
        p->field = F_NONE;
    }
    p->depth--;
    return 1;
}

static int on_start_array(void *ctx)
{
    struct parse *p = ctx;
    if (!p->started) return fail_with(p, BEACON_NOT_OBJECT);
    if (p->depth == 1 && p->field != F_NONE) return fail_with(p, BEACON_BAD_FIELD);
    if (in_props(p)) return fail_with(p, BEACON_BAD_FIELD);
    p->depth++;
    if (p->depth > 16) return fail_with(p, BEACON_BAD_FIELD);
    return 1;
}

static int on_end_array(void *ctx)
{
    struct parse *p = ctx;
    p->depth--;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
    struct parse *p = ctx;
    if (in_props(p)) {
        if (n > 64 || has_control((const char *)k, n)) return fail_with(p, BEACON_BAD_FIELD);
        if (p->prop_keys == BEACON_PROPS_KEYS) return fail_with(p, BEACON_TOO_LONG);
        for (int i = 0; i < p->prop_keys; i++)
            if (strlen(p->prop_names[i]) == n && memcmp(p->prop_names[i], k, n) == 0)
                return fail_with(p, BEACON_BAD_JSON);
        memcpy(p->prop_names[p->prop_keys], k, n);
        p->prop_names[p->prop_keys++][n] = '\0';
        return yajl_gen_string(p->gen, k, n) == yajl_gen_status_ok ? 1 : fail_with(p, BEACON_BAD_FIELD);
    }
    if (p->depth != 1) return 1;
    p->field = F_NONE;
    for (int f = 0; f < F_COUNT; f++) {
        const char *l = field_names[f].lng, *sh = field_names[f].shrt;
        if ((strlen(l) == n && memcmp(l, k, n) == 0) || (sh && strlen(sh) == n && memcmp(sh, k, n) == 0)) {
            /* "domain" and "d" name one field: either twice is a duplicate. */
            if (p->seen & (1u << f)) return fail_with(p, BEACON_BAD_JSON);
            p->seen |= 1u << f;
            p->field = (enum field)f;
            break;
        }
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_bool, NULL, NULL, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

/* Runs the parser over buf; the fields land in p. */
static int parse_body(const char *buf, size_t len, struct parse *p)
{
    memset(p, 0, offsetof(struct parse, tc));      /* num, props_string, tc_len too */
    p->analytics = p->storage = -1;
    p->tc[0] = '\0';
    p->field = F_NONE;
    p->gen = NULL;
    p->prop_keys = 0;
    yajl_handle h = yajl_alloc(&callbacks, NULL, p);
    if (!h) return BEACON_BAD_JSON;
    yajl_status st = yajl_parse(h, (const unsigned char *)buf, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    if (p->status != BEACON_OK) return p->status;
    if (st != yajl_status_ok) return BEACON_BAD_JSON;
    if (!p->started) return BEACON_NOT_OBJECT;
    return BEACON_OK;
}

static int props_out(struct beacon *b, struct parse *p)
{
    if (!p->present[F_PROPS] || p->prop_keys == 0) return BEACON_OK;
    const unsigned char *out;
    size_t n;
    yajl_gen_get_buf(p->gen, &out, &n);
    if (n > BEACON_PROPS_MAX) return BEACON_TOO_LONG;
    memcpy(b->props, out, n);
    b->props[n] = '\0';
    return BEACON_OK;
}

/* An event named "engagement" is Plausible's engagement event and must
 * carry both numbers; on other events sd and e mean nothing and are dropped. */
static int set_engagement(struct beacon *b, const struct parse *p)
{
    if (strcmp(b->name, BEACON_ENGAGEMENT) != 0) return BEACON_OK;
    if (!p->present[F_SCROLL] || !p->present[F_ENGAGED] || p->num[F_SCROLL] < 0 || p->num[F_ENGAGED] < 0)
        return BEACON_BAD_ENGAGEMENT;
    b->engagement = 1;
    b->scroll_depth = (unsigned)p->num[F_SCROLL];
    b->engaged_ms = (uint32_t)p->num[F_ENGAGED];
    return BEACON_OK;
}

int beacon_parse_json(const char *buf, size_t len, struct beacon *b)
{
    struct parse p;
    reset(b);
    int rc = parse_body(buf, len, &p);
    if (rc == BEACON_OK) {
        if (!p.present[F_DOMAIN]) rc = BEACON_MISSING;
        else if (!(rc = set_domain(b, p.str[F_DOMAIN], p.len[F_DOMAIN])) &&
                 !(p.present[F_NAME] && (rc = set_name(b, p.str[F_NAME], p.len[F_NAME]))) &&
                 !(rc = p.present[F_URL] ? set_url(b, p.str[F_URL], p.len[F_URL]) : BEACON_MISSING) &&
                 !(p.present[F_REFERRER] && (rc = set_referrer(b, p.str[F_REFERRER], p.len[F_REFERRER]))))
            rc = props_out(b, &p);
        if (rc == BEACON_OK) rc = set_engagement(b, &p);
        if (rc == BEACON_OK) {
            memcpy(b->tc, p.tc, p.tc_len + 1);
            b->tc_len = p.tc_len;
            b->analytics_storage = p.storage;
        }
    }
    if (p.gen) yajl_gen_free(p.gen);
    return rc;
}

int beacon_parse_query(const char *q, size_t len, struct beacon *b)
{
    char buf[BEACON_URL_MAX + 1];
    int n, rc;
    reset(b);
    if ((n = url_query_get(q, len, "d", buf, sizeof buf)) < 0)
        return n == -1 ? BEACON_MISSING : BEACON_BAD_FIELD;
    if ((rc = set_domain(b, buf, (size_t)n))) return rc;
    if ((n = url_query_get(q, len, "n", buf, sizeof buf)) >= 0 && (rc = set_name(b, buf, (size_t)n)))
        return rc;
    if (n == -2) return BEACON_BAD_FIELD;
    if (strcmp(b->name, BEACON_ENGAGEMENT) == 0) return BEACON_BAD_ENGAGEMENT;   /* no sd, e here */
    if ((n = url_query_get(q, len, "u", buf, sizeof buf)) < 0)
        return n == -1 ? BEACON_MISSING : BEACON_TOO_LONG;
    if ((rc = set_url(b, buf, (size_t)n))) return rc;
    n = url_query_get(q, len, "r", buf, sizeof buf);
    if (n == -2) return BEACON_TOO_LONG;
    if (n >= 0 && (rc = set_referrer(b, buf, (size_t)n))) return rc;
    return BEACON_OK;
}

int beacon_parse_consent(const char *buf, size_t len, char *domain, int *analytics)
{
    struct parse p;
    struct beacon b;
    int rc = parse_body(buf, len, &p);
    if (p.gen) yajl_gen_free(p.gen);
    if (rc != BEACON_OK) return rc;
    if (!p.present[F_DOMAIN] || p.analytics < 0) return BEACON_MISSING;
    if ((rc = set_domain(&b, p.str[F_DOMAIN], p.len[F_DOMAIN]))) return rc;
    strcpy(domain, b.domain);
    *analytics = p.analytics;
    return BEACON_OK;
}
