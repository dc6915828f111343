/* test_resp.c -- resp_parse (resp.h): the same replies as hiredis's reader,
 * whole or cut anywhere, and the bytes it must refuse. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "resp.h"

/* Replies of every type the aggregator reads, an XRANGE's shape among them,
 * with CR, LF and NUL inside bulk strings. */
static const char sample[] =
    "*2\r\n"
    "*2\r\n$15\r\n1796447673063-0\r\n*2\r\n$1\r\nh\r\n$6\r\na\r\n\0\xff\r\r\n"
    "*2\r\n$15\r\n1796447673068-1\r\n*2\r\n$1\r\nh\r\n$0\r\n\r\n"
    "*0\r\n"
    "+QUEUED\r\n"
    "-ERR wrong number of arguments\r\n"
    ":-9223372036854775808\r\n"
    ":9223372036854775807\r\n"
    "$-1\r\n"
    "*-1\r\n"
    "*4\r\n:1\r\n*1\r\n*1\r\n$3\r\nabc\r\n$-1\r\n+OK\r\n";
#define SAMPLE_LEN (sizeof sample - 1)
#define SAMPLE_REPLIES 9

static void assert_same(const redisReply *a, const redisReply *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_INTEGER:
        assert_true(a->integer == b->integer);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->str, b->str, a->len);
        assert_int_equal(a->str[a->len], '\0');
        break;
    case REDIS_REPLY_ARRAY:
        assert_int_equal(a->elements, b->elements);
        for (size_t i = 0; i < a->elements; i++) assert_same(a->element[i], b->element[i]);
        break;
    }
}

/* hiredis's reading of the sample's replies, in order. */
static void hiredis_replies(redisReply **out)
{
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, sample, SAMPLE_LEN), REDIS_OK);
    for (int i = 0; i < SAMPLE_REPLIES; i++) {
        void *r = NULL;
        assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
        assert_non_null(r);
        out[i] = r;
    }
    redisReaderFree(rd);
}

static void every_reply_reads_as_hiredis_reads_it(void **state)
{
    (void)state;
    redisReply *want[SAMPLE_REPLIES];
    hiredis_replies(want);
    struct agg_region rg = {0};
    size_t pos = 0;
    for (int i = 0; i < SAMPLE_REPLIES; i++) {
        struct resp_parse st = {.pos = pos};
        assert_int_equal(resp_parse(&st, sample, SAMPLE_LEN, &rg), 1);
        assert_same(st.root, want[i]);
        assert_int_equal(st.depth, 0);
        pos = st.pos;
    }
    assert_int_equal(pos, SAMPLE_LEN);
    struct resp_parse st = {.pos = pos};
    assert_int_equal(resp_parse(&st, sample, SAMPLE_LEN, &rg), 0);      /* nothing more yet */
    for (int i = 0; i < SAMPLE_REPLIES; i++) freeReplyObject(want[i]);
    agg_region_free(&rg);
}

/* The bytes arriving in two parts, cut at every place, and what was read
 * before the cursor dropped in between (as the reader's buffer is trimmed):
 * each reply the same, none read before it is whole. */
static void a_reply_cut_anywhere_reads_the_same_once_whole(void **state)
{
    (void)state;
    redisReply *want[SAMPLE_REPLIES];
    hiredis_replies(want);
    char *buf = malloc(SAMPLE_LEN);
    assert_non_null(buf);
    for (size_t cut = 0; cut <= SAMPLE_LEN; cut++) {
        struct agg_region rg = {0};
        size_t have = cut, base = 0;        /* buf holds sample[base .. base + have) */
        memcpy(buf, sample, have);
        size_t pos = 0;
        int i = 0;
        while (i < SAMPLE_REPLIES) {
            struct resp_parse st = {.pos = pos};
            int rc;
            while ((rc = resp_parse(&st, buf, have, &rg)) == 0) {
                assert_true(base + have < SAMPLE_LEN);      /* more was needed: there is more */
                memmove(buf, buf + st.pos, have - st.pos);   /* the trim */
                base += st.pos;
                have -= st.pos;
                st.pos = 0;
                memcpy(buf + have, sample + base + have, SAMPLE_LEN - base - have);
                have = SAMPLE_LEN - base;
            }
            assert_int_equal(rc, 1);
            assert_same(st.root, want[i++]);
            pos = st.pos;
        }
        assert_int_equal(base + pos, SAMPLE_LEN);
        agg_region_free(&rg);
    }
    free(buf);
    for (int i = 0; i < SAMPLE_REPLIES; i++) freeReplyObject(want[i]);
}

