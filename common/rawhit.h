/* rawhit.h -- a raw hit as the collector stores it in fs:{S}:hits.
 *
 * One stream entry holds one field, RAWHIT_FIELD, whose value packs the whole
 * hit. Every entry then has the same field list, which Redis keeps once per
 * stream node, and the value carries no field names: a hit costs its data plus
 * a few bytes. Layout (integers little-endian):
 *
 *   0      bits 0-2: flags (RAWHIT_F_VISITOR, RAWHIT_F_TIME, RAWHIT_F_REPLAYED);
 *          bits 3-5: device (enum rawhit_device); bits 6-7: RAWHIT_VERSION
 *   1..6   hit id (48 bits): unique per accepted hit, so that a hit written
 *          twice (a timed-out write that did land, then its replay) is
 *          counted once
 *   7..14  visitor (8 bytes: the visitor hash of visitor.h, binary), zero when
 *          there is none; at a fixed offset so the erase script finds it
 *   then   a varint: which optional strings follow (bit i: string
 *          RAWHIT_REFERRER + i; the common ones first, so it is one byte)
 *          and bit RAWHIT_P_ENGAGEMENT: an engagement event (below)
 *   [time] varint, ms since the epoch, when RAWHIT_F_TIME (else the time is
 *          the stream id's: the collector stores a hit when it takes it)
 *   [eng]  with RAWHIT_P_ENGAGEMENT: two varints, the scroll depth (percent,
 *          0..RAWHIT_SCROLL_MAX) and the engaged time (ms, 0..RAWHIT_ENGAGED_MAX_MS)
 *          of a Plausible "engagement" event; such a hit is neither a
 *          pageview nor a custom event, whatever its name
 *   then path, browser, os and each optional string present, in enum order,
 *   each as a varint length and its bytes.
 *
 * No field ever holds an IP address, a full User-Agent or a receipt id.
 * Decoding takes (buf, len), never reads past len, and points into buf.
 */
#ifndef FAIRSTAT_RAWHIT_H
#define FAIRSTAT_RAWHIT_H

#include <stddef.h>
#include <stdint.h>

#define RAWHIT_FIELD "h"
#define RAWHIT_VERSION 1            /* bits 6-7 of byte 0 */
#define RAWHIT_ID_LEN 6
#define RAWHIT_ID_MASK 0xffffffffffffULL
#define RAWHIT_VISITOR_LEN 8
#define RAWHIT_VISITOR_AT 7         /* offset of the visitor bytes */
#define RAWHIT_HEAD_LEN 15          /* before the varints */
#define RAWHIT_MAX 4096             /* no encoded hit is longer */

/* Bit of the "which optional strings follow" varint past the strings' bits:
 * the engagement numbers follow. Hits without it decode as before. */
#define RAWHIT_P_ENGAGEMENT (1u << 10)
#define RAWHIT_SCROLL_MAX 100                   /* percent */
#define RAWHIT_ENGAGED_MAX_MS (30 * 60 * 1000)  /* an engagement event's time, at most */

enum {
    RAWHIT_F_VISITOR = 1,
    RAWHIT_F_TIME = 2,
    RAWHIT_F_REPLAYED = 4,      /* written again from the spool (issue: reliability) */
};

enum rawhit_device { RAWHIT_DEVICE_UNKNOWN, RAWHIT_DEVICE_DESKTOP, RAWHIT_DEVICE_MOBILE,
                     RAWHIT_DEVICE_TABLET, RAWHIT_DEVICE_OTHER, RAWHIT_NDEVICES };

/* The strings of a hit. The first three are always present (maybe empty);
 * the optional ones follow, the most frequent first. */
enum rawhit_str {
    RAWHIT_PATH, RAWHIT_BROWSER, RAWHIT_OS,
    RAWHIT_REFERRER, RAWHIT_COUNTRY, RAWHIT_REGION,
    RAWHIT_NAME,                /* empty: "pageview" */
    RAWHIT_PROPS, RAWHIT_UTM_SOURCE, RAWHIT_UTM_MEDIUM, RAWHIT_UTM_CAMPAIGN,
    RAWHIT_UTM_TERM, RAWHIT_UTM_CONTENT,
    RAWHIT_NSTR
};
#define RAWHIT_FIRST_OPTIONAL RAWHIT_REFERRER

struct rawhit {
    uint64_t id;                /* 48 bits are kept */
    unsigned flags;             /* RAWHIT_F_* */
    enum rawhit_device device;
    unsigned char visitor[RAWHIT_VISITOR_LEN];
    int64_t t_ms;               /* with RAWHIT_F_TIME */
    const char *s[RAWHIT_NSTR]; /* NULL or "" = empty; not NUL-terminated when decoded */
    size_t n[RAWHIT_NSTR];
    int engagement;             /* an engagement event: the two numbers below */
    unsigned scroll_depth;      /* percent, <= RAWHIT_SCROLL_MAX */
    uint32_t engaged_ms;        /* <= RAWHIT_ENGAGED_MAX_MS */
};

/* Sets s[i] and n[i] from a NUL-terminated string (NULL = empty). */
void rawhit_set(struct rawhit *h, enum rawhit_str i, const char *s);

/* Packs h into buf. The length, or 0 when it does not fit in cap or h's
 * engagement numbers are out of range. */
size_t rawhit_encode(const struct rawhit *h, char *buf, size_t cap);

/* Unpacks buf; h's strings point into buf. 0, or -1 when buf is not a raw
 * hit of this version (truncated, trailing bytes, unknown flags, engagement
 * numbers out of range). */
int rawhit_decode(const char *buf, size_t len, struct rawhit *h);

/* "desktop", "mobile", "tablet", "other" <-> the enum; unknown strings and
 * values map to RAWHIT_DEVICE_UNKNOWN / "". */
enum rawhit_device rawhit_device_of(const char *name);
const char *rawhit_device_name(enum rawhit_device d);

/* The visitor hash of visitor.h (16 hex) <-> its 8 bytes. 0, or -1 when hex
 * is not 16 lower-case hex digits. */
int rawhit_visitor_from_hex(const char *hex, size_t len, unsigned char out[RAWHIT_VISITOR_LEN]);
void rawhit_visitor_to_hex(const unsigned char v[RAWHIT_VISITOR_LEN], char out[2 * RAWHIT_VISITOR_LEN + 1]);

#endif
