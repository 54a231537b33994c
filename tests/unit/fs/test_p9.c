/* test_p9.c: the 9P2000.L server with hand-built messages over a temporary directory. */
#include <check.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/p9.h"
#include "state.h"
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
    /* Fids 1024 apart share a hash bucket: one gone from the middle leaves the others found. */
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1000 + 2048), 0);
    ck_assert_int_eq(fid_op(&t, P9_TSTATFS, 1000 + 2048), EBADF);
    for (uint32_t fid = 1000; fid < 1000 + P9_MAX_FIDS - 2; fid += 1024)
        if (fid != 1000 + 2048)
            ck_assert_int_eq(fid_op(&t, P9_TSTATFS, fid), 0);
    ck_assert_int_eq(walk1(&t, 0, 1000 + 2048, "sub"), 0);
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

/* ---- Writable shares. */

/* The host path of rel in the share (a static buffer: one at a time). */
static const char *hp(struct t *t, const char *rel)
{
    static char p[512];
    snprintf(p, sizeof(p), "%s/%s", t->dir, rel);
    return p;
}

static int lcreate(struct t *t, uint32_t fid, const char *name, uint32_t flags, uint32_t mode)
{
    struct msg m;
    m_begin(t, &m, P9_TLCREATE, 10);
    m_put(&m, 4, fid);
    m_str(&m, name);
    m_put(&m, 4, flags);
    m_put(&m, 4, mode);
    m_put(&m, 4, 0);
    send_msg(t, &m);
    return err_of(t);
}

static int write_op(struct t *t, uint32_t fid, uint64_t off, const char *data, uint32_t count)
{
    struct msg m;
    m_begin(t, &m, P9_TWRITE, 11);
    m_put(&m, 4, fid);
    m_put(&m, 8, off);
    m_put(&m, 4, count);
    memcpy(m.p + m.len, data, strlen(data));
    m.len += strlen(data);
    send_msg(t, &m);
    return err_of(t);
}

/* Tmkdir (mode), Tmknod (mode, major 1, minor 3) or Tsymlink (target) of name in dfid. */
static int make_op(struct t *t, uint8_t type, uint32_t dfid, const char *name, uint32_t mode,
                   const char *target)
{
    struct msg m;
    m_begin(t, &m, type, 12);
    m_put(&m, 4, dfid);
    m_str(&m, name);
    if (type == P9_TSYMLINK) {
        m_str(&m, target);
    } else {
        m_put(&m, 4, mode);
        if (type == P9_TMKNOD) {
            m_put(&m, 4, 1);
            m_put(&m, 4, 3);
        }
    }
    m_put(&m, 4, 0);
    send_msg(t, &m);
    return err_of(t);
}

static int unlinkat_op(struct t *t, uint32_t dfid, const char *name, uint32_t flags)
{
    struct msg m;
    m_begin(t, &m, P9_TUNLINKAT, 13);
    m_put(&m, 4, dfid);
    m_str(&m, name);
    m_put(&m, 4, flags);
    send_msg(t, &m);
    return err_of(t);
}

static int renameat_op(struct t *t, uint32_t odfid, const char *oname, uint32_t ndfid,
                       const char *nname)
{
    struct msg m;
    m_begin(t, &m, P9_TRENAMEAT, 14);
    m_put(&m, 4, odfid);
    m_str(&m, oname);
    m_put(&m, 4, ndfid);
    m_str(&m, nname);
    send_msg(t, &m);
    return err_of(t);
}

/* Tlink (fid's file as name in dfid) or Trename (fid's file to name in dfid). */
static int link_op(struct t *t, uint8_t type, uint32_t fid, uint32_t dfid, const char *name)
{
    struct msg m;
    m_begin(t, &m, type, 15);
    m_put(&m, 4, type == P9_TLINK ? dfid : fid);
    m_put(&m, 4, type == P9_TLINK ? fid : dfid);
    m_str(&m, name);
    send_msg(t, &m);
    return err_of(t);
}

static int setattr(struct t *t, uint32_t fid, uint32_t valid, uint32_t mode, uint32_t uid,
                   uint64_t size, const uint64_t times[4])
{
    struct msg m;
    m_begin(t, &m, P9_TSETATTR, 16);
    m_put(&m, 4, fid);
    m_put(&m, 4, valid);
    m_put(&m, 4, mode);
    m_put(&m, 4, uid);
    m_put(&m, 4, uid);
    m_put(&m, 8, size);
    for (int i = 0; i < 4; i++)
        m_put(&m, 8, times ? times[i] : 0);
    send_msg(t, &m);
    return err_of(t);
}

static mode_t host_mode(struct t *t, const char *rel)
{
    struct stat st;
    ck_assert_int_eq(lstat(hp(t, rel), &st), 0);
    return st.st_mode;
}

static bool host_exists(struct t *t, const char *rel)
{
    struct stat st;
    return lstat(hp(t, rel), &st) == 0;
}

