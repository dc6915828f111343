/* cfg.c -- loads and validates the INI configuration shared by both programs.
 *
 * libinih does the tokenising; this file knows the keys. Every key is one row
 * of keys[] (site_keys[] for the [site NAME] sections): its type, the field of
 * struct cfg it fills, its default written as in the file, its range and a
 * line of help. Defaults, the file, -o overrides and cfg_free() all walk these
 * rows, and a default goes through the same parser and checks as a value from
 * the file, so a bad default fails every load. A key whose feature does not
 * exist yet keeps its row with .not_yet saying why: setting it is an error,
 * never silently ignored; when the feature lands, the row drops .not_yet.
 *
 * Line numbers come from a counting reader wrapped around fgets, since
 * Debian's libinih is built without INI_HANDLER_LINENO. Every error is
 * reported once, "file:line: section.key: why", and cfg_load() returns NULL.
 */
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "hash.h"

#include <openssl/evp.h>

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

struct unit {
    const char *name;
    double mul;
};

/* A number with one of units after it (case-insensitive, spaces allowed),
 * scaled; -1 when the unit is unknown or the result is over max. */
static int parse_scaled(const char *s, const struct unit *units, size_t nunits, double max,
                        double *out)
{
    double n;
    const char *unit;
    if (parse_number(s, &n, &unit) < 0) return -1;
    for (size_t i = 0; i < nunits; i++) {
        if (unit_is(unit, units[i].name)) {
            double v = n * units[i].mul;
            if (v > max) return -1;
            *out = v;
            return 0;
        }
    }
    return -1;
}

int cfg_parse_duration(const char *s, long *seconds)
{
    static const struct unit units[] = {
        {"", 1}, {"s", 1}, {"m", 60}, {"min", 60}, {"h", 3600}, {"d", CLOCK_DAY_S},
        {"w", 7 * CLOCK_DAY_S}, {"mo", 30 * CLOCK_DAY_S}, {"y", 365 * CLOCK_DAY_S},
    };
    double v;
    if (parse_scaled(s, units, sizeof units / sizeof units[0], 1e12, &v) < 0) return -1;
    *seconds = (long)v;
    return 0;
}

int cfg_parse_millis(const char *s, long *ms)
{
    static const struct unit units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000},
    };
    double v;
    if (parse_scaled(s, units, sizeof units / sizeof units[0], 1e12, &v) < 0) return -1;
    *ms = (long)v;
    return 0;
}

int cfg_parse_size(const char *s, size_t *bytes)
{
    static const struct unit units[] = {
        {"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"kib", 1024},
        {"m", 1048576}, {"mb", 1048576}, {"mib", 1048576},
        {"g", 1073741824.0}, {"gb", 1073741824.0}, {"gib", 1073741824.0},
    };
    double v;
    if (parse_scaled(s, units, sizeof units / sizeof units[0], 1e15, &v) < 0) return -1;
    *bytes = (size_t)v;
    return 0;
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
/* The keys                                                                  */
/* ------------------------------------------------------------------------ */

enum type {
    T_STR,                      /* char *; a NULL default leaves it NULL */
    T_INT,                      /* int */
    T_DOUBLE,                   /* double */
    T_SIZE,                     /* size_t, bytes */
    T_DUR,                      /* long, seconds */
    T_MS,                       /* long, milliseconds */
    T_BOOL,                     /* bool */
    T_ENUM,                     /* an int-sized enum, one of .choices */
    T_SECRET,                   /* unsigned char *, length at .n_off; "" = none */
    T_SECRETS,                  /* unsigned char **, lengths at .lens_off, count at .n_off */
    T_CIDRS,                    /* struct cfg_cidr *, count at .n_off */
    T_ORIGINS,                  /* char ** of http(s) origins, count at .n_off */
};

struct choice {
    const char *name;
    int value;
    const char *not_yet;        /* as struct key's */
};

struct key {
    const char *section;        /* NULL in site_keys[] */
    const char *name;
    enum type type;
    size_t off;                 /* into struct cfg, or struct cfg_site */
    size_t n_off, lens_off;     /* the companions named in enum type */
    const char *def;            /* the default, written as in the file */
    const char *min, *max;      /* range, written as in the file; of lists: items */
    const char *(*check)(const char *v);    /* a string's own rule: why not, or NULL */
    const struct choice *choices;           /* T_ENUM, ends with {NULL} */
    const char *not_yet;        /* non-NULL: the feature is missing, the key refused */
    const char *help;
};

/* A key whose feature is missing has .not_yet saying why (none today); when the
 * feature lands, its row drops .not_yet. */

static const char *check_cookie_name(const char *v)
{
    return !*v || strpbrk(v, "=;, \t\"") ? "not a valid cookie name" : NULL;
}

static const char *check_site_cookie(const char *v)
{
    return *v ? check_cookie_name(v) : NULL;
}

static const char *check_sha256(const char *v)
{
    if (!*v) return NULL;
    size_t n = strlen(v);
    if (n != 64 || strspn(v, "0123456789abcdefABCDEF") != n) return "not 64 hex digits";
    return NULL;
}

/* "sha256:HEX" or "sha256:HEX@SITE", HEX the 64 hex digits of a SHA-256. */
static int sha256_ref_ok(const char *s, size_t n, int site_allowed)
{
    if (n < 7 + 64 || strncmp(s, "sha256:", 7) != 0) return 0;
    for (size_t i = 7; i < 7 + 64; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    if (n == 7 + 64) return 1;
    return site_allowed && s[7 + 64] == '@' && n > 7 + 64 + 1;
}

/* archive.key: file:PATH; aggregator/archive.c reads the file when it runs. */
static const char *check_archive_key(const char *v)
{
    if (!*v) return NULL;
    return strncmp(v, "file:", 5) == 0 && v[5] ? NULL : "must be file:PATH";
}

/* serve.tokens: comma-separated sha256:HEX[@SITE], or file:PATH of a file
 * holding them (a line holds 199 characters: two tokens); aggregator/auth.c
 * reads them, and the file, when serve starts. */
static const char *check_tokens(const char *v)
{
    if (strncmp(v, "file:", 5) == 0) return v[5] ? NULL : "file: needs a path";
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        size_t n = strcspn(v, ", \t");
        if (n && !sha256_ref_ok(v, n, 1)) return "each token must be sha256:<64 hex digits>[@site]";
        v += n;
    }
    return NULL;
}

static const char *check_share(const char *v)
{
    return *v && !sha256_ref_ok(v, strlen(v), 0) ? "must be sha256:<64 hex digits> or empty" : NULL;
}

static const char *check_policy_version(const char *v)
{
    size_t n = strlen(v);
    return n == 0 || n > 64 || strpbrk(v, "\"\\") ? "1 to 64 characters, no quotes" : NULL;
}

/* tcf_purposes: purpose ids 1-24, comma-separated, at least one. */
static const char *check_purposes(const char *v)
{
    int any = 0;
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p || n < 1 || n > 24 || (*end && *end != ',' && *end != ' '))
            return "not a list of TCF purposes 1-24";
        any = 1;
        p = end;
    }
    return any ? NULL : "not a list of TCF purposes 1-24";
}

