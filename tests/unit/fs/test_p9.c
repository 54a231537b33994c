/* test_p9.c: the 9P2000.L server with hand-built messages over a temporary directory. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/p9.h"
#include "util.h"

#define CAP 65536

struct t {
    char dir[64];
    struct p9_server *s;
    uint8_t req[CAP], rep[CAP];
    size_t rlen;
};

/* ---- Building requests. */

struct msg {
    uint8_t *p;
    size_t len;
};

static void m_begin(struct t *t, struct msg *m, uint8_t type, uint16_t tag)
{
    m->p = t->req;
    m->len = 0;
    le_put(m->p, 4, 0);
    m->p[4] = type;
    le_put(m->p + 5, 2, tag);
    m->len = P9_HEADER;
}

static void m_put(struct msg *m, unsigned n, uint64_t v)
{
    le_put(m->p + m->len, n, v);
    m->len += n;
}

static void m_str(struct msg *m, const char *s)
{
    m_put(m, 2, strlen(s));
    memcpy(m->p + m->len, s, strlen(s));
    m->len += strlen(s);
}

/* Send m; returns the reply type. */
static uint8_t send_msg(struct t *t, struct msg *m)
{
    le_put(m->p, 4, m->len);
    t->rlen = p9_handle(t->s, m->p, m->len, t->rep, sizeof(t->rep));
    ck_assert_uint_ge(t->rlen, P9_HEADER);
    ck_assert_uint_eq(le_get(t->rep, 4), t->rlen);
    ck_assert_uint_eq(le_get(t->rep + 5, 2), le_get(m->p + 5, 2)); /* the tag comes back */
    return t->rep[4];
}

static uint32_t rep32(struct t *t, size_t off)
{
    return (uint32_t)le_get(t->rep + off, 4);
}

/* The error of an Rlerror reply, or 0 for any other reply. */
static int err_of(struct t *t)
{
    return t->rep[4] == P9_RLERROR ? (int)rep32(t, P9_HEADER) : 0;
}

static int version(struct t *t, uint32_t msize, const char *v)
{
    struct msg m;
    m_begin(t, &m, P9_TVERSION, 0xffff);
    m_put(&m, 4, msize);
    m_str(&m, v);
    send_msg(t, &m);
    return err_of(t);
}

static int attach(struct t *t, uint32_t fid)
{
    struct msg m;
    m_begin(t, &m, P9_TATTACH, 1);
    m_put(&m, 4, fid);
    m_put(&m, 4, 0xffffffff);
    m_str(&m, "root");
    m_str(&m, "");
    m_put(&m, 4, 0);
    send_msg(t, &m);
    return err_of(t);
}

/* Twalk fid -> newfid through n names; returns the error, or 0 with *nq qids. */
static int walk(struct t *t, uint32_t fid, uint32_t newfid, const char *const *names, unsigned n,
                unsigned *nq)
{
    struct msg m;
    m_begin(t, &m, P9_TWALK, 2);
    m_put(&m, 4, fid);
    m_put(&m, 4, newfid);
    m_put(&m, 2, n);
    for (unsigned i = 0; i < n; i++)
        m_str(&m, names[i]);
    send_msg(t, &m);
    if (nq)
        *nq = t->rep[4] == P9_TWALK + 1 ? (unsigned)le_get(t->rep + P9_HEADER, 2) : 0;
    return err_of(t);
}

static int walk1(struct t *t, uint32_t fid, uint32_t newfid, const char *name)
{
    unsigned nq;
    int err = walk(t, fid, newfid, (const char *const[]){name}, 1, &nq);
    return err ? err : nq == 1 ? 0 : -1;
}

static int fid_op(struct t *t, uint8_t type, uint32_t fid)
{
    struct msg m;
    m_begin(t, &m, type, 3);
    m_put(&m, 4, fid);
    if (type == P9_TGETATTR)
        m_put(&m, 8, 0x7ff);
    send_msg(t, &m);
    return err_of(t);
}