START_TEST(test_create_write_read)
{
    struct t t;
    setup(&t, false);
    ck_assert_int_eq(walk(&t, 0, 1, NULL, 0, NULL), 0);
    /* Set-user-ID is stripped, kiln's umask does not cut the rest. */
    ck_assert_int_eq(lcreate(&t, 1, "new.txt", O_RDWR, 04777), 0);
    ck_assert_uint_eq(t.rep[P9_HEADER], 0x00); /* a file's qid */
    ck_assert_uint_eq(host_mode(&t, "new.txt"), S_IFREG | 0777);
    ck_assert_int_eq(write_op(&t, 1, 0, "hello world", 11), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 11);
    ck_assert_int_eq(write_op(&t, 1, 6, "WORLD", 5), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 0, 100), 0); /* the fid is the open new file */
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 11);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "hello WORLD", 11) == 0);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), 0);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 8 + 13 + 4 + 4 + 4 + 8 + 8, 8), 11);
    struct msg m;
    for (uint32_t datasync = 0; datasync < 2; datasync++) {
        m_begin(&t, &m, P9_TFSYNC, 17);
        m_put(&m, 4, 1);
        m_put(&m, 4, datasync);
        ck_assert_uint_eq(send_msg(&t, &m), P9_TFSYNC + 1);
    }
    /* Offsets and counts: past the largest offset, more than the message carries. */
    ck_assert_int_eq(write_op(&t, 1, 1ULL << 63, "x", 1), EINVAL);
    ck_assert_int_eq(write_op(&t, 1, INT64_MAX - 2, "xyzw", 4), EFBIG);
    ck_assert_int_eq(write_op(&t, 1, 0, "abc", 4), EPROTO);
    ck_assert_int_eq(write_op(&t, 1, 0, "abc", 0xffffffff), EPROTO);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), 0);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 8 + 13 + 4 + 4 + 4 + 8 + 8, 8), 11);
    /* Never over an existing name, a symlink, through a file, from an opened fid. */
    ck_assert_int_eq(walk(&t, 0, 2, NULL, 0, NULL), 0);
    ck_assert_int_eq(lcreate(&t, 2, "new.txt", O_RDWR, 0644), EEXIST);
    ck_assert_int_eq(lcreate(&t, 2, "out", O_RDWR | O_TRUNC, 0644), EEXIST);
    ck_assert_int_eq(lcreate(&t, 1, "x", O_RDWR, 0644), ENOTDIR);
    ck_assert_int_eq(walk1(&t, 0, 3, "a.txt"), 0);
    ck_assert_int_eq(lcreate(&t, 3, "x", O_RDWR, 0644), ENOTDIR);
    ck_assert_int_eq(write_op(&t, 3, 0, "x", 1), EBADF); /* not opened */
    ck_assert_int_eq(lopen(&t, 3, O_RDONLY), 0);
    ck_assert_int_eq(write_op(&t, 3, 0, "x", 1), EBADF); /* opened to read */
    /* An existing file opened for writing, with O_TRUNC. */
    ck_assert_int_eq(walk1(&t, 0, 4, "a.txt"), 0);
    ck_assert_int_eq(lopen(&t, 4, O_WRONLY | O_TRUNC), 0);
    ck_assert_int_eq(write_op(&t, 4, 0, "bye", 3), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 3, 0, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 3);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "bye", 3) == 0);
    teardown(&t);
}
END_TEST

START_TEST(test_dirs_rename_unlink)
{
    struct t t;
    setup(&t, false);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, "d1", 02770, NULL), 0);
    ck_assert_uint_eq(t.rep[P9_HEADER], 0x80);
    ck_assert_uint_eq(host_mode(&t, "d1"), S_IFDIR | 02770); /* set-group-ID kept: a directory */
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, "d1", 0755, NULL), EEXIST);
    ck_assert_int_eq(walk1(&t, 0, 1, "d1"), 0);
    ck_assert_int_eq(walk(&t, 1, 2, NULL, 0, NULL), 0);
    ck_assert_int_eq(lcreate(&t, 2, "f", O_WRONLY, 0600), 0);
    ck_assert_int_eq(write_op(&t, 2, 0, "in d1", 5), 0);
    /* Fids at and below a renamed directory follow it. */
    ck_assert_int_eq(renameat_op(&t, 0, "d1", 0, "d2"), 0);
    ck_assert(!host_exists(&t, "d1") && host_exists(&t, "d2/f"));
    ck_assert_int_eq(walk1(&t, 1, 3, "f"), 0);
    ck_assert_int_eq(lopen(&t, 3, O_RDONLY), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 3, 0, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 5);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 1, "inner", 0755, NULL), 0);
    ck_assert(host_exists(&t, "d2/inner"));
    /* Removal: the right flag, empty directories only, then the fid has no name. */
    ck_assert_int_eq(unlinkat_op(&t, 0, "d2", 0), EISDIR);
    ck_assert_int_eq(unlinkat_op(&t, 0, "d2", 0x200), ENOTEMPTY);
    ck_assert_int_eq(unlinkat_op(&t, 1, "f", 0x200), ENOTDIR);
    ck_assert_int_eq(unlinkat_op(&t, 1, "f", 0x1), EINVAL);
    ck_assert_int_eq(unlinkat_op(&t, 1, "f", 0), 0);
    ck_assert_int_eq(unlinkat_op(&t, 1, "inner", 0x200), 0);
    ck_assert_int_eq(unlinkat_op(&t, 0, "d2", 0x200), 0);
    ck_assert(!host_exists(&t, "d2"));
    ck_assert_int_eq(walk1(&t, 1, 4, "f"), ESTALE);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 1, "again", 0755, NULL), ESTALE);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), 0); /* the fd still names the old directory */
    /* A rename over a file: fids of the replaced one go stale, the moved one's follow. */
    ck_assert_int_eq(walk1(&t, 0, 5, "a.txt"), 0);
    ck_assert_int_eq(walk1(&t, 0, 6, "sub"), 0);
    ck_assert_int_eq(lcreate(&t, 6, "b.txt", O_WRONLY, 0644), 0);
    ck_assert_int_eq(walk(&t, 0, 7, (const char *const[]){"sub", "b.txt"}, 2, NULL), 0);
    ck_assert_int_eq(link_op(&t, P9_TRENAME, 5, 8, "b.txt"), EBADF);
    ck_assert_int_eq(walk1(&t, 0, 8, "sub"), 0);
    ck_assert_int_eq(link_op(&t, P9_TRENAME, 5, 8, "b.txt"), 0);
    ck_assert(!host_exists(&t, "a.txt"));
    ck_assert_int_eq(lopen(&t, 5, O_RDONLY), 0); /* a.txt's fid: now sub/b.txt */
    ck_assert_int_eq(read_op(&t, P9_TREAD, 5, 0, 100), 0);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "hello", 5) == 0);
    ck_assert_int_eq(lopen(&t, 7, O_RDONLY), ESTALE); /* the replaced file's */
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, "e1", 0755, NULL), 0);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, "e2", 0755, NULL), 0);
    ck_assert_int_eq(walk1(&t, 0, 10, "e2"), 0);
    ck_assert_int_eq(renameat_op(&t, 0, "e1", 0, "e2"), 0);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 10, "x", 0755, NULL), ESTALE); /* not in e1's */
    ck_assert(!host_exists(&t, "e2/x"));
    /* Tremove: the file goes, and the fid in any case. */
    ck_assert_int_eq(walk(&t, 0, 9, (const char *const[]){"sub", "b.txt"}, 2, NULL), 0);
    ck_assert_int_eq(fid_op(&t, P9_TREMOVE, 9), 0);
    ck_assert(!host_exists(&t, "sub/b.txt"));
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 9), EBADF);
    ck_assert_int_eq(walk(&t, 0, 9, NULL, 0, NULL), 0);
    ck_assert_int_eq(fid_op(&t, P9_TREMOVE, 9), EBUSY); /* the share's root stays */
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 9), EBADF);
    ck_assert(host_exists(&t, ""));
    teardown(&t);
}
END_TEST