static const char *check_vendor(const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);
    return *v && (*end || n < 1 || n > 8191) ? "not a TCF vendor id 1-8191" : NULL;
}

static const char *check_cookie_name_or_none(const char *v)
{
    return *v ? check_cookie_name(v) : NULL;
}

/* A group, service or category name as the consent managers write them. */
static const char *check_name(const char *v)
{
    size_t n = strlen(v);
    return n == 0 || n > 64 || strpbrk(v, ",:;=&\"\\ \t") ? "1 to 64 characters, no , : ; = & quotes or spaces" : NULL;
}

/* consent_match: compiled here only to report a bad pattern at load; the
 * collector compiles its own (collector/cmp.c). */
static const char *check_pattern(const char *v)
{
    if (!*v) return NULL;
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
    if (!re) return "not a PCRE2 pattern";
    pcre2_code_free(re);
    return NULL;
}

#define KEY(sec, key, t, field, dflt) \
    .section = sec, .name = key, .type = t, .off = offsetof(struct cfg, field), .def = dflt
#define COUNT(field) .n_off = offsetof(struct cfg, field)

static const struct key keys[] = {
    {KEY("collector", "listen", T_STR, collector.listen, "127.0.0.1:8080"),
     .help = "host:port the HTTP server listens on"},
    {KEY("collector", "threads", T_INT, collector.threads, "1"), .min = "1", .max = "256",
     .help = "worker threads, each with its own socket and Redis connection"},
    {KEY("collector", "trusted_proxies", T_CIDRS, collector.trusted_proxies, ""),
     COUNT(collector.n_trusted_proxies),
     .help = "peers whose X-Forwarded-For is believed (CIDRs)"},
    {KEY("collector", "max_body", T_SIZE, collector.max_body, "4k"), .min = "64", .max = "1m",
     .help = "largest request body"},
    {KEY("collector", "max_header", T_SIZE, collector.max_header, "8k"), .min = "512", .max = "1m",
     .help = "largest request line + headers"},
    {KEY("collector", "read_timeout", T_MS, collector.read_timeout_ms, "10s"), .min = "100ms",
     .help = "deadline from a request's first byte to its last"},
    {KEY("collector", "idle_timeout", T_MS, collector.idle_timeout_ms, "60s"), .min = "100ms",
     .help = "how long an idle keep-alive connection is kept"},
    {KEY("collector", "max_connections", T_INT, collector.max_connections, "10000"),
     .min = "1", .max = "1000000", .help = "open connections per thread"},
    {KEY("collector", "max_connections_per_address", T_INT, collector.max_connections_per_address,
         "64"), .min = "0", .max = "1000000",
     .help = "open connections per client address (IPv6: /64) per thread; 0 = no cap"},
    {KEY("collector", "idle_timeout_under_pressure", T_MS, collector.idle_timeout_under_pressure_ms,
         "5s"), .min = "100ms",
     .help = "idle keep-alive timeout once 3/4 of max_connections are open"},
    {KEY("collector", "rate_limit", T_DOUBLE, collector.rate_limit, "0"), .min = "0", .max = "1e9",
     .help = "requests per second per client address; 0 = off"},
    {KEY("collector", "spool_dir", T_STR, collector.spool_dir, "var/spool"),
     .help = "where hits wait while Redis is down or slow; empty = no spool (503 instead)"},
    {KEY("collector", "spool_max_bytes", T_SIZE, collector.spool_max_bytes, "64m"), .min = "64k",
     .help = "largest spool (all threads together); then 503 with Retry-After"},
    {KEY("collector", "shutdown_timeout", T_MS, collector.shutdown_timeout_ms, "10s"),
     .min = "100ms", .help = "SIGTERM: in-flight requests are finished within this"},
    {KEY("collector", "static_dir", T_STR, collector.static_dir, ""),
     .help = "directory of fs.js and demo/; empty = not served"},
    {KEY("collector", "redis_timeout", T_MS, collector.redis_timeout_ms, "2s"), .min = "50ms",
     .help = "a Redis command unanswered this long marks Redis down"},
    {KEY("redis", "url", T_STR, redis.url, "redis://127.0.0.1:6379/0"),
     .help = "redis://[user:pass@]host:port/db or unix:///path"},
    {KEY("consent", "secret", T_SECRET, consent.secret, ""), COUNT(consent.secret_len),
     .help = "HMAC key of the consent cookie, >= 32 bytes or file:PATH"},
    {KEY("consent", "previous_secrets", T_SECRETS, consent.previous_secrets, ""),
     COUNT(consent.n_previous), .lens_off = offsetof(struct cfg, consent.previous_lens),
     .max = "7", .help = "earlier secrets still accepted, for rotation"},
    {KEY("consent", "cookie", T_STR, consent.cookie, "fs_consent"), .check = check_cookie_name,
     .help = "name of the consent cookie"},
    {KEY("consent", "max_age_days", T_INT, consent.max_age_days, "180"), .min = "1", .max = "3650",
     .help = "how long a consent choice is valid"},
    {KEY("consent", "policy_version", T_STR, consent.policy_version, "1"),
     .check = check_policy_version, .help = "stored with every receipt; raise it to ask again"},
    {KEY("consent", "honor_gpc", T_BOOL, consent.honor_gpc, "yes"),
     .help = "refuse hits carrying Sec-GPC: 1"},
    {KEY("consent", "honor_dnt", T_BOOL, consent.honor_dnt, "yes"),
     .help = "refuse hits carrying DNT: 1"},
    {KEY("consent", "cookie_domain", T_STR, consent.cookie_domain, ""),
     .help = "Domain attribute of the cookie; empty = host-only"},
    {KEY("consent", "secure", T_BOOL, consent.secure, "yes"),
     .help = "mark the cookie Secure"},
    {KEY("geoip", "database", T_STR, geoip.database, ""),
     .help = "a MaxMind DB file; empty = no geolocation"},
    {KEY("geoip", "country_path", T_STR, geoip.country_path, "country.iso_code"),
     .help = "where a record holds the country's ISO code"},
    {KEY("geoip", "region_path", T_STR, geoip.region_path, "subdivisions.0.iso_code"),
     .help = "where a record holds the region's code; empty = none"},
    {KEY("retention", "raw_max_age", T_DUR, retention.raw_max_age_s, "24h"), .min = "1m",
     .help = "raw hits older than this are deleted"},
    {KEY("retention", "aggregates", T_DUR, retention.aggregates_s, "25mo"),
     .help = "statistics older than this are deleted"},
    {KEY("retention", "consent_receipts", T_DUR, retention.consent_receipts_s, "5y"),
     .help = "consent receipts older than this are deleted"},
    {KEY("retention", "consent_hot", T_DUR, retention.consent_hot_s, "30d"), .min = "1m",
     .help = "receipts older than this move from Redis to the archive (when archive.dir is set)"},
    {KEY("aggregator", "batch", T_INT, aggregator.batch, "50000"), .min = "1", .max = "100000",
     .help = "raw hits folded per atomic step"},
    {KEY("aggregator", "block_ms", T_MS, aggregator.block_ms, "2000"),
     .help = "how long one read blocks waiting for hits"},
    {KEY("aggregator", "purge_interval", T_DUR, aggregator.purge_interval_s, "1h"),
     .help = "how often the daemon purges; 0 = never"},
    {KEY("aggregator", "archive_interval", T_DUR, aggregator.archive_interval_s, "1h"),
     .help = "how often the daemon archives receipts; 0 = never"},
    {KEY("aggregator", "timezone", T_STR, aggregator.timezone, "UTC"),
     .help = "time zone of the daily statistics"},
    {KEY("aggregator", "min_visitors", T_INT, aggregator.min_visitors, "0"),
     .min = "0", .max = "1000000", .help = "report rows with fewer visitors go to (other)"},
    {KEY("aggregator", "max_members", T_INT, aggregator.max_members, "2000"), .min = "10",
     .max = "1000000", .help = "distinct members a breakdown keeps per day; the rest count as (other)"},
    /* Another name of the same cap, as the hardening work asked for it; either sets it. */
    {KEY("aggregator", "max_rows_per_day", T_INT, aggregator.max_members, NULL), .min = "10",
     .max = "1000000", .help = "the same as max_members (either name sets it)"},
    {KEY("aggregator", "max_page_visitors", T_INT, aggregator.max_page_visitors, "500"), .min = "0",
     .max = "1000000", .help = "pages per day whose visitors are counted (one HyperLogLog each)"},
    {KEY("aggregator", "visit_cache", T_INT, aggregator.visit_cache, "1000000"), .min = "0",
     .max = "100000000", .help = "visit states the aggregator keeps in memory rather than read back (0 = off)"},
    {KEY("archive", "dir", T_STR, archive.dir, ""),
     .help = "directory of the encrypted receipt archive; empty = no archive"},
    {KEY("archive", "key", T_STR, archive.key, ""), .check = check_archive_key,
     .help = "file:PATH of the archive keys, lines KEYID:BASE64(32 bytes), current first"},
    {KEY("serve", "listen", T_STR, serve.listen, "127.0.0.1:8090"),
     .help = "host:port of the dashboard and Stats API"},
    {KEY("serve", "tokens", T_STR, serve.tokens, ""), .check = check_tokens,
     .help = "sha256:HEX[@SITE] of each accepted Bearer token"},
    {KEY("serve", "cors_origins", T_ORIGINS, serve.cors_origins, ""), COUNT(serve.n_cors_origins),
     .help = "Origin values allowed to call the Stats API from a browser; empty = no CORS"},
    {KEY("serve", "secure_cookie", T_BOOL, serve.secure_cookie, "no"),
     .help = "mark the dashboard's session cookie Secure (behind HTTPS)"},
    {KEY("serve", "session_ttl", T_DUR, serve.session_ttl_s, "12h"), .min = "1m", .max = "30d",
     .help = "how long a dashboard login lasts"},
};

