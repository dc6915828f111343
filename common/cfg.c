/* cfg.c -- loads and validates the INI configuration shared by both programs.
 *
 * libinih does the tokenising; this file knows the keys. Each key is one row
 * of the table below with its parser, so a new key is one line. Line numbers
 * come from a counting reader wrapped around fgets, since Debian's libinih is
 * built without INI_HANDLER_LINENO. Every error is reported once, with
 * "file:line: section.key: why", and cfg_load() returns NULL.
 */
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------------ */
/* Value parsers                                                             */
/* ------------------------------------------------------------------------ */

static int parse_number(const char *s, double *num, const char **unit)
{
    char *end;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return -1;
    errno = 0;
    *num = strtod(s, &end);
    if (errno || end == s) return -1;
    while (isspace((unsigned char)*end)) end++;
    *unit = end;
    return 0;
}

static int unit_is(const char *unit, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(unit, name, n) != 0) return 0;
    for (const char *p = unit + n; *p; p++)
        if (!isspace((unsigned char)*p)) return 0;
    return 1;
}

int cfg_parse_duration(const char *s, long *seconds)
{
    static const struct { const char *u; double mul; } units[] = {
        {"", 1}, {"s", 1}, {"m", 60}, {"min", 60}, {"h", 3600}, {"d", 86400},
        {"w", 7 * 86400}, {"mo", 30 * 86400}, {"y", 365 * 86400},
    };
    double n;
    const char *unit;
    if (parse_number(s, &n, &unit) < 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (unit_is(unit, units[i].u)) {
            double v = n * units[i].mul;
            if (v > 1e12) return -1;
            *seconds = (long)v;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_millis(const char *s, long *ms)
{
    static const struct { const char *u; double mul; } units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000},
    };
    double n;
    const char *unit;
    if (parse_number(s, &n, &unit) < 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (unit_is(unit, units[i].u)) {
            double v = n * units[i].mul;
            if (v > 1e12) return -1;
            *ms = (long)v;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_size(const char *s, size_t *bytes)
{
    static const struct { const char *u; double mul; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"kib", 1024},
        {"m", 1048576}, {"mb", 1048576}, {"mib", 1048576},
        {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
    };
    double n;
    const char *unit;
    if (parse_number(s, &n, &unit) < 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (unit_is(unit, units[i].u)) {
            double v = n * units[i].mul;
            if (v > 1e15) return -1;
            *bytes = (size_t)v;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_bool(const char *s, bool *b)
{
    static const char *yes[] = {"yes", "true", "on", "1"};
    static const char *no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *b = true; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *b = false; return 0; }
    }
    return -1;
}

int cfg_parse_cidr(const char *s, struct cfg_cidr *out)
{
    char buf[64];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len + 1);
    char *slash = strchr(buf, '/');
    if (slash) *slash = '\0';
    memset(out, 0, sizeof *out);
    int max;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->prefix = max;
    if (slash) {
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || p < 0 || p > max) return -1;
        out->prefix = (int)p;
    }
    return 0;
}

bool cfg_cidr_match(const struct cfg_cidr *list, size_t n, int family, const void *addr)
{
    const uint8_t *a = addr;
    for (size_t i = 0; i < n; i++) {
        if (list[i].family != family) continue;
        int bits = list[i].prefix, k = 0;
        for (; bits >= 8; bits -= 8, k++)
            if (a[k] != list[i].addr[k]) goto next;
        if (bits && ((a[k] ^ list[i].addr[k]) & (0xff << (8 - bits)) & 0xff)) goto next;
        return true;
    next:;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

struct loader {
    struct cfg *c;
    const char *where;          /* file name or "-o" */
    FILE *fp;
    int line;
    int long_line;              /* the line being parsed did not fit */
    char *err;
    size_t errlen;
    int failed;
};

static void fail(struct loader *l, const char *section, const char *key,
                 const char *fmt, const char *value)
{
    if (l->failed) return;
    l->failed = 1;
    char what[160] = "";
    if (key)
        snprintf(what, sizeof what, " %s.%s:", section, key);
    else if (section)
        snprintf(what, sizeof what, " [%s]:", section);
    char msg[256];
    snprintf(msg, sizeof msg, fmt, value ? value : "");
    if (l->line > 0)
        snprintf(l->err, l->errlen, "%s:%d:%s %s", l->where, l->line, what, msg);
    else
        snprintf(l->err, l->errlen, "%s:%s %s", l->where, what, msg);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d) {
        fputs("fairstat: out of memory\n", stderr);
        exit(1);
    }
    return d;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

static int read_secret(struct loader *l, const char *sec, const char *key,
                       const char *v, unsigned char **out, size_t *outlen)
{
    unsigned char *buf;
    size_t len;
    if (strncmp(v, "file:", 5) == 0) {
        FILE *fp = fopen(v + 5, "rb");
        if (!fp) {
            fail(l, sec, key, "cannot read secret file '%s'", v + 5);
            return -1;
        }
        buf = malloc(4097);
        len = buf ? fread(buf, 1, 4096, fp) : 0;
        fclose(fp);
        if (!buf) return -1;
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    } else {
        len = strlen(v);
        buf = malloc(len + 1);
        if (!buf) return -1;
        memcpy(buf, v, len);
    }
    buf[len] = 0;
    if (len < 32) {
        free(buf);
        fail(l, sec, key, "secret is shorter than 32 bytes%s", "");
        return -1;
    }
    free(*out);
    *out = buf;
    *outlen = len;
    return 0;
}

static void free_previous(struct cfg *c)
{
    for (size_t i = 0; i < c->consent.n_previous; i++) free(c->consent.previous_secrets[i]);
    free(c->consent.previous_secrets);
    free(c->consent.previous_lens);
    c->consent.previous_secrets = NULL;
    c->consent.previous_lens = NULL;
    c->consent.n_previous = 0;
}

/* Calls fn(item, len, arg) for each comma-separated, trimmed, non-empty item. */
static int each_item(const char *v, int (*fn)(const char *, size_t, void *), void *arg)
{
    const char *p = v;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        const char *s = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e > s && fn(s, (size_t)(e - s), arg) < 0) return -1;
    }
    return 0;
}

struct list_arg { struct loader *l; const char *sec, *key; };

static int add_previous(const char *s, size_t n, void *arg)
{
    struct list_arg *a = arg;
    struct cfg *c = a->l->c;
    char *item = strndup(s, n);
    unsigned char *sec = NULL;
    size_t len = 0;
    int rc = item ? read_secret(a->l, a->sec, a->key, item, &sec, &len) : -1;
    free(item);
    if (rc < 0) return -1;
    size_t k = c->consent.n_previous + 1;
    unsigned char **ps = realloc(c->consent.previous_secrets, k * sizeof *ps);
    if (ps) c->consent.previous_secrets = ps;
    size_t *pl = realloc(c->consent.previous_lens, k * sizeof *pl);
    if (pl) c->consent.previous_lens = pl;
    if (!ps || !pl) { free(sec); return -1; }
    ps[k - 1] = sec;
    pl[k - 1] = len;
    c->consent.n_previous = k;
    return 0;
}

static int add_cidr(const char *s, size_t n, void *arg)
{
    struct list_arg *a = arg;
    struct cfg *c = a->l->c;
    char buf[64];
    struct cfg_cidr cidr;
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 60 ? n : 60), s);
    if (n >= 60 || cfg_parse_cidr(buf, &cidr) < 0) {
        fail(a->l, a->sec, a->key, "not an address or CIDR: '%s'", buf);
        return -1;
    }
    struct cfg_cidr *list = realloc(c->collector.trusted_proxies,
                                    (c->collector.n_trusted_proxies + 1) * sizeof *list);
    if (!list) return -1;
    list[c->collector.n_trusted_proxies++] = cidr;
    c->collector.trusted_proxies = list;
    return 0;
}

struct site_list_arg { struct cfg_site *site; struct loader *l; const char *sec, *key; };

static int add_origin(const char *s, size_t n, void *arg)
{
    struct site_list_arg *a = arg;
    struct cfg_site *site = a->site;
    while (n && s[n - 1] == '/') n--;
    if (!(n > 7 && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0))) {
        char buf[128];
        snprintf(buf, sizeof buf, "%.*s", (int)(n > 100 ? 100 : n), s);
        fail(a->l, a->sec, a->key, "origin must start with http:// or https://: '%s'", buf);
        return -1;
    }
    char **o = realloc(site->origins, (site->n_origins + 1) * sizeof *o);
    if (!o) return -1;
    site->origins = o;
    o[site->n_origins] = strndup(s, n);
    if (!o[site->n_origins]) return -1;
    site->n_origins++;
    return 0;
}

