/* tcf.h -- decodes the core segment of an IAB TCF v2.2 TC string.
 *
 * A TC string is base64url (no padding) segments joined by '.'; the first
 * is the core segment, a bit string whose fields are, in order (bits):
 *   version 6, created 36, updated 36 (deciseconds since the epoch),
 *   CMP id 12, CMP version 12, consent screen 6, consent language 12
 *   (two letters, 6 bits each, A = 0), vendor list version 12, TCF policy
 *   version 6, isServiceSpecific 1, useNonStandardTexts 1, special feature
 *   opt-ins 12, purpose consents 24, purpose legitimate interests 24,
 *   purpose one treatment 1, publisher country code 12, vendor consents,
 *   vendor legitimate interests, publisher restrictions.
 * A vendor section is MaxVendorId 16, IsRangeEncoding 1, then either a
 * bitfield of MaxVendorId bits (bit i = vendor i + 1) or NumEntries 12 and
 * that many entries: IsARange 1, a vendor id 16, and the range's last id 16
 * when IsARange. Publisher restrictions are NumPubRestrictions 12, each a
 * purpose id 6, a restriction type 2 and a range list as above; they are
 * checked for shape and skipped. The segments after the first '.' (disclosed
 * vendors, publisher TC) are checked for their alphabet and ignored.
 *
 * The decoder is strict and bounded: it reads at most TCF_STRING_MAX bytes
 * and never past len, and refuses a version other than 2, letters outside
 * A-Z, a MaxVendorId over TCF_VENDOR_MAX, range entries that are empty, out
 * of order, overlapping or past MaxVendorId, and a string that ends before
 * its last field. The result is a plain struct the caller owns: no
 * allocation, nothing kept.
 */
#ifndef FAIRSTAT_TCF_H
#define FAIRSTAT_TCF_H

#include <stddef.h>
#include <stdint.h>

#define TCF_STRING_MAX 8192     /* bytes, all segments */
/* Highest vendor id we decode. The Global Vendor List's ids stay below
 * 1,500 (2024); a larger MaxVendorId is refused, so the bitsets below stay
 * 1 KB each. */
#define TCF_VENDOR_MAX 8191
#define TCF_PURPOSES 24

enum tcf_status {
    TCF_OK = 0,
    TCF_EMPTY,                  /* no string */
    TCF_TOO_LONG,               /* over TCF_STRING_MAX */
    TCF_BAD_CHAR,               /* not base64url, or an empty segment */
    TCF_TRUNCATED,              /* ends before its last field */
    TCF_BAD_VERSION,            /* not 2 */
    TCF_BAD_FIELD,              /* a letter outside A-Z, a restriction type 3 */
    TCF_BAD_VENDORS,            /* MaxVendorId too large, ranges out of order or bounds */
};

struct tcf {
    int version;
    int64_t created_ds, updated_ds;     /* deciseconds since the epoch */
    int cmp_id, cmp_version, consent_screen;
    char consent_language[3];           /* "EN" */
    int vendor_list_version, policy_version;
    int service_specific, non_standard_texts, purpose_one_treatment;
    uint32_t special_features;          /* bit i-1 = special feature i */
    uint32_t purposes;                  /* bit i-1 = purpose i consented */
    uint32_t purposes_li;               /* bit i-1 = purpose i on legitimate interest */
    char publisher_cc[3];               /* "DE" */
    int max_vendor, max_vendor_li;
    int vendor_ranges;                  /* vendor consents were range encoded */
    uint8_t vendors[(TCF_VENDOR_MAX + 8) / 8];      /* bit v = vendor v consented */
    uint8_t vendors_li[(TCF_VENDOR_MAX + 8) / 8];
};

/* Decodes s[0..len) into out (overwritten whatever the outcome). TCF_OK, or
 * the first reason it was refused. */
int tcf_decode(const char *s, size_t len, struct tcf *out);
const char *tcf_strerror(int status);

/* 1 when granted, 0 otherwise (also for ids out of range). */
int tcf_purpose_consent(const struct tcf *t, int purpose);
int tcf_purpose_li(const struct tcf *t, int purpose);
int tcf_vendor_consent(const struct tcf *t, int vendor);
int tcf_vendor_li(const struct tcf *t, int vendor);

#endif