static const struct choice consent_sources[] = {
    {"fairstat", CFG_CONSENT_FAIRSTAT, NULL},
    {"tcf", CFG_CONSENT_TCF, NULL},
    {"cookiebot", CFG_CONSENT_COOKIEBOT, NULL},
    {"onetrust", CFG_CONSENT_ONETRUST, NULL},
    {"klaro", CFG_CONSENT_KLARO, NULL},
    {"cookieconsent", CFG_CONSENT_COOKIECONSENT, NULL},
    {"custom", CFG_CONSENT_CUSTOM, NULL},
    {NULL, 0, NULL},
};
_Static_assert(sizeof(enum cfg_consent_mode) == sizeof(int), "T_ENUM stores an int");

#define SITE_KEY(key, t, field, dflt) \
    .name = key, .type = t, .off = offsetof(struct cfg_site, field), .def = dflt

static const struct key site_keys[] = {
    {SITE_KEY("origins", T_ORIGINS, origins, ""), .n_off = offsetof(struct cfg_site, n_origins),
     .help = "Origin values allowed to send beacons and consent choices"},
    {SITE_KEY("consent", T_ENUM, consent, "fairstat"), .choices = consent_sources,
     .help = "where the visitor's consent comes from"},
    {SITE_KEY("tcf_purposes", T_STR, tcf_purposes, "1,8"), .check = check_purposes,
     .help = "tcf: the purposes that must be allowed"},
    {SITE_KEY("tcf_vendor", T_STR, tcf_vendor, ""), .check = check_vendor,
     .help = "tcf: the vendor id that must be allowed"},
    {SITE_KEY("consent_group", T_STR, consent_group, "C0002"), .check = check_name,
     .help = "onetrust: the group that must be active"},
    {SITE_KEY("consent_service", T_STR, consent_service, "fairstat"), .check = check_name,
     .help = "klaro: the service that must be allowed"},
    {SITE_KEY("consent_category", T_STR, consent_category, "analytics"), .check = check_name,
     .help = "cookieconsent: the category that must be accepted"},
    {SITE_KEY("consent_cookie", T_STR, consent_cookie, ""), .check = check_cookie_name_or_none,
     .help = "custom: the cookie holding the choice"},
    {SITE_KEY("consent_match", T_STR, consent_match, ""), .check = check_pattern,
     .help = "custom: a PCRE2 pattern the cookie must match"},
    {SITE_KEY("share", T_STR, share, ""), .check = check_share,
     .help = "sha256:HEX of this site's read-only share secret; empty = no share link"},
    {SITE_KEY("timezone", T_STR, timezone, NULL),
     .help = "time zone of this site's daily statistics; unset = aggregator.timezone"},
    {SITE_KEY("cookie", T_STR, cookie, ""), .check = check_site_cookie,
     .help = "name of this site's consent cookie; unset = derived from consent.cookie"},
    {SITE_KEY("cookie_domain", T_STR, cookie_domain, NULL),
     .help = "Domain attribute of this site's cookie; unset = consent.cookie_domain"},
    {SITE_KEY("policy_sha256", T_STR, policy_sha256, ""), .check = check_sha256,
     .help = "SHA-256 (hex) of the policy text the site shows; in every receipt"},
    {SITE_KEY("policy_file", T_STR, policy_file, ""),
     .help = "the policy text, hashed at start into policy_sha256"},
};