static struct cfg_site *site_get(struct cfg *c, const char *name)
{
    for (size_t i = 0; i < c->n_sites; i++)
        if (strcasecmp(c->sites[i].name, name) == 0) return &c->sites[i];
    struct cfg_site *s = realloc(c->sites, (c->n_sites + 1) * sizeof *s);
    if (!s) return NULL;
    c->sites = s;
    s = &c->sites[c->n_sites++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    for (char *q = s->name; *q; q++) *q = (char)tolower((unsigned char)*q);
    s->tcf_purposes = xstrdup("1,8");
    s->tcf_vendor = xstrdup("");
    s->consent_group = xstrdup("C0002");
    s->consent_service = xstrdup("fairstat");
    s->consent_category = xstrdup("analytics");
    s->consent_cookie = xstrdup("");
    s->consent_match = xstrdup("");
    return s;
}

static const char *const consent_modes[] = {
    "fairstat", "tcf", "cookiebot", "onetrust", "klaro", "cookieconsent", "custom",
};

static int site_key(struct loader *l, const char *sec, const char *name,
                    const char *key, const char *v)
{
    struct cfg_site *s = site_get(l->c, name);
    if (!s) return -1;
    if (strcmp(key, "origins") == 0) {
        for (size_t i = 0; i < s->n_origins; i++) free(s->origins[i]);
        s->n_origins = 0;
        struct site_list_arg a = {s, l, sec, key};
        return each_item(v, add_origin, &a);
    }
    if (strcmp(key, "consent") == 0) {
        for (size_t i = 0; i < sizeof consent_modes / sizeof consent_modes[0]; i++) {
            if (strcmp(v, consent_modes[i]) == 0) {
                s->consent = (enum cfg_consent_mode)i;
                return 0;
            }
        }
        fail(l, sec, key, "unknown consent source '%s' (fairstat|tcf|cookiebot|onetrust|klaro|cookieconsent|custom)", v);
        return -1;
    }
    static const struct { const char *key; size_t off; } strs[] = {
        {"tcf_purposes", offsetof(struct cfg_site, tcf_purposes)},
        {"tcf_vendor", offsetof(struct cfg_site, tcf_vendor)},
        {"consent_group", offsetof(struct cfg_site, consent_group)},
        {"consent_service", offsetof(struct cfg_site, consent_service)},
        {"consent_category", offsetof(struct cfg_site, consent_category)},
        {"consent_cookie", offsetof(struct cfg_site, consent_cookie)},
        {"consent_match", offsetof(struct cfg_site, consent_match)},
        {"timezone", offsetof(struct cfg_site, timezone)},
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strcmp(key, strs[i].key) == 0) {
            set_str((char **)((char *)s + strs[i].off), v);
            return 0;
        }
    }
    fail(l, sec, key, "unknown key%s", "");
    return -1;
}

