/* spool.c -- the local spool of hits Redis could not take (spool.h).
 *
 * Plain POSIX files, no threads: each worker owns its spool and calls it
 * from its event loop. Appends are one write(2) of a whole record to an
 * O_APPEND file, so a crash leaves at worst one torn record at the tail,
 * which the reader skips and counts. Sizes are tracked in memory (the sum of
 * the owned files past their positions) so that the bound costs nothing per
 * append.
 */
#include "spool.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEAD_LEN 8                      /* u32 length, u32 crc */
#define PAYLOAD_FIXED 11                /* version, flags, time, site length */
#define PAYLOAD_MAX (PAYLOAD_FIXED + SPOOL_SITE_MAX + 8192)
#define READ_MAX (256 * 1024)           /* read per replay step */
#define MAX_FILES 4096

struct sfile {
    unsigned long long seq;
    int worker;
    off_t size, pos;
};

struct spool {
    char *dir;
    int worker, nworkers;
    size_t max_bytes;
    struct sfile *files;                /* owned files, oldest first */
    size_t nfiles;
    int fd;                             /* the file being appended to, or -1 */
    int dirty, dir_dirty;
    unsigned long long next_seq;
    /* replay */
    char *rbuf;
    size_t rlen;                        /* bytes of rbuf handed out by the last begin */
    unsigned long long rcorrupt;        /* records it skipped: counted at commit, once */
    int reading;
    struct spool_stats st;
};

/* ------------------------------------------------------------------------ */
/* CRC32C                                                                    */
/* ------------------------------------------------------------------------ */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t spool_crc32c(const void *buf, size_t len)
{
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_init();     /* idempotent: threads racing here write the same table */
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const unsigned char *p = buf;
    uint32_t c = 0xffffffffu;
    while (len--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

long spool_parse(const char *buf, size_t len, struct spool_rec *out, size_t *skip)
{
    const unsigned char *p = (const unsigned char *)buf;
    *skip = len;
    if (len < HEAD_LEN) return 0;
    uint32_t n = get_u32(p);
    if (n < PAYLOAD_FIXED || n > PAYLOAD_MAX) return -1;     /* the length is not to be trusted */
    if (len - HEAD_LEN < n) return 0;
    *skip = HEAD_LEN + n;
    const unsigned char *q = p + HEAD_LEN;
    if (spool_crc32c(q, n) != get_u32(p + 4) || q[0] != SPOOL_VERSION) return -1;
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) t |= (uint64_t)q[2 + i] << (8 * i);
    size_t sl = q[10];
    if (sl == 0 || PAYLOAD_FIXED + sl >= n) return -1;
    out->flags = q[1];
    out->t_ms = (int64_t)t;
    out->site = (const char *)q + PAYLOAD_FIXED;
    out->site_len = sl;
    out->hit = out->site + sl;
    out->hit_len = n - PAYLOAD_FIXED - sl;
    return (long)(HEAD_LEN + n);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

static void file_path(const struct spool *s, const struct sfile *f, const char *ext, char *out,
                      size_t cap)
{
    snprintf(out, cap, "%s/w%d-%010llu.%s", s->dir, f->worker, f->seq, ext);
}

static int fsync_dir(const struct spool *s)
{
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static off_t read_pos(const struct spool *s, const struct sfile *f)
{
    char path[4200], buf[32];
    file_path(s, f, "pos", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    /* An unreadable position replays the file from its start: the fold
     * counts a hit once however often it is replayed. */
    return v > 0 && v <= f->size && (*end == '\n' || *end == '\0') ? (off_t)v : 0;
}

static int write_pos(const struct spool *s, const struct sfile *f)
{
    char path[4200], buf[32];
    file_path(s, f, "pos", path, sizeof path);
    int n = snprintf(buf, sizeof buf, "%020lld\n", (long long)f->pos);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int rc = pwrite(fd, buf, (size_t)n, 0) == n && fdatasync(fd) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

static int cmp_file(const void *a, const void *b)
{
    const struct sfile *x = a, *y = b;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->worker - y->worker;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST) return -1;
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Finds the files this worker owns, their sizes and positions. */
static int scan(struct spool *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "collector.spool_dir: %s: %s", s->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        int w;
        unsigned long long seq;
        char ext[8];
        if (sscanf(e->d_name, "w%d-%llu.%7s", &w, &seq, ext) != 3 || w < 0) continue;
        if (seq >= s->next_seq) s->next_seq = seq + 1;     /* names never repeat */
        if (strcmp(ext, "spool") != 0 || w % s->nworkers != s->worker) continue;
        if (s->nfiles == MAX_FILES) break;
        struct sfile *f = &s->files[s->nfiles];
        char path[4200];
        struct stat sb;
        f->seq = seq;
        f->worker = w;
        file_path(s, f, "spool", path, sizeof path);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode)) continue;
        f->size = sb.st_size;
        f->pos = read_pos(s, f);
        s->st.bytes += (unsigned long long)(f->size - f->pos);
        s->nfiles++;
    }
    closedir(d);
    qsort(s->files, s->nfiles, sizeof *s->files, cmp_file);
    s->st.files = s->nfiles;
    return 0;
}

struct spool *spool_open(const char *dir, int worker, int nworkers, size_t max_bytes,
                         char *err, size_t errlen)
{
    struct spool *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir)) || !(s->files = calloc(MAX_FILES, sizeof *s->files)) ||
        !(s->rbuf = malloc(READ_MAX))) {
        snprintf(err, errlen, "out of memory");
        goto error;
    }
    s->fd = -1;
    s->worker = worker;
    s->nworkers = nworkers > 0 ? nworkers : 1;
    s->max_bytes = max_bytes;
    size_t n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/') s->dir[--n] = '\0';
    if (mkdirs(s->dir) < 0 || chmod(s->dir, 0700) < 0) {
        snprintf(err, errlen, "collector.spool_dir: %s: %s", s->dir, strerror(errno));
        goto error;
    }
    if (scan(s, err, errlen) < 0) goto error;
    return s;