/* A random reply of depth at most depth, written at *p (room enough). */
static void random_reply(char **p, int depth, unsigned *seed)
{
    int type = rand_r(seed) % (depth > 0 ? 7 : 5);
    switch (type) {
    case 0:
        *p += sprintf(*p, "+%s\r\n", rand_r(seed) % 2 ? "OK" : "QUEUED");
        break;
    case 1: {
        long long v = (long long)rand_r(seed) << (rand_r(seed) % 32);
        *p += sprintf(*p, ":%lld\r\n", rand_r(seed) % 2 ? -v : v);
        break;
    }
    case 2:
        *p += sprintf(*p, "$-1\r\n");
        break;
    case 3:
    case 4: {
        int n = rand_r(seed) % 70;
        *p += sprintf(*p, "$%d\r\n", n);
        for (int i = 0; i < n; i++) *(*p)++ = (char)(rand_r(seed) % 4 == 0 ? '\r' : rand_r(seed));
        *p += sprintf(*p, "\r\n");
        break;
    }
    default: {
        int n = rand_r(seed) % 5;
        *p += sprintf(*p, "*%d\r\n", n);
        for (int i = 0; i < n; i++) random_reply(p, depth - 1, seed);
    }
    }
}

/* Random replies, read in random pieces, against hiredis's reading of them. */
static void random_replies_in_random_pieces_read_as_hiredis_reads_them(void **state)
{
    (void)state;
    unsigned seed = 20261205;
    char *buf = malloc(1 << 20), *in = malloc(1 << 20);
    assert_non_null(buf);
    assert_non_null(in);
    for (int round = 0; round < 200; round++) {
        char *p = in;
        int nreplies = 1 + rand_r(&seed) % 20;
        for (int i = 0; i < nreplies; i++) random_reply(&p, 5, &seed);
        size_t total = (size_t)(p - in);
        redisReader *rd = redisReaderCreate();
        assert_non_null(rd);
        assert_int_equal(redisReaderFeed(rd, in, total), REDIS_OK);
        struct agg_region rg = {0};
        size_t have = 0, pos = 0;
        for (int i = 0; i < nreplies; i++) {
            void *want = NULL;
            assert_int_equal(redisReaderGetReply(rd, &want), REDIS_OK);
            assert_non_null(want);
            struct resp_parse st = {.pos = pos};
            int rc;
            while ((rc = resp_parse(&st, buf, have, &rg)) == 0) {
                assert_true(have < total);
                size_t more = 1 + (size_t)rand_r(&seed) % 64;
                if (more > total - have) more = total - have;
                memcpy(buf + have, in + have, more);
                have += more;
            }
            assert_int_equal(rc, 1);
            assert_same(st.root, want);
            freeReplyObject(want);
            pos = st.pos;
        }
        assert_int_equal(pos, total);
        redisReaderFree(rd);
        agg_region_free(&rg);
    }
    free(buf);
    free(in);
}

static int parse_all(const char *s)
{
    struct agg_region rg = {0};
    struct resp_parse st = {0};
    errno = 0;
    int rc = resp_parse(&st, s, strlen(s), &rg);
    agg_region_free(&rg);
    return rc;
}

