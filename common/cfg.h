/* cfg.h -- the configuration file: INI sections, -o overrides, validation.
 *
 * Both programs load the same file. cfg_load() parses it with libinih, applies
 * the "-o section.key=value" overrides in order, fills in defaults and checks
 * every value. On failure it returns NULL and writes one line to err, naming
 * the file, the line (or the -o argument) and the key, e.g.
 *   "fairstat.conf:12: collector.max_body: not a size: '4q'".
 *
 * A key whose feature does not exist yet is refused the same way ("not
 * implemented yet"); its field below is marked "not yet" and only ever holds
 * its default. The keys, their defaults and ranges are the table in cfg.c.
 *
 * The returned struct cfg and everything it points to is owned by it and
 * lives until cfg_free(); callers read fields directly and never write them.
 */
#ifndef FAIRSTAT_CFG_H
#define FAIRSTAT_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a site's consent comes from: our own banner and cookie, or the
 * site's consent manager (collector/cmp.h). */
enum cfg_consent_mode {
    CFG_CONSENT_FAIRSTAT = 0,   /* our own signed cookie (default) */
    CFG_CONSENT_TCF,
    CFG_CONSENT_COOKIEBOT,
    CFG_CONSENT_ONETRUST,
    CFG_CONSENT_KLARO,
    CFG_CONSENT_COOKIECONSENT,
    CFG_CONSENT_CUSTOM
};

/* Longest consent cookie name and Domain attribute a site may have. */
#define CFG_COOKIE_MAX 128
#define CFG_COOKIE_DOMAIN_MAX 253

struct cfg_site {
    char *name;                 /* the [site NAME] section name: the beacon's domain */
    char **origins;             /* allowed Origin values, e.g. "https://example.com" */
    size_t n_origins;
    enum cfg_consent_mode consent;
    char *tcf_purposes;         /* tcf: "1,8", purposes 1-24 */
    char *tcf_vendor;           /* tcf: "" or a vendor id 1-8191 */
    char *consent_group;        /* onetrust: "C0002" */
    char *consent_service;      /* klaro: "fairstat" */
    char *consent_category;     /* cookieconsent: "analytics" */
    char *consent_cookie;       /* custom: a cookie name; "" only when not custom */
    char *consent_match;        /* custom: PCRE2 pattern, compiled at load to check it */
    char *timezone;             /* NULL: aggregator.timezone */
    /* The site's own consent cookie (consent.c). After load both are set:
     * cookie is the name given, else consent.cookie alone when this is the
     * only site, else consent.cookie "_" the site name (fs_consent_example.com:
     * what the snippet derives from data-domain), a character outside
     * [A-Za-z0-9._-] as "_"; cookie_domain is the one given, else
     * consent.cookie_domain ("" = host-only). */
    char *cookie;
    char *cookie_domain;
    /* The SHA-256 (64 lower-case hex) of the policy text the site shows,
     * from policy_sha256 or hashed from policy_file at load; "" = not
     * given. Every receipt of the site carries it. */
    char *policy_sha256;
    char *policy_file;          /* as given; "" = none */
    char *share;                /* "sha256:HEX" of the read-only share secret; "" = none */
};

struct cfg_cidr {
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct cfg {
    char *path;

    struct {
        char *listen;           /* "127.0.0.1:8080" */
        int threads;
        struct cfg_cidr *trusted_proxies;
        size_t n_trusted_proxies;
        size_t max_body;        /* bytes */
        size_t max_header;      /* bytes, request line + headers */
        long read_timeout_ms;   /* whole-request deadline */
        long idle_timeout_ms;   /* keep-alive connection with no request */
        int max_connections;    /* per thread */
        int max_connections_per_address;    /* per thread; 0 = no cap */
        long idle_timeout_under_pressure_ms; /* idle keep-alive timeout past 3/4 of max_connections */
        double rate_limit;      /* requests/s per client; 0 = off */
        char *spool_dir;        /* "" = no spool */
        size_t spool_max_bytes; /* all threads together */
        long shutdown_timeout_ms;
        char *static_dir;       /* /fs.js and /demo/ are served from here; "" = off */
        long redis_timeout_ms;  /* a command unanswered this long: Redis is down */
    } collector;

    struct {
        char *url;
    } redis;

    struct {
        unsigned char *secret;  /* raw bytes, >= 32 when set */
        size_t secret_len;
        unsigned char **previous_secrets;
        size_t *previous_lens;
        size_t n_previous;
        char *cookie;
        int max_age_days;
        char *policy_version;
        bool honor_gpc;
        bool honor_dnt;
        char *cookie_domain;    /* "" = host-only cookie */
        bool secure;
    } consent;

    struct {
        char *database;         /* "" = no geo */
        char *country_path;     /* "country.iso_code" */
        char *region_path;      /* "subdivisions.0.iso_code"; "" = none */
    } geoip;

    struct {
        long raw_max_age_s;
        long aggregates_s;
        long consent_receipts_s;
        long consent_hot_s;     /* receipts older than this go to the archive */
    } retention;

    struct {
        int batch;
        long block_ms;
        long purge_interval_s;
        long archive_interval_s;
        char *timezone;
        int min_visitors;
        int max_members;
        int max_page_visitors;
        int visit_cache;            /* visit states held in memory, for the process */
    } aggregator;

    struct {
        char *dir;              /* "" = no archive */
        char *key;              /* "file:PATH" or "" */
    } archive;

    struct {
        char *listen;           /* "127.0.0.1:8090" */
        char *tokens;           /* "sha256:HEX[@SITE], ..." (checked at load) */
        char **cors_origins;    /* empty: no CORS headers at all */
        size_t n_cors_origins;
        bool secure_cookie;
        long session_ttl_s;
    } serve;

    struct cfg_site *sites;
    size_t n_sites;
};

/* Load path, then apply overrides[0..n) ("section.key=value"). Returns NULL and
 * one line in err on any error. */
struct cfg *cfg_load(const char *path, char *const *overrides, size_t n,
                     char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* For a reload: every key of section whose value in c differs from old is
 * reported to changed (when not NULL) and set back to old's value, so c
 * runs on with what cannot change without a restart. 0, or -1 when the
 * section has a key of a kind this cannot copy (secrets, origins). */
int cfg_keep(struct cfg *c, const struct cfg *old, const char *section,
             void (*changed)(const char *section, const char *key, void *arg), void *arg);

/* The site whose name is exactly name[0..len), or NULL. The pointer lives as
 * long as c. */
const struct cfg_site *cfg_site_find(const struct cfg *c, const char *name, size_t len);

/* Parsers for the value syntaxes, exposed for tests. 0 on success, -1 if bad. */
int cfg_parse_duration(const char *s, long *seconds);  /* 30s 10m 24h 7d 25mo 5y; bare = s */
int cfg_parse_millis(const char *s, long *ms);         /* 500ms 10s 1m; bare = ms */
int cfg_parse_size(const char *s, size_t *bytes);      /* 4096 4k 4KiB 1m 1MiB 1g */
int cfg_parse_bool(const char *s, bool *b);            /* yes no true false on off 1 0 */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out);
bool cfg_cidr_match(const struct cfg_cidr *list, size_t n, int family, const void *addr);

#endif