#define LEN(a) (sizeof (a) / sizeof (a)[0])

/* ------------------------------------------------------------------------ */
/* Setting a key                                                             */
/* ------------------------------------------------------------------------ */

struct loader {
    struct cfg *c;
    size_t *site_slot;          /* site index + 1 by name: a file may hold 10,000 sites */
    size_t site_cap;
    size_t sites_alloc;         /* c->sites has room for this many */
    const char *where;          /* file name, "-o" or "built-in default" */
    FILE *fp;
    int line;                   /* 0: no line to name */
    int long_line;              /* the line being parsed did not fit */
    char *err;
    size_t errlen;
    int failed;
};

/* Records the first error only; returns -1 for the caller to pass on. */
__attribute__((format(printf, 4, 5)))
static int fail(struct loader *l, const char *section, const char *key, const char *fmt, ...)
{
    if (l->failed) return -1;
    l->failed = 1;
    char what[160] = "";
    if (key)
        snprintf(what, sizeof what, " %s.%s:", section, key);
    else if (section)
        snprintf(what, sizeof what, " [%s]:", section);
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l->line > 0)
        snprintf(l->err, l->errlen, "%s:%d:%s %s", l->where, l->line, what, msg);
    else
        snprintf(l->err, l->errlen, "%s:%s %s", l->where, what, msg);
    return -1;
}

