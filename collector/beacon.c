/* beacon.c -- parses beacon bodies and pixel queries (beacon.h).
 *
 * The body is checked as strict UTF-8 first, then walked by json.c's event
 * parser; we add duplicate-key rejection, NUL refusal and our own bounds.
 * The URL is reduced at once to its path and utm_* parameters, the referrer
 * to its host: nothing else of either is kept.
 */
#include "beacon.h"
#include "json.h"
#include "url.h"
#include "utf8.h"

#include <ctype.h>
#include <stddef.h>
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
    case BEACON_BAD_UTF8: return "text is not valid UTF-8";
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
    if (!utf8_valid(s, n)) return BEACON_BAD_UTF8;
    memcpy(b->name, s, n);
    b->name[n] = '\0';
    return BEACON_OK;
}

static int set_url(struct beacon *b, const char *s, size_t n)
{
    struct url_parts u;
    if (n == 0) return BEACON_MISSING;
    if (n > BEACON_URL_MAX) return BEACON_TOO_LONG;
    if (!utf8_valid(s, n)) return BEACON_BAD_UTF8;
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
        /* A mangled campaign tag (or one percent-encoding bytes that are
         * not UTF-8, as old Latin-1 links do) is dropped, not fatal. */
        if (r == -2 || (r > 0 && !utf8_valid(b->utm[i], (size_t)r))) b->utm[i][0] = '\0';
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
    if (!utf8_valid(s, n)) return BEACON_BAD_UTF8;
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
/* The JSON body: an event parser, no document tree, no allocation         */
/* ------------------------------------------------------------------------ */

/* The beacon is parsed on every hit: a document tree allocates one node per
 * value (2 us per hit with jansson), and even yajl's event parser spent
 * ~1,700 instructions a hit in malloc and free. json.c allocates nothing;
 * the fields are copied as they stream past, props re-emitted into a fixed
 * buffer, and validation happens once the body is complete. */

#define PROP_KEY_MAX 64
#define PROP_VALUE_MAX 256
/* A props string's JSON text is decoded whole before it is parsed: one
 * longer than this is refused (the tracker's props fit BEACON_PROPS_MAX). */
#define PROPS_TEXT_MAX 8192
_Static_assert(PROPS_TEXT_MAX > BEACON_URL_MAX && PROPS_TEXT_MAX > BEACON_TC_MAX,
               "a field's string is decoded whole before its bound is checked");

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
    int prop_keys;
    size_t props_n;             /* props written so far; past BEACON_PROPS_MAX only counted */
    char tc[BEACON_TC_MAX + 1];
    char val[4][BEACON_URL_MAX + 1];
    /* props: a flat object of scalars, re-emitted compactly as yajl_gen did */
    char props[BEACON_PROPS_MAX];
    size_t prop_len[BEACON_PROPS_KEYS];
    char prop_names[BEACON_PROPS_KEYS][PROP_KEY_MAX];
    char text[PROPS_TEXT_MAX];                  /* the body's strings, decoded */
    char prop_text[PROP_VALUE_MAX + 1];         /* a props string's own strings */
};

/* The top-level keys, long and short: "domain" and "d" name one field. */
static enum field field_of(const char *k, size_t n)
{
#define IS(lit) (memcmp(k, lit, sizeof lit - 1) == 0)
    switch (n) {
    case 1:
        switch (k[0]) {
        case 'd': return F_DOMAIN;
        case 'n': return F_NAME;
        case 'u': return F_URL;
        case 'r': return F_REFERRER;
        case 'p': return F_PROPS;
        case 'e': return F_ENGAGED;
        default: return F_NONE;
        }
    case 2: return IS("sd") ? F_SCROLL : IS("tc") ? F_TC : F_NONE;
    case 3: return IS("url") ? F_URL : F_NONE;
    case 4: return IS("name") ? F_NAME : F_NONE;
    case 5: return IS("props") ? F_PROPS : F_NONE;
    case 6: return IS("domain") ? F_DOMAIN : F_NONE;
    case 8: return IS("referrer") ? F_REFERRER : F_NONE;
    case 9: return IS("analytics") ? F_ANALYTICS : F_NONE;
    case 17: return IS("analytics_storage") ? F_STORAGE : F_NONE;
    default: return F_NONE;
    }
#undef IS
}

static int fail_with(struct parse *p, int status)
{
    if (p->status == BEACON_OK) p->status = status;
    return 0;                   /* tells the parser to stop */
}

static int in_props(const struct parse *p)
{
    return p->depth == 2 && p->field == F_PROPS;
}

static const struct json_callbacks callbacks;

static void props_put(struct parse *p, const char *s, size_t n)
{
    if (p->props_n + n <= sizeof p->props) memcpy(p->props + p->props_n, s, n);
    p->props_n += n;
}

/* As yajl_gen wrote strings: '"', '\\' and control characters escaped
 * (\uXXXX in upper case when there is no short form), '/' and the rest raw. */