enum kind { K_STR, K_INT, K_DUR, K_MS, K_SIZE, K_BOOL, K_DOUBLE, K_SECRET, K_SECRETS, K_CIDRS };

struct key {
    const char *section, *name;
    enum kind kind;
    size_t off;
    long min, max;              /* for K_INT */
};

#define F(field) offsetof(struct cfg, field)
static const struct key keys[] = {
    {"collector", "listen", K_STR, F(collector.listen), 0, 0},
    {"collector", "threads", K_INT, F(collector.threads), 1, 256},
    {"collector", "trusted_proxies", K_CIDRS, 0, 0, 0},
    {"collector", "max_body", K_SIZE, F(collector.max_body), 0, 0},
    {"collector", "max_header", K_SIZE, F(collector.max_header), 0, 0},
    {"collector", "read_timeout", K_MS, F(collector.read_timeout_ms), 0, 0},
    {"collector", "idle_timeout", K_MS, F(collector.idle_timeout_ms), 0, 0},
    {"collector", "max_connections", K_INT, F(collector.max_connections), 1, 1000000},
    {"collector", "rate_limit", K_DOUBLE, F(collector.rate_limit), 0, 0},
    {"collector", "spool_dir", K_STR, F(collector.spool_dir), 0, 0},
    {"collector", "spool_max_bytes", K_SIZE, F(collector.spool_max_bytes), 0, 0},
    {"collector", "static_dir", K_STR, F(collector.static_dir), 0, 0},
    {"collector", "redis_timeout", K_MS, F(collector.redis_timeout_ms), 0, 0},
    {"redis", "url", K_STR, F(redis.url), 0, 0},
    {"consent", "secret", K_SECRET, 0, 0, 0},
    {"consent", "previous_secrets", K_SECRETS, 0, 0, 0},
    {"consent", "cookie", K_STR, F(consent.cookie), 0, 0},
    {"consent", "max_age_days", K_INT, F(consent.max_age_days), 1, 3650},
    {"consent", "policy_version", K_STR, F(consent.policy_version), 0, 0},
    {"consent", "honor_gpc", K_BOOL, F(consent.honor_gpc), 0, 0},
    {"consent", "honor_dnt", K_BOOL, F(consent.honor_dnt), 0, 0},
    {"consent", "cookie_domain", K_STR, F(consent.cookie_domain), 0, 0},
    {"consent", "secure", K_BOOL, F(consent.secure), 0, 0},
    {"geoip", "database", K_STR, F(geoip.database), 0, 0},
    {"geoip", "country_path", K_STR, F(geoip.country_path), 0, 0},
    {"geoip", "region_path", K_STR, F(geoip.region_path), 0, 0},
    {"retention", "raw_max_age", K_DUR, F(retention.raw_max_age_s), 0, 0},
    {"retention", "aggregates", K_DUR, F(retention.aggregates_s), 0, 0},
    {"retention", "consent_receipts", K_DUR, F(retention.consent_receipts_s), 0, 0},
    {"aggregator", "batch", K_INT, F(aggregator.batch), 1, 100000},
    {"aggregator", "block_ms", K_MS, F(aggregator.block_ms), 0, 0},
    {"aggregator", "purge_interval", K_DUR, F(aggregator.purge_interval_s), 0, 0},
    {"aggregator", "timezone", K_STR, F(aggregator.timezone), 0, 0},
    {"aggregator", "min_visitors", K_INT, F(aggregator.min_visitors), 0, 1000000},
    {"serve", "listen", K_STR, F(serve.listen), 0, 0},
    {"serve", "tokens", K_STR, F(serve.tokens), 0, 0},
};
#undef F