/* Configuration is read once at start: running out of memory there is fatal. */
static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("fairstat: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

/* Empties a key's value, leaving NULL and 0 behind. */
static void release(const struct key *k, void *base)
{
    void *dst = field(base, k->off);
    switch (k->type) {
    case T_STR:
        free(*(char **)dst);
        *(char **)dst = NULL;
        break;
    case T_SECRET:
        free(*(unsigned char **)dst);
        *(unsigned char **)dst = NULL;
        *(size_t *)field(base, k->n_off) = 0;
        break;
    case T_SECRETS: {
        unsigned char ***list = dst;
        size_t **lens = field(base, k->lens_off), *n = field(base, k->n_off);
        for (size_t i = 0; i < *n; i++) free((*list)[i]);
        free(*list);
        free(*lens);
        *list = NULL;
        *lens = NULL;
        *n = 0;
        break;
    }
    case T_CIDRS:
        free(*(struct cfg_cidr **)dst);
        *(struct cfg_cidr **)dst = NULL;
        *(size_t *)field(base, k->n_off) = 0;
        break;
    case T_ORIGINS: {
        char ***list = dst;
        size_t *n = field(base, k->n_off);
        for (size_t i = 0; i < *n; i++) free((*list)[i]);
        free(*list);
        *list = NULL;
        *n = 0;
        break;
    }
    case T_INT: case T_DOUBLE: case T_SIZE: case T_DUR: case T_MS: case T_BOOL: case T_ENUM:
        break;
    }
}

/* The numeric types, read into a double for the range check. */
static int number(enum type t, const char *s, double *out)
{
    char *end;
    long sec;
    size_t bytes;
    switch (t) {
    case T_INT: {
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end || n < INT_MIN || n > INT_MAX) return -1;
        *out = (double)n;
        return 0;
    }
    case T_DOUBLE:
        *out = strtod(s, &end);
        return end == s || *end || !isfinite(*out) ? -1 : 0;
    case T_SIZE:
        if (cfg_parse_size(s, &bytes) < 0) return -1;
        *out = (double)bytes;
        return 0;
    case T_DUR:
    case T_MS:
        if ((t == T_DUR ? cfg_parse_duration(s, &sec) : cfg_parse_millis(s, &sec)) < 0) return -1;
        *out = (double)sec;
        return 0;
    default:
        return -1;
    }
}

static const char *number_syntax(enum type t)
{
    switch (t) {
    case T_INT: return "not an integer";
    case T_SIZE: return "not a size (4096, 4k, 1m)";
    case T_DUR: return "not a duration (30s, 10m, 24h, 7d, 25mo, 5y)";
    case T_MS: return "not a duration in ms (500ms, 10s, 1m)";
    default: return "not a number";
    }
}

static int set_number(struct loader *l, const char *sec, const struct key *k, void *dst,
                      const char *v)
{
    double n, min, max;
    if (number(k->type, v, &n) < 0)
        return fail(l, sec, k->name, "%s: '%s'", number_syntax(k->type), v);
    /* A range the parser cannot read refuses everything, defaults first. */
    int low = k->min && (number(k->type, k->min, &min) < 0 || !(n >= min));
    int high = k->max && (number(k->type, k->max, &max) < 0 || !(n <= max));
    if (low || high) {
        if (k->min && k->max)
            return fail(l, sec, k->name, "must be between %s and %s: '%s'", k->min, k->max, v);
        return fail(l, sec, k->name, "must be at %s %s: '%s'", k->min ? "least" : "most",
                    k->min ? k->min : k->max, v);
    }
    switch (k->type) {
    case T_INT: *(int *)dst = (int)n; break;
    case T_DOUBLE: *(double *)dst = n; break;
    case T_SIZE: *(size_t *)dst = (size_t)n; break;
    default: *(long *)dst = (long)n; break;
    }
    return 0;
}

static int set_choice(struct loader *l, const char *sec, const struct key *k, void *dst,
                      const char *v)
{
    const struct choice *hit = NULL;
    char names[128] = "";       /* the accepted ones, for the error */
    for (const struct choice *ch = k->choices; ch->name; ch++) {
        if (strcmp(v, ch->name) == 0) hit = ch;
        if (!ch->not_yet)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     *names ? "|" : "", ch->name);
    }
    if (!hit) return fail(l, sec, k->name, "not one of %s: '%s'", names, v);
    if (hit->not_yet)
        return fail(l, sec, k->name, "'%s' is not implemented yet (%s); use %s", v, hit->not_yet,
                    names);
    *(int *)dst = hit->value;
    return 0;
}

/* Reads a secret: the value itself, or the file named after "file:". */
static int read_secret(struct loader *l, const char *sec, const char *key, const char *v,
                       unsigned char **out, size_t *outlen)
{
    unsigned char *buf;
    size_t len;
    if (strncmp(v, "file:", 5) == 0) {
        FILE *fp = fopen(v + 5, "rb");
        if (!fp) return fail(l, sec, key, "cannot read secret file '%s'", v + 5);
        buf = xrealloc(NULL, 4097);
        len = fread(buf, 1, 4096, fp);
        fclose(fp);
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    } else {
        len = strlen(v);
        buf = xrealloc(NULL, len + 1);
        memcpy(buf, v, len);
    }
    buf[len] = 0;
    if (len < 32) {
        free(buf);
        return fail(l, sec, key, "secret is shorter than 32 bytes");
    }
    *out = buf;
    *outlen = len;
    return 0;
}

struct item {
    struct loader *l;
    const char *sec;
    const struct key *k;
    void *base;
};

/* Calls fn(item, len, arg) for each comma-separated, trimmed, non-empty item. */
static int each_item(const char *v, int (*fn)(const char *, size_t, struct item *),
                     struct item *arg)
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