static void bytes_no_reply_has_are_a_protocol_error(void **state)
{
    (void)state;
    const char *bad[] = {
        "?x\r\n",                   /* no such type */
        "+OK\rX",                   /* CR without LF */
        ":12a\r\n", ":\r\n", ":-\r\n", ":+1\r\n",
        ":99999999999999999999\r\n",    /* 20 digits */
        ":9223372036854775808\r\n",     /* past LLONG_MAX */
        "$3\r\nab\r\n\r\n",          /* the length is not where CRLF is */
        "$2\r\nabc\r\n",
        "$-2\r\n", "*-2\r\n",
        "*999999999\r\n",           /* more elements than a reply of ours */
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",  /* 9 arrays deep */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse_all(bad[i]), -1);
        assert_int_equal(errno, EPROTO);
    }
    assert_int_equal(parse_all("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), 1);   /* 8 */
    assert_int_equal(parse_all("$5\r\nab"), 0);             /* not bad: not whole */
    assert_int_equal(parse_all("*2\r\n:1\r\n"), 0);
    assert_int_equal(parse_all(":12\r"), 0);
}

/* ------------------------------------------------------------------------ */
/* An XRANGE reply read flat (resp_parse_entries)                            */
/* ------------------------------------------------------------------------ */

/* Entries of every shape a range may hold: ours (2 strings), none, nil
 * strings, an entry of earlier versions with 20 strings (more than are read
 * at once), bytes CR, LF and NUL in ids and strings, a nil string. */
static const char range[] =
    "*6\r\n"
    "*2\r\n$15\r\n1796447673063-0\r\n*2\r\n$1\r\nh\r\n$6\r\na\r\n\0\xff\r\r\n"
    "*2\r\n$3\r\n1-0\r\n*0\r\n"
    "*2\r\n$3\r\n2-0\r\n*-1\r\n"
    "*2\r\n$3\r\n3-0\r\n*20\r\n"
    "$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\n$1\r\nj\r\n"
    "$1\r\nk\r\n$1\r\nl\r\n$1\r\nm\r\n$1\r\nn\r\n$1\r\no\r\n$1\r\np\r\n$1\r\nq\r\n$2\r\nrr\r\n$0\r\n\r\n$-1\r\n"
    "*2\r\n$4\r\n4\r\n0\r\n*2\r\n$0\r\n\r\n$2\r\n\r\n\r\n"
    "*2\r\n$15\r\n1796447673068-1\r\n*2\r\n$1\r\nh\r\n$0\r\n\r\n"
    "+OK\r\n";                  /* the next reply, not read */
#define RANGE_LEN (sizeof range - 1 - 5)

/* out holds what hiredis reads of want, an array of [id, [strings]]. */
static void assert_same_entries(const struct resp_entries *out, const redisReply *want)
{
    assert_null(out->error);
    assert_int_equal(out->n, want->elements);
    for (size_t i = 0; i < out->n; i++) {
        const redisReply *w = want->element[i], *id = w->element[0], *str = w->element[1];
        const struct resp_entry *e = &out->e[i];
        assert_int_equal(e->idlen, id->len);
        assert_memory_equal(e->id, id->str, id->len);
        assert_int_equal(e->id[e->idlen], '\0');
        assert_int_equal(e->n, str->type == REDIS_REPLY_ARRAY ? str->elements : 0);
        for (size_t k = 0; k < e->n; k++) {
            const redisReply *x = str->element[k];
            size_t n = x->type == REDIS_REPLY_STRING ? x->len : 0;
            assert_int_equal(e->len[k], n);
            assert_memory_equal(e->s[k], n ? x->str : "", n);
            assert_int_equal(e->s[k][n], '\0');
        }
    }
}

/* The range cut at every place, what was read before the cursor dropped in
 * between: the same entries as hiredis reads, the cursor after the reply. */
static void a_range_reads_flat_as_hiredis_reads_it_cut_anywhere(void **state)
{
    (void)state;
    redisReader *rd = redisReaderCreate();
    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, range, RANGE_LEN), REDIS_OK);
    void *want = NULL;
    assert_int_equal(redisReaderGetReply(rd, &want), REDIS_OK);
    assert_non_null(want);
    redisReaderFree(rd);
    char *buf = malloc(sizeof range);
    assert_non_null(buf);
    for (size_t cut = 0; cut <= RANGE_LEN; cut++) {
        struct agg_region rg = {0};
        struct resp_entries out;
        struct resp_entries_parse st = {.out = &out};
        memset(&out, 0, sizeof out);
        size_t have = cut, base = 0;        /* buf holds range[base .. base + have) */
        memcpy(buf, range, have);
        int rc;
        while ((rc = resp_parse_entries(&st, buf, have, &rg)) == 0) {
            assert_true(base + have < sizeof range - 1);
            memmove(buf, buf + st.pos, have - st.pos);   /* the trim */
            base += st.pos;
            have -= st.pos;
            st.pos = 0;
            memcpy(buf + have, range + base + have, sizeof range - 1 - base - have);
            have = sizeof range - 1 - base;
        }
        assert_int_equal(rc, 1);
        assert_int_equal(base + st.pos, RANGE_LEN);
        assert_same_entries(&out, want);
        agg_region_free(&rg);
    }
    free(buf);
    freeReplyObject(want);
}

