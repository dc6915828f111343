/* main.c -- fairstat-aggregator: command line, config, signals.
 *
 * Parses "-c FILE [-o section.key=value]... COMMAND [options]", loads the
 * config, builds the shared state (agg.h) and hands over to run (run.c),
 * report (report.c), purge (purge.c), archive (archive.c), forget (forget.c), consents
 * (consents.c), audit (audit.c) or serve (serve.c); token prints a new
 * access token for serve. Exit status:
 * 0 ok, 1 runtime failure (Redis unreachable...), 2 usage or config error,
 * always with one line on stderr saying which.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "agg.h"
#include "archive.h"
#include "audit.h"
#include "cfg.h"
#include "clock.h"
#include "consents.h"
#include "forget.h"
#include "log.h"
#include "purge.h"
#include "report.h"
#include "auth.h"
#include "serve.h"

#define MAX_OVERRIDES 64

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char usage_text[] =
    "usage: fairstat-aggregator -c FILE [-o section.key=value]... [-v] COMMAND\n"
    "  run [--once]                       fold queued hits into aggregates (daemon)\n"
    "  report --site S [--from YYYY-MM-DD] [--to YYYY-MM-DD | --period day|7d|30d|month|12mo]\n"
    "         [--format table|json|csv|html] [--limit N] [--other]\n"
    "  purge [--dry-run] [--as-of RFC3339]   enforce the retention limits\n"
    "  archive [--verify] [--as-of RFC3339]  move old consent receipts to the encrypted archive\n"
    "                                     (--verify: check every archive file and chain)\n"
    "  forget --receipt ID [--site S]     erase a visitor's buffered hits\n"
    "  consents --site S [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--receipt ID]\n"
    "         [--format json|csv]          export consent receipts for an auditor\n"
    "  audit [--site S] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--format table|json]\n"
    "                                     what was purged and erased (counts only)\n"
    "  serve                              the dashboard and Stats API on serve.listen\n"
    "  token [--site S]                   print a new access token and its serve.tokens entry\n";

static int usage(const char *fmt, const char *arg)
{
    fputs("fairstat-aggregator: ", stderr);
    fprintf(stderr, fmt, arg ? arg : "");
    fputs(" (see --help)\n", stderr);
    return 2;
}

/* The value of option argv[*i] ("--opt VALUE" or "--opt=VALUE"); NULL when missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

static int is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

/* Grow the heap by BYTES once and ask for transparent huge pages on it, then
 * give it back to malloc, which keeps it (below M_TRIM_THRESHOLD) as the
 * room a batch's tables and replies are carved from. A batch touches tens of
 * megabytes at random (the fold's hash tables): in 2 MiB pages that is a few
 * dozen faults and TLB entries instead of twelve thousand. Advice only: where
 * THP is off ("never") nothing changes. */
static void heap_on_huge_pages(size_t bytes)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)bytes;    /* ASan's allocator quarantines the block: nothing would reuse it */
#else
    const uintptr_t huge = 2u << 20;
    char *p = malloc(bytes);
    if (!p) return;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(huge - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    free(p);
#endif
}