static int add_secret(const char *s, size_t n, struct item *a)
{
    unsigned char ***list = field(a->base, a->k->off), *secret;
    size_t **lens = field(a->base, a->k->lens_off), *count = field(a->base, a->k->n_off), len;
    char *v = xstrndup(s, n);
    int rc = read_secret(a->l, a->sec, a->k->name, v, &secret, &len);
    free(v);
    if (rc < 0) return -1;
    *list = xrealloc(*list, (*count + 1) * sizeof **list);
    *lens = xrealloc(*lens, (*count + 1) * sizeof **lens);
    (*list)[*count] = secret;
    (*lens)[(*count)++] = len;
    return 0;
}

static int add_cidr(const char *s, size_t n, struct item *a)
{
    struct cfg_cidr **list = field(a->base, a->k->off), cidr;
    size_t *count = field(a->base, a->k->n_off);
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", (int)(n < 60 ? n : 60), s);
    if (n >= 60 || cfg_parse_cidr(buf, &cidr) < 0)
        return fail(a->l, a->sec, a->k->name, "not an address or CIDR: '%s'", buf);
    *list = xrealloc(*list, (*count + 1) * sizeof **list);
    (*list)[(*count)++] = cidr;
    return 0;
}

static int add_origin(const char *s, size_t n, struct item *a)
{
    char ***list = field(a->base, a->k->off);
    size_t *count = field(a->base, a->k->n_off);
    while (n && s[n - 1] == '/') n--;
    if (!(n > 7 && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)))
        return fail(a->l, a->sec, a->k->name, "origin must start with http:// or https://: '%.*s'",
                    (int)(n > 100 ? 100 : n), s);
    *list = xrealloc(*list, (*count + 1) * sizeof **list);
    (*list)[(*count)++] = xstrndup(s, n);
    return 0;
}

/* Sets k in base (a struct cfg or a struct cfg_site) from v, replacing what was
 * there; sec is the section as written, for errors. */
static int set_key(struct loader *l, const char *sec, const struct key *k, void *base,
                   const char *v)
{
    void *dst = field(base, k->off);
    const char *why;
    switch (k->type) {
    case T_STR:
        if (k->check && (why = k->check(v))) return fail(l, sec, k->name, "%s: '%s'", why, v);
        release(k, base);
        *(char **)dst = xstrdup(v);
        return 0;
    case T_INT: case T_DOUBLE: case T_SIZE: case T_DUR: case T_MS:
        return set_number(l, sec, k, dst, v);
    case T_BOOL:
        if (cfg_parse_bool(v, dst) < 0) return fail(l, sec, k->name, "not yes or no: '%s'", v);
        return 0;
    case T_ENUM:
        return set_choice(l, sec, k, dst, v);
    case T_SECRET:
        release(k, base);
        return *v ? read_secret(l, sec, k->name, v, dst, field(base, k->n_off)) : 0;
    case T_SECRETS: case T_CIDRS: case T_ORIGINS: {
        static int (*const add[])(const char *, size_t, struct item *) = {
            [T_SECRETS] = add_secret, [T_CIDRS] = add_cidr, [T_ORIGINS] = add_origin,
        };
        struct item a = {l, sec, k, base};
        release(k, base);
        if (each_item(v, add[k->type], &a) < 0) return -1;
        if (k->max && *(size_t *)field(base, k->n_off) > strtoul(k->max, NULL, 10))
            return fail(l, sec, k->name, "at most %s items", k->max);
        return 0;
    }
    }
    return -1;
}

static int set_defaults(struct loader *l, const char *sec, const struct key *table, size_t n,
                        void *base)
{
    const char *where = l->where;
    int line = l->line, rc = 0;
    l->where = "built-in default";
    l->line = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (table[i].def)
            rc = set_key(l, sec ? sec : table[i].section, &table[i], base, table[i].def);
    l->where = where;
    l->line = line;
    return rc;
}

/* Slot of the lower-cased name in l->site_slot (empty when new). */
static size_t *site_slot(struct loader *l, const char *lower)
{
    size_t j = hash_fnv1a(HASH_FNV_OFFSET, lower, strlen(lower)) & (l->site_cap - 1);
    while (l->site_slot[j] && strcmp(l->c->sites[l->site_slot[j] - 1].name, lower) != 0)
        j = (j + 1) & (l->site_cap - 1);
    return &l->site_slot[j];
}

static struct cfg_site *site_get(struct loader *l, const char *sec, const char *name)
{
    struct cfg *c = l->c;
    char *lower = xstrdup(name);
    for (char *q = lower; *q; q++) *q = (char)tolower((unsigned char)*q);
    if ((c->n_sites + 1) * 2 > l->site_cap) {
        free(l->site_slot);
        l->site_cap = l->site_cap ? l->site_cap * 2 : 64;
        l->site_slot = xrealloc(NULL, l->site_cap * sizeof *l->site_slot);
        memset(l->site_slot, 0, l->site_cap * sizeof *l->site_slot);
        for (size_t i = 0; i < c->n_sites; i++) *site_slot(l, c->sites[i].name) = i + 1;
    }
    size_t *slot = site_slot(l, lower);
    if (*slot) {
        free(lower);
        return &c->sites[*slot - 1];
    }
    if (c->n_sites == l->sites_alloc) {
        l->sites_alloc = l->sites_alloc ? l->sites_alloc * 2 : 16;
        c->sites = xrealloc(c->sites, l->sites_alloc * sizeof *c->sites);
    }
    struct cfg_site *s = &c->sites[c->n_sites++];
    memset(s, 0, sizeof *s);
    s->name = lower;
    *slot = c->n_sites;
    return set_defaults(l, sec, site_keys, LEN(site_keys), s) == 0 ? s : NULL;
}