START_TEST(test_links_nodes)
{
    struct t t;
    setup(&t, false);
    /* A symlink's target is stored as given, and never followed by the server. */
    ck_assert_int_eq(make_op(&t, P9_TSYMLINK, 0, "ln", 0, "/etc"), 0);
    ck_assert_uint_eq(t.rep[P9_HEADER], 0x02);
    char target[64] = {0};
    ck_assert_int_eq(readlink(hp(&t, "ln"), target, sizeof(target) - 1), 4);
    ck_assert_str_eq(target, "/etc");
    unsigned nq;
    ck_assert_int_eq(walk(&t, 0, 1, (const char *const[]){"ln", "passwd"}, 2, &nq), 0);
    ck_assert_uint_eq(nq, 1);
    ck_assert_int_eq(walk1(&t, 0, 1, "ln"), 0);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 1, "kiln-escaped", 0755, NULL), ENOTDIR);
    ck_assert_int_eq(lcreate(&t, 1, "kiln-escaped", O_RDWR, 0644), ENOTDIR);
    ck_assert_int_eq(renameat_op(&t, 0, "sub", 1, "kiln-escaped"), ENOTDIR);
    ck_assert_int_eq(access("/etc/kiln-escaped", F_OK), -1);
    ck_assert_int_eq(make_op(&t, P9_TSYMLINK, 0, "empty", 0, ""), ENOENT);
    /* Hard links within the share; a symlink is linked as itself. */
    ck_assert_int_eq(walk1(&t, 0, 2, "a.txt"), 0);
    ck_assert_int_eq(link_op(&t, P9_TLINK, 2, 0, "hard"), 0);
    struct stat a, b;
    ck_assert_int_eq(stat(hp(&t, "a.txt"), &a), 0);
    ck_assert_int_eq(stat(hp(&t, "hard"), &b), 0);
    ck_assert_uint_eq(a.st_ino, b.st_ino);
    ck_assert_int_eq(link_op(&t, P9_TLINK, 1, 0, "ln2"), 0);
    ck_assert(S_ISLNK(host_mode(&t, "ln2")));
    ck_assert_int_eq(link_op(&t, P9_TLINK, 0, 0, "root"), EPERM);
    /* Renaming a name onto another of the same file changes nothing, the fids neither. */
    ck_assert_int_eq(renameat_op(&t, 0, "a.txt", 0, "hard"), 0);
    ck_assert(host_exists(&t, "a.txt") && host_exists(&t, "hard"));
    ck_assert_int_eq(lopen(&t, 2, O_RDONLY), 0);
    /* FIFOs and sockets, never device nodes; the type must be one mknod makes. */
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "pipe", S_IFIFO | 0640, NULL), 0);
    ck_assert_uint_eq(host_mode(&t, "pipe"), S_IFIFO | 0640);
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "sock", S_IFSOCK | 0600, NULL), 0);
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "plain", 06755, NULL), 0);
    ck_assert_uint_eq(host_mode(&t, "plain"), S_IFREG | 0755);
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "null", S_IFCHR | 0666, NULL), EPERM);
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "disk", S_IFBLK | 0666, NULL), EPERM);
    ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, "dir", S_IFDIR | 0755, NULL), EINVAL);
    ck_assert(!host_exists(&t, "null") && !host_exists(&t, "disk") && !host_exists(&t, "dir"));
    ck_assert_int_eq(walk1(&t, 0, 3, "pipe"), 0);
    ck_assert_int_eq(lopen(&t, 3, O_WRONLY), EACCES); /* still never opened by kiln */
    teardown(&t);
}
END_TEST

