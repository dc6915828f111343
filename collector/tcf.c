/* tcf.c -- the IAB TCF v2.2 core segment decoder (tcf.h).
 *
 * Written from the TCF v2 "Consent string and vendor list formats"
 * specification and checked against strings made by the official encoder
 * (@iabtechlabtcf/core, tests/data/tcf/strings.json). Bits are read straight
 * from the base64url characters, six per character, most significant first;
 * the reader remembers a short read instead of failing at each call, and
 * the decoder checks it once per section.
 */
#include "tcf.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* Bit reader                                                                */
/* ------------------------------------------------------------------------ */

static signed char b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z') return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9') return (signed char)(c - '0' + 52);
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

struct bits {
    const char *s;              /* the core segment, every char checked */
    size_t nbits, pos;
    int short_read;
};

/* The next n (<= 36) bits as an unsigned number; 0 and short_read set when
 * the segment ends first. */
static uint64_t take(struct bits *b, unsigned n)
{
    if (b->short_read || n > b->nbits - b->pos) {
        b->short_read = 1;
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++, b->pos++) {
        unsigned ch = (unsigned)b64_value((unsigned char)b->s[b->pos / 6]);
        v = v << 1 | ((ch >> (5 - b->pos % 6)) & 1);
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* Fields                                                                    */
/* ------------------------------------------------------------------------ */

static int letters(struct bits *b, char out[3])
{
    unsigned hi = (unsigned)take(b, 6), lo = (unsigned)take(b, 6);
    if (b->short_read) return TCF_TRUNCATED;
    if (hi > 25 || lo > 25) return TCF_BAD_FIELD;
    out[0] = (char)('A' + hi);
    out[1] = (char)('A' + lo);
    out[2] = '\0';
    return TCF_OK;
}

/* A bitfield of n flags into mask, bit i-1 for flag i. */
static uint32_t flags(struct bits *b, unsigned n)
{
    uint32_t v = (uint32_t)take(b, n), mask = 0;
    for (unsigned i = 0; i < n; i++)
        if (v >> (n - 1 - i) & 1) mask |= 1u << i;
    return mask;
}

static void set_vendor(uint8_t *set, unsigned id)
{
    set[id / 8] |= (uint8_t)(1u << (id % 8));
}

/* NumEntries and its entries; each id within [1, max], ascending and
 * disjoint. Sets the ids in set when it is not NULL. */
static int range_list(struct bits *b, unsigned max, uint8_t *set)
{
    unsigned entries = (unsigned)take(b, 12), last = 0;
    for (unsigned e = 0; e < entries; e++) {
        int is_range = (int)take(b, 1);
        unsigned first = (unsigned)take(b, 16);
        unsigned end = is_range ? (unsigned)take(b, 16) : first;
        if (b->short_read) return TCF_TRUNCATED;
        if (first == 0 || first <= last || end < first || end > max) return TCF_BAD_VENDORS;
        if (set)
            for (unsigned id = first; id <= end; id++) set_vendor(set, id);
        last = end;
    }
    return b->short_read ? TCF_TRUNCATED : TCF_OK;
}

/* A vendor section (consents or legitimate interests). */
static int vendor_section(struct bits *b, uint8_t *set, int *max_out, int *ranged)
{
    unsigned max = (unsigned)take(b, 16);
    int is_range = (int)take(b, 1);
    if (b->short_read) return TCF_TRUNCATED;
    if (max > TCF_VENDOR_MAX) return TCF_BAD_VENDORS;
    *max_out = (int)max;
    if (ranged) *ranged = is_range;
    if (is_range) return range_list(b, max, set);
    if (max > b->nbits - b->pos) return TCF_TRUNCATED;
    for (unsigned id = 1; id <= max; id++)
        if (take(b, 1)) set_vendor(set, id);
    return TCF_OK;
}

/* Publisher restrictions: checked for shape, not kept. */
static int restrictions(struct bits *b)
{
    unsigned n = (unsigned)take(b, 12);
    for (unsigned i = 0; i < n; i++) {
        take(b, 6);                                 /* purpose id */
        unsigned type = (unsigned)take(b, 2);
        if (b->short_read) return TCF_TRUNCATED;
        if (type == 3) return TCF_BAD_FIELD;        /* undefined */
        int rc = range_list(b, 0xffff, NULL);
        if (rc != TCF_OK) return rc;
    }
    return b->short_read ? TCF_TRUNCATED : TCF_OK;
}

static int core(struct bits *b, struct tcf *t)
{
    int rc;
    t->version = (int)take(b, 6);
    if (b->short_read) return TCF_TRUNCATED;
    if (t->version != 2) return TCF_BAD_VERSION;
    t->created_ds = (int64_t)take(b, 36);
    t->updated_ds = (int64_t)take(b, 36);
    t->cmp_id = (int)take(b, 12);
    t->cmp_version = (int)take(b, 12);
    t->consent_screen = (int)take(b, 6);
    if ((rc = letters(b, t->consent_language)) != TCF_OK) return rc;
    t->vendor_list_version = (int)take(b, 12);
    t->policy_version = (int)take(b, 6);
    t->service_specific = (int)take(b, 1);
    t->non_standard_texts = (int)take(b, 1);
    t->special_features = flags(b, 12);
    t->purposes = flags(b, TCF_PURPOSES);
    t->purposes_li = flags(b, TCF_PURPOSES);
    t->purpose_one_treatment = (int)take(b, 1);
    if ((rc = letters(b, t->publisher_cc)) != TCF_OK) return rc;
    if ((rc = vendor_section(b, t->vendors, &t->max_vendor, &t->vendor_ranges)) != TCF_OK ||
        (rc = vendor_section(b, t->vendors_li, &t->max_vendor_li, NULL)) != TCF_OK)
        return rc;
    return restrictions(b);
}

int tcf_decode(const char *s, size_t len, struct tcf *out)
{
    memset(out, 0, sizeof *out);
    if (!s || len == 0) return TCF_EMPTY;
    if (len > TCF_STRING_MAX) return TCF_TOO_LONG;
    size_t core_len = len, seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (i == seg) return TCF_BAD_CHAR;      /* an empty segment */
            if (core_len == len) core_len = i;
            seg = i + 1;
        } else if (b64_value((unsigned char)s[i]) < 0) {
            return TCF_BAD_CHAR;
        }
    }
    if (seg == len) return TCF_BAD_CHAR;            /* a trailing '.' */
    struct bits b = {.s = s, .nbits = core_len * 6};
    return core(&b, out);
}

