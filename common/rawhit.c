/* rawhit.c -- packs and unpacks the raw hit entry (layout in rawhit.h). */
#include "rawhit.h"

#include <string.h>

static const char *const device_names[RAWHIT_NDEVICES] = {"", "desktop", "mobile", "tablet", "other"};

void rawhit_set(struct rawhit *h, enum rawhit_str i, const char *s)
{
    h->s[i] = s ? s : "";
    h->n[i] = s ? strlen(s) : 0;
}

static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* 0, or -1 when the varint runs past end, over 64 bits, or is not in its
 * shortest form (one value, one encoding). */
static inline int get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    if (*p < end && **p < 0x80) {      /* one byte: lengths, mostly */
        *v = *(*p)++;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end) return -1;
        unsigned char b = *(*p)++;
        if (shift == 63 && b > 1) return -1;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0) return -1;
            *v = x;
            return 0;
        }
    }
    return -1;
}

#define FLAGS_ALL (RAWHIT_F_VISITOR | RAWHIT_F_TIME | RAWHIT_F_REPLAYED)
#define NOPTIONAL (RAWHIT_NSTR - RAWHIT_FIRST_OPTIONAL)
_Static_assert(RAWHIT_P_ENGAGEMENT == 1u << NOPTIONAL, "the engagement bit follows the strings' bits");

static int engagement_ok(uint64_t scroll, uint64_t engaged)
{
    return scroll <= RAWHIT_SCROLL_MAX && engaged <= RAWHIT_ENGAGED_MAX_MS;
}

size_t rawhit_encode(const struct rawhit *h, char *buf, size_t cap)
{
    unsigned char *p = (unsigned char *)buf;
    /* The worst case of the fixed part: head, two 10-byte varints. */
    if (cap < RAWHIT_HEAD_LEN + 40) return 0;
    if (h->engagement && !engagement_ok(h->scroll_depth, h->engaged_ms)) return 0;
    unsigned flags = h->flags & FLAGS_ALL;
    unsigned device = h->device < RAWHIT_NDEVICES ? (unsigned)h->device : 0;
    p[0] = (unsigned char)(flags | device << 3 | RAWHIT_VERSION << 6);
    for (int i = 0; i < RAWHIT_ID_LEN; i++) p[1 + i] = (unsigned char)(h->id >> (8 * i));
    if (flags & RAWHIT_F_VISITOR) memcpy(p + RAWHIT_VISITOR_AT, h->visitor, RAWHIT_VISITOR_LEN);
    else memset(p + RAWHIT_VISITOR_AT, 0, RAWHIT_VISITOR_LEN);
    unsigned present = 0;
    for (int i = RAWHIT_FIRST_OPTIONAL; i < RAWHIT_NSTR; i++)
        if (h->s[i] && h->n[i]) present |= 1u << (i - RAWHIT_FIRST_OPTIONAL);
    if (h->engagement) present |= RAWHIT_P_ENGAGEMENT;
    size_t len = RAWHIT_HEAD_LEN;
    len += put_varint(p + len, present);
    if (flags & RAWHIT_F_TIME) len += put_varint(p + len, (uint64_t)h->t_ms);
    if (h->engagement) {
        len += put_varint(p + len, h->scroll_depth);
        len += put_varint(p + len, h->engaged_ms);
    }
    for (int i = 0; i < RAWHIT_NSTR; i++) {
        size_t n = h->s[i] ? h->n[i] : 0;
        if (i >= RAWHIT_FIRST_OPTIONAL && !n) continue;
        if (len + 10 + n > cap) return 0;
        len += put_varint(p + len, n);
        if (n) memcpy(p + len, h->s[i], n);
        len += n;
    }
    return len;
}

int rawhit_decode(const char *buf, size_t len, struct rawhit *h)
{
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    if (len < RAWHIT_HEAD_LEN + 1 || p[0] >> 6 != RAWHIT_VERSION) return -1;
    unsigned flags = p[0] & 7, device = (p[0] >> 3) & 7;
    if (device >= RAWHIT_NDEVICES) return -1;
    h->flags = flags;
    h->device = (enum rawhit_device)device;
    h->id = 0;
    for (int i = 0; i < RAWHIT_ID_LEN; i++) h->id |= (uint64_t)p[1 + i] << (8 * i);
    memcpy(h->visitor, p + RAWHIT_VISITOR_AT, RAWHIT_VISITOR_LEN);
    if (!(flags & RAWHIT_F_VISITOR)) {
        static const unsigned char none[RAWHIT_VISITOR_LEN];
        if (memcmp(h->visitor, none, sizeof none) != 0) return -1;
    }
    p += RAWHIT_HEAD_LEN;
    uint64_t present;
    if (get_varint(&p, end, &present) < 0 || present >> (NOPTIONAL + 1)) return -1;
    h->t_ms = 0;
    if (flags & RAWHIT_F_TIME) {
        uint64_t t;
        if (get_varint(&p, end, &t) < 0 || t > INT64_MAX) return -1;
        h->t_ms = (int64_t)t;
    }
    h->engagement = (present & RAWHIT_P_ENGAGEMENT) != 0;
    h->scroll_depth = 0;
    h->engaged_ms = 0;
    if (h->engagement) {
        uint64_t sd, e;
        if (get_varint(&p, end, &sd) < 0 || get_varint(&p, end, &e) < 0 || !engagement_ok(sd, e))
            return -1;
        h->scroll_depth = (unsigned)sd;
        h->engaged_ms = (uint32_t)e;
    }
    for (int i = 0; i < RAWHIT_NSTR; i++) {
        h->s[i] = "";
        h->n[i] = 0;
        if (i >= RAWHIT_FIRST_OPTIONAL && !(present & (1u << (i - RAWHIT_FIRST_OPTIONAL)))) continue;
        uint64_t n;
        if (get_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p)) return -1;
        if (i >= RAWHIT_FIRST_OPTIONAL && n == 0) return -1;   /* present means not empty */
        h->s[i] = (const char *)p;
        h->n[i] = (size_t)n;
        p += n;
    }
    return p == end ? 0 : -1;
}

enum rawhit_device rawhit_device_of(const char *name)
{
    for (int d = 1; d < RAWHIT_NDEVICES; d++)
        if (strcmp(name, device_names[d]) == 0) return (enum rawhit_device)d;
    return RAWHIT_DEVICE_UNKNOWN;
}

const char *rawhit_device_name(enum rawhit_device d)
{
    return (unsigned)d < RAWHIT_NDEVICES ? device_names[d] : "";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int rawhit_visitor_from_hex(const char *hex, size_t len, unsigned char out[RAWHIT_VISITOR_LEN])
{
    if (len != 2 * RAWHIT_VISITOR_LEN) return -1;
    for (size_t i = 0; i < RAWHIT_VISITOR_LEN; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void rawhit_visitor_to_hex(const unsigned char v[RAWHIT_VISITOR_LEN], char out[2 * RAWHIT_VISITOR_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < RAWHIT_VISITOR_LEN; i++) {
        out[2 * i] = digits[v[i] >> 4];
        out[2 * i + 1] = digits[v[i] & 15];
    }
    out[2 * RAWHIT_VISITOR_LEN] = '\0';
}