START_TEST(test_setattr)
{
    struct t t;
    setup(&t, false);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
    /* Mode: set-user-ID and set-group-ID stripped from a file. */
    ck_assert_int_eq(setattr(&t, 1, 0x1, 06711, 0, 0, NULL), 0);
    ck_assert_uint_eq(host_mode(&t, "a.txt"), S_IFREG | 0711);
    ck_assert_int_eq(setattr(&t, 1, 0x1, 0644, 0, 0, NULL), 0);
    /* Size, through an unopened fid; past the largest offset; a directory's. */
    ck_assert_int_eq(setattr(&t, 1, 0x8, 0, 0, 2, NULL), 0);
    struct stat st;
    ck_assert_int_eq(stat(hp(&t, "a.txt"), &st), 0);
    ck_assert_int_eq(st.st_size, 2);
    ck_assert_int_eq(setattr(&t, 1, 0x8, 0, 0, 1ULL << 63, NULL), EFBIG);
    ck_assert_int_eq(setattr(&t, 0, 0x8, 0, 0, 0, NULL), EISDIR);
    /* Through an opened fid (so an unlinked open file can still be cut). */
    ck_assert_int_eq(walk1(&t, 0, 2, "a.txt"), 0);
    ck_assert_int_eq(lopen(&t, 2, O_RDWR), 0);
    ck_assert_int_eq(unlinkat_op(&t, 0, "a.txt", 0), 0);
    ck_assert_int_eq(setattr(&t, 2, 0x8, 0, 0, 1000, NULL), 0);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 2), 0);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 8 + 13 + 4 + 4 + 4 + 8 + 8, 8), 1000);
    ck_assert_int_eq(setattr(&t, 1, 0x8, 0, 0, 0, NULL), ESTALE); /* unopened, its name gone */
    /* Times: given (ATIME_SET, MTIME_SET), now, or left alone; nanoseconds checked. */
    ck_assert_int_eq(walk1(&t, 0, 3, "sub"), 0);
    const uint64_t times[4] = {1000000000, 5, 1200000000, 7};
    ck_assert_int_eq(setattr(&t, 3, 0x10 | 0x20 | 0x80 | 0x100, 0, 0, 0, times), 0);
    ck_assert_int_eq(stat(hp(&t, "sub"), &st), 0);
    ck_assert_int_eq(st.st_atim.tv_sec, 1000000000);
    ck_assert_int_eq(st.st_atim.tv_nsec, 5);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
    ck_assert_int_eq(setattr(&t, 3, 0x20, 0, 0, 0, times), 0); /* mtime now */
    ck_assert_int_eq(stat(hp(&t, "sub"), &st), 0);
    ck_assert_int_eq(st.st_atim.tv_sec, 1000000000);
    ck_assert_int_gt(st.st_mtim.tv_sec, 1600000000);
    const uint64_t bad[4] = {0, 1000000000, 0, 0};
    ck_assert_int_eq(setattr(&t, 3, 0x10 | 0x80, 0, 0, 0, bad), EINVAL);
    ck_assert_int_eq(setattr(&t, 3, 0x40, 0, 0, 0, NULL), 0); /* ctime alone: nothing to do */
    /* A symlink's own times change, never its target's; its mode cannot. */
    struct stat etc;
    ck_assert_int_eq(stat("/etc", &etc), 0);
    ck_assert_int_eq(walk1(&t, 0, 4, "out"), 0);
    ck_assert_int_eq(setattr(&t, 4, 0x10 | 0x20 | 0x80 | 0x100, 0, 0, 0, times), 0);
    ck_assert_int_eq(setattr(&t, 4, 0x1, 0777, 0, 0, NULL), EOPNOTSUPP);
    ck_assert_int_eq(setattr(&t, 4, 0x8, 0, 0, 0, NULL), EINVAL);
    ck_assert_int_eq(stat("/etc", &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, etc.st_mtim.tv_sec);
    ck_assert_uint_eq(st.st_mode, etc.st_mode);
    ck_assert_int_eq(lstat(hp(&t, "out"), &st), 0);
    ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
    /* Owner: as root, given; as a user, only no change (anything else is EPERM). */
    ck_assert_int_eq(lstat(hp(&t, "sub"), &st), 0);
    ck_assert_int_eq(setattr(&t, 3, 0x2 | 0x4, 0, st.st_uid, 0, NULL),
                     st.st_uid == st.st_gid ? 0 : EPERM);
    int want = geteuid() == 0 ? 0 : EPERM;
    ck_assert_int_eq(setattr(&t, 3, 0x2 | 0x4, 0, 4321, 0, NULL), want);
    ck_assert_int_eq(lstat(hp(&t, "sub"), &st), 0);
    ck_assert_uint_eq(st.st_uid, want ? geteuid() : 4321);
    teardown(&t);
}
END_TEST