static int apply(struct loader *l, const char *section, const char *name, const char *v)
{
    if (strncmp(section, "site ", 5) == 0) {
        const char *site = section + 5;
        while (*site == ' ') site++;
        if (!*site) {
            fail(l, section, NULL, "site section needs a name: [site example.com]%s", "");
            return -1;
        }
        return site_key(l, section, site, name, v);
    }
    struct cfg *c = l->c;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0) continue;
        void *dst = (char *)c + k->off;
        switch (k->kind) {
        case K_STR:
            set_str(dst, v);
            return 0;
        case K_INT: {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (errno || end == v || *end || n < k->min || n > k->max) {
                char msg[96];
                snprintf(msg, sizeof msg, "not an integer in %ld..%ld: '%%s'", k->min, k->max);
                fail(l, section, name, msg, v);
                return -1;
            }
            *(int *)dst = (int)n;
            return 0;
        }
        case K_DOUBLE: {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || d < 0 || d > 1e9) {
                fail(l, section, name, "not a non-negative number: '%s'", v);
                return -1;
            }
            *(double *)dst = d;
            return 0;
        }
        case K_DUR:
            if (cfg_parse_duration(v, dst) < 0) {
                fail(l, section, name, "not a duration (30s, 10m, 24h, 7d, 25mo, 5y): '%s'", v);
                return -1;
            }
            return 0;
        case K_MS:
            if (cfg_parse_millis(v, dst) < 0) {
                fail(l, section, name, "not a duration in ms (500ms, 10s, 1m): '%s'", v);
                return -1;
            }
            return 0;
        case K_SIZE:
            if (cfg_parse_size(v, dst) < 0) {
                fail(l, section, name, "not a size (4096, 4k, 1m): '%s'", v);
                return -1;
            }
            return 0;
        case K_BOOL:
            if (cfg_parse_bool(v, dst) < 0) {
                fail(l, section, name, "not yes or no: '%s'", v);
                return -1;
            }
            return 0;
        case K_SECRET:
            if (!*v) {
                free(c->consent.secret);
                c->consent.secret = NULL;
                c->consent.secret_len = 0;
                return 0;
            }
            return read_secret(l, section, name, v, &c->consent.secret, &c->consent.secret_len);
        case K_SECRETS: {
            free_previous(c);
            struct list_arg a = {l, section, name};
            return each_item(v, add_previous, &a);
        }
        case K_CIDRS: {
            free(c->collector.trusted_proxies);
            c->collector.trusted_proxies = NULL;
            c->collector.n_trusted_proxies = 0;
            struct list_arg a = {l, section, name};
            return each_item(v, add_cidr, &a);
        }
        }
    }
    fail(l, section, name, "unknown key%s", "");
    return -1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *l = user;
    if (l->failed) return 0;
    if (l->long_line) {
        fail(l, section, name, "line longer than %s characters", "199");
        return 0;
    }
    if (!name) return 1;        /* a bare [section] line */
    if (!*section) {
        fail(l, NULL, NULL, "key '%s' outside any [section]", name);
        return 0;
    }
    return apply(l, section, name, value) == 0 && !l->failed;
}