error:
    spool_close(s);
    return NULL;
}

void spool_close(struct spool *s)
{
    if (!s) return;
    if (s->fd >= 0) {
        spool_sync(s);
        close(s->fd);
    }
    free(s->dir);
    free(s->files);
    free(s->rbuf);
    free(s);
}

/* Ends the file being appended to: replay may then read it to its end. */
static void rotate(struct spool *s)
{
    if (s->fd < 0) return;
    spool_sync(s);
    close(s->fd);
    s->fd = -1;
}

static int open_new(struct spool *s)
{
    if (s->nfiles == MAX_FILES) return -1;
    struct sfile *f = &s->files[s->nfiles];
    char path[4200];
    f->seq = s->next_seq++;
    f->worker = s->worker;
    f->size = f->pos = 0;
    file_path(s, f, "spool", path, sizeof path);
    s->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        log_error("spool: %s: %s", path, strerror(errno));
        return -1;
    }
    s->nfiles++;
    s->st.files = s->nfiles;
    s->dir_dirty = 1;
    return 0;
}

int spool_append(struct spool *s, unsigned flags, int64_t t_ms, const char *site, size_t site_len,
                 const char *hit, size_t hit_len)
{
    unsigned char rec[HEAD_LEN + PAYLOAD_MAX];
    size_t n = PAYLOAD_FIXED + site_len + hit_len;
    if (site_len == 0 || site_len > SPOOL_SITE_MAX || n > PAYLOAD_MAX) return SPOOL_IO;
    if (s->st.bytes + HEAD_LEN + n > s->max_bytes) return SPOOL_FULL;
    if (s->fd < 0 && open_new(s) < 0) return SPOOL_IO;
    unsigned char *q = rec + HEAD_LEN;
    q[0] = SPOOL_VERSION;
    q[1] = (unsigned char)flags;
    for (int i = 0; i < 8; i++) q[2 + i] = (unsigned char)((uint64_t)t_ms >> (8 * i));
    q[10] = (unsigned char)site_len;
    memcpy(q + PAYLOAD_FIXED, site, site_len);
    memcpy(q + PAYLOAD_FIXED + site_len, hit, hit_len);
    put_u32(rec, (uint32_t)n);
    put_u32(rec + 4, spool_crc32c(q, n));
    ssize_t w = write(s->fd, rec, HEAD_LEN + n);
    struct sfile *f = &s->files[s->nfiles - 1];
    if (w != (ssize_t)(HEAD_LEN + n)) {
        log_error("spool: write: %s", w < 0 ? strerror(errno) : "short write");
        /* A short write leaves a torn record: the reader skips it. */
        if (w > 0) f->size += w;
        rotate(s);
        return SPOOL_IO;
    }
    f->size += w;
    s->st.bytes += (unsigned long long)w;
    s->st.appended++;
    s->dirty = 1;
    return SPOOL_OK;
}