START_TEST(test_hostile_writes)
{
    struct t t;
    setup(&t, false);
    static const char *const bad[] = {"", ".", "..", "a/b", "../kiln-p9-evil", "/tmp/kiln-p9-evil"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(lcreate(&t, 0, bad[i], O_RDWR, 0644), EINVAL);
        ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, bad[i], 0755, NULL), EINVAL);
        ck_assert_int_eq(make_op(&t, P9_TSYMLINK, 0, bad[i], 0, "x"), EINVAL);
        ck_assert_int_eq(make_op(&t, P9_TMKNOD, 0, bad[i], S_IFIFO | 0644, NULL), EINVAL);
        ck_assert_int_eq(unlinkat_op(&t, 0, bad[i], 0x200), EINVAL);
        ck_assert_int_eq(renameat_op(&t, 0, "a.txt", 0, bad[i]), EINVAL);
        ck_assert_int_eq(renameat_op(&t, 0, bad[i], 0, "x"), EINVAL);
        ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
        ck_assert_int_eq(link_op(&t, P9_TLINK, 1, 0, bad[i]), EINVAL);
        ck_assert_int_eq(link_op(&t, P9_TRENAME, 1, 0, bad[i]), EINVAL);
        ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1), 0);
    }
    /* A name longer than NAME_MAX; a message cut short; fids not held. */
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(lcreate(&t, 0, longname, O_RDWR, 0644), EPROTO);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, longname, 0755, NULL), EPROTO);
    static const uint8_t types[] = {P9_TLCREATE,  P9_TMKDIR,  P9_TSYMLINK,  P9_TMKNOD,   P9_TLINK,
                                    P9_TRENAMEAT, P9_TRENAME, P9_TUNLINKAT, P9_TSETATTR, P9_TWRITE,
                                    P9_TFSYNC,    P9_TLOCK,   P9_TGETLOCK};
    for (unsigned i = 0; i < sizeof(types); i++)
        ck_assert_int_eq(fid_op(&t, types[i], 0), EPROTO);
    ck_assert_int_eq(lcreate(&t, 99, "x", O_RDWR, 0644), EBADF);
    ck_assert_int_eq(renameat_op(&t, 0, "a.txt", 99, "x"), EBADF);
    ck_assert_int_eq(fid_op(&t, P9_TREMOVE, 99), EBADF);
    /* Nothing was made: not in the share, not beside it. */
    ck_assert_int_eq(access("/tmp/kiln-p9-evil", F_OK), -1);
    ck_assert(!host_exists(&t, "x") && !host_exists(&t, "b") && !host_exists(&t, "a"));
    ck_assert(host_exists(&t, "a.txt"));
    /* A symlink swapped in for a directory the guest walked to is not followed. */
    ck_assert_int_eq(walk1(&t, 0, 2, "sub"), 0);
    char p[512];
    snprintf(p, sizeof(p), "%s/sub", t.dir);
    char q[512];
    snprintf(q, sizeof(q), "%s/sub.real", t.dir);
    ck_assert_int_eq(rename(p, q), 0);
    ck_assert_int_eq(symlink("/tmp", p), 0);
    ck_assert_int_eq(lcreate(&t, 2, "kiln-p9-evil", O_RDWR, 0644), ENOTDIR);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 2, "kiln-p9-evil", 0755, NULL), ENOTDIR);
    ck_assert_int_eq(access("/tmp/kiln-p9-evil", F_OK), -1);
    teardown(&t);
}
END_TEST

START_TEST(test_read_only_changes)
{
    struct t t;
    setup(&t, true);
    ck_assert_int_eq(lcreate(&t, 0, "new", O_RDWR, 0644), EROFS);
    ck_assert_int_eq(make_op(&t, P9_TMKDIR, 0, "d", 0755, NULL), EROFS);
    ck_assert_int_eq(make_op(&t, P9_TSYMLINK, 0, "l", 0, "a.txt"), EROFS);
    ck_assert_int_eq(unlinkat_op(&t, 0, "a.txt", 0), EROFS);
    ck_assert_int_eq(renameat_op(&t, 0, "a.txt", 0, "b.txt"), EROFS);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
    ck_assert_int_eq(setattr(&t, 1, 0x8, 0, 0, 0, NULL), EROFS);
    ck_assert_int_eq(fid_op(&t, P9_TREMOVE, 1), EROFS);
    ck_assert(!host_exists(&t, "new") && !host_exists(&t, "d") && !host_exists(&t, "b.txt"));
    ck_assert_int_eq(host_mode(&t, "a.txt") & S_IFMT, S_IFREG);
    /* Locks (advisory, granted) and syncs are not changes. */
    struct msg m;
    m_begin(&t, &m, P9_TLOCK, 18);
    m_put(&m, 4, 1);
    m_put(&m, 1, 1);
    m_put(&m, 4, 0);
    m_put(&m, 8, 0);
    m_put(&m, 8, 10);
    m_put(&m, 4, 42);
    m_str(&m, "guest");
    ck_assert_uint_eq(send_msg(&t, &m), P9_TLOCK + 1);
    ck_assert_uint_eq(t.rep[P9_HEADER], 0);
    m_begin(&t, &m, P9_TGETLOCK, 19);
    m_put(&m, 4, 1);
    m_put(&m, 1, 1);
    m_put(&m, 8, 3);
    m_put(&m, 8, 10);
    m_put(&m, 4, 42);
    m_str(&m, "guest");
    ck_assert_uint_eq(send_msg(&t, &m), P9_TGETLOCK + 1);
    ck_assert_uint_eq(t.rep[P9_HEADER], 2); /* F_UNLCK: nobody else holds it */
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 1, 8), 3);
    ck_assert_uint_eq(le_get(t.rep + P9_HEADER + 17, 4), 42);
    teardown(&t);
}
END_TEST

/* ---- Snapshots: a session saved, and restored into a new server over the same directory. */

/* Save t's server, destroy it, and restore the state into a new one (read_only or not);
 * returns the restore's result (state_done's when it succeeded). */