/* fgets that counts lines and notices lines inih would cut in two. */
static char *reader(char *str, int num, void *stream)
{
    struct loader *l = stream;
    if (!fgets(str, num, l->fp)) return NULL;
    l->line++;
    size_t n = strlen(str);
    l->long_line = 0;
    if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(l->fp)) {
        int ch;
        while ((ch = fgetc(l->fp)) != EOF && ch != '\n') {}
        const char *p = str;
        while (isspace((unsigned char)*p)) p++;
        if (*p != ';' && *p != '#') l->long_line = 1;
    }
    return str;
}

static void defaults(struct cfg *c)
{
    c->collector.listen = xstrdup("127.0.0.1:8080");
    c->collector.threads = 1;
    c->collector.max_body = 4096;
    c->collector.max_header = 8192;
    c->collector.read_timeout_ms = 10000;
    c->collector.idle_timeout_ms = 60000;
    c->collector.max_connections = 10000;
    c->collector.rate_limit = 0;
    c->collector.spool_dir = xstrdup("var/spool");
    c->collector.spool_max_bytes = 64 * 1024 * 1024;
    c->collector.static_dir = xstrdup("");
    c->collector.redis_timeout_ms = 2000;
    c->redis.url = xstrdup("redis://127.0.0.1:6379/0");
    c->consent.cookie = xstrdup("fs_consent");
    c->consent.max_age_days = 180;
    c->consent.policy_version = xstrdup("1");
    c->consent.honor_gpc = true;
    c->consent.honor_dnt = true;
    c->consent.cookie_domain = xstrdup("");
    c->consent.secure = true;
    c->geoip.database = xstrdup("");
    c->geoip.country_path = xstrdup("country.iso_code");
    c->geoip.region_path = xstrdup("subdivisions.0.iso_code");
    c->retention.raw_max_age_s = 24 * 3600;
    c->retention.aggregates_s = 25L * 30 * 86400;
    c->retention.consent_receipts_s = 5L * 365 * 86400;
    c->aggregator.batch = 500;
    c->aggregator.block_ms = 2000;
    c->aggregator.purge_interval_s = 3600;
    c->aggregator.timezone = xstrdup("UTC");
    c->aggregator.min_visitors = 0;
    c->serve.listen = xstrdup("127.0.0.1:8090");
    c->serve.tokens = xstrdup("");
}

static int apply_override(struct loader *l, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *dot = NULL;
    for (const char *p = arg; eq && p < eq; p++)
        if (*p == '.') dot = p;
    if (!eq || !dot || dot == arg || dot + 1 == eq) {
        fail(l, NULL, NULL, "override is not section.key=value: '%s'", arg);
        return -1;
    }
    char *section = strndup(arg, (size_t)(dot - arg));
    char *key = strndup(dot + 1, (size_t)(eq - dot - 1));
    int rc = section && key ? apply(l, section, key, eq + 1) : -1;
    free(section);
    free(key);
    return rc;
}