static int cmd_run(struct agg *a, int argc, char **argv)
{
    int once = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) once = 1;
        else return usage("run: unknown option '%s'", argv[i]);
    }
    /* A broken archive setting is a config error at start, not a failure
     * on every timer. */
    struct archive *ar;
    char err[ARCHIVE_ERRLEN];
    if (archive_from_cfg(a->cfg, &ar, err, sizeof err) < 0) {
        fprintf(stderr, "fairstat-aggregator: %s\n", err);
        return 2;
    }
    archive_free(ar);
    /* A batch allocates and frees the same few megabytes over and over (the
     * range's replies, the fold's tables): keep them in the heap rather than
     * hand them back to the kernel and fault them in again, which cost a
     * tenth of the drain's CPU. The heap stays at the largest batch's size. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    heap_on_huge_pages(62 << 20);
    return agg_run(a, once);
}

static int cmd_report(struct agg *a, int argc, char **argv)
{
    struct report_opts o = {.limit = 10, .format = REPORT_TABLE, .from_day = -1, .to_day = -1};
    const char *period = NULL;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (is_opt(argv[i], "--site")) {
            if (!(v = opt_value(argc, argv, &i, "--site"))) return usage("report: --site needs a value%s", "");
            o.site = v;
        } else if (is_opt(argv[i], "--from") || is_opt(argv[i], "--to")) {
            int from = is_opt(argv[i], "--from");
            if (!(v = opt_value(argc, argv, &i, from ? "--from" : "--to")) ||
                clock_parse_day(v, from ? &o.from_day : &o.to_day) < 0)
                return usage("report: --from/--to need a date YYYY-MM-DD, got '%s'", v ? v : "");
        } else if (is_opt(argv[i], "--period")) {
            int64_t f, t;
            if (!(v = opt_value(argc, argv, &i, "--period")) || report_period(v, 0, &f, &t) < 0)
                return usage("report: --period must be day, 7d, 30d, month or 12mo, got '%s'", v ? v : "");
            period = v;
        } else if (is_opt(argv[i], "--format")) {
            if (!(v = opt_value(argc, argv, &i, "--format")) || report_parse_format(v, &o.format) < 0)
                return usage("report: --format must be table, json, csv or html, got '%s'", v ? v : "");
        } else if (is_opt(argv[i], "--limit")) {
            char *end;
            v = opt_value(argc, argv, &i, "--limit");
            long n = v ? strtol(v, &end, 10) : -1;
            if (!v || *end || n < 1 || n > 100000)
                return usage("report: --limit must be a number 1..100000, got '%s'", v ? v : "");
            o.limit = (int)n;
        } else if (strcmp(argv[i], "--other") == 0) {
            o.other = 1;
        } else {
            return usage("report: unknown option '%s'", argv[i]);
        }
    }
    if (!o.site) return usage("report: --site S is required%s", "");
    if (period && (o.from_day >= 0 || o.to_day >= 0))
        return usage("report: --period or --from/--to, not both%s", "");
    struct agg_site *s = agg_site(a, o.site);
    if (!s) return usage("report: bad site name '%s'", o.site);
    int64_t today = clock_local_days(s->zone, clock_now_ms());
    if (period) report_period(period, today, &o.from_day, &o.to_day);
    if (o.to_day < 0) o.to_day = o.from_day >= 0 && o.from_day > today ? o.from_day : today;
    if (o.from_day < 0) o.from_day = o.to_day < today ? o.to_day : today;
    if (o.from_day > o.to_day) return usage("report: --from is after --to%s", "");
    if (o.to_day - o.from_day >= REPORT_MAX_DAYS) return usage("report: range longer than 10 years%s", "");
    json_t *r = report_build(a, &o);
    if (!r) {
        fprintf(stderr, "fairstat-aggregator: report: %s\n", a->err);
        return 1;
    }
    if (o.format == REPORT_HTML && report_add_previous(a, &o, r) < 0) {
        fprintf(stderr, "fairstat-aggregator: report: %s\n", a->err);
        json_decref(r);
        return 1;
    }
    int rc = report_print(r, o.format, stdout);
    json_decref(r);
    if (rc < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "fairstat-aggregator: report: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static int cmd_purge(struct agg *a, int argc, char **argv)
{
    int dry = 0;
    int64_t as_of = clock_now_ms();
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry = 1;
        } else if (is_opt(argv[i], "--as-of")) {
            if (!(v = opt_value(argc, argv, &i, "--as-of")) || clock_parse_rfc3339(v, &as_of) < 0)
                return usage("purge: --as-of needs an RFC 3339 time (2024-05-01T00:00:00Z), got '%s'", v ? v : "");
        } else {
            return usage("purge: unknown option '%s'", argv[i]);
        }
    }
    if (agg_discover(a) < 0 || purge_run(a, as_of, dry, stdout) < 0) {
        fprintf(stderr, "fairstat-aggregator: purge: %s\n", a->err);
        return 1;
    }
    return 0;
}

static int cmd_archive(struct agg *a, int argc, char **argv)
{
    int verify = 0;
    int64_t as_of = clock_now_ms();
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--verify") == 0) {
            verify = 1;
        } else if (is_opt(argv[i], "--as-of")) {
            if (!(v = opt_value(argc, argv, &i, "--as-of")) || clock_parse_rfc3339(v, &as_of) < 0)
                return usage("archive: --as-of needs an RFC 3339 time (2024-05-01T00:00:00Z), got '%s'", v ? v : "");
        } else {
            return usage("archive: unknown option '%s'", argv[i]);
        }
    }
    int rc = verify ? archive_run_verify(a, stdout) : agg_discover(a) < 0 ? -1 : archive_run(a, as_of, stdout);
    if (rc < 0) {
        fprintf(stderr, "fairstat-aggregator: archive: %s\n", a->err);
        return 1;
    }
    return 0;
}

static int cmd_forget(struct agg *a, int argc, char **argv)
{
    const char *receipt = NULL, *site = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_opt(argv[i], "--receipt")) {
            if (!(receipt = opt_value(argc, argv, &i, "--receipt"))) return usage("forget: --receipt needs a value%s", "");
        } else if (is_opt(argv[i], "--site")) {
            if (!(site = opt_value(argc, argv, &i, "--site"))) return usage("forget: --site needs a value%s", "");
        } else {
            return usage("forget: unknown option '%s'", argv[i]);
        }
    }
    if (!receipt) return usage("forget: --receipt ID is required%s", "");
    if (!forget_receipt_ok(receipt)) return usage("forget: not a receipt id%s", "");
    if (agg_discover(a) < 0 || (site && !agg_site(a, site)) || forget_run(a, receipt, site, stdout) < 0) {
        fprintf(stderr, "fairstat-aggregator: forget: %s\n", a->err);
        return 1;
    }
    return 0;
}

/* --from/--to of consents and audit: a day each, inclusive. 0, or 2 after a
 * usage line. */