static void props_put_string(struct parse *p, const char *s, size_t n)
{
    size_t from = 0;
    props_put(p, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        char u[6] = {'\\', 'u', '0', '0', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]};
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\r' ? "\\r" : c == '\n' ? "\\n"
                      : c == '\t' ? "\\t" : c == '\f' ? "\\f" : c == '\b' ? "\\b" : NULL;
        props_put(p, s + from, i - from);
        if (e) props_put(p, e, 2);
        else props_put(p, u, sizeof u);
        from = i + 1;
    }
    props_put(p, s + from, n - from);
    props_put(p, "\"", 1);
}

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
static int props_string(struct parse *p, const char *s, size_t n, size_t kept)
{
    if (p->props_string) return fail_with(p, BEACON_BAD_FIELD);
    if (kept < n) return fail_with(p, BEACON_TOO_LONG);        /* over PROPS_TEXT_MAX */
    int depth = p->depth;
    p->field = F_PROPS;
    p->props_string = 1;
    int st = json_parse(s, n, &callbacks, p, p->prop_text, sizeof p->prop_text);
    p->props_string = 0;
    p->field = F_NONE;
    if (p->status != BEACON_OK) return 0;
    if (st != JSON_OK || !p->present[F_PROPS] || p->depth != depth)
        return fail_with(p, BEACON_BAD_FIELD);
    return 1;
}

/* A value at the top level of the beacon object, or inside props. A string
 * longer than its decoding room has only its first kept bytes at s: every
 * bound below is checked before s is read that far. */
static int scalar(struct parse *p, int kind, const char *s, size_t n, size_t kept)
{
    if (!p->started) return fail_with(p, BEACON_NOT_OBJECT);
    if (in_props(p)) {
        if (kind == 's' && n > PROP_VALUE_MAX) return fail_with(p, BEACON_TOO_LONG);
        if (kind == 's') props_put_string(p, s, n);
        else if (kind == 'n') props_put(p, s, n);
        else if (kind == 'b') props_put(p, s ? "true" : "false", s ? 4 : 5);
        else props_put(p, "null", 4);
        return 1;
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
    if (f == F_PROPS && kind == 's') return props_string(p, s, n, kept);
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

/* Decoded text must be strict UTF-8. Text without escapes is a piece of a
 * body checked whole (or of a props string decoded from one), cut at quotes:
 * valid. An escape can make it otherwise: a lone low surrogate (in a props
 * string, whose escapes parse_body could not check), which json.c marks;
 * text longer than its room is judged by that mark alone. */
static int text_valid(const struct json_str *t)
{
    return !t->bad && (!t->decoded || t->kept < t->n || utf8_valid(t->s, t->n));
}

static int on_null(void *ctx) { return scalar(ctx, '0', NULL, 0, 0); }
static int on_bool(void *ctx, int b) { return scalar(ctx, 'b', b ? "" : NULL, 0, 0); }
static int on_number(void *ctx, const char *s, size_t n) { return scalar(ctx, 'n', s, n, n); }
static int on_string(void *ctx, const struct json_str *t)
{
    if (!text_valid(t)) return fail_with(ctx, BEACON_BAD_UTF8);
    return scalar(ctx, 's', t->s, t->n, t->kept);
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
        props_put(p, "{", 1);
        return 1;
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
        props_put(p, "}", 1);
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

static int on_map_key(void *ctx, const struct json_str *t)
{
    struct parse *p = ctx;
    const char *k = t->s;
    size_t n = t->n;
    if (!text_valid(t)) return fail_with(p, BEACON_BAD_UTF8);
    if (in_props(p)) {
        if (n > PROP_KEY_MAX || has_control(k, n)) return fail_with(p, BEACON_BAD_FIELD);
        if (p->prop_keys == BEACON_PROPS_KEYS) return fail_with(p, BEACON_TOO_LONG);
        for (int i = 0; i < p->prop_keys; i++)
            if (p->prop_len[i] == n && memcmp(p->prop_names[i], k, n) == 0)
                return fail_with(p, BEACON_BAD_JSON);
        if (p->prop_keys > 0) props_put(p, ",", 1);
        memcpy(p->prop_names[p->prop_keys], k, n);
        p->prop_len[p->prop_keys++] = n;
        props_put_string(p, k, n);
        props_put(p, ":", 1);
        return 1;
    }
    if (p->depth != 1) return 1;
    p->field = field_of(k, n);
    if (p->field == F_NONE) return 1;
    if (p->seen & (1u << p->field)) return fail_with(p, BEACON_BAD_JSON);
    p->seen |= 1u << p->field;
    return 1;
}

static const struct json_callbacks callbacks = {
    on_null, on_bool, on_number, on_string,
    on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

/* Runs the parser over buf; the fields land in p. */
static int parse_body(const char *buf, size_t len, struct parse *p)
{
    memset(p, 0, offsetof(struct parse, tc));      /* num, props_string, tc_len, props_n too */
    p->analytics = p->storage = -1;
    p->tc[0] = '\0';
    p->field = F_NONE;
    if (!utf8_valid(buf, len) || !utf8_json_escapes_valid(buf, len)) return BEACON_BAD_UTF8;
    int st = json_parse(buf, len, &callbacks, p, p->text, sizeof p->text);
    if (p->status != BEACON_OK) return p->status;
    if (st != JSON_OK) return BEACON_BAD_JSON;
    if (!p->started) return BEACON_NOT_OBJECT;
    return BEACON_OK;
}

static int props_out(struct beacon *b, struct parse *p)
{
    if (!p->present[F_PROPS] || p->prop_keys == 0) return BEACON_OK;
    if (p->props_n > BEACON_PROPS_MAX) return BEACON_TOO_LONG;
    memcpy(b->props, p->props, p->props_n);
    b->props[p->props_n] = '\0';
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
    if (rc != BEACON_OK) return rc;
    if (!p.present[F_DOMAIN] || p.analytics < 0) return BEACON_MISSING;
    if ((rc = set_domain(&b, p.str[F_DOMAIN], p.len[F_DOMAIN]))) return rc;
    strcpy(domain, b.domain);
    *analytics = p.analytics;
    return BEACON_OK;
}