static int save_restore(struct t *t, bool read_only)
{
    struct device_state st = {0};
    ck_assert_int_eq(p9_server_save(t->s, &st), 0);
    p9_server_destroy(t->s);
    int root = open(t->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(root, 0);
    ck_assert_int_eq(p9_server_create(root, read_only, &t->s), 0);
    struct device_state rd = state_reader(st.buf, st.len);
    int ret = p9_server_restore(t->s, &rd);
    if (ret == 0)
        ret = state_done(&rd);
    state_free(&st);
    return ret;
}

/* The directory entries of one Treaddir reply named file-with-a-longish-name-NN, marked in
 * seen; returns how many, and the offset of the last entry in *off. */
static unsigned readdir_names(struct t *t, char *seen, uint64_t *off)
{
    unsigned names = 0;
    uint32_t count = rep32(t, P9_HEADER);
    for (size_t pos = P9_HEADER + 4; pos < P9_HEADER + 4 + count;) {
        *off = le_get(t->rep + pos + 13, 8);
        size_t n = (size_t)le_get(t->rep + pos + 22, 2);
        int idx;
        if (n == 27 &&
            sscanf((const char *)t->rep + pos + 24, "file-with-a-longish-name-%02d", &idx) == 1) {
            ck_assert(!seen[idx]);
            seen[idx] = 1;
            names++;
        }
        pos += 24 + n;
    }
    return names;
}

static void host_write(struct t *t, const char *rel, const char *data)
{
    FILE *f = fopen(hp(t, rel), "w");
    ck_assert_ptr_nonnull(f);
    fputs(data, f);
    fclose(f);
}

static off_t host_size(struct t *t, const char *rel)
{
    struct stat st;
    ck_assert_int_eq(lstat(hp(t, rel), &st), 0);
    return st.st_size;
}

START_TEST(test_snapshot_round_trip)
{
    struct t t;
    setup(&t, false);
    host_write(&t, "new.txt", "abcdef");
    host_write(&t, "trunc.txt", "old contents");
    /* msize 32768; fids 1-6: a file read, a listing half done, a file opened to read and write,
     * a directory walked to, a file opened with O_TRUNC and O_APPEND, a file the guest made. */
    ck_assert_int_eq(version(&t, 32768, "9P2000.L"), 0);
    ck_assert_int_eq(attach(&t, 0), 0);
    ck_assert_int_eq(walk1(&t, 0, 1, "a.txt"), 0);
    ck_assert_int_eq(lopen(&t, 1, O_RDONLY), 0);
    ck_assert_int_eq(walk1(&t, 0, 2, "sub"), 0);
    ck_assert_int_eq(lopen(&t, 2, O_RDONLY | O_DIRECTORY), 0);
    char seen[64] = {0};
    uint64_t off = 0;
    ck_assert_int_eq(read_op(&t, P9_TREADDIR, 2, 0, 300), 0);
    unsigned names = readdir_names(&t, seen, &off);
    ck_assert_uint_gt(names, 0);
    ck_assert_int_eq(walk1(&t, 0, 3, "new.txt"), 0);
    ck_assert_int_eq(lopen(&t, 3, O_RDWR), 0);
    ck_assert_int_eq(walk1(&t, 0, 4, "sub"), 0);
    ck_assert_int_eq(walk1(&t, 0, 5, "trunc.txt"), 0);
    ck_assert_int_eq(lopen(&t, 5, O_WRONLY | O_TRUNC | O_APPEND), 0);
    ck_assert_int_eq(write_op(&t, 5, 0, "kept", 4), 0);
    ck_assert_int_eq(lopen(&t, 5, O_RDONLY), EBUSY);
    ck_assert_int_eq(walk(&t, 0, 6, NULL, 0, NULL), 0);
    ck_assert_int_eq(lcreate(&t, 6, "made.txt", O_RDWR | O_TRUNC, 0600), 0);
    ck_assert_int_eq(write_op(&t, 6, 0, "123", 3), 0);

    ck_assert_int_eq(save_restore(&t, false), 0);
    ck_assert_uint_eq(p9_msize(t.s), 32768);
    ck_assert_int_eq(host_size(&t, "trunc.txt"), 4); /* not truncated by the restore */
    ck_assert_int_eq(host_size(&t, "made.txt"), 3);
    /* Reads, the listing from where it stopped, writes: through the restored fids. */
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 0, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 5);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "hello", 5) == 0);
    for (;;) {
        ck_assert_int_eq(read_op(&t, P9_TREADDIR, 2, off, 300), 0);
        if (rep32(&t, P9_HEADER) == 0)
            break;
        names += readdir_names(&t, seen, &off);
    }
    ck_assert_uint_eq(names, 40);
    ck_assert_int_eq(write_op(&t, 3, 0, "XY", 2), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 3, 0, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 6);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "XYcdef", 6) == 0);
    ck_assert_int_eq(write_op(&t, 5, 0, "+more", 5), 0); /* O_APPEND still */
    ck_assert_int_eq(host_size(&t, "trunc.txt"), 9);
    ck_assert_int_eq(write_op(&t, 6, 3, "456", 3), 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 6, 0, 100), 0); /* made O_RDWR: reads too */
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 6);
    ck_assert(memcmp(t.rep + P9_HEADER + 4, "123456", 6) == 0);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 5, 0, 100), EBADF); /* write-only still */
    ck_assert_int_eq(walk1(&t, 4, 7, "file-with-a-longish-name-07"), 0);
    ck_assert_int_eq(walk1(&t, 1, 8, "x"), EBUSY); /* opened still */
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 0), 0);
    ck_assert_int_eq(lopen(&t, 4, O_RDONLY | O_DIRECTORY), 0);
    ck_assert_int_eq(unlinkat_op(&t, 0, "made.txt", 0), 0); /* paths are known again */
    ck_assert(!host_exists(&t, "made.txt"));
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 6), 0); /* an open unlinked file, as before */
    /* A restored server saves again: the unlinked file's fid is dead after the next restore. */
    ck_assert_int_eq(save_restore(&t, false), 0);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 6), ESTALE);
    ck_assert_int_eq(read_op(&t, P9_TREAD, 1, 1, 100), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 4);
    for (uint32_t fid = 0; fid < 8; fid++)
        ck_assert_int_eq(fid_op(&t, P9_TCLUNK, fid), 0);
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 0), EBADF);
    teardown(&t);
}
END_TEST

