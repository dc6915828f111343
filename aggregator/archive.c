/* archive.c -- the encrypted, chained receipt archive (archive.h).
 *
 * File: the magic "FSARC1\n\0", then frames: type (1 byte), length (4 bytes,
 * big-endian), payload. 'R' is a record: key id length (1), key id, key
 * check (8), nonce (12), ciphertext, GCM tag (16). 'H' is a head, 'P' (in
 * SITE.purged only) a purge marker: JSON text then its HMAC-SHA256 (32).
 * A record's hash is the SHA-256 of its whole frame; a head's hash the
 * SHA-256 of its payload.
 *
 * Reading is two passes per file: the first walks frames without
 * decrypting (lengths, record hashes, heads: MAC, count, last hash, the
 * previous file's head), the second decrypts the records the last head
 * seals. Verify runs both on every file; consents_read() decrypts only the
 * files of its months, but checks every head.
 */
#include "archive.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "agg.h"
#include "cfg.h"
#include "clock.h"
#include "keys.h"
#include "log.h"

#define MAGIC "FSARC1\n"                /* 8 bytes with its NUL */
#define MAGIC_LEN 8
#define FRAME_MAX (1u << 20)            /* a record or head is far smaller */
#define NONCE_LEN 12
#define TAG_LEN 16
#define CHECK_LEN 8
#define HASH_LEN 32
#define SUFFIX ".fsa"
#define MARKER_SUFFIX ".purged"
#define NAME_MAX_LEN 400
#define PAGE 1000

struct archive_key {
    char id[ARCHIVE_KEYID_MAX + 1];
    unsigned char enc[32];              /* AES-256-GCM key */
    unsigned char mac[32];              /* HMAC(enc, "fairstat-archive-head") */
    unsigned char check[32];            /* HMAC(enc, "fairstat-archive-keycheck") */
};

/* The file this process sealed last, as it left it: the next batch of the
 * same site appends to it without reading the site's files again (a run
 * moves receipts in batches of PAGE). Trusted only while the file is the
 * site's newest and has the size it had. */
struct archive_tail {
    int valid;
    char site[NAME_MAX_LEN], name[NAME_MAX_LEN];
    off_t size;
    uint64_t records;
    unsigned char last[32], prev_file[32];
    char last_id[48];
    int64_t newest_ms;
};

struct archive {
    char *dir;
    struct archive_key keys[ARCHIVE_MAX_KEYS];
    size_t nkeys;                       /* keys[0] writes */
    struct archive_tail tail;
    char err[ARCHIVE_ERRLEN];
};

static const unsigned char zero_hash[HASH_LEN];

static int fail(struct archive *ar, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct archive *ar, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ar->err, sizeof ar->err, fmt, ap);
    va_end(ap);
    return -1;
}

const char *archive_error(const struct archive *ar)
{
    return ar->err;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

static void derive(const unsigned char key[32], const char *label, unsigned char out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)label, strlen(label), out, &n);
}

static int keyid_ok(const char *s, size_t n)
{
    if (n == 0 || n > ARCHIVE_KEYID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", s[i]) || !s[i])
            return 0;
    return 1;
}

/* One line "KEYID:BASE64" into k. 0, or -1 with why. */
static int parse_key_line(char *line, struct archive_key *k, const char **why)
{
    char *colon = strchr(line, ':');
    if (!colon || !keyid_ok(line, (size_t)(colon - line))) {
        *why = "a line must be KEYID:BASE64 (key id of letters, digits, . _ -, at most 32)";
        return -1;
    }
    *colon = '\0';
    const char *b64 = colon + 1;
    size_t n = strlen(b64);
    unsigned char raw[64];
    if (n != 44 || EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n) != 33 ||
        b64[43] != '=' || b64[42] == '=') {
        *why = "the key must be the base64 of exactly 32 bytes (openssl rand -base64 32)";
        return -1;
    }
    memcpy(k->id, line, (size_t)(colon - line) + 1);
    memcpy(k->enc, raw, 32);
    OPENSSL_cleanse(raw, sizeof raw);
    derive(k->enc, "fairstat-archive-head", k->mac);
    derive(k->enc, "fairstat-archive-keycheck", k->check);
    return 0;
}

static int load_keys(struct archive *ar, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return fail(ar, "archive.key: cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        log_warn("archive.key: %s is readable by group or others: chmod 600 it", path);
    char line[256];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#') continue;
        const char *why = NULL;
        if (ar->nkeys == ARCHIVE_MAX_KEYS) why = "more than 32 keys";
        else if (parse_key_line(line, &ar->keys[ar->nkeys], &why) == 0) {
            for (size_t i = 0; i < ar->nkeys && !why; i++)
                if (strcmp(ar->keys[i].id, ar->keys[ar->nkeys].id) == 0) why = "a key id twice";
        }
        if (why) {
            rc = fail(ar, "archive.key: %s:%d: %s", path, lineno, why);
            break;
        }
        ar->nkeys++;
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    if (rc == 0 && ar->nkeys == 0) rc = fail(ar, "archive.key: %s holds no key", path);
    return rc;
}

static const struct archive_key *find_key(const struct archive *ar, const char *id, size_t n)
{
    for (size_t i = 0; i < ar->nkeys; i++)
        if (strlen(ar->keys[i].id) == n && memcmp(ar->keys[i].id, id, n) == 0) return &ar->keys[i];
    return NULL;
}

struct archive *archive_open(const char *dir, const char *key_path, char *err, size_t errlen)
{
    struct archive *ar = calloc(1, sizeof *ar);
    if (!ar || !(ar->dir = strdup(dir))) {
        snprintf(err, errlen, "out of memory");
        free(ar);
        return NULL;
    }
    if (load_keys(ar, key_path) < 0) goto error;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        fail(ar, "archive.dir: cannot create %s: %s", dir, strerror(errno));
        goto error;
    }
    return ar;
error:
    snprintf(err, errlen, "%s", ar->err);
    archive_free(ar);
    return NULL;
}

void archive_free(struct archive *ar)
{
    if (!ar) return;
    OPENSSL_cleanse(ar->keys, sizeof ar->keys);
    free(ar->dir);
    free(ar);
}

int archive_from_cfg(const struct cfg *cfg, struct archive **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->archive.dir || !cfg->archive.dir[0]) return 0;
    if (!cfg->archive.key || strncmp(cfg->archive.key, "file:", 5) != 0) {
        snprintf(err, errlen, "archive.dir is set but archive.key (file:PATH) is not");
        return -1;
    }
    *out = archive_open(cfg->archive.dir, cfg->archive.key + 5, err, errlen);
    return *out ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */
/* ------------------------------------------------------------------------ */

/* The site as a file name part: [A-Za-z0-9._-] kept, the rest %XX. */
static int site_enc(const char *site, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)site; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                   *p == '.' || *p == '_' || *p == '-';
        if (o + 4 >= cap) return -1;
        if (keep) out[o++] = (char)*p;
        else o += (size_t)snprintf(out + o, cap - o, "%%%02X", *p);
    }
    if (o == 0 || (o == 1 && out[0] == '.') || (o == 2 && out[0] == '.' && out[1] == '.')) return -1;
    out[o] = '\0';
    return 0;
}