static int day_option(const char *cmd, int argc, char **argv, int *i, int64_t *from, int64_t *to)
{
    int is_from = is_opt(argv[*i], "--from");
    const char *v = opt_value(argc, argv, i, is_from ? "--from" : "--to");
    if (!v || clock_parse_day(v, is_from ? from : to) < 0) {
        fprintf(stderr, "fairstat-aggregator: %s: --from/--to need a date YYYY-MM-DD, got '%s' (see --help)\n",
                cmd, v ? v : "");
        return 2;
    }
    return 0;
}

static int cmd_consents(struct agg *a, int argc, char **argv)
{
    struct consents_opts o = {.from_day = -1, .to_day = -1, .format = CONSENTS_JSON};
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (is_opt(argv[i], "--site")) {
            if (!(o.site = opt_value(argc, argv, &i, "--site"))) return usage("consents: --site needs a value%s", "");
        } else if (is_opt(argv[i], "--from") || is_opt(argv[i], "--to")) {
            if (day_option("consents", argc, argv, &i, &o.from_day, &o.to_day)) return 2;
        } else if (is_opt(argv[i], "--receipt")) {
            if (!(o.receipt = opt_value(argc, argv, &i, "--receipt")) || !forget_receipt_ok(o.receipt))
                return usage("consents: --receipt needs a receipt id%s", "");
        } else if (is_opt(argv[i], "--format")) {
            v = opt_value(argc, argv, &i, "--format");
            if (v && strcmp(v, "json") == 0) o.format = CONSENTS_JSON;
            else if (v && strcmp(v, "csv") == 0) o.format = CONSENTS_CSV;
            else return usage("consents: --format must be json or csv, got '%s'", v ? v : "");
        } else {
            return usage("consents: unknown option '%s'", argv[i]);
        }
    }
    if (!o.site) return usage("consents: --site S is required%s", "");
    if (o.from_day >= 0 && o.to_day >= 0 && o.from_day > o.to_day)
        return usage("consents: --from is after --to%s", "");
    if (consents_run(a, &o, stdout) < 0) {
        fprintf(stderr, "fairstat-aggregator: consents: %s\n", a->err);
        return 1;
    }
    return 0;
}