START_TEST(test_snapshot_dead_fids)
{
    struct t t;
    setup(&t, false);
    host_write(&t, "gone.txt", "x");
    host_write(&t, "kind.txt", "x");
    host_write(&t, "rw.txt", "x");
    ck_assert_int_eq(walk1(&t, 0, 1, "gone.txt"), 0); /* removed on the host in between */
    ck_assert_int_eq(lopen(&t, 1, O_RDONLY), 0);
    ck_assert_int_eq(walk1(&t, 0, 2, "kind.txt"), 0);   /* a directory in its place then */
    ck_assert_int_eq(walk(&t, 0, 3, NULL, 0, NULL), 0); /* made, then unlinked by the guest */
    ck_assert_int_eq(lcreate(&t, 3, "tmp.txt", O_RDWR, 0644), 0);
    ck_assert_int_eq(unlinkat_op(&t, 0, "tmp.txt", 0), 0);
    ck_assert_int_eq(write_op(&t, 3, 0, "still", 5), 0);
    ck_assert_int_eq(walk1(&t, 0, 4, "rw.txt"), 0); /* written: dead on a read-only share */
    ck_assert_int_eq(lopen(&t, 4, O_RDWR), 0);
    ck_assert_int_eq(walk1(&t, 0, 5, "a.txt"), 0); /* read: lives on */
    ck_assert_int_eq(lopen(&t, 5, O_RDONLY), 0);
    ck_assert_int_eq(walk1(&t, 0, 6, "rw.txt"), 0); /* Tremove'd after the restore */
    struct device_state st = {0};
    ck_assert_int_eq(p9_server_save(t.s, &st), 0);
    state_free(&st);
    ck_assert_int_eq(unlink(hp(&t, "gone.txt")), 0);
    ck_assert_int_eq(unlink(hp(&t, "kind.txt")), 0);
    ck_assert_int_eq(mkdir(hp(&t, "kind.txt"), 0755), 0);
    /* (save_restore saves again: the host changes above came after the first save too.) */
    ck_assert_int_eq(save_restore(&t, true), 0);
    static const uint8_t ops[] = {P9_TGETATTR, P9_TSTATFS, P9_TREADLINK};
    for (uint32_t fid = 1; fid <= 4; fid++) {
        for (unsigned i = 0; i < sizeof(ops); i++)
            ck_assert_int_eq(fid_op(&t, ops[i], fid), ESTALE);
        ck_assert_int_eq(lopen(&t, fid, O_RDONLY), ESTALE);
        ck_assert_int_eq(read_op(&t, P9_TREAD, fid, 0, 10), ESTALE);
        ck_assert_int_eq(read_op(&t, P9_TREADDIR, fid, 0, 100), ESTALE);
        ck_assert_int_eq(walk1(&t, fid, 9, "x"), ESTALE);
        ck_assert_int_eq(walk(&t, fid, 9, NULL, 0, NULL), ESTALE);
        ck_assert_int_eq(walk1(&t, 0, fid, "a.txt"), EEXIST); /* held until clunked */
    }
    ck_assert_int_eq(read_op(&t, P9_TREAD, 5, 0, 10), 0);
    ck_assert_uint_eq(rep32(&t, P9_HEADER), 5);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 6), 0);
    for (uint32_t fid = 1; fid <= 4; fid++) {
        ck_assert_int_eq(fid_op(&t, P9_TCLUNK, fid), 0);
        ck_assert_int_eq(fid_op(&t, P9_TCLUNK, fid), EBADF);
        ck_assert_int_eq(walk1(&t, 0, fid, "a.txt"), 0); /* the number is free again */
    }
    teardown(&t);
}
END_TEST

START_TEST(test_snapshot_remove_dead)
{
    struct t t;
    setup(&t, false);
    host_write(&t, "gone.txt", "x");
    ck_assert_int_eq(walk1(&t, 0, 1, "gone.txt"), 0);
    ck_assert_int_eq(unlink(hp(&t, "gone.txt")), 0);
    ck_assert_int_eq(save_restore(&t, false), 0);
    ck_assert_int_eq(write_op(&t, 1, 0, "x", 1), ESTALE);
    ck_assert_int_eq(fid_op(&t, P9_TREMOVE, 1), ESTALE); /* and clunked, as Tremove always is */
    ck_assert_int_eq(fid_op(&t, P9_TCLUNK, 1), EBADF);
    ck_assert_uint_eq(p9_msize(t.s), 65536);
    teardown(&t);
}
END_TEST

/* One fid of a hand-made state. */
static void put_fid(struct device_state *st, uint32_t fid, uint32_t bits, uint32_t flags,
                    uint32_t type, const char *path, size_t len)
{
    state_put_u32(st, fid);
    state_put_u32(st, bits);
    state_put_u32(st, flags);
    state_put_u32(st, type);
    state_put_u32(st, (uint32_t)len);
    state_put(st, path, len);
}

/* Restore a hand-made state of msize and n fids (each put_fid'ed into fids) into t. */
static int restore_blob(struct t *t, uint32_t msize, uint32_t n, const struct device_state *fids)
{
    struct device_state st = {0};
    state_put_u32(&st, msize);
    state_put_u32(&st, n);
    state_put(&st, fids->buf, fids->len);
    ck_assert_int_eq(st.err, 0);
    struct device_state rd = state_reader(st.buf, st.len);
    int ret = p9_server_restore(t->s, &rd);
    if (ret == 0)
        ret = state_done(&rd);
    state_free(&st);
    return ret;
}

/* A state with one fid (besides a good fid 0 before it) restores as ret says. */
static void one_fid(struct t *t, int ret, uint32_t fid, uint32_t bits, uint32_t flags,
                    uint32_t type, const char *path, size_t len)
{
    struct device_state fids = {0};
    put_fid(&fids, 0, 1, 0, S_IFDIR, "", 0);
    put_fid(&fids, fid, bits, flags, type, path, len);
    ck_assert_int_eq(restore_blob(t, 65536, 2, &fids), ret);
    if (ret < 0) /* nothing half restored: fid 0 is gone too */
        ck_assert_int_eq(fid_op(t, P9_TGETATTR, 0), EBADF);
    state_free(&fids);
}