static int site_dec(const char *enc, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap) return -1;
        if (enc[i] != '%') {
            out[o++] = enc[i];
            continue;
        }
        char h[3] = {0};
        if (i + 2 >= n || !isxdigit((unsigned char)enc[i + 1]) || !isxdigit((unsigned char)enc[i + 2]))
            return -1;
        memcpy(h, enc + i + 1, 2);
        out[o++] = (char)strtoul(h, NULL, 16);
        i += 2;
    }
    out[o] = '\0';
    return 0;
}

/* The month of a stream id, "YYYY-MM" (UTC). */
static void id_month(const char *id, char out[8])
{
    int64_t ms = strtoll(id, NULL, 10);
    char t[32];
    clock_format_rfc3339(ms, t);
    memcpy(out, t, 7);
    out[7] = '\0';
}

int archive_id_cmp(const char *a, const char *b)
{
    unsigned long long am = strtoull(a, NULL, 10), bm = strtoull(b, NULL, 10);
    const char *ad = strchr(a, '-'), *bd = strchr(b, '-');
    unsigned long long as = ad ? strtoull(ad + 1, NULL, 10) : 0, bs = bd ? strtoull(bd + 1, NULL, 10) : 0;
    if (am != bm) return am < bm ? -1 : 1;
    return as < bs ? -1 : as > bs;
}

struct names {
    char **v;
    size_t n;
};

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "ENC.YYYY-MM.fsa": 1 when name has that form (and, with enc, that site). */
static int is_data_file(const char *name, const char *enc)
{
    size_t n = strlen(name), tail = 1 + 7 + strlen(SUFFIX);
    if (n <= tail || strcmp(name + n - strlen(SUFFIX), SUFFIX) != 0 || name[n - tail] != '.') return 0;
    const char *m = name + n - tail + 1;
    for (int i = 0; i < 7; i++)
        if (i == 4 ? m[i] != '-' : (m[i] < '0' || m[i] > '9')) return 0;
    if (!enc) return 1;
    return strlen(enc) == n - tail && strncmp(name, enc, n - tail) == 0;
}

/* The data files of site enc (every site when NULL), sorted. */
static int list_files(struct archive *ar, const char *enc, struct names *out)
{
    out->v = NULL;
    out->n = 0;
    DIR *d = opendir(ar->dir);
    if (!d) return fail(ar, "archive.dir %s: %s", ar->dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!is_data_file(e->d_name, enc)) continue;
        if (out->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(out->v, cap * sizeof *v);
            if (!v) { rc = fail(ar, "out of memory"); break; }
            out->v = v;
        }
        if (!(out->v[out->n] = strdup(e->d_name))) { rc = fail(ar, "out of memory"); break; }
        out->n++;
    }
    closedir(d);
    if (rc < 0) names_free(out);
    else if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return rc;
}

static void path_of(const struct archive *ar, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", ar->dir, name);
}

static int fsync_dir(struct archive *ar)
{
    int fd = open(ar->dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return fail(ar, "fsync %s: %s", ar->dir, strerror(e));
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                    */
/* ------------------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hex(const unsigned char *h, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The additional data of a record: what binds it to its place. */
static size_t record_aad(unsigned char *out, size_t cap, const char *file, const char *keyid,
                         uint64_t index, const unsigned char prev[HASH_LEN])
{
    static const char label[] = "fairstat-archive-v1";
    size_t lf = strlen(file), lk = strlen(keyid), n = sizeof label + lf + 1 + lk + 1 + 8 + HASH_LEN;
    if (n > cap) return 0;
    size_t o = 0;
    memcpy(out + o, label, sizeof label), o += sizeof label;
    memcpy(out + o, file, lf + 1), o += lf + 1;
    memcpy(out + o, keyid, lk + 1), o += lk + 1;
    for (int i = 7; i >= 0; i--) out[o++] = (unsigned char)(index >> (8 * i));
    memcpy(out + o, prev, HASH_LEN), o += HASH_LEN;
    return o;
}

/* Encrypts plain into a complete 'R' frame (malloc'ed, *len). NULL on failure. */
static unsigned char *seal_record(const struct archive_key *k, const char *file, uint64_t index,
                                  const unsigned char prev[HASH_LEN], const char *plain, size_t plen,
                                  size_t *len)
{
    size_t lk = strlen(k->id), payload = 1 + lk + CHECK_LEN + NONCE_LEN + plen + TAG_LEN;
    unsigned char *f = malloc(5 + payload), aad[NAME_MAX_LEN + 128];
    size_t alen = record_aad(aad, sizeof aad, file, k->id, index, prev);
    if (!f || !alen || payload > FRAME_MAX) {
        free(f);
        return NULL;
    }
    f[0] = 'R';
    put32(f + 1, (uint32_t)payload);
    unsigned char *p = f + 5;
    *p++ = (unsigned char)lk;
    memcpy(p, k->id, lk), p += lk;
    memcpy(p, k->check, CHECK_LEN), p += CHECK_LEN;
    unsigned char *nonce = p;
    p += NONCE_LEN;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0, fin = 0, ok = c && RAND_bytes(nonce, NONCE_LEN) == 1 &&
        EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
        EVP_EncryptInit_ex(c, NULL, NULL, k->enc, nonce) == 1 &&
        EVP_EncryptUpdate(c, NULL, &out, aad, (int)alen) == 1 &&
        EVP_EncryptUpdate(c, p, &out, (const unsigned char *)plain, (int)plen) == 1 &&
        EVP_EncryptFinal_ex(c, p + out, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, p + plen) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(f);
        return NULL;
    }
    *len = 5 + payload;
    return f;
}

enum open_result { OPEN_OK, OPEN_NO_KEY, OPEN_WRONG_KEY, OPEN_BAD };

/* The key an 'R' payload names, checked against its key check: OPEN_OK
 * with *k set, or why not. */
static enum open_result record_key_of(const struct archive *ar, const unsigned char *p, size_t n,
                                      char keyid[ARCHIVE_KEYID_MAX + 1], const struct archive_key **k)
{
    keyid[0] = '\0';
    if (n < 1 || n < 1 + (size_t)p[0] + CHECK_LEN + NONCE_LEN + TAG_LEN) return OPEN_BAD;
    size_t lk = p[0];
    if (!keyid_ok((const char *)p + 1, lk)) return OPEN_BAD;
    memcpy(keyid, p + 1, lk);
    keyid[lk] = '\0';
    if (!(*k = find_key(ar, keyid, lk))) return OPEN_NO_KEY;
    return CRYPTO_memcmp(p + 1 + lk, (*k)->check, CHECK_LEN) == 0 ? OPEN_OK : OPEN_WRONG_KEY;
}

static enum open_result record_key(const struct archive *ar, const unsigned char *p, size_t n,
                                   char keyid[ARCHIVE_KEYID_MAX + 1])
{
    const struct archive_key *k;
    return record_key_of(ar, p, n, keyid, &k);
}

static int key_fail(struct archive *ar, enum open_result r, const char *path, uint64_t idx, const char *kid)
{
    if (r == OPEN_NO_KEY)
        return fail(ar, "cannot decrypt %s record %llu: key %s is not in the key file", path,
                    (unsigned long long)idx, kid);
    if (r == OPEN_WRONG_KEY)
        return fail(ar, "cannot decrypt %s record %llu with key %s: wrong key?", path,
                    (unsigned long long)idx, kid);
    return fail(ar, "%s: record %llu is malformed", path, (unsigned long long)idx);
}

/* Decrypts an 'R' payload into plain (cap bytes, NUL-terminated). */
static enum open_result open_record(const struct archive *ar, const char *file, uint64_t index,
                                    const unsigned char prev[HASH_LEN], const unsigned char *p,
                                    size_t n, char *plain, size_t cap, char keyid[ARCHIVE_KEYID_MAX + 1])
{
    const struct archive_key *k = NULL;
    enum open_result kr = record_key_of(ar, p, n, keyid, &k);
    if (kr != OPEN_OK) return kr;
    const unsigned char *nonce = p + 1 + p[0] + CHECK_LEN, *ct = nonce + NONCE_LEN;
    size_t clen = n - (size_t)(ct - p) - TAG_LEN;
    if (clen + 1 > cap) return OPEN_BAD;
    unsigned char aad[NAME_MAX_LEN + 128];
    size_t alen = record_aad(aad, sizeof aad, file, keyid, index, prev);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0, fin = 0, ok = c && alen &&
        EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
        EVP_DecryptInit_ex(c, NULL, NULL, k->enc, nonce) == 1 &&
        EVP_DecryptUpdate(c, NULL, &out, aad, (int)alen) == 1 &&
        EVP_DecryptUpdate(c, (unsigned char *)plain, &out, ct, (int)clen) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(ct + clen)) == 1 &&
        EVP_DecryptFinal_ex(c, (unsigned char *)plain + out, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) return OPEN_BAD;
    plain[clen] = '\0';
    return OPEN_OK;
}