static int entries_of(const char *s, struct resp_entries *out, struct agg_region *rg)
{
    struct resp_entries_parse st = {.out = out};
    memset(out, 0, sizeof *out);
    errno = 0;
    return resp_parse_entries(&st, s, strlen(s), rg);
}

/* An error is the reply; an empty range has no entries. */
static void an_error_or_an_empty_range_reads_as_such(void **state)
{
    (void)state;
    struct agg_region rg = {0};
    struct resp_entries out;
    assert_int_equal(entries_of("-WRONGTYPE Operation against a key\r\n", &out, &rg), 1);
    assert_non_null(out.error);
    assert_int_equal(out.error->type, REDIS_REPLY_ERROR);
    assert_string_equal(out.error->str, "WRONGTYPE Operation against a key");
    assert_int_equal(entries_of("*0\r\n", &out, &rg), 1);
    assert_null(out.error);
    assert_int_equal(out.n, 0);
    assert_int_equal(entries_of("-ERR", &out, &rg), 0);
    agg_region_free(&rg);
}

static void what_is_not_a_range_is_a_protocol_error(void **state)
{
    (void)state;
    const char *bad[] = {
        "+OK\r\n", ":1\r\n", "$1\r\na\r\n", "*-1\r\n",
        "*1\r\n:1\r\n",                                 /* an entry not an array */
        "*1\r\n*3\r\n$1\r\na\r\n*0\r\n*0\r\n",          /* nor of two */
        "*1\r\n*2\r\n:5\r\n*0\r\n",                     /* an id not a string */
        "*1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",           /* strings not an array */
        "*1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n",          /* a string not a string */
        "*1\r\n*2\r\n$1\r\na\r\n*1025\r\n",             /* more strings than an entry has */
        "*1\r\n*2\r\n$2\r\na\r\n*0\r\n",                /* a length not where CRLF is */
        "*999999999\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct agg_region rg = {0};
        struct resp_entries out;
        assert_int_equal(entries_of(bad[i], &out, &rg), -1);
        assert_int_equal(errno, EPROTO);
        agg_region_free(&rg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_reply_reads_as_hiredis_reads_it),
        cmocka_unit_test(a_reply_cut_anywhere_reads_the_same_once_whole),
        cmocka_unit_test(random_replies_in_random_pieces_read_as_hiredis_reads_them),
        cmocka_unit_test(bytes_no_reply_has_are_a_protocol_error),
        cmocka_unit_test(a_range_reads_flat_as_hiredis_reads_it_cut_anywhere),
        cmocka_unit_test(an_error_or_an_empty_range_reads_as_such),
        cmocka_unit_test(what_is_not_a_range_is_a_protocol_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