static int validate(struct loader *l)
{
    struct cfg *c = l->c;
    l->line = 0;
    if (c->collector.max_body < 64 || c->collector.max_body > 1048576) {
        fail(l, "collector", "max_body", "must be between 64 bytes and 1m%s", "");
        return -1;
    }
    if (c->collector.max_header < 512 || c->collector.max_header > 1048576) {
        fail(l, "collector", "max_header", "must be between 512 bytes and 1m%s", "");
        return -1;
    }
    if (c->collector.read_timeout_ms < 100) {
        fail(l, "collector", "read_timeout", "must be at least 100ms%s", "");
        return -1;
    }
    if (c->collector.idle_timeout_ms < 100) {
        fail(l, "collector", "idle_timeout", "must be at least 100ms%s", "");
        return -1;
    }
    if (c->consent.n_previous > 7) {
        fail(l, "consent", "previous_secrets", "at most 7 previous secrets%s", "");
        return -1;
    }
    size_t pv = strlen(c->consent.policy_version);
    if (pv == 0 || pv > 64 || strpbrk(c->consent.policy_version, "\"\\") ) {
        fail(l, "consent", "policy_version", "1 to 64 characters, no quotes: '%s'", c->consent.policy_version);
        return -1;
    }
    if (c->collector.redis_timeout_ms < 50) {
        fail(l, "collector", "redis_timeout", "must be at least 50ms%s", "");
        return -1;
    }
    if (!*c->consent.cookie || strpbrk(c->consent.cookie, "=;, \t\"")) {
        fail(l, "consent", "cookie", "not a valid cookie name: '%s'", c->consent.cookie);
        return -1;
    }
    if (c->retention.raw_max_age_s < 60) {
        fail(l, "retention", "raw_max_age", "must be at least 1m%s", "");
        return -1;
    }
    for (size_t i = 0; i < c->n_sites; i++) {
        struct cfg_site *s = &c->sites[i];
        if (s->consent == CFG_CONSENT_CUSTOM && (!*s->consent_cookie || !*s->consent_match)) {
            char sec[300];
            snprintf(sec, sizeof sec, "site %s", s->name);
            fail(l, sec, "consent_cookie", "consent = custom needs consent_cookie and consent_match%s", "");
            return -1;
        }
    }
    return 0;
}

struct cfg *cfg_load(const char *path, char *const *overrides, size_t n,
                     char *err, size_t errlen)
{
    struct cfg *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    defaults(c);
    c->path = xstrdup(path);
    struct loader l = {.c = c, .where = path, .err = err, .errlen = errlen};

    l.fp = fopen(path, "r");
    if (!l.fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto error;
    }
    int rc = ini_parse_stream(reader, &l, on_key, &l);
    fclose(l.fp);
    if (l.failed) goto error;
    if (rc != 0) {
        l.line = rc > 0 ? rc : l.line;
        fail(&l, NULL, NULL, "syntax error (expected [section] or key = value)%s", "");
        goto error;
    }
    l.where = "-o";
    l.line = 0;
    for (size_t i = 0; i < n; i++)
        if (apply_override(&l, overrides[i]) < 0 || l.failed) goto error;
    l.where = path;
    if (validate(&l) < 0) goto error;
    return c;

error:
    cfg_free(c);
    return NULL;
}

void cfg_free(struct cfg *c)
{
    if (!c) return;
    free(c->path);
    free(c->collector.listen);
    free(c->collector.trusted_proxies);
    free(c->collector.spool_dir);
    free(c->collector.static_dir);
    free(c->redis.url);
    free(c->consent.secret);
    free_previous(c);
    free(c->consent.cookie);
    free(c->consent.policy_version);
    free(c->consent.cookie_domain);
    free(c->geoip.database);
    free(c->geoip.country_path);
    free(c->geoip.region_path);
    free(c->aggregator.timezone);
    free(c->serve.listen);
    free(c->serve.tokens);
    for (size_t i = 0; i < c->n_sites; i++) {
        struct cfg_site *s = &c->sites[i];
        free(s->name);
        for (size_t k = 0; k < s->n_origins; k++) free(s->origins[k]);
        free(s->origins);
        free(s->tcf_purposes);
        free(s->tcf_vendor);
        free(s->consent_group);
        free(s->consent_service);
        free(s->consent_category);
        free(s->consent_cookie);
        free(s->consent_match);
        free(s->timezone);
    }
    free(c->sites);
    free(c);
}

const struct cfg_site *cfg_site_find(const struct cfg *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_sites; i++)
        if (strlen(c->sites[i].name) == len && memcmp(c->sites[i].name, name, len) == 0)
            return &c->sites[i];
    return NULL;
}