/* A signed JSON frame ('H' or 'P') of doc; malloc'ed, *len. */
static unsigned char *seal_json(const struct archive_key *k, char type, json_t *doc, size_t *len)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) return NULL;
    size_t tl = strlen(text), payload = tl + HASH_LEN;
    unsigned char *f = malloc(5 + payload);
    if (f) {
        f[0] = (unsigned char)type;
        put32(f + 1, (uint32_t)payload);
        memcpy(f + 5, text, tl);
        unsigned int ml = HASH_LEN;
        HMAC(EVP_sha256(), k->mac, 32, (unsigned char *)text, tl, f + 5 + tl, &ml);
        *len = 5 + payload;
    }
    free(text);
    return f;
}

/* Checks a signed JSON payload: its MAC under the key it names. The
 * document (caller decrefs), or NULL with why. */
static json_t *open_json(const struct archive *ar, const unsigned char *p, size_t n, const char **why)
{
    if (n <= HASH_LEN) {
        *why = "too short";
        return NULL;
    }
    json_t *doc = json_loadb((const char *)p, n - HASH_LEN, 0, NULL);
    const char *kid = doc ? json_string_value(json_object_get(doc, "key")) : NULL;
    if (!kid) {
        *why = "not a head";
        json_decref(doc);
        return NULL;
    }
    const struct archive_key *k = find_key(ar, kid, strlen(kid));
    if (!k) {
        *why = "signed with a key id not in the key file";
        json_decref(doc);
        return NULL;
    }
    unsigned char mac[HASH_LEN];
    unsigned int ml = HASH_LEN;
    HMAC(EVP_sha256(), k->mac, 32, p, n - HASH_LEN, mac, &ml);
    if (CRYPTO_memcmp(mac, p + n - HASH_LEN, HASH_LEN) != 0) {
        *why = "signature does not match (altered, or a wrong key)";
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static const char *str_field(json_t *doc, const char *field)
{
    const char *s = json_string_value(json_object_get(doc, field));
    return s ? s : "";
}

static int json_hash(json_t *doc, const char *field, unsigned char out[HASH_LEN])
{
    const char *s = json_string_value(json_object_get(doc, field));
    if (!s || strlen(s) != 2 * HASH_LEN) return -1;
    for (int i = 0; i < HASH_LEN; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (unsigned char)v;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Walking a file                                                            */
/* ------------------------------------------------------------------------ */

/* What the first pass learns of a file. */
struct file_state {
    uint64_t records;                   /* sealed by the last head */
    uint64_t frames_records;            /* every complete record frame */
    off_t sealed_end;                   /* bytes up to the end of the last head */
    unsigned char last[HASH_LEN];       /* hash of the last sealed record */
    unsigned char head[HASH_LEN];       /* hash of the last head */
    char last_id[48];
    int64_t newest_ms;
    int has_head;
    int unsealed;                       /* records, or bytes, after the last head */
};

/* Reads one frame at f's position: 1 with type/payload (malloc'ed), 0 at
 * the end, -1 when truncated or oversized. */
static int read_frame(FILE *f, int *type, unsigned char **payload, uint32_t *n)
{
    unsigned char h[5];
    size_t got = fread(h, 1, 5, f);
    if (got == 0 && feof(f)) return 0;
    if (got < 5) return -1;
    *type = h[0];
    *n = get32(h + 1);
    if (*n > FRAME_MAX) return -1;
    if (!(*payload = malloc(*n ? *n : 1))) return -1;
    if (fread(*payload, 1, *n, f) != *n) {
        free(*payload);
        return -1;
    }
    return 1;
}

static void frame_hash(int type, const unsigned char *p, uint32_t n, unsigned char out[HASH_LEN])
{
    unsigned char h[5];
    h[0] = (unsigned char)type;
    put32(h + 1, n);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int len = HASH_LEN;
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, h, 5) != 1 ||
        EVP_DigestUpdate(c, p, n) != 1 || EVP_DigestFinal_ex(c, out, &len) != 1)
        memset(out, 0xff, HASH_LEN);    /* matches nothing: reported as a break */
    EVP_MD_CTX_free(c);
}

/* The head doc must describe the file as read so far. NULL, or why not. */
static const char *check_head(json_t *doc, const char *file, const char *site, uint64_t count,
                              const unsigned char last[HASH_LEN], const unsigned char prev_file[HASH_LEN])
{
    unsigned char h[HASH_LEN];
    const char *f = json_string_value(json_object_get(doc, "file"));
    const char *s = json_string_value(json_object_get(doc, "site"));
    json_t *r = json_object_get(doc, "records");
    if (!f || strcmp(f, file) != 0) return "names another file (a swapped or renamed file)";
    if (!s || strcmp(s, site) != 0) return "names another site";
    if (!json_is_integer(r) || (uint64_t)json_integer_value(r) != count) return "record count differs (a record removed or added)";
    if (json_hash(doc, "last", h) < 0 || memcmp(h, last, HASH_LEN) != 0) return "last record hash differs";
    if (json_hash(doc, "prev_file", h) < 0 || memcmp(h, prev_file, HASH_LEN) != 0)
        return "does not follow the previous file's head (a file removed, swapped or reordered)";
    return NULL;
}

/* Pass 1 over file name of site: structure, hashes, heads. The previous
 * file's head is prev_file. 0, or -1 with the break in ar->err. */
static int scan_structure(struct archive *ar, const char *name, const char *site,
                          const unsigned char prev_file[HASH_LEN], struct file_state *st)
{
    char path[1024];
    path_of(ar, name, path, sizeof path);
    memset(st, 0, sizeof *st);
    st->sealed_end = MAGIC_LEN;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(ar, "%s: cannot open: %s", path, strerror(errno));
    char magic[MAGIC_LEN];
    if (fread(magic, 1, MAGIC_LEN, f) != MAGIC_LEN || memcmp(magic, MAGIC, MAGIC_LEN) != 0) {
        fclose(f);
        return fail(ar, "%s: not an archive file (bad magic)", path);
    }
    unsigned char last[HASH_LEN];
    memcpy(last, zero_hash, HASH_LEN);
    uint64_t idx = 0;
    int rc = 0;
    for (;;) {
        int type;
        unsigned char *p;
        uint32_t n;
        off_t at = ftello(f);
        int got = read_frame(f, &type, &p, &n);
        if (got == 0) break;
        if (got < 0) {
            st->unsealed = 1;
            rc = fail(ar, "%s: truncated at byte %lld (after record %llu)", path, (long long)at,
                      (unsigned long long)idx);
            break;
        }
        if (type == 'R') {
            char kid[ARCHIVE_KEYID_MAX + 1];
            enum open_result kr = record_key(ar, p, n, kid);
            if (kr != OPEN_OK) {
                free(p);
                rc = key_fail(ar, kr, path, idx, kid);
                break;
            }
            frame_hash(type, p, n, last);
            idx++;
            st->frames_records = idx;
        } else if (type == 'H') {
            const char *why = NULL;
            json_t *doc = open_json(ar, p, n, &why);
            if (doc) why = check_head(doc, name, site, idx, last, prev_file);
            if (why) {
                json_decref(doc);
                free(p);
                rc = fail(ar, "%s: head after record %llu: %s", path, (unsigned long long)idx, why);
                break;
            }
            st->has_head = 1;
            st->records = idx;
            st->sealed_end = ftello(f);
            memcpy(st->last, last, HASH_LEN);
            SHA256(p, n, st->head);
            snprintf(st->last_id, sizeof st->last_id, "%s",
                     str_field(doc, "last_id"));
            st->newest_ms = json_integer_value(json_object_get(doc, "newest_ms"));
            json_decref(doc);
        } else {
            free(p);
            rc = fail(ar, "%s: unknown frame at byte %lld", path, (long long)at);
            break;
        }
        free(p);
    }
    fclose(f);
    if (rc == 0 && st->frames_records > st->records) {
        st->unsealed = 1;
        rc = fail(ar, "%s: records %llu.. follow the last head unsealed (an interrupted archive "
                      "run: the next run cuts them off, they are still in Redis)",
                  path, (unsigned long long)st->records);
    }
    if (rc == 0 && !st->has_head) rc = fail(ar, "%s: no head", path);
    return rc;
}

/* The receipt in a decrypted record. 0, or -1. */
static int record_from_json(const char *plain, const char *site, struct consent_record *rec)
{
    json_t *j = json_loads(plain, 0, NULL);
    memset(rec, 0, sizeof *rec);
    int rc = -1;
    const char *s = json_string_value(json_object_get(j, "site"));
    const char *rid = json_string_value(json_object_get(j, "record_id"));
    const char *receipt = json_string_value(json_object_get(j, "receipt_id"));
    const char *action = json_string_value(json_object_get(j, "action"));
    const char *pv = json_string_value(json_object_get(j, "policy_version"));
    const char *ps = json_string_value(json_object_get(j, "policy_sha256"));
    const char *m = json_string_value(json_object_get(j, "method"));
    json_t *t = json_object_get(j, "time_ms"), *sv = json_object_get(j, "schema_version");
    if (!s || strcmp(s, site) != 0 || !rid || !receipt || !action || !pv || !json_is_integer(t) ||
        !json_is_integer(sv) || strlen(rid) >= sizeof rec->record_id ||
        strlen(receipt) >= sizeof rec->receipt_id || strlen(action) >= sizeof rec->action ||
        strlen(pv) >= sizeof rec->policy_version || (ps && strlen(ps) >= sizeof rec->policy_sha256) ||
        (m && strlen(m) >= sizeof rec->method))
        goto out;
    strcpy(rec->record_id, rid);
    strcpy(rec->receipt_id, receipt);
    strcpy(rec->action, action);
    strcpy(rec->policy_version, pv);
    if (ps) strcpy(rec->policy_sha256, ps);
    if (m) strcpy(rec->method, m);
    rec->t_ms = json_integer_value(t);
    rec->schema = (int)json_integer_value(sv);
    rec->analytics = json_is_true(json_object_get(j, "analytics"));
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Pass 2: decrypts the first `records` records of name, calling fn for
 * those in [from_ms, to_ms) when fn is set. 0, or -1 with the break. */
static int scan_records(struct archive *ar, const char *name, const char *site, uint64_t records,
                        int64_t from_ms, int64_t to_ms, consents_fn fn, void *arg)
{
    char path[1024];
    path_of(ar, name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(ar, "%s: cannot open: %s", path, strerror(errno));
    fseeko(f, MAGIC_LEN, SEEK_SET);
    unsigned char prev[HASH_LEN];
    memcpy(prev, zero_hash, HASH_LEN);
    char *plain = malloc(FRAME_MAX + 1);
    uint64_t idx = 0;
    int rc = plain ? 0 : fail(ar, "out of memory");
    while (rc == 0 && idx < records) {
        int type;
        unsigned char *p;
        uint32_t n;
        if (read_frame(f, &type, &p, &n) != 1) {
            rc = fail(ar, "%s: record %llu: cannot read", path, (unsigned long long)idx);
            break;
        }
        if (type != 'R') {
            free(p);
            continue;
        }
        char kid[ARCHIVE_KEYID_MAX + 1];
        enum open_result r = open_record(ar, name, idx, prev, p, n, plain, FRAME_MAX + 1, kid);
        struct consent_record rec;
        if (r == OPEN_NO_KEY || r == OPEN_WRONG_KEY)
            rc = key_fail(ar, r, path, idx, kid);
        else if (r == OPEN_BAD)
            rc = fail(ar, "%s: record %llu does not authenticate (altered, removed, reordered, "
                          "or moved from another file)", path, (unsigned long long)idx);
        else if (record_from_json(plain, site, &rec) < 0)
            rc = fail(ar, "%s: record %llu is not a receipt of %s", path, (unsigned long long)idx, site);
        else if (fn && rec.t_ms >= from_ms && rec.t_ms < to_ms && fn(&rec, arg) < 0)
            rc = -1;
        frame_hash(type, p, n, prev);
        free(p);
        idx++;
    }
    OPENSSL_cleanse(plain, plain ? FRAME_MAX + 1 : 0);
    free(plain);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* A site's chain                                                            */
/* ------------------------------------------------------------------------ */

struct marker {
    int present;
    char through[NAME_MAX_LEN];
    unsigned char head[HASH_LEN];
    char last_id[48];
};

static int read_marker(struct archive *ar, const char *enc, const char *site, struct marker *m)
{
    char path[1024];
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/%s%s", ar->dir, enc, MARKER_SUFFIX);
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : fail(ar, "%s: %s", path, strerror(errno));
    char magic[MAGIC_LEN];
    int type = 0;
    unsigned char *p = NULL;
    uint32_t n;
    const char *why = "not a purge marker";
    json_t *doc = NULL;
    if (fread(magic, 1, MAGIC_LEN, f) == MAGIC_LEN && memcmp(magic, MAGIC, MAGIC_LEN) == 0 &&
        read_frame(f, &type, &p, &n) == 1 && type == 'P')
        doc = open_json(ar, p, n, &why);
    fclose(f);
    free(p);
    const char *through = doc ? json_string_value(json_object_get(doc, "through")) : NULL;
    const char *s = doc ? json_string_value(json_object_get(doc, "site")) : NULL;
    if (doc && (!through || !s || strcmp(s, site) != 0 || strlen(through) >= sizeof m->through ||
                json_hash(doc, "head", m->head) < 0))
        why = "malformed";
    else if (doc) why = NULL;
    if (why || !through) {
        json_decref(doc);
        return fail(ar, "%s: %s", path, why ? why : "malformed");
    }
    m->present = 1;
    snprintf(m->through, sizeof m->through, "%s", through);
    snprintf(m->last_id, sizeof m->last_id, "%s", str_field(doc, "last_id"));
    json_decref(doc);
    return 0;
}

/* Files of a site still in the chain: those after the purge marker. */
struct chain {
    char enc[NAME_MAX_LEN];
    struct names files;
    size_t first;                       /* files[first..] are live */
    struct marker marker;
};

static int chain_load(struct archive *ar, const char *site, struct chain *c)
{
    memset(c, 0, sizeof *c);
    /* A name too long to be a file name part has no files: nothing to read. */
    if (site_enc(site, c->enc, sizeof c->enc - 16) < 0) return 0;
    if (read_marker(ar, c->enc, site, &c->marker) < 0 || list_files(ar, c->enc, &c->files) < 0) return -1;
    while (c->marker.present && c->first < c->files.n && strcmp(c->files.v[c->first], c->marker.through) <= 0)
        c->first++;                     /* purged, the unlink interrupted: purge ends it */
    return 0;
}

/* Walks site's chain: pass 1 on every live file, pass 2 (decrypt) on those
 * want() selects (all when NULL). strict: an unsealed tail is an error;
 * else it is skipped with a warning (reading). */
static int chain_walk(struct archive *ar, const char *site, int decrypt_all, int64_t from_ms,
                      int64_t to_ms, consents_fn fn, void *arg, int strict, long *nfiles, long *nrecs,
                      FILE *out, int *breaks)
{
    struct chain c;
    if (chain_load(ar, site, &c) < 0) {
        if (out) fprintf(out, "%s\n", ar->err);
        if (breaks) (*breaks)++;
        return -1;
    }
    unsigned char prev[HASH_LEN];
    memcpy(prev, c.marker.present ? c.marker.head : zero_hash, HASH_LEN);
    int rc = 0;
    char first[ARCHIVE_ERRLEN] = "";
    for (size_t i = c.first; i < c.files.n; i++) {
        const char *name = c.files.v[i];
        struct file_state st;
        int src = scan_structure(ar, name, site, prev, &st);
        if (src < 0 && !(st.unsealed && !strict)) {
            /* A head that does not match its records: the records say
             * more precisely where (the first that fails to authenticate). */
            if (decrypt_all && !st.unsealed && st.frames_records) {
                char head_err[ARCHIVE_ERRLEN];
                snprintf(head_err, sizeof head_err, "%s", ar->err);
                if (scan_records(ar, name, site, st.frames_records, 0, 0, NULL, NULL) == 0)
                    snprintf(ar->err, sizeof ar->err, "%s", head_err);
            }
            if (out) fprintf(out, "%s\n", ar->err);
            if (breaks) (*breaks)++;
            if (rc == 0) snprintf(first, sizeof first, "%s", ar->err);
            rc = -1;
            if (!out) break;
            memcpy(prev, st.head, HASH_LEN);
            continue;
        }
        if (src < 0) log_warn("archive: %s", ar->err);
        if (nfiles) (*nfiles)++;
        if (nrecs) *nrecs += (long)st.records;
        /* A month file holds ids of that month: months outside the range by
         * more than the minute a t and its id may differ are not decrypted. */
        const char *month = name + strlen(name) - strlen(SUFFIX) - 7;
        char start[32];
        snprintf(start, sizeof start, "%.7s-01", month);
        int64_t day0;
        int in_range = decrypt_all;
        if (!in_range && clock_parse_day(start, &day0) == 0) {
            int64_t m0 = day0 * CLOCK_DAY_MS - 60000, m1 = (day0 + 32) * CLOCK_DAY_MS + 60000;
            in_range = m1 > from_ms && m0 < to_ms;
        }
        if (in_range && scan_records(ar, name, site, st.records, from_ms, to_ms, fn, arg) < 0) {
            if (out) fprintf(out, "%s\n", ar->err);
            if (breaks) (*breaks)++;
            if (rc == 0) snprintf(first, sizeof first, "%s", ar->err);
            rc = -1;
            if (!out) break;
        }
        memcpy(prev, st.head, HASH_LEN);
    }
    names_free(&c.files);
    if (rc < 0) snprintf(ar->err, sizeof ar->err, "%s", first);  /* the first break, not the last */
    return rc;
}

int archive_read(struct archive *ar, const char *site, int64_t from_ms, int64_t to_ms,
                 consents_fn fn, void *arg)
{
    ar->err[0] = '\0';
    return chain_walk(ar, site, 0, from_ms, to_ms, fn, arg, 0, NULL, NULL, NULL, NULL);
}

int archive_verify(struct archive *ar, FILE *out, long *files, long *records)
{
    struct names all;
    *files = *records = 0;
    if (list_files(ar, NULL, &all) < 0) return -1;
    int breaks = 0;
    char first_err[ARCHIVE_ERRLEN] = "";
    const size_t tail = 1 + 7 + strlen(SUFFIX);
    for (size_t i = 0; i < all.n; i++) {
        size_t n = strlen(all.v[i]) - tail, j;
        /* Each site once, at its first file (sorting may interleave the
         * files of "a" and "a.b"). */
        for (j = 0; j < i; j++)
            if (strlen(all.v[j]) - tail == n && strncmp(all.v[j], all.v[i], n) == 0) break;
        if (j < i) continue;
        char site[NAME_MAX_LEN];
        if (site_dec(all.v[i], n, site, sizeof site) < 0) {
            fail(ar, "%s/%s: not a site's archive file name", ar->dir, all.v[i]);
            if (out) fprintf(out, "%s\n", ar->err);
            if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", ar->err);
            breaks++;
            continue;
        }
        int before = breaks;
        chain_walk(ar, site, 1, INT64_MIN, INT64_MAX, NULL, NULL, 1, files, records, out, &breaks);
        if (breaks > before && !first_err[0]) snprintf(first_err, sizeof first_err, "%s", ar->err);
    }
    names_free(&all);
    if (breaks) {
        snprintf(ar->err, sizeof ar->err, "%s", first_err);
        return -1;
    }
    return 0;
}

int archive_last_id(struct archive *ar, const char *site, char out[48])
{
    struct chain c;
    out[0] = '\0';
    if (chain_load(ar, site, &c) < 0) return -1;
    if (c.marker.present) snprintf(out, 48, "%s", c.marker.last_id);
    unsigned char prev[HASH_LEN];
    memcpy(prev, c.marker.present ? c.marker.head : zero_hash, HASH_LEN);
    int rc = 0;
    /* Only the newest file's last head matters, but its prev_file check
     * needs the chain: walk the heads (pass 1 only). */
    for (size_t i = c.first; i < c.files.n && rc == 0; i++) {
        struct file_state st;
        if (scan_structure(ar, c.files.v[i], site, prev, &st) < 0 && !st.unsealed) rc = -1;
        else if (st.has_head) snprintf(out, 48, "%s", st.last_id);
        memcpy(prev, st.head, HASH_LEN);
    }
    names_free(&c.files);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

struct writer {
    char name[NAME_MAX_LEN];
    int fd;
    uint64_t records;
    unsigned char last[HASH_LEN], prev_file[HASH_LEN];
    char last_id[48];
    int64_t newest_ms;
    int dirty;                          /* records since the last head */
};

static int write_all(struct archive *ar, int fd, const void *buf, size_t n, const char *name)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return fail(ar, "%s/%s: write: %s", ar->dir, name, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static json_t *head_doc(const struct archive_key *k, const char *site, const struct writer *w)
{
    char last[2 * HASH_LEN + 1], prev[2 * HASH_LEN + 1];
    hex(w->last, HASH_LEN, last);
    hex(w->prev_file, HASH_LEN, prev);
    return json_pack("{s:i, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I}", "v", 1, "file", w->name,
                     "site", site, "key", k->id, "records", (json_int_t)w->records, "last", last,
                     "prev_file", prev, "last_id", w->last_id, "newest_ms", (json_int_t)w->newest_ms);
}

/* Appends the head and fsyncs the file and the directory. */
static int writer_seal(struct archive *ar, const char *site, struct writer *w)
{
    if (w->fd < 0 || !w->dirty) return 0;
    json_t *doc = head_doc(&ar->keys[0], site, w);
    size_t len;
    unsigned char *f = doc ? seal_json(&ar->keys[0], 'H', doc, &len) : NULL;
    json_decref(doc);
    if (!f) return fail(ar, "out of memory");
    int rc = write_all(ar, w->fd, f, len, w->name);
    free(f);
    if (rc == 0 && fsync(w->fd) < 0) rc = fail(ar, "%s/%s: fsync: %s", ar->dir, w->name, strerror(errno));
    if (rc == 0) rc = fsync_dir(ar);
    if (rc == 0) w->dirty = 0;
    struct stat st;
    struct archive_tail *t = &ar->tail;
    t->valid = rc == 0 && fstat(w->fd, &st) == 0;
    if (t->valid) {
        snprintf(t->site, sizeof t->site, "%s", site);
        snprintf(t->name, sizeof t->name, "%s", w->name);
        t->size = st.st_size;
        t->records = w->records;
        memcpy(t->last, w->last, HASH_LEN);
        memcpy(t->prev_file, w->prev_file, HASH_LEN);
        snprintf(t->last_id, sizeof t->last_id, "%s", w->last_id);
        t->newest_ms = w->newest_ms;
    }
    return rc;
}

/* 1 when ar->tail describes site's newest file as it is now. */
static int tail_hit(struct archive *ar, const char *site, const struct chain *c)
{
    const struct archive_tail *t = &ar->tail;
    if (!t->valid || strcmp(t->site, site) != 0 || c->files.n <= c->first ||
        strcmp(c->files.v[c->files.n - 1], t->name) != 0)
        return 0;
    char path[1024];
    struct stat st;
    path_of(ar, t->name, path, sizeof path);
    return stat(path, &st) == 0 && st.st_size == t->size;
}

static int writer_close(struct archive *ar, const char *site, struct writer *w)
{
    int rc = writer_seal(ar, site, w);
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    return rc;
}

/* Opens the file name of site for appending, after the chain before it:
 * an existing file is checked (pass 1) and cut back to its last head. */
static int writer_open(struct archive *ar, const char *site, const struct chain *c, const char *name,
                       struct writer *w)
{
    char path[1024];
    memset(w, 0, sizeof *w);
    w->fd = -1;
    snprintf(w->name, sizeof w->name, "%s", name);
    if (tail_hit(ar, site, c) && strcmp(ar->tail.name, name) == 0) {
        const struct archive_tail *t = &ar->tail;
        w->records = t->records;
        memcpy(w->last, t->last, HASH_LEN);
        memcpy(w->prev_file, t->prev_file, HASH_LEN);
        snprintf(w->last_id, sizeof w->last_id, "%s", t->last_id);
        w->newest_ms = t->newest_ms;
        path_of(ar, name, path, sizeof path);
        w->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        return w->fd < 0 ? fail(ar, "%s: open: %s", path, strerror(errno)) : 0;
    }
    unsigned char prev[HASH_LEN];
    memcpy(prev, c->marker.present ? c->marker.head : zero_hash, HASH_LEN);
    int exists = 0;
    for (size_t i = c->first; i < c->files.n; i++) {
        struct file_state st;
        int rc = scan_structure(ar, c->files.v[i], site, prev, &st);
        int last = strcmp(c->files.v[i], name) == 0;
        if (rc < 0 && !(last && st.unsealed)) return -1;
        if (last) {
            exists = 1;
            w->records = st.records;
            memcpy(w->last, st.last, HASH_LEN);
            memcpy(w->prev_file, prev, HASH_LEN);
            snprintf(w->last_id, sizeof w->last_id, "%s", st.last_id);
            w->newest_ms = st.newest_ms;
            path_of(ar, name, path, sizeof path);
            if (rc < 0) {
                log_warn("archive: %s: cutting the unsealed tail (%llu records after the last head)",
                         path, (unsigned long long)(st.frames_records - st.records));
                if (truncate(path, st.sealed_end) < 0)
                    return fail(ar, "%s: truncate: %s", path, strerror(errno));
            }
            w->dirty = !st.has_head;    /* a file cut back to no head gets one */
            break;
        }
        memcpy(prev, st.head, HASH_LEN);
    }
    path_of(ar, name, path, sizeof path);
    if (!exists) {
        memcpy(w->prev_file, prev, HASH_LEN);
        memcpy(w->last, zero_hash, HASH_LEN);
        w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd < 0) return fail(ar, "%s: create: %s", path, strerror(errno));
        if (write_all(ar, w->fd, MAGIC, MAGIC_LEN, name) < 0) return -1;
        w->dirty = 1;                   /* a new file always gets a head */
    } else {
        w->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w->fd < 0) return fail(ar, "%s: open: %s", path, strerror(errno));
    }
    return 0;
}

static int writer_add(struct archive *ar, const char *site, struct writer *w,
                      const struct consent_record *rec)
{
    json_t *j = consents_record_json(site, rec);
    char *plain = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!plain) return fail(ar, "out of memory");
    size_t len;
    unsigned char *f = seal_record(&ar->keys[0], w->name, w->records, w->last, plain, strlen(plain), &len);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    if (!f) return fail(ar, "cannot encrypt a record of %s", site);
    int rc = write_all(ar, w->fd, f, len, w->name);
    if (rc == 0) {
        frame_hash(f[0], f + 5, (uint32_t)(len - 5), w->last);
        w->records++;
        w->dirty = 1;
        snprintf(w->last_id, sizeof w->last_id, "%s", rec->record_id);
        if (rec->t_ms > w->newest_ms) w->newest_ms = rec->t_ms;
    }
    free(f);
    return rc;
}

int archive_append(struct archive *ar, const char *site, const struct consent_record *recs,
                   size_t n, size_t *written)
{
    *written = 0;
    ar->err[0] = '\0';
    char last_id[48];
    struct chain c0;
    if (chain_load(ar, site, &c0) < 0) return -1;
    int hit = tail_hit(ar, site, &c0);
    names_free(&c0.files);
    if (hit) snprintf(last_id, sizeof last_id, "%s", ar->tail.last_id);
    else if (archive_last_id(ar, site, last_id) < 0) return -1;
    struct writer w = {.fd = -1};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct consent_record *rec = &recs[i];
        if (last_id[0] && archive_id_cmp(rec->record_id, last_id) <= 0) continue;
        char enc[NAME_MAX_LEN - 16], month[8], name[NAME_MAX_LEN];
        if (site_enc(site, enc, sizeof enc) < 0) return fail(ar, "bad site name for the archive");
        id_month(rec->record_id, month);
        snprintf(name, sizeof name, "%s.%s%s", enc, month, SUFFIX);
        if (w.fd < 0 || strcmp(w.name, name) != 0) {
            struct chain c;
            if ((rc = writer_close(ar, site, &w)) < 0) break;
            if ((rc = chain_load(ar, site, &c)) < 0) break;
            if (c.files.n > c.first && strcmp(c.files.v[c.files.n - 1], name) > 0)
                rc = fail(ar, "%s: record %s is older than the newest archive file %s", site,
                          rec->record_id, c.files.v[c.files.n - 1]);
            if (rc == 0) rc = writer_open(ar, site, &c, name, &w);
            names_free(&c.files);
            if (rc < 0) break;
        }
        if ((rc = writer_add(ar, site, &w, rec)) == 0) {
            (*written)++;
            snprintf(last_id, sizeof last_id, "%s", rec->record_id);
        }
    }
    int crc = writer_close(ar, site, &w);
    return rc < 0 ? rc : crc;
}

/* ------------------------------------------------------------------------ */
/* Purge                                                                     */
/* ------------------------------------------------------------------------ */

static int write_marker(struct archive *ar, const char *enc, const char *site, const char *through,
                        const unsigned char head[HASH_LEN], const char *last_id)
{
    char h[2 * HASH_LEN + 1], path[1024], tmp[1100];
    hex(head, HASH_LEN, h);
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s}", "v", 1, "site", site, "key",
                            ar->keys[0].id, "through", through, "head", h, "last_id", last_id);
    size_t len;
    unsigned char *f = doc ? seal_json(&ar->keys[0], 'P', doc, &len) : NULL;
    json_decref(doc);
    if (!f) return fail(ar, "out of memory");
    snprintf(path, sizeof path, "%s/%s%s", ar->dir, enc, MARKER_SUFFIX);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? fail(ar, "%s: %s", tmp, strerror(errno)) : 0;
    if (rc == 0) rc = write_all(ar, fd, MAGIC, MAGIC_LEN, tmp);
    if (rc == 0) rc = write_all(ar, fd, f, len, tmp);
    if (rc == 0 && fsync(fd) < 0) rc = fail(ar, "%s: fsync: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    free(f);
    if (rc == 0 && rename(tmp, path) < 0) rc = fail(ar, "%s: rename: %s", path, strerror(errno));
    return rc == 0 ? fsync_dir(ar) : rc;
}

int archive_purge_site(struct archive *ar, const char *site, int64_t cutoff_ms, int dry,
                       long *files, long *records)
{
    struct chain c;
    *files = *records = 0;
    ar->err[0] = '\0';
    if (chain_load(ar, site, &c) < 0) return -1;
    unsigned char prev[HASH_LEN];
    memcpy(prev, c.marker.present ? c.marker.head : zero_hash, HASH_LEN);
    size_t upto = c.first;              /* files[first..upto) expire */
    struct file_state st, last_st;
    int rc = 0;
    /* Files are months in order: the expired ones are a prefix. A month
     * older than the cutoff gets no new receipt (ids only grow), so even the
     * newest file may go; the marker keeps its last id and head. */
    for (size_t i = c.first; i < c.files.n; i++) {
        if (scan_structure(ar, c.files.v[i], site, prev, &st) < 0) {
            rc = -1;
            break;
        }
        if (st.newest_ms >= cutoff_ms) break;
        memcpy(prev, st.head, HASH_LEN);
        last_st = st;
        *files += 1;
        *records += (long)st.records;
        upto = i + 1;
    }
    if (rc == 0 && !dry && upto > c.first)
        rc = write_marker(ar, c.enc, site, c.files.v[upto - 1], last_st.head, last_st.last_id);
    /* Every file the marker covers goes, those of an interrupted purge too. */
    for (size_t i = 0; rc == 0 && !dry && i < upto; i++) {
        char path[1024];
        path_of(ar, c.files.v[i], path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT) rc = fail(ar, "%s: unlink: %s", path, strerror(errno));
    }
    if (rc == 0 && !dry && upto > 0) rc = fsync_dir(ar);
    names_free(&c.files);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* With Redis                                                                */
/* ------------------------------------------------------------------------ */

static int open_for(struct agg *a, struct archive **ar)
{
    char err[ARCHIVE_ERRLEN];
    if (archive_from_cfg(a->cfg, ar, err, sizeof err) < 0) {
        snprintf(a->err, sizeof a->err, "%.250s", err);
        return -1;
    }
    return 0;
}

/* XDEL of ids[0..n). */
static int xdel(struct agg *a, const char *key, char (*ids)[48], size_t n)
{
    if (!n) return 0;
    const char **argv = malloc((n + 2) * sizeof *argv);
    if (!argv) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return -1;
    }
    argv[0] = "XDEL";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) argv[i + 2] = ids[i];
    redisReply *r = agg_command_argv(a, (int)n + 2, argv, NULL);
    free(argv);
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rc < 0) snprintf(a->err, sizeof a->err, "XDEL %.200s: %.40s", key, r->str ? r->str : "bad reply");
    freeReplyObject(r);
    return rc;
}