static int cmd_audit(struct agg *a, int argc, char **argv)
{
    struct audit_opts o = {.from_day = -1, .to_day = -1, .format = AUDIT_TABLE};
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (is_opt(argv[i], "--site")) {
            if (!(o.site = opt_value(argc, argv, &i, "--site"))) return usage("audit: --site needs a value%s", "");
        } else if (is_opt(argv[i], "--from") || is_opt(argv[i], "--to")) {
            if (day_option("audit", argc, argv, &i, &o.from_day, &o.to_day)) return 2;
        } else if (is_opt(argv[i], "--format")) {
            v = opt_value(argc, argv, &i, "--format");
            if (v && strcmp(v, "table") == 0) o.format = AUDIT_TABLE;
            else if (v && strcmp(v, "json") == 0) o.format = AUDIT_JSON;
            else return usage("audit: --format must be table or json, got '%s'", v ? v : "");
        } else {
            return usage("audit: unknown option '%s'", argv[i]);
        }
    }
    if (o.from_day >= 0 && o.to_day >= 0 && o.from_day > o.to_day)
        return usage("audit: --from is after --to%s", "");
    if (audit_run(a, &o, stdout) < 0) {
        fprintf(stderr, "fairstat-aggregator: audit: %s\n", a->err);
        return 1;
    }
    return 0;
}

static int cmd_serve(struct agg *a, int argc, char **argv)
{
    if (argc > 0) return usage("serve: unknown option '%s'", argv[0]);
    return serve_run(a);
}

/* The token goes to stdout once and is stored nowhere: only its hash goes
 * into the config. */
static int cmd_token(struct agg *a, int argc, char **argv)
{
    (void)a;
    const char *site = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_opt(argv[i], "--site")) {
            if (!(site = opt_value(argc, argv, &i, "--site")) || !*site || strpbrk(site, ", \t@"))
                return usage("token: --site needs a site name%s", "");
        } else {
            return usage("token: unknown option '%s'", argv[i]);
        }
    }
    char token[64], sha[65];
    if (auth_token_generate(token, sha) < 0) {
        fprintf(stderr, "fairstat-aggregator: token: no randomness from the OS\n");
        return 1;
    }
    printf("%s\ntokens = sha256:%s%s%s\n", token, sha, site ? "@" : "", site ? site : "");
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    char *overrides[MAX_OVERRIDES];
    size_t n_over = 0;
    int opt;
    log_set_name("fairstat-aggregator");
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "+c:o:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 'o':
            if (n_over == MAX_OVERRIDES) return usage("too many -o options%s", "");
            overrides[n_over++] = optarg;
            break;
        case 'v': log_set_level(LOG_DEBUG); break;
        case 'h': fputs(usage_text, stdout); return 0;
        default: return usage("bad option%s", "");
        }
    }
    if (!conf) return usage("-c FILE is required%s", "");
    if (optind >= argc) return usage("a command is required: run, report, purge, archive, forget, consents, audit, serve or token%s", "");
    const char *cmd = argv[optind];
    int (*fn)(struct agg *, int, char **) = NULL;
    if (strcmp(cmd, "run") == 0) fn = cmd_run;
    else if (strcmp(cmd, "report") == 0) fn = cmd_report;
    else if (strcmp(cmd, "purge") == 0) fn = cmd_purge;
    else if (strcmp(cmd, "forget") == 0) fn = cmd_forget;
    else if (strcmp(cmd, "archive") == 0) fn = cmd_archive;
    else if (strcmp(cmd, "consents") == 0) fn = cmd_consents;
    else if (strcmp(cmd, "audit") == 0) fn = cmd_audit;
    else if (strcmp(cmd, "serve") == 0) fn = cmd_serve;
    else if (strcmp(cmd, "token") == 0) fn = cmd_token;
    else return usage("unknown command '%s' (run, report, purge, archive, forget, consents, audit, serve, token)", cmd);

    char err[512];
    struct cfg *cfg = cfg_load(conf, overrides, n_over, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "fairstat-aggregator: %s\n", err);
        return 2;
    }
    struct agg *a = agg_new(cfg, err, sizeof err);
    if (!a) {
        fprintf(stderr, "fairstat-aggregator: %s\n", err);
        cfg_free(cfg);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->stop = &stop_flag;

    int rc = fn(a, argc - optind - 1, argv + optind + 1);
    agg_free(a);
    cfg_free(cfg);
    return rc;
}