int spool_sync(struct spool *s)
{
    int rc = 0;
    if (s->dirty && s->fd >= 0 && fdatasync(s->fd) < 0) {
        log_error("spool: fdatasync: %s", strerror(errno));
        rc = -1;
    }
    s->dirty = 0;
    if (s->dir_dirty && fsync_dir(s) < 0) rc = -1;
    s->dir_dirty = 0;
    return rc;
}

int spool_pending(const struct spool *s)
{
    return s->st.bytes > 0;
}

/* ------------------------------------------------------------------------ */
/* Replay                                                                    */
/* ------------------------------------------------------------------------ */

static void drop_first(struct spool *s)
{
    char path[4200];
    file_path(s, &s->files[0], "spool", path, sizeof path);
    unlink(path);
    file_path(s, &s->files[0], "pos", path, sizeof path);
    unlink(path);
    memmove(s->files, s->files + 1, (s->nfiles - 1) * sizeof *s->files);
    s->nfiles--;
    s->st.files = s->nfiles;
    fsync_dir(s);
}

int spool_replay_begin(struct spool *s, struct spool_rec *out, size_t max, size_t *n)
{
    *n = 0;
    s->rlen = 0;
    s->rcorrupt = 0;
    s->reading = 0;
    /* The file being written is replayed too: close it, appends go on in a
     * new one. */
    if (s->fd >= 0 && s->nfiles == 1) rotate(s);
    while (s->nfiles > (s->fd >= 0 ? 1u : 0u)) {
        struct sfile *f = &s->files[0];
        if (f->pos >= f->size) {
            drop_first(s);
            continue;
        }
        char path[4200];
        file_path(s, f, "spool", path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            /* Gone (deleted by hand): what it held is lost, the rest goes on. */
            log_warn("spool: %s: %s; skipped", path, strerror(errno));
            s->st.bytes -= (unsigned long long)(f->size - f->pos);
            drop_first(s);
            continue;
        }
        size_t want = (size_t)(f->size - f->pos) < READ_MAX ? (size_t)(f->size - f->pos) : READ_MAX;
        ssize_t got = pread(fd, s->rbuf, want, f->pos);
        close(fd);
        if (got < 0) {
            log_error("spool: %s: %s", path, strerror(errno));
            return -1;
        }
        if ((size_t)got < want) {
            /* Cut short under us (by hand): what is gone is gone, and the
             * rest of the file is read to its new end, not forever. */
            s->st.bytes -= (unsigned long long)(want - (size_t)got);
            f->size = f->pos + (off_t)got;
        }
        size_t at = 0, len = (size_t)got;
        int eof = (off_t)got == f->size - f->pos;
        while (at < len && *n < max) {
            size_t skip;
            long r = spool_parse(s->rbuf + at, len - at, &out[*n], &skip);
            if (r > 0) {
                (*n)++;
                at += (size_t)r;
            } else if (r == 0 && !eof) {
                break;                      /* the rest comes with the next read */
            } else {
                s->rcorrupt++;              /* torn tail (r == 0 at the end) or corrupt */
                log_warn("spool: %s: %s record at offset %lld skipped", path,
                         r == 0 ? "torn" : "corrupt", (long long)(f->pos + (off_t)at));
                at += skip;
            }
        }
        if (at == 0 && *n == 0 && len > 0) {
            /* One record longer than a read: cannot be one of ours. */
            s->rcorrupt++;
            at = len;
        }
        s->rlen = at;
        s->reading = 1;
        return 0;
    }
    return 0;
}

int spool_replay_commit(struct spool *s)
{
    if (!s->reading) return 0;
    s->reading = 0;
    s->st.corrupt += s->rcorrupt;
    s->rcorrupt = 0;
    struct sfile *f = &s->files[0];
    f->pos += (off_t)s->rlen;
    s->st.bytes -= s->rlen;
    s->rlen = 0;
    if (f->pos >= f->size) {
        drop_first(s);      /* nothing of it is needed: no position to keep */
        return 0;
    }
    if (write_pos(s, f) < 0) {
        log_error("spool: cannot write the replay position: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void spool_replay_abort(struct spool *s)
{
    s->reading = 0;
    s->rlen = 0;
    s->rcorrupt = 0;    /* skipped again by the next begin, counted then */
}

void spool_stats(const struct spool *s, struct spool_stats *out)
{
    *out = s->st;
}