static int lopen(struct t *t, uint32_t fid, uint32_t flags)
{
    struct msg m;
    m_begin(t, &m, P9_TLOPEN, 4);
    m_put(&m, 4, fid);
    m_put(&m, 4, flags);
    send_msg(t, &m);
    return err_of(t);
}

/* Tread or Treaddir: fid, offset, count. */
static int read_op(struct t *t, uint8_t type, uint32_t fid, uint64_t off, uint32_t count)
{
    struct msg m;
    m_begin(t, &m, type, 5);
    m_put(&m, 4, fid);
    m_put(&m, 8, off);
    m_put(&m, 4, count);
    send_msg(t, &m);
    return err_of(t);
}

/* ---- The share. */

static void setup(struct t *t, bool read_only)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/kiln-p9-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    char p[256];
    snprintf(p, sizeof(p), "%s/a.txt", t->dir);
    FILE *f = fopen(p, "w");
    fputs("hello", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/sub", t->dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/out", t->dir);
    ck_assert_int_eq(symlink("/etc", p), 0);
    snprintf(p, sizeof(p), "%s/up", t->dir);
    ck_assert_int_eq(symlink("../..", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", t->dir);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    for (int i = 0; i < 40; i++) {
        snprintf(p, sizeof(p), "%s/sub/file-with-a-longish-name-%02d", t->dir, i);
        close(open(p, O_CREAT | O_WRONLY, 0644));
    }
    int root = open(t->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(root, 0);
    ck_assert_int_eq(p9_server_create(root, read_only, &t->s), 0);
    ck_assert_int_eq(version(t, 65536, "9P2000.L"), 0);
    ck_assert_int_eq(attach(t, 0), 0);
    ck_assert_uint_eq(t->rep[P9_HEADER], 0x80); /* the root's qid is a directory */
}

static void teardown(struct t *t)
{
    p9_server_destroy(t->s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_version)
{
    struct t t;
    setup(&t, true);
    ck_assert_int_eq(version(&t, 8192, "9P2000.L"), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 8192);
    ck_assert_int_eq(version(&t, 1u << 30, "9P2000.L"), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), P9_MSIZE_MAX);
    ck_assert_int_eq(version(&t, 65536, "9P2000.u"), 0);
    ck_assert(memcmp(t.rep + P9_HEADER + 6, "unknown", 7) == 0);
    ck_assert_int_eq(version(&t, 100, "9P2000.L"), EINVAL);
    /* A new session drops every fid. */
    ck_assert_int_eq(version(&t, 65536, "9P2000.L"), 0);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 0), EBADF);
    teardown(&t);
}
END_TEST