const char *tcf_strerror(int status)
{
    switch (status) {
    case TCF_OK: return "ok";
    case TCF_EMPTY: return "no TC string";
    case TCF_TOO_LONG: return "TC string too long";
    case TCF_BAD_CHAR: return "TC string is not base64url segments";
    case TCF_TRUNCATED: return "TC string ends early";
    case TCF_BAD_VERSION: return "TC string is not version 2";
    case TCF_BAD_FIELD: return "TC string has a bad field";
    case TCF_BAD_VENDORS: return "TC string has bad vendor entries";
    default: return "bad TC string";
    }
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

static int has_flag(uint32_t mask, int i)
{
    return i >= 1 && i <= TCF_PURPOSES && (mask >> (i - 1) & 1);
}

static int has_vendor(const uint8_t *set, int max, int id)
{
    return id >= 1 && id <= max && (set[id / 8] >> (id % 8) & 1);
}

int tcf_purpose_consent(const struct tcf *t, int purpose) { return has_flag(t->purposes, purpose); }
int tcf_purpose_li(const struct tcf *t, int purpose) { return has_flag(t->purposes_li, purpose); }
int tcf_vendor_consent(const struct tcf *t, int vendor) { return has_vendor(t->vendors, t->max_vendor, vendor); }
int tcf_vendor_li(const struct tcf *t, int vendor) { return has_vendor(t->vendors_li, t->max_vendor_li, vendor); }
