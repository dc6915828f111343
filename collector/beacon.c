/* beacon.c -- parses beacon bodies and pixel queries with jansson (beacon.h).
 *
 * jansson rejects bad UTF-8 and NUL escapes by default; we add duplicate-key
 * rejection and our own bounds. The URL is reduced at once to its path and
 * utm_* parameters, the referrer to its host: nothing else of either is kept.
 */
#include "beacon.h"
#include "url.h"

#include <ctype.h>
#include <jansson.h>
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
}

static json_t *member(json_t *obj, const char *longkey, const char *shortkey)
{
    json_t *v = json_object_get(obj, longkey);
    return v ? v : json_object_get(obj, shortkey);
}

static int get_string(json_t *v, const char **s, size_t *n)
{
    if (!v || json_is_null(v)) {
        *s = "";
        *n = 0;
        return BEACON_OK;
    }
    if (!json_is_string(v)) return BEACON_BAD_FIELD;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return BEACON_OK;
}

static int set_props(struct beacon *b, json_t *props)
{
    if (!props || json_is_null(props)) return BEACON_OK;
    if (!json_is_object(props)) return BEACON_BAD_FIELD;
    if (json_object_size(props) > BEACON_PROPS_KEYS) return BEACON_TOO_LONG;
    if (json_object_size(props) == 0) return BEACON_OK;
    const char *key;
    json_t *val;
    json_object_foreach(props, key, val) {
        if (strlen(key) > 64 || has_control(key, strlen(key))) return BEACON_BAD_FIELD;
        if (!(json_is_string(val) || json_is_number(val) || json_is_boolean(val)))
            return BEACON_BAD_FIELD;
        if (json_is_string(val) && json_string_length(val) > 256) return BEACON_TOO_LONG;
    }
    size_t need = json_dumpb(props, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS);
    if (need == 0 || need > BEACON_PROPS_MAX) return BEACON_TOO_LONG;
    json_dumpb(props, b->props, need, JSON_COMPACT | JSON_SORT_KEYS);
    b->props[need] = '\0';
    return BEACON_OK;
}

int beacon_parse_json(const char *buf, size_t len, struct beacon *b)
{
    json_error_t jerr;
    int rc;
    reset(b);
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return BEACON_BAD_JSON;
    if (!json_is_object(root)) {
        rc = BEACON_NOT_OBJECT;
        goto done;
    }
    const char *s;
    size_t n;
    if ((rc = get_string(member(root, "domain", "d"), &s, &n)) || (rc = set_domain(b, s, n)))
        goto done;
    json_t *name = member(root, "name", "n");
    if (name && !json_is_null(name)) {
        if ((rc = get_string(name, &s, &n)) || (rc = set_name(b, s, n))) goto done;
    }
    if ((rc = get_string(member(root, "url", "u"), &s, &n)) || (rc = set_url(b, s, n)))
        goto done;
    if ((rc = get_string(member(root, "referrer", "r"), &s, &n)) || (rc = set_referrer(b, s, n)))
        goto done;
    rc = set_props(b, member(root, "props", "p"));
done:
    json_decref(root);
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
    json_error_t jerr;
    struct beacon b;
    int rc;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return BEACON_BAD_JSON;
    if (!json_is_object(root)) {
        rc = BEACON_NOT_OBJECT;
        goto done;
    }
    const char *s;
    size_t n;
    if ((rc = get_string(member(root, "domain", "d"), &s, &n)) || (rc = set_domain(&b, s, n)))
        goto done;
    json_t *a = json_object_get(root, "analytics");
    if (!json_is_boolean(a)) {
        rc = a ? BEACON_BAD_FIELD : BEACON_MISSING;
        goto done;
    }
    *analytics = json_is_true(a);
    strcpy(domain, b.domain);
done:
    json_decref(root);
    return rc;
}