START_TEST(test_walk_open_read)
{
    struct t t;
    setup(&t, true);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), 0);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 8 + 13 + 4 + 4 + 4 + 8 + 8, 8), 5); /* size */
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 0, 100), EBADF); /* not opened yet */
    ck_assert_int_eq(lopen(&t, 1, O_RDONLY), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 0, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 5);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "hello", 5) == 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 3, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 2);
    ck_assert_int_eq(walk1(&t, 1, 9, "x"), EBUSY); /* no walking from an open fid */
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1), 0);
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1), EBADF);
    ck_assert_int_eq(fid_op(&t, P9_TSTATFS, 0), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_no_escape)
{
    struct t t;
    setup(&t, true);
    struct stat root;
    ck_assert_int_eq(stat(t.dir, &root), 0);
    /* ".." at the root, and past it from below, stays at the root. */
    unsigned nq;
    ck_assert_int_eq(walk(&t, 0, 2, (const char *const[]){"sub", "..", "..", "..", ".."}, 5, &nq),
                     0);
    ck_assert_uint_eq(nq, 5);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 2), 0);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 8 + 5, 8),
                      (uint64_t)root.st_ino ^ ((uint64_t)root.st_dev << 48));
    /* A symlink is a file of its own: not followed, not opened, its target readable. */
    ck_assert_int_eq(walk(&t, 0, 3, (const char *const[]){"out", "passwd"}, 2, &nq), 0);
    ck_assert_uint_eq(nq, 1); /* only "out": the walk stops at the link */
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 3), EBADF); /* and newfid was not made */
    ck_assert_int_eq(walk1(&t, 0, 3, "up"), 0);
    ck_assert_uint_eq(t.rep[P9_HEADER + 2], 0x02);
    ck_assert_int_eq(lopen(&t, 3, O_RDONLY), ELOOP);
    ck_assert_int_eq(fid_op(&t, P9_TREADLINK, 3), 0);
    ck_assert(memcmp(t.rep + P9_HEADER + 2, "../..", 5) == 0);
    /* Names that are not one directory entry. */
    static const char *const bad[] = {"", ".", "sub/..", "a.txt/", "../../etc"};
    for (unsigned i = 0; i < 5; i++)
        ck_assert_int_eq(walk1(&t, 0, 4, bad[i]), ENOENT);
    /* A FIFO is never opened (it could block the server). */
    ck_assert_int_eq(walk1(&t, 0, 5, "fifo"), 0);
    ck_assert_int_eq(lopen(&t, 5, O_RDONLY), EACCES);
    teardown(&t);
}
END_TEST

START_TEST(test_read_only)
{
    struct t t;
    setup(&t, true);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
    ck_assert_int_eq(lopen(&t, 1, O_WRONLY), EROFS);
    ck_assert_int_eq(lopen(&t, 1, O_RDWR), EROFS);
    ck_assert_int_eq(lopen(&t, 1, O_RDONLY | O_TRUNC), EROFS);
    static const uint8_t changes[] = {P9_TWRITE,    P9_TLCREATE, P9_TMKDIR,   P9_TUNLINKAT,
                                      P9_TRENAMEAT, P9_TSETATTR, P9_TSYMLINK, P9_TLINK};
    for (unsigned i = 0; i < sizeof(changes); i++)
        ck_assert_int_eq(fid_op(&t, changes[i], 1), EROFS);
    struct stat st;
    char p[256];
    snprintf(p, sizeof(p), "%s/a.txt", t.dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, 5);
    teardown(&t);
}
END_TEST

START_TEST(test_readdir_paged)
{
    struct t t;
    setup(&t, true);
    ck_assert_int_eq(walk1(&t, 0, 1, "sub"), 0);
    ck_assert_int_eq(lopen(&t, 1, O_RDONLY | O_DIRECTORY), 0);
    /* 300 bytes a page: each entry is 24 + its name, so several pages are needed. */
    uint64_t off = 0;
    unsigned names = 0, pages = 0;
    char seen[64] = {0};
    for (;;) {
        ck_assert_int_eq(read_op(&t, P9_TREADDIR, 1, off, 300), 0);
        uint32_t count = rep32(&t, P9_HEADER);
        ck_assert_uint_le(count, 300);
        if (count == 0)
            break;
        pages++;
        for (size_t pos = P9_HEADER + 4; pos < P9_HEADER + 4 + count;) {
            off = le_get(t.rep + pos + 13, 8);
            size_t n = (size_t)le_get(t.rep + pos + 22, 2);
            const char *name = (const char *)t.rep + pos + 24;
            int idx;
            if (n == 27 && sscanf(name, "file-with-a-longish-name-%02d", &idx) == 1) {
                ck_assert(!seen[idx]); /* never twice */
                seen[idx] = 1;
                names++;
            }
            pos += 24 + n;
        }
    }
    ck_assert_uint_eq(names, 40);
    ck_assert_uint_gt(pages, 3);
    teardown(&t);
}
END_TEST