/* Sets section.name = v, from the file or from -o. */
static int apply(struct loader *l, const char *section, const char *name, const char *v)
{
    const struct key *table = keys;
    size_t n = LEN(keys);
    void *base = l->c;
    if (strncmp(section, "site ", 5) == 0) {
        const char *site = section + 5;
        while (*site == ' ') site++;
        if (!*site) return fail(l, section, NULL, "site section needs a name: [site example.com]");
        if (!(base = site_get(l, section, site))) return -1;
        table = site_keys;
        n = LEN(site_keys);
    }
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &table[i];
        if (strcmp(k->name, name) != 0 || (k->section && strcmp(k->section, section) != 0))
            continue;
        if (k->not_yet)
            return fail(l, section, name, "not implemented yet (%s); remove the key", k->not_yet);
        return set_key(l, section, k, base, v);
    }
    return fail(l, section, name, "unknown key");
}

/* ------------------------------------------------------------------------ */
/* After the file and the overrides: what sites derive                       */
/* ------------------------------------------------------------------------ */

/* The largest policy file hashed: a policy, not a data set. */
#define POLICY_FILE_MAX (16 * 1024 * 1024)

static void set_str(char **dst, char *v)
{
    free(*dst);
    *dst = v;
}

/* SHA-256 of the file at path as 64 lower-case hex digits into hex. */
static int hash_file(struct loader *l, const char *sec, const char *path, char hex[65])
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(l, sec, "policy_file", "cannot read '%s': %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[65536], digest[32];
    unsigned dlen = 0;
    size_t n, total = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    while (ok && (n = fread(buf, 1, sizeof buf, fp)) > 0 && (total += n) <= POLICY_FILE_MAX)
        ok = EVP_DigestUpdate(md, buf, n);
    int bad_read = ferror(fp);
    fclose(fp);
    ok = ok && !bad_read && total <= POLICY_FILE_MAX && EVP_DigestFinal_ex(md, digest, &dlen);
    EVP_MD_CTX_free(md);
    if (!ok || dlen != 32)
        return fail(l, sec, "policy_file", "cannot hash '%s' (unreadable or over 16 MiB)", path);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

struct cookie_ref {
    const char *name, *domain, *site;
};

static int cookie_cmp(const void *x, const void *y)
{
    const struct cookie_ref *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : strcasecmp(a->domain, b->domain);
}

/* Each site's cookie name and domain and its policy hash. Two sites with
 * the same cookie name and domain would overwrite each other's choice, the
 * very thing per-site cookies prevent: refused. */
static int finish_sites(struct loader *l)
{
    struct cfg *c = l->c;
    char sec[300];
    for (size_t i = 0; i < c->n_sites; i++) {
        struct cfg_site *s = &c->sites[i];
        snprintf(sec, sizeof sec, "site %.280s", s->name);
        if (!*s->cookie) {
            /* One site: the name every earlier version used, so that an
             * existing install keeps its visitors' choices. */
            size_t n = strlen(c->consent.cookie), m = strlen(s->name);
            char *name = xrealloc(NULL, n + 1 + m + 1);
            memcpy(name, c->consent.cookie, n + 1);
            if (c->n_sites > 1) {
                name[n] = '_';
                for (size_t k = 0; k < m; k++) {
                    char ch = s->name[k];
                    name[n + 1 + k] = isalnum((unsigned char)ch) || strchr("._-", ch) ? ch : '_';
                }
                name[n + 1 + m] = '\0';
            }
            set_str(&s->cookie, name);
        }
        if (strlen(s->cookie) > CFG_COOKIE_MAX)
            return fail(l, sec, "cookie", "'%.40s...' is longer than %d characters; set a shorter one",
                        s->cookie, CFG_COOKIE_MAX);
        if (!s->cookie_domain) s->cookie_domain = xstrdup(c->consent.cookie_domain);
        if (strlen(s->cookie_domain) > CFG_COOKIE_DOMAIN_MAX || strpbrk(s->cookie_domain, ";, \t\"\r\n"))
            return fail(l, sec, "cookie_domain", "not a domain: '%.60s'", s->cookie_domain);
        if (*s->policy_file && *s->policy_sha256)
            return fail(l, sec, "policy_file", "set policy_file or policy_sha256, not both");
        if (*s->policy_file) {
            char hex[65];
            if (hash_file(l, sec, s->policy_file, hex) < 0) return -1;
            set_str(&s->policy_sha256, xstrdup(hex));
        }
        for (char *p = s->policy_sha256; *p; p++) *p = (char)tolower((unsigned char)*p);
    }
    if (c->n_sites < 2) return 0;
    struct cookie_ref *refs = xrealloc(NULL, c->n_sites * sizeof *refs);
    for (size_t i = 0; i < c->n_sites; i++)
        refs[i] = (struct cookie_ref){c->sites[i].cookie, c->sites[i].cookie_domain, c->sites[i].name};
    qsort(refs, c->n_sites, sizeof *refs, cookie_cmp);
    int rc = 0;
    for (size_t i = 1; i < c->n_sites && rc == 0; i++) {
        if (cookie_cmp(&refs[i - 1], &refs[i]) != 0) continue;
        snprintf(sec, sizeof sec, "site %.280s", refs[i].site);
        rc = fail(l, sec, "cookie", "'%s' is also the cookie of [site %s] on the same domain; "
                  "give one of them its own cookie name", refs[i].name, refs[i - 1].site);
    }
    free(refs);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct loader *l = user;
    if (l->failed) return 0;
    if (l->long_line) {
        fail(l, section, name, "line longer than 199 characters");
        return 0;
    }
    if (!name) return 1;        /* a bare [section] line */
    if (!*section) {
        fail(l, NULL, NULL, "key '%s' outside any [section]", name);
        return 0;
    }
    return apply(l, section, name, value) == 0;
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

/* What one key cannot check alone: a custom consent source needs both its
 * cookie and its pattern. */
static int check_sites(struct loader *l)
{
    for (size_t i = 0; i < l->c->n_sites; i++) {
        const struct cfg_site *s = &l->c->sites[i];
        char sec[300];
        snprintf(sec, sizeof sec, "site %s", s->name);
        if (s->consent == CFG_CONSENT_CUSTOM && (!*s->consent_cookie || !*s->consent_match))
            return fail(l, sec, "consent", "custom needs consent_cookie and consent_match");
    }
    return 0;
}

static int apply_override(struct loader *l, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *dot = NULL;
    for (const char *p = arg; eq && p < eq; p++)
        if (*p == '.') dot = p;
    if (!eq || !dot || dot == arg || dot + 1 == eq)
        return fail(l, NULL, NULL, "override is not section.key=value: '%s'", arg);
    char *section = xstrndup(arg, (size_t)(dot - arg));
    char *key = xstrndup(dot + 1, (size_t)(eq - dot - 1));
    int rc = apply(l, section, key, eq + 1);
    free(section);
    free(key);
    return rc;
}

struct cfg *cfg_load(const char *path, char *const *overrides, size_t n,
                     char *err, size_t errlen)
{
    struct cfg *c = xrealloc(NULL, sizeof *c);
    memset(c, 0, sizeof *c);
    c->path = xstrdup(path);
    struct loader l = {.c = c, .where = path, .err = err, .errlen = errlen};
    if (set_defaults(&l, NULL, keys, LEN(keys), c) < 0) goto error;

    l.fp = fopen(path, "r");
    if (!l.fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto error;
    }
    int rc = ini_parse_stream(reader, &l, on_key, &l);
    fclose(l.fp);
    free(l.site_slot);
    l.site_slot = NULL;
    l.site_cap = 0;
    if (l.failed) goto error;
    if (rc != 0) {
        l.line = rc > 0 ? rc : l.line;
        fail(&l, NULL, NULL, "syntax error (expected [section] or key = value)");
        goto error;
    }
    l.where = "-o";
    l.line = 0;
    for (size_t i = 0; i < n; i++)
        if (apply_override(&l, overrides[i]) < 0) goto error;
    l.where = path;
    if (check_sites(&l) < 0 || finish_sites(&l) < 0) goto error;
    free(l.site_slot);
    return c;

error:
    free(l.site_slot);
    cfg_free(c);
    return NULL;
}

void cfg_free(struct cfg *c)
{
    if (!c) return;
    for (size_t i = 0; i < LEN(keys); i++) release(&keys[i], c);
    for (size_t i = 0; i < c->n_sites; i++) {
        for (size_t k = 0; k < LEN(site_keys); k++) release(&site_keys[k], &c->sites[i]);
        free(c->sites[i].name);
    }
    free(c->sites);
    free(c->path);
    free(c);
}

const struct cfg_site *cfg_site_find(const struct cfg *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n_sites; i++)
        if (strlen(c->sites[i].name) == len && memcmp(c->sites[i].name, name, len) == 0)
            return &c->sites[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Reload                                                                    */
/* ------------------------------------------------------------------------ */

static size_t scalar_size(enum type t)
{
    switch (t) {
    case T_INT: case T_ENUM: return sizeof(int);
    case T_DOUBLE: return sizeof(double);
    case T_SIZE: return sizeof(size_t);
    case T_DUR: case T_MS: return sizeof(long);
    case T_BOOL: return sizeof(bool);
    default: return 0;
    }
}

/* 1 when k's value differs between a and b; -1 for a type not handled. */
static int key_differs(const struct key *k, const void *a, const void *b)
{
    const void *x = (const char *)a + k->off, *y = (const char *)b + k->off;
    if (k->type == T_STR) {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        return (!s || !t) ? s != t : strcmp(s, t) != 0;
    }
    if (k->type == T_CIDRS) {
        size_t n = *(const size_t *)((const char *)a + k->n_off);
        if (n != *(const size_t *)((const char *)b + k->n_off)) return 1;
        return n && memcmp(*(struct cfg_cidr *const *)x, *(struct cfg_cidr *const *)y,
                           n * sizeof(struct cfg_cidr)) != 0;
    }
    size_t sz = scalar_size(k->type);
    return sz ? memcmp(x, y, sz) != 0 : -1;
}

int cfg_keep(struct cfg *c, const struct cfg *old, const char *section,
             void (*changed)(const char *section, const char *key, void *arg), void *arg)
{
    for (size_t i = 0; i < LEN(keys); i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->section, section) != 0) continue;
        int d = key_differs(k, c, old);
        if (d < 0) return -1;
        if (!d) continue;
        if (changed) changed(section, k->name, arg);
        void *dst = field(c, k->off);
        const void *src = (const char *)old + k->off;
        release(k, c);
        if (k->type == T_STR) {
            const char *s = *(char *const *)src;
            *(char **)dst = s ? xstrdup(s) : NULL;
        } else if (k->type == T_CIDRS) {
            size_t n = *(const size_t *)((const char *)old + k->n_off);
            struct cfg_cidr *list = n ? xrealloc(NULL, n * sizeof *list) : NULL;
            if (n) memcpy(list, *(struct cfg_cidr *const *)src, n * sizeof *list);
            *(struct cfg_cidr **)dst = list;
            *(size_t *)field(c, k->n_off) = n;
        } else {
            memcpy(dst, src, scalar_size(k->type));
        }
    }
    return 0;
}