/* One site: pages of receipts with id < cutoff, each archived (sealed,
 * fsync'ed) before exactly its ids are deleted. */
static int archive_site(struct agg *a, struct archive *ar, const char *site, int64_t cutoff_ms,
                        long *moved)
{
    char key[320], start[64] = "-", end[32];
    char enc[NAME_MAX_LEN - 16];
    *moved = 0;
    if (cutoff_ms <= 0) return 0;
    if (keys_consent(key, sizeof key, site) < 0) return 0;
    if (site_enc(site, enc, sizeof enc) < 0) {
        log_warn("archive: site name too long for a file name, its receipts stay in Redis: %.80s", site);
        return 0;
    }
    snprintf(end, sizeof end, "%lld", (long long)cutoff_ms - 1);
    struct consent_record *recs = malloc(PAGE * sizeof *recs);
    char (*ids)[48] = malloc(PAGE * sizeof *ids);
    int rc = 0;
    if (!recs || !ids) {
        snprintf(a->err, sizeof a->err, "out of memory");
        rc = -1;
    }
    while (rc == 0) {
        redisReply *r = agg_command(a, "XRANGE %s %s %s COUNT %d", key, start, end, PAGE);
        if (!r) { rc = -1; break; }
        if (r->type != REDIS_REPLY_ARRAY) {
            snprintf(a->err, sizeof a->err, "XRANGE %.200s: %.40s", key, r->str ? r->str : "bad reply");
            freeReplyObject(r);
            rc = -1;
            break;
        }
        size_t n = r->elements, k = 0, nids = 0;
        for (size_t i = 0; i < n; i++) {
            if (consents_parse_entry(r->element[i], &recs[k]) < 0) continue;
            snprintf(ids[nids++], sizeof ids[0], "%s", recs[k].record_id);
            k++;
        }
        if (n) snprintf(start, sizeof start, "(%.40s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        size_t written = 0;
        if (archive_append(ar, site, recs, k, &written) < 0) {
            snprintf(a->err, sizeof a->err, "archive: %.240s", archive_error(ar));
            rc = -1;
            break;
        }
        /* Durable in the archive (or there already): now out of Redis. */
        if (xdel(a, key, ids, nids) < 0) { rc = -1; break; }
        *moved += (long)written;
        if (written < k) log_info("archive: %s: %zu receipts were archived already (an interrupted run)", site, k - written);
        if (n < PAGE) break;
    }
    free(recs);
    free(ids);
    return rc;
}

int archive_run(struct agg *a, int64_t as_of_ms, FILE *out)
{
    struct archive *ar;
    if (open_for(a, &ar) < 0) return -1;
    if (!ar) {
        if (out) fprintf(out, "archive: archive.dir is not set: nothing to do\n");
        return 0;
    }
    int64_t cutoff = as_of_ms - (int64_t)a->cfg->retention.consent_hot_s * 1000;
    int rc = 0;
    long total = 0;
    for (size_t i = 0; i < a->nsites && rc == 0; i++) {
        long moved = 0;
        rc = archive_site(a, ar, a->sites[i].name, cutoff, &moved);
        if (rc == 0 && out) fprintf(out, "%s: archived %ld consent receipts\n", a->sites[i].name, moved);
        total += moved;
    }
    if (rc == 0 && total) log_info("archive: %ld consent receipts moved to %s", total, a->cfg->archive.dir);
    archive_free(ar);
    return rc;
}

int archive_run_verify(struct agg *a, FILE *out)
{
    struct archive *ar;
    if (open_for(a, &ar) < 0) return -1;
    if (!ar) {
        snprintf(a->err, sizeof a->err, "archive.dir is not set");
        return -1;
    }
    long files, records;
    int rc = archive_verify(ar, out, &files, &records);
    if (rc < 0) snprintf(a->err, sizeof a->err, "%.250s", archive_error(ar));
    else if (out) fprintf(out, "archive ok: %ld files, %ld records\n", files, records);
    archive_free(ar);
    return rc;
}

static int audit_archive(struct agg *a, const char *site, int64_t as_of_ms, long files, long records)
{
    char asof[32], now[32], nf[32], nr[32];
    clock_format_rfc3339(as_of_ms, asof);
    snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
    snprintf(nf, sizeof nf, "%ld", files);
    snprintf(nr, sizeof nr, "%ld", records);
    const char *argv[] = {"XADD", KEYS_AUDIT, "*", "action", "archive_purge", "by", "aggregator",
                          "site", site, "t", now, "as_of", asof, "files", nf, "records", nr};
    redisReply *r = agg_command_argv(a, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
    if (!r) return -1;
    int rc = r->type == REDIS_REPLY_STRING ? 0 : -1;
    if (rc < 0) snprintf(a->err, sizeof a->err, "XADD %s: %.100s", KEYS_AUDIT, r->str ? r->str : "bad reply");
    freeReplyObject(r);
    return rc;
}

int archive_run_purge(struct agg *a, int64_t as_of_ms, int dry, FILE *out)
{
    struct archive *ar;
    if (open_for(a, &ar) < 0) return -1;
    if (!ar) return 0;
    int64_t cutoff = as_of_ms - (int64_t)a->cfg->retention.consent_receipts_s * 1000;
    int rc = 0;
    for (size_t i = 0; i < a->nsites && rc == 0; i++) {
        long files = 0, records = 0;
        if (archive_purge_site(ar, a->sites[i].name, cutoff, dry, &files, &records) < 0) {
            snprintf(a->err, sizeof a->err, "archive purge: %.230s", archive_error(ar));
            rc = -1;
            break;
        }
        if (out && files)
            fprintf(out, "%s: %s%ld archive files (%ld consent receipts)\n", a->sites[i].name,
                    dry ? "would remove " : "removed ", files, records);
        if (!dry && files) rc = audit_archive(a, a->sites[i].name, as_of_ms, files, records);
    }
    archive_free(ar);
    return rc;
}