START_TEST(test_hostile_messages)
{
    struct t t;
    setup(&t, false);
    struct msg m;
    /* The size field says more than was sent, or less than a header. */
    m_begin(&t, &m, P9_TCLUNK, 7);
    m_put(&m, 4, 0);
    le_put(m.p, 4, 1000);
    t.rlen = p9_handle(t.s, m.p, m.len, t.rep, sizeof(t.rep));
    ck_assert_int_eq(err_of(&t), EPROTO);
    le_put(m.p, 4, 3);
    t.rlen = p9_handle(t.s, m.p, m.len, t.rep, sizeof(t.rep));
    ck_assert_int_eq(err_of(&t), EPROTO);
    ck_assert_uint_eq(p9_handle(t.s, m.p, 5, t.rep, sizeof(t.rep)), 0); /* no tag to answer */
    /* A string longer than the message; a name with a NUL in it. */
    m_begin(&t, &m, P9_TWALK, 8);
    m_put(&m, 4, 0);
    m_put(&m, 4, 1);
    m_put(&m, 2, 1);
    m_put(&m, 2, 5000);
    send_msg(&t, &m);
    ck_assert_int_eq(err_of(&t), EPROTO);
    m_begin(&t, &m, P9_TWALK, 8);
    m_put(&m, 4, 0);
    m_put(&m, 4, 1);
    m_put(&m, 2, 1);
    m_put(&m, 2, 3);
    memcpy(m.p + m.len, "a\0b", 3);
    m.len += 3;
    send_msg(&t, &m);
    ck_assert_int_eq(err_of(&t), EPROTO);
    /* Too many names, a newfid in use, unknown fids, unknown and unserved types. */
    const char *many[17];
    for (int i = 0; i < 17; i++)
        many[i] = "sub";
    ck_assert_int_eq(walk(&t, 0, 1, many, 17, NULL), EINVAL);
    ck_assert_int_eq(walk1(&t, 0, 1, "sub"), 0);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), EEXIST);
    ck_assert_int_eq(walk1(&t, 77, 2, "sub"), EBADF);
    ck_assert_int_eq(fid_op(&t, 250, 0), EOPNOTSUPP);
    ck_assert_int_eq(fid_op(&t, P9_TXATTRWALK, 0), EOPNOTSUPP);
    ck_assert_int_eq(fid_op(&t, P9_TWRITE, 0), EPROTO); /* no offset, count or data */
    /* Fids are bounded: the table fills, then a clear error, then clunks make room. */
    unsigned made = 0;
    for (uint32_t fid = 1000; fid < 1000 + P9_MAX_FIDS + 10; fid++) {
        unsigned nq;
        if (walk(&t, 0, fid, NULL, 0, &nq) == 0)
            made++;
        else
            ck_assert_int_eq(err_of(&t), ENFILE);
    }
    ck_assert_uint_eq(made, P9_MAX_FIDS - 2); /* fids 0 and 1 hold two slots */
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1000), 0);
    ck_assert_int_eq(walk1(&t, 0, 1000, "sub"), 0);
    /* A reply that would not fit the caller's buffer is refused, not overrun. */
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1001), 0);
    ck_assert_int_eq(walk1(&t, 0, 3, "a.txt"), 0);
    ck_assert_int_eq(lopen(&t, 3, O_RDONLY), 0);
    m_begin(&t, &m, P9_TREAD, 9);
    m_put(&m, 4, 3);
    m_put(&m, 8, 0);
    m_put(&m, 4, 0xffffffff);
    le_put(m.p, 4, m.len);
    t.rlen = p9_handle(t.s, m.p, m.len, t.rep, P9_MSIZE_MIN);
    ck_assert_uint_le(t.rlen, P9_MSIZE_MIN);
    ck_assert_int_eq(err_of(&t), 0);
    teardown(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("p9");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_walk_open_read);
    tcase_add_test(tc, test_no_escape);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_readdir_paged);
    tcase_add_test(tc, test_hostile_messages);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