START_TEST(test_snapshot_hostile)
{
    struct t t;
    setup(&t, false);
    static char longpath[4096], longname[300]; /* P9_PATH_MAX; past P9_NAME_MAX */
    memset(longpath, 'a', sizeof(longpath));
    for (size_t i = 200; i < sizeof(longpath); i += 201) /* names of 200 bytes */
        longpath[i] = '/';
    memset(longname, 'b', sizeof(longname));
    /* Paths no walk makes: absolute, "..", ".", empty names, too long, a NUL inside. */
    static const char *const bad_paths[] = {"/etc",  "..",     "../x", "sub/..", "sub/../..", ".",
                                            "sub/.", "sub//x", "sub/", "/",      "a.txt/"};
    for (unsigned i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++)
        one_fid(&t, -EINVAL, 1, 1, 0, 0, bad_paths[i], strlen(bad_paths[i]));
    one_fid(&t, -EINVAL, 1, 1, 0, 0, "sub\0x", 5);
    one_fid(&t, -EINVAL, 1, 1, 0, 0, longpath, sizeof(longpath));
    one_fid(&t, 0, 1, 1, 0, 0, longpath, sizeof(longpath) - 1); /* long, but could be: dead */
    one_fid(&t, -EINVAL, 1, 1, 0, 0, longname, sizeof(longname));
    /* Fid numbers: NOFID, twice; bits, flags and types outside the set. */
    one_fid(&t, -EINVAL, 0xffffffff, 1, 0, 0, "sub", 3);
    one_fid(&t, -EINVAL, 0, 1, 0, 0, "sub", 3);
    one_fid(&t, -EINVAL, 1, 4, 0, 0, "sub", 3);
    one_fid(&t, -EINVAL, 1, 3, O_RDWR | O_TRUNC, 0, "a.txt", 5);
    one_fid(&t, -EINVAL, 1, 3, O_RDWR | O_CREAT, 0, "a.txt", 5);
    one_fid(&t, -EINVAL, 1, 3, O_RDWR | O_EXCL, 0, "a.txt", 5);
    one_fid(&t, -EINVAL, 1, 3, O_RDONLY | O_NOFOLLOW, 0, "a.txt", 5);
    one_fid(&t, -EINVAL, 1, 1, O_RDWR, 0, "a.txt", 5); /* flags of a fid never opened */
    one_fid(&t, -EINVAL, 1, 1, 0, 0x1234, "a.txt", 5);
    one_fid(&t, -EINVAL, 1, 3, O_RDONLY, S_IFIFO, "fifo", 4);
    one_fid(&t, -EINVAL, 1, 0, 0, 0, "a.txt", 5);  /* no path, yet a path */
    one_fid(&t, -EINVAL, 1, 0, 0, S_IFREG, "", 0); /* no path, yet a type */
    /* A path longer than what the state holds. */
    struct device_state fids = {0};
    put_fid(&fids, 1, 1, 0, 0, "", 0);
    fids.len -= 4;
    state_put_u32(&fids, 1000);
    state_put(&fids, "sub", 3);
    ck_assert_int_eq(restore_blob(&t, 65536, 1, &fids), -EINVAL);
    state_free(&fids);
    /* msize and counts. */
    put_fid(&fids, 0, 1, 0, S_IFDIR, "", 0);
    ck_assert_int_eq(restore_blob(&t, 4095, 1, &fids), -EINVAL);
    ck_assert_int_eq(restore_blob(&t, P9_MSIZE_MAX + 1, 1, &fids), -EINVAL);
    ck_assert_int_eq(restore_blob(&t, 65536, P9_MAX_FIDS + 1, &fids), -EINVAL);
    ck_assert_int_eq(restore_blob(&t, 65536, 2, &fids), -EINVAL); /* one short */
    ck_assert_uint_eq(p9_msize(t.s), P9_MSIZE_MAX);               /* as new after each */
    ck_assert_int_eq(restore_blob(&t, 65536, 0, &fids), -EINVAL); /* one too many */
    ck_assert_int_eq(restore_blob(&t, 8192, 1, &fids), 0);
    ck_assert_uint_eq(p9_msize(t.s), 8192);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 0), 0);
    state_free(&fids);
    /* Well formed, yet nothing a server would re-attach: through a symlink (out -> /etc), a
     * symlink opened, a FIFO opened (it must not block), a type that changed. Dead, not refused. */
    one_fid(&t, 0, 1, 1, 0, 0, "out/passwd", 10);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), ESTALE);
    one_fid(&t, 0, 1, 3, O_RDONLY, 0, "out", 3);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), ESTALE);
    one_fid(&t, 0, 1, 3, O_RDONLY, 0, "fifo", 4);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), ESTALE);
    one_fid(&t, 0, 1, 1, 0, S_IFREG, "sub", 3);
    ck_assert_int_eq(fid_op(&t, P9_TGETATTR, 1), ESTALE);
    one_fid(&t, 0, 1, 1, 0, S_IFLNK, "up", 2); /* a symlink walked to, not followed */
    ck_assert_int_eq(fid_op(&t, P9_TREADLINK, 1), 0);
    one_fid(&t, 0, 1, 3, O_RDONLY | O_DIRECTORY, S_IFDIR, "sub", 3);
    ck_assert_int_eq(read_op(&t, P9_TREADDIR, 1, 0, 300), 0);
    ck_assert_uint_gt(rep32(&t, P9_HEADER), 0);
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
    tcase_add_test(tc, test_create_write_read);
    tcase_add_test(tc, test_dirs_rename_unlink);
    tcase_add_test(tc, test_links_nodes);
    tcase_add_test(tc, test_setattr);
    tcase_add_test(tc, test_hostile_writes);
    tcase_add_test(tc, test_read_only_changes);
    tcase_add_test(tc, test_snapshot_round_trip);
    tcase_add_test(tc, test_snapshot_dead_fids);
    tcase_add_test(tc, test_snapshot_remove_dead);
    tcase_add_test(tc, test_snapshot_hostile);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
