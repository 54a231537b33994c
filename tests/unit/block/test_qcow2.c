/* test_qcow2.c: qcow2 images made by qemu-img/qemu-io, read and written through src/block. */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/image.h"
#include "sandbox.h"
#include "util.h"

/* This test's scratch directory (Check runs each test in a child of its own). */
static char dir[256];

/* ---- Shell, files. */

static void remove_dir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_qcow2: could not remove %s\n", dir);
}

/* Run a command in dir, its output appended to dir/log. Returns its exit status, or -1. */
static int sh_status(const char *fmt, ...) KILN_PRINTF(1, 2);
static int sh_status(const char *fmt, ...)
{
    char cmd[4096], full[4600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd '%s' && { %s ; } >>log 2>&1", dir, cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define SH(...)                                                                                    \
    do {                                                                                           \
        char c_[1024];                                                                             \
        snprintf(c_, sizeof(c_), __VA_ARGS__);                                                     \
        int st_ = sh_status("%s", c_);                                                             \
        ck_assert_msg(st_ == 0, "command failed with %d: %s (output in %s/log)", st_, c_, dir);    \
    } while (0)

/* name's absolute path (a few at a time stay valid). */
static const char *P(const char *name)
{
    static char bufs[8][512];
    static unsigned i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static uint8_t *slurp(const char *name, size_t *len)
{
    int fd = open(P(name), O_RDONLY);
    ck_assert_msg(fd >= 0, "open %s: %s", name, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread_full(fd, buf, (uint64_t)st.st_size, 0), 0);
    buf[st.st_size] = 0;
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static void spit(const char *name, const void *data, size_t len)
{
    int fd = open(P(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static uint64_t file_size(const char *name)
{
    struct stat st;
    ck_assert_int_eq(stat(P(name), &st), 0);
    return (uint64_t)st.st_size;
}

static uint64_t peek(const char *name, uint64_t off, unsigned width)
{
    int fd = open(P(name), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    uint8_t b[8] = {0};
    ck_assert_int_eq(pread(fd, b, width, (off_t)off), (ssize_t)width);
    close(fd);
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v = v << 8 | b[i];
    return v;
}

static void poke(const char *name, uint64_t off, unsigned width, uint64_t v)
{
    int fd = open(P(name), O_WRONLY);
    ck_assert_int_ge(fd, 0);
    uint8_t b[8];
    for (unsigned i = width; i-- > 0; v >>= 8)
        b[i] = (uint8_t)v;
    ck_assert_int_eq(pwrite(fd, b, width, (off_t)off), (ssize_t)width);
    close(fd);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *d = slurp(from, &n);
    spit(to, d, n);
    free(d);
}

/* qemu-img convert's view of every guest byte. */
static uint8_t *qemu_raw(const char *name, size_t *len)
{
    char out[256];
    snprintf(out, sizeof(out), "%s.conv.raw", name);
    SH("rm -f %s && qemu-img convert -O raw %s %s", out, name, out);
    return slurp(out, len);
}

/* qemu-img check must find the image clean: no corruption, no leak (exit status 0). */
static void qemu_check(const char *name)
{
    char out[256];
    snprintf(out, sizeof(out), "%s.check", name);
    int st = sh_status("qemu-img check -f qcow2 %s >%s 2>&1", name, out);
    size_t n;
    char *text = (char *)slurp(out, &n);
    if (n > 1500)
        text[1500] = 0; /* Check's messages are limited */
    ck_assert_msg(st == 0 && strstr(text, "No errors were found"), "qemu-img check %s: exit %d: %s",
                  name, st, text);
    free(text);
}

static void same(const uint8_t *got, const uint8_t *want, size_t n, const char *what)
{
    if (memcmp(got, want, n) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i],
                      "%s: first difference at byte %zu (0x%zx): 0x%02x, want 0x%02x", what, i, i,
                      got[i], want[i]);
}

/* ---- kiln's side. */

static int kopen_fmt(const char *name, bool ro, enum disk_format f, struct disk_image **img,
                     char *err)
{
    struct disk_image_config cfg = {.path = P(name), .read_only = ro, .format = f};
    err[0] = 0;
    return disk_image_open(&cfg, img, err);
}

static struct disk_image *kopen(const char *name, bool ro)
{
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    int ret = kopen_fmt(name, ro, DISK_FORMAT_AUTO, &img, err);
    ck_assert_msg(ret == 0, "open %s: %d %s", name, ret, err);
    return img;
}

/* Split [buf, buf + len) into up to pieces uneven iovec entries. */
static unsigned split(uint8_t *buf, uint64_t len, unsigned pieces, struct iovec *iov)
{
    unsigned n = 0;
    uint64_t done = 0;
    for (unsigned i = 0; i < pieces && done < len; i++) {
        uint64_t take = i + 1 == pieces ? len - done : (len - done) / 3 + 1;
        iov[n++] = (struct iovec){buf + done, take};
        done += take;
    }
    return n;
}

static int kread_ret(struct disk_image *img, uint8_t *buf, uint64_t off, uint64_t len,
                     unsigned pieces)
{
    struct iovec iov[8];
    return disk_image_read(img, iov, split(buf, len, pieces, iov), off);
}

static int kwrite_ret(struct disk_image *img, const uint8_t *buf, uint64_t off, uint64_t len,
                      unsigned pieces)
{
    struct iovec iov[8];
    return disk_image_write(img, iov, split((uint8_t *)buf, len, pieces, iov), off);
}

static void kread(struct disk_image *img, uint8_t *buf, uint64_t off, uint64_t len, unsigned pieces)
{
    int ret = kread_ret(img, buf, off, len, pieces);
    ck_assert_msg(ret == 0, "read %llu+%llu: %d", (unsigned long long)off, (unsigned long long)len,
                  ret);
}

static void kwrite(struct disk_image *img, const uint8_t *buf, uint64_t off, uint64_t len,
                   unsigned pieces)
{
    int ret = kwrite_ret(img, buf, off, len, pieces);
    ck_assert_msg(ret == 0, "write %llu+%llu: %d", (unsigned long long)off, (unsigned long long)len,
                  ret);
}

/* Every guest byte through kiln, in chunks of chunk bytes split into pieces. */
static uint8_t *kread_all(struct disk_image *img, uint64_t chunk, unsigned pieces)
{
    uint64_t size = disk_image_size(img);
    uint8_t *buf = malloc(size + 1);
    ck_assert_ptr_nonnull(buf);
    for (uint64_t off = 0; off < size; off += chunk)
        kread(img, buf + off, off, size - off < chunk ? size - off : chunk, pieces);
    return buf;
}

/* kiln and qemu-img convert agree on every byte of name, read in several ways. */
static void expect_reads_match(const char *name)
{
    size_t n;
    uint8_t *want = qemu_raw(name, &n);
    struct disk_image *img = kopen(name, true);
    ck_assert_uint_eq(disk_image_size(img), n);
    const uint64_t chunks[] = {512, 4096 + 512, 65536 * 3 + 7, 1 << 20};
    for (unsigned i = 0; i < ARRAY_SIZE(chunks); i++) {
        uint8_t *got = kread_all(img, chunks[i], 1 + i % 4);
        char what[128];
        snprintf(what, sizeof(what), "%s read in chunks of %llu", name,
                 (unsigned long long)chunks[i]);
        same(got, want, n, what);
        free(got);
    }
    ck_assert_int_eq(disk_image_close(img), 0);
    free(want);
}

/* ---- A model of the guest-visible bytes, for writes through kiln. */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void fill(uint8_t *buf, uint64_t len, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    for (uint64_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(rnd(&s) >> 24);
}

struct model {
    uint8_t *data;
    uint64_t size, cs;
    bool v3;
    const uint8_t *backing; /* what the backing file shows (NULL: none) */
    uint64_t backing_len;
};

/* A discard: whole clusters read zeros (v3) or what lies below (v2). */
static void model_discard(struct model *m, uint64_t off, uint64_t len)
{
    uint64_t end = off + len, a = align_up(off, m->cs);
    uint64_t b = end == m->size ? m->size : align_down(end, m->cs);
    for (uint64_t o = a; o < b; o++)
        m->data[o] = !m->v3 && m->backing && o < m->backing_len ? m->backing[o] : 0;
}

static void model_write(struct disk_image *img, struct model *m, uint64_t off, uint64_t len,
                        uint64_t seed, unsigned pieces)
{
    uint8_t *buf = malloc(len);
    fill(buf, len, seed);
    kwrite(img, buf, off, len, pieces);
    memcpy(m->data + off, buf, len);
    free(buf);
}

static void check_range(struct disk_image *img, const struct model *m, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len + 1);
    kread(img, buf, off, len, 3);
    char what[96];
    snprintf(what, sizeof(what), "read %llu+%llu", (unsigned long long)off,
             (unsigned long long)len);
    same(buf, m->data + off, len, what);
    free(buf);
}

/* A guest-like mix: writes of any size and alignment, discards, zeroes, reads, flushes. */
static void guest_ops(struct disk_image *img, struct model *m, uint64_t seed, unsigned nops)
{
    uint64_t s = seed | 1;
    uint64_t maxlen = 3 * m->cs + 4096 < m->size ? 3 * m->cs + 4096 : m->size;
    for (unsigned i = 0; i < nops; i++) {
        unsigned kind = (unsigned)(rnd(&s) % 20);
        uint64_t len = 1 + rnd(&s) % maxlen;
        if (rnd(&s) % 4 && len >= 512)
            len = align_down(len, 512);
        uint64_t off = rnd(&s) % (m->size - len + 1);
        if (rnd(&s) % 4)
            off = align_down(off, 512);
        if (kind < 10) {
            model_write(img, m, off, len, rnd(&s), 1 + (unsigned)(rnd(&s) % 4));
        } else if (kind < 13) {
            ck_assert_int_eq(disk_image_discard(img, off, len), 0);
            model_discard(m, off, len);
        } else if (kind < 16) {
            ck_assert_int_eq(disk_image_write_zeroes(img, off, len, rnd(&s) & 1), 0);
            memset(m->data + off, 0, len);
        } else if (kind < 18) {
            check_range(img, m, off, len);
        } else {
            ck_assert_int_eq(disk_image_flush(img), 0);
        }
    }
}

/* After close: qemu-img check is clean, and qemu-img (convert, compare) and kiln see m. */
static void expect_image(const char *name, const struct model *m)
{
    qemu_check(name);
    size_t n;
    uint8_t *got = qemu_raw(name, &n);
    ck_assert_uint_eq(n, m->size);
    same(got, m->data, n, "qemu-img convert after kiln's writes");
    free(got);
    char model[256];
    snprintf(model, sizeof(model), "%s.model.raw", name);
    spit(model, m->data, m->size);
    SH("qemu-img compare -f qcow2 -F raw %s %s", name, model);
    struct disk_image *img = kopen(name, true);
    got = kread_all(img, 1 << 20, 2);
    same(got, m->data, m->size, "kiln's reads after reopening");
    free(got);
    ck_assert_int_eq(disk_image_close(img), 0);
}

static void model_from(struct model *m, const char *name, uint64_t cs, bool v3)
{
    size_t n;
    *m = (struct model){.data = qemu_raw(name, &n), .cs = cs, .v3 = v3};
    m->size = n;
}

/* ---- Fixture. */

static void setup(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%.200s/kiln-qcow2-XXXXXX", tmp);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* scripts/install-deps installs qemu-utils: without it the test cannot prove anything. */
    if (sh_status("qemu-img --version && qemu-io --version") != 0)
        ck_abort_msg("qemu-img or qemu-io not found: install qemu-utils (scripts/install-deps)");
}

/* KILN_TEST_KEEP=1 leaves the scratch directories (images, qemu's output in log) to look at. */
static void teardown(void)
{
    if (getenv("KILN_TEST_KEEP"))
        return;
    remove_dir();
}

START_TEST(test_qemu_tools_present)
{
    ck_assert_int_eq(sh_status("command -v qemu-img && command -v qemu-io"), 0);
}
END_TEST

/* ---- Reading what qemu wrote. */

static const char *const read_opts[] = {
    "compat=0.10,cluster_size=512",   "compat=0.10,cluster_size=4096",
    "compat=0.10,cluster_size=65536", "compat=1.1,cluster_size=512",
    "compat=1.1,cluster_size=4096",   "compat=1.1,cluster_size=65536",
    "compat=1.1,cluster_size=2M",     "compat=1.1,cluster_size=4096,refcount_bits=1",
};

START_TEST(test_read_patterns)
{
    const char *opts = read_opts[_i];
    SH("qemu-img create -f qcow2 -o %s t.qcow2 3M", opts);
    SH("qemu-io -f qcow2 -c 'write -P 0x11 0 4k' -c 'write -P 0x22 5000 3000' "
       "-c 'write -P 0x33 1M 200k' -c 'write -P 0x44 3144704 1024' -c 'write -P 0x55 65024 1536' "
       "t.qcow2");
    expect_reads_match("t.qcow2");
    /* Byte-granular reads across cluster boundaries. */
    size_t n;
    uint8_t *want = qemu_raw("t.qcow2", &n);
    struct disk_image *img = kopen("t.qcow2", true);
    uint64_t s = 12345;
    for (int i = 0; i < 200; i++) {
        uint64_t len = 1 + rnd(&s) % 70000, off = rnd(&s) % (n - len);
        uint8_t *buf = malloc(len);
        kread(img, buf, off, len, 1 + i % 5);
        same(buf, want + off, len, "unaligned read");
        free(buf);
    }
    ck_assert_str_eq(disk_image_format_name(img), "qcow2");
    disk_image_close(img);
    free(want);
}
END_TEST

START_TEST(test_read_zero_and_discarded)
{
    SH("qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096 t.qcow2 1M");
    SH("qemu-io -f qcow2 -c 'write -P 0x61 0 256k' -c 'write -z 8k 8k' -c 'write -z -u 64k 12k' "
       "-c 'discard 128k 16k' -c 'write -z 300k 64k' t.qcow2");
    expect_reads_match("t.qcow2");
}
END_TEST

/* A raw file of patterns and zero runs, compressed by qemu-img convert -c. */
static void make_compressed(const char *name, const char *opts, const char *size)
{
    SH("qemu-img create -f raw src.raw %s", size);
    SH("qemu-io -f raw -c 'write -P 0x71 0 100k' -c 'write -P 0x72 150k 3k' "
       "-c 'write -P 0x73 300k 200k' src.raw");
    SH("dd if=/dev/urandom of=src.raw bs=1k seek=600 count=60 conv=notrunc status=none");
    SH("qemu-img convert -c -f raw -O qcow2 -o %s src.raw %s", opts, name);
}

static const char *const compressed_opts[] = {"compat=0.10,cluster_size=512",
                                              "compat=1.1,cluster_size=4096",
                                              "compat=1.1,cluster_size=65536"};

START_TEST(test_read_compressed)
{
    make_compressed("c.qcow2", compressed_opts[_i], "1M");
    expect_reads_match("c.qcow2");
}
END_TEST

START_TEST(test_read_backing_chain)
{
    /* base (raw, 1 MiB) <- mid (qcow2 v2, 2 MiB) <- top (qcow2 v3, 3 MiB); relative names. */
    SH("qemu-img create -f raw base.raw 1M && qemu-io -f raw -c 'write -P 0x81 0 1M' base.raw");
    SH("qemu-img create -f qcow2 -o compat=0.10,cluster_size=512 -b base.raw -F raw mid.qcow2 2M");
    SH("qemu-io -f qcow2 -c 'write -P 0x82 4k 4k' -c 'write -P 0x83 1500k 100k' mid.qcow2");
    SH("qemu-img create -f qcow2 -o cluster_size=65536 -b mid.qcow2 -F qcow2 top.qcow2 3M");
    SH("qemu-io -f qcow2 -c 'write -P 0x84 6k 1k' -c 'write -z 64k 64k' -c 'write -P 0x85 2M 5k' "
       "top.qcow2");
    ck_assert_int_eq(chdir("/"), 0); /* names resolve against the image's directory */
    expect_reads_match("top.qcow2");
}
END_TEST

/* ---- Writing through kiln. */

struct scenario {
    const char *name;
    uint64_t cs;
    const char *opts;
    const char *size;
    const char *backing; /* NULL, "raw" or "qcow2" */
    bool compressed;
};

static const struct scenario scenarios[] = {
    {"v3 4k", 4096, "compat=1.1,cluster_size=4096", "4M", NULL, false},
    {"v2 512", 512, "compat=0.10,cluster_size=512", "1M", NULL, false},
    {"v3 64k raw backing", 65536, "compat=1.1,cluster_size=65536", "6M", "raw", false},
    {"v2 4k qcow2 backing", 4096, "compat=0.10,cluster_size=4096", "2M", "qcow2", false},
    {"v3 512 qcow2 backing", 512, "compat=1.1,cluster_size=512", "1M", "qcow2", false},
    {"v3 2M", 2u << 20, "compat=1.1,cluster_size=2M", "12M", NULL, false},
    {"v3 4k compressed", 4096, "compat=1.1,cluster_size=4096", "1M", NULL, true},
    {"v2 64k compressed", 65536, "compat=0.10,cluster_size=65536", "1M", NULL, true},
    {"v3 512 refcount_bits=1", 512, "compat=1.1,cluster_size=512,refcount_bits=1", "1M", NULL,
     false},
    {"v3 512 refcount_bits=2", 512, "compat=1.1,cluster_size=512,refcount_bits=2", "1M", NULL,
     false},
    {"v3 4k refcount_bits=4", 4096, "compat=1.1,cluster_size=4096,refcount_bits=4", "2M", NULL,
     false},
    {"v3 4k refcount_bits=8", 4096, "compat=1.1,cluster_size=4096,refcount_bits=8", "2M", NULL,
     false},
    {"v3 4k refcount_bits=32", 4096, "compat=1.1,cluster_size=4096,refcount_bits=32", "2M", "raw",
     false},
    {"v3 4k refcount_bits=64", 4096, "compat=1.1,cluster_size=4096,refcount_bits=64", "2M", NULL,
     false},
    {"v3 4k lazy refcounts", 4096, "compat=1.1,cluster_size=4096,lazy_refcounts=on", "2M", NULL,
     false},
    {"v3 4k odd size", 4096, "compat=1.1,cluster_size=4096", "1050112", "raw", false},
};

static void make_scenario(const struct scenario *sc, struct model *m, uint64_t *cs)
{
    if (sc->backing && !strcmp(sc->backing, "raw")) {
        SH("qemu-img create -f raw base 700k && qemu-io -f raw -c 'write -P 0x91 0 700k' "
           "-c 'write -P 0x92 5000 3000' base");
    } else if (sc->backing) {
        SH("qemu-img create -f qcow2 -o cluster_size=4096 base 1536k");
        SH("qemu-io -f qcow2 -c 'write -P 0x93 0 600k' -c 'write -P 0x94 1M 100k' base");
    }
    if (sc->compressed) {
        make_compressed("t.qcow2", sc->opts, sc->size);
    } else if (sc->backing) {
        SH("qemu-img create -f qcow2 -o %s -b base -F %s t.qcow2 %s", sc->opts, sc->backing,
           sc->size);
    } else {
        SH("qemu-img create -f qcow2 -o %s t.qcow2 %s", sc->opts, sc->size);
    }
    SH("qemu-io -f qcow2 -c 'write -P 0x5a 0 3k' -c 'write -P 0xa5 20000 5000' t.qcow2");
    bool v3 = strstr(sc->opts, "compat=1.1") != NULL;
    if (v3)
        SH("qemu-io -f qcow2 -c 'write -z 64k 32k' -c 'write -z -u 128k 16k' t.qcow2");
    *cs = sc->cs;
    model_from(m, "t.qcow2", *cs, v3);
    if (sc->backing) {
        size_t n;
        m->backing = qemu_raw("base", &n);
        m->backing_len = n;
    }
}

/* Writes aimed at each kind of cluster: unallocated, zero, compressed, the backing file's. */
static void targeted_writes(struct disk_image *img, struct model *m)
{
    uint64_t cs = m->cs, size = m->size;
    model_write(img, m, 0, 512, 1, 1);                       /* allocated by qemu-io */
    model_write(img, m, cs - 100, 300, 2, 2);                /* across a cluster boundary */
    model_write(img, m, 64 * 1024 + 512, 1000, 3, 3);        /* into zero clusters (v3) */
    model_write(img, m, 128 * 1024, 4096, 4, 1);             /* zero, unmapped */
    model_write(img, m, 300 * 1024 + 17, 2 * cs + 5, 5, 4);  /* compressed or unallocated */
    model_write(img, m, 620 * 1024 + 3, 100, 6, 1);          /* random data when compressed */
    model_write(img, m, size - 700, 700, 7, 2);              /* the last bytes */
    model_write(img, m, align_down(size / 2, cs), cs, 8, 3); /* one whole cluster */
    check_range(img, m, 0, size);
}

START_TEST(test_write_scenarios)
{
    const struct scenario *sc = &scenarios[_i];
    struct model m;
    uint64_t cs;
    make_scenario(sc, &m, &cs);
    struct disk_image *img = kopen("t.qcow2", false);
    ck_assert_uint_eq(disk_image_discard_granularity(img), cs);
    targeted_writes(img, &m);
    guest_ops(img, &m, 1000 + (uint64_t)_i, cs >= (2u << 20) ? 120 : 400);
    check_range(img, &m, 0, m.size);
    ck_assert_msg(disk_image_close(img) == 0, "%s: close", sc->name);
    expect_image("t.qcow2", &m);
    /* Again on the image kiln wrote, and freed clusters are reused rather than the file grown. */
    uint64_t before = file_size("t.qcow2");
    img = kopen("t.qcow2", false);
    guest_ops(img, &m, 2000 + (uint64_t)_i, 150);
    ck_assert_int_eq(disk_image_close(img), 0);
    expect_image("t.qcow2", &m);
    ck_assert_msg(file_size("t.qcow2") <= before + m.size + 64 * cs,
                  "%s: file grew from %llu to %llu", sc->name, (unsigned long long)before,
                  (unsigned long long)file_size("t.qcow2"));
    free(m.data);
    free((void *)m.backing);
}
END_TEST

START_TEST(test_discard_frees_and_reuses)
{
    SH("qemu-img create -f qcow2 -o cluster_size=4096 t.qcow2 8M");
    struct model m;
    model_from(&m, "t.qcow2", 4096, true);
    struct disk_image *img = kopen("t.qcow2", false);
    model_write(img, &m, 0, 4 << 20, 1, 2);
    ck_assert_int_eq(disk_image_flush(img), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
    uint64_t full = file_size("t.qcow2");
    img = kopen("t.qcow2", false);
    ck_assert_int_eq(disk_image_discard(img, 0, 4 << 20), 0);
    model_discard(&m, 0, 4 << 20);
    ck_assert_int_eq(disk_image_flush(img), 0); /* the freed clusters become reusable */
    model_write(img, &m, 4 << 20, 4 << 20, 2, 1);
    ck_assert_int_eq(disk_image_close(img), 0);
    expect_image("t.qcow2", &m);
    ck_assert_msg(file_size("t.qcow2") <= full + 16 * 4096,
                  "freed clusters were not reused: %llu > %llu",
                  (unsigned long long)file_size("t.qcow2"), (unsigned long long)full);
    free(m.data);
}
END_TEST

START_TEST(test_refcount_table_grows)
{
    /* 512-byte clusters: one refcount table cluster (64 blocks of 256 clusters) covers 8 MiB. */
    SH("qemu-img create -f qcow2 -o cluster_size=512 t.qcow2 64M");
    uint64_t rt_clusters = peek("t.qcow2", 56, 4), rt_off = peek("t.qcow2", 48, 8);
    struct model m;
    model_from(&m, "t.qcow2", 512, true);
    struct disk_image *img = kopen("t.qcow2", false);
    for (uint64_t off = 0; off < 20 << 20; off += 256 << 10)
        model_write(img, &m, off, 256 << 10, off, 1 + (unsigned)(off % 3));
    for (uint64_t off = 40 << 20; off < 44 << 20; off += 1536) /* every third cluster */
        model_write(img, &m, off, 512, off, 1);
    check_range(img, &m, 0, m.size);
    ck_assert_int_eq(disk_image_close(img), 0);
    ck_assert_msg(peek("t.qcow2", 56, 4) > rt_clusters || peek("t.qcow2", 48, 8) != rt_off,
                  "the refcount table did not move or grow");
    expect_image("t.qcow2", &m);
    free(m.data);
}
END_TEST

START_TEST(test_snapshot_clusters_copied)
{
    SH("qemu-img create -f qcow2 -o cluster_size=4096 t.qcow2 2M");
    SH("qemu-io -f qcow2 -c 'write -P 0x31 0 1M' -c 'write -z 1M 64k' t.qcow2");
    SH("qemu-img snapshot -c s1 t.qcow2");
    size_t n;
    uint8_t *snap = qemu_raw("t.qcow2", &n);
    struct model m;
    model_from(&m, "t.qcow2", 4096, true);
    struct disk_image *img = kopen("t.qcow2", false);
    model_write(img, &m, 100, 200, 1, 1);     /* part of a shared cluster */
    model_write(img, &m, 8192, 8192, 2, 2);   /* whole shared clusters */
    model_write(img, &m, 1 << 20, 512, 3, 1); /* a zero cluster */
    ck_assert_int_eq(disk_image_discard(img, 512 << 10, 64 << 10), 0);
    model_discard(&m, 512 << 10, 64 << 10);
    ck_assert_int_eq(disk_image_write_zeroes(img, 256 << 10, 16 << 10, false), 0);
    memset(m.data + (256 << 10), 0, 16 << 10);
    guest_ops(img, &m, 77, 200);
    ck_assert_int_eq(disk_image_close(img), 0);
    expect_image("t.qcow2", &m);
    SH("qemu-img convert -l snapshot.name=s1 -O raw t.qcow2 snap.raw");
    size_t sn;
    uint8_t *after = slurp("snap.raw", &sn);
    ck_assert_uint_eq(sn, n);
    same(after, snap, n, "the snapshot after kiln's writes");
    free(after);
    free(snap);
    free(m.data);
}
END_TEST

START_TEST(test_read_only)
{
    SH("qemu-img create -f qcow2 t.qcow2 1M && qemu-io -f qcow2 -c 'write -P 1 0 64k' t.qcow2");
    size_t n0, n1;
    uint8_t *before = slurp("t.qcow2", &n0);
    struct disk_image *img = kopen("t.qcow2", true);
    uint8_t buf[512] = {0};
    ck_assert(disk_image_read_only(img));
    ck_assert_int_eq(kwrite_ret(img, buf, 0, sizeof(buf), 1), -EROFS);
    ck_assert_int_eq(disk_image_discard(img, 0, 65536), -EROFS);
    ck_assert_int_eq(disk_image_write_zeroes(img, 0, 65536, true), -EROFS);
    ck_assert_int_eq(disk_image_flush(img), 0);
    ck_assert_int_eq(kread_ret(img, buf, (1 << 20) - 256, 512, 1), -EINVAL); /* past the end */
    ck_assert_int_eq(disk_image_close(img), 0);
    uint8_t *after = slurp("t.qcow2", &n1);
    ck_assert_uint_eq(n0, n1);
    same(after, before, n0, "a read-only image");
    free(before);
    free(after);
}
END_TEST

/* ---- Concurrency: 4 threads, distinct and overlapping clusters. */

#define CT_THREADS 4
#define CT_REGION (1u << 20)

struct ct {
    struct disk_image *img;
    struct model *m;
    unsigned t;
    int err;
};

/* Shared clusters: thread t owns bytes [t * cs / 4, (t + 1) * cs / 4) of each. */
static void ct_shared(struct ct *c, uint64_t *s)
{
    uint64_t cs = c->m->cs, q = cs / CT_THREADS, base = 4 * CT_REGION;
    uint64_t k = rnd(s) % (CT_REGION / cs), off = base + k * cs + c->t * q;
    uint8_t *buf = malloc(q);
    fill(buf, q, off);
    if (kwrite_ret(c->img, buf, off, q, 1 + c->t % 3))
        c->err = 1;
    memcpy(c->m->data + off, buf, q); /* each byte has one writer */
    free(buf);
}

/* Overlapping writes of the same bytes: the result cannot depend on the order. */
static void ct_overlap(struct ct *c, uint64_t *s)
{
    uint64_t base = 5 * CT_REGION, len = 1 + rnd(s) % 20000,
             off = base + rnd(s) % (CT_REGION - len);
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((off + i) * 31 / 7);
    if (kwrite_ret(c->img, buf, off, len, 2))
        c->err = 1;
    free(buf);
}

static void *ct_thread(void *arg)
{
    struct ct *c = arg;
    struct model *m = c->m;
    uint64_t s = 99 + c->t, own = c->t * CT_REGION;
    uint8_t *buf = malloc(3 * m->cs + 8192);
    for (unsigned i = 0; i < 300 && !c->err; i++) {
        unsigned kind = (unsigned)(rnd(&s) % 10);
        uint64_t len = 1 + rnd(&s) % (2 * m->cs + 100), off = own + rnd(&s) % (CT_REGION - len);
        if (kind < 4) {
            fill(buf, len, rnd(&s));
            c->err |= kwrite_ret(c->img, buf, off, len, 1 + i % 3) != 0;
            memcpy(m->data + off, buf, len);
        } else if (kind < 6) {
            ct_shared(c, &s);
        } else if (kind == 6) {
            ct_overlap(c, &s);
        } else if (kind == 7) {
            c->err |= disk_image_discard(c->img, off, len) != 0;
            model_discard(m, off, len);
        } else if (kind == 8) {
            c->err |= kread_ret(c->img, buf, off, len, 2) != 0;
            c->err |= memcmp(buf, m->data + off, len) != 0 ? 2 : 0;
        } else {
            c->err |= disk_image_flush(c->img) != 0;
        }
    }
    free(buf);
    return NULL;
}

START_TEST(test_concurrent_writes)
{
    SH("qemu-img create -f raw base 3M && qemu-io -f raw -c 'write -P 0x44 0 3M' base");
    SH("qemu-img create -f qcow2 -o cluster_size=4096 -b base -F raw t.qcow2 6M");
    SH("qemu-io -f qcow2 -c 'write -P 0x45 0 512k' -c 'write -P 0x46 4M 64k' t.qcow2");
    struct model m;
    model_from(&m, "t.qcow2", 4096, true);
    for (uint64_t i = 0; i < CT_REGION; i++) /* what the overlapping writes all write */
        m.data[5 * CT_REGION + i] = (uint8_t)((5 * CT_REGION + i) * 31 / 7);
    struct disk_image *img = kopen("t.qcow2", false);
    /* The overlap region holds the pattern before the threads start, so any order agrees. */
    kwrite(img, m.data + 5 * CT_REGION, 5 * CT_REGION, CT_REGION, 1);
    struct ct c[CT_THREADS];
    pthread_t th[CT_THREADS];
    for (unsigned t = 0; t < CT_THREADS; t++) {
        c[t] = (struct ct){img, &m, t, 0};
        ck_assert_int_eq(pthread_create(&th[t], NULL, ct_thread, &c[t]), 0);
    }
    for (unsigned t = 0; t < CT_THREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(c[t].err == 0, "thread %u failed (%d)", t, c[t].err);
    }
    check_range(img, &m, 0, m.size);
    ck_assert_int_eq(disk_image_close(img), 0);
    expect_image("t.qcow2", &m);
    free(m.data);
}
END_TEST

/* ---- The disk workers' seccomp filter: every I/O path within its allow-list. */

static int confined_io(void)
{
    struct disk_image *img, *cimg;
    char err[KILN_ERRMSG_MAX];
    if (kopen_fmt("t.qcow2", false, DISK_FORMAT_AUTO, &img, err) ||
        kopen_fmt("c.qcow2", false, DISK_FORMAT_AUTO, &cimg, err))
        return 10;
    struct sandbox_spec spec = {0};
    spec.roles[SANDBOX_WORKER] = true;
    struct sandbox sb;
    if (sandbox_build(&sb, &spec, err) < 0 || sandbox_enter(&sb, SANDBOX_WORKER) < 0)
        return 11;
    uint8_t *buf = malloc(1 << 20);
    memset(buf, 0x3c, 1 << 20);
    int bad = 0;
    for (uint64_t off = 0; off < (12 << 20); off += (1 << 20) + 4096) /* grows the refcounts */
        bad |= kwrite_ret(img, buf, off, 1 << 20, 2) != 0;
    bad |= kwrite_ret(img, buf, 100, 1000, 3) != 0; /* COW from the backing file */
    bad |= kread_ret(img, buf, 0, 1 << 20, 4) != 0;
    bad |= disk_image_discard(img, 0, 1 << 20) != 0;
    bad |= disk_image_write_zeroes(img, 2 << 20, 1 << 20, true) != 0;
    bad |= disk_image_write_zeroes(img, 4 << 20, 1 << 20, false) != 0;
    bad |= disk_image_flush(img) != 0;               /* pending frees applied */
    bad |= kread_ret(cimg, buf, 0, 1 << 20, 1) != 0; /* inflate */
    bad |= kwrite_ret(cimg, buf, 1000, 100, 1) != 0; /* COW of a compressed cluster */
    bad |= disk_image_flush(cimg) != 0;
    bad |= disk_image_close(img) != 0; /* writes back the frees the flush made */
    bad |= disk_image_close(cimg) != 0;
    free(buf);
    return bad ? 12 : 0;
}

START_TEST(test_worker_seccomp)
{
    SH("qemu-img create -f raw base 2M && qemu-io -f raw -c 'write -P 0x44 0 2M' base");
    SH("qemu-img create -f qcow2 -o cluster_size=512 -b base -F raw t.qcow2 16M");
    make_compressed("c.qcow2", "cluster_size=4096", "1M");
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(confined_io());
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "I/O under the disk workers' filter: status 0x%x (SIGSYS is 31)", status);
    qemu_check("t.qcow2");
    qemu_check("c.qcow2");
}
END_TEST

/* ---- Hostile images: a header field or table entry changed at a time. */

enum at { AT_HEADER, AT_L1, AT_RT, AT_EXT };

struct hostile {
    const char *name;
    enum at at;
    uint64_t off;
    unsigned width;
    uint64_t value;
    bool add;           /* value is added to what is there */
    const char *expect; /* in the message */
    bool rw_only;       /* only a writable open checks it */
};

static const struct hostile hostiles[] = {
    {"magic", AT_HEADER, 0, 4, 0x514649fa, false, "not a qcow2 image", false},
    {"version 1", AT_HEADER, 4, 4, 1, false, "version 1 ", false},
    {"version 4", AT_HEADER, 4, 4, 4, false, "version 4 ", false},
    {"cluster_bits 8", AT_HEADER, 20, 4, 8, false, "cluster_bits 8", false},
    {"cluster_bits 22", AT_HEADER, 20, 4, 22, false, "cluster_bits 22", false},
    {"cluster_bits huge", AT_HEADER, 20, 4, 0xffffffff, false, "cluster_bits", false},
    {"size past L1", AT_HEADER, 24, 8, 1ULL << 40, false, "cannot map the virtual size", false},
    {"size max", AT_HEADER, 24, 8, UINT64_MAX, false, "cannot map the virtual size", false},
    {"crypt aes", AT_HEADER, 32, 4, 1, false, "encrypted", false},
    {"crypt luks", AT_HEADER, 32, 4, 2, false, "encrypted", false},
    {"l1_size 0", AT_HEADER, 36, 4, 0, false, "cannot map the virtual size", false},
    {"l1_size huge", AT_HEADER, 36, 4, 0xffffffff, false, "too large", false},
    {"l1 misaligned", AT_HEADER, 40, 8, 8, true, "misaligned or past the end", false},
    {"l1 past eof", AT_HEADER, 40, 8, 1ULL << 50, false, "past the end", false},
    {"l1 at 0", AT_HEADER, 40, 8, 0, false, "L1 table at 0x0", false},
    {"rt misaligned", AT_HEADER, 48, 8, 512, true, "refcount table at", false},
    {"rt at 0", AT_HEADER, 48, 8, 0, false, "refcount table at 0x0", false},
    {"rt past eof", AT_HEADER, 48, 8, 1ULL << 60, false, "refcount table at", false},
    {"rt_clusters 0", AT_HEADER, 56, 4, 0, false, "refcount table of 0 clusters", false},
    {"rt_clusters huge", AT_HEADER, 56, 4, 0x7fffffff, false, "refcount table of", false},
    {"rt_clusters past eof", AT_HEADER, 56, 4, 1000, false, "past the end", false},
    {"snapshots many", AT_HEADER, 60, 4, 0x10000000, false, "snapshots", false},
    {"backing offset", AT_HEADER, 8, 8, 1ULL << 20, false, "backing file name", false},
    {"dirty", AT_HEADER, 79, 1, 1, false, "qemu-img check -r all", false},
    {"corrupt", AT_HEADER, 79, 1, 2, false, "corrupt", false},
    {"external data", AT_HEADER, 79, 1, 4, false, "external data", false},
    {"compression bit alone", AT_HEADER, 79, 1, 8, false, "without a compression type", false},
    {"extended l2", AT_HEADER, 79, 1, 16, false, "extended L2", false},
    {"unknown bit 20", AT_HEADER, 72, 8, 1ULL << 20, false, "unknown incompatible feature bit 20",
     false},
    {"unknown bit 63", AT_HEADER, 72, 8, 1ULL << 63, false, "bit 63", false},
    {"compression type set", AT_HEADER, 104, 1, 1, false, "compression type 1", false},
    {"refcount_order 7", AT_HEADER, 96, 4, 7, false, "refcount_order 7", false},
    {"header_length 100", AT_HEADER, 100, 4, 100, false, "header_length 100", false},
    {"header_length 108", AT_HEADER, 100, 4, 108, false, "header_length 108", false},
    {"header_length huge", AT_HEADER, 100, 4, 1u << 20, false, "header_length", false},
    {"extension too long", AT_EXT, 4, 4, 0x7fffffff, false, "runs past the header", false},
    {"l1 entry misaligned", AT_L1, 0, 8, 512, true, "L1 entry 0", false},
    {"l1 entry past eof", AT_L1, 0, 8, (1ULL << 50) | (1ULL << 63), false, "past the end", false},
    {"l1 entry reserved", AT_L1, 0, 8, 1ULL << 57, true, "reserved bits", false},
    {"l1 entry without offset", AT_L1, 0, 8, 1ULL << 63, false, "has no offset", false},
    {"rt entry misaligned", AT_RT, 0, 8, 512, true, "refcount table entry 0", true},
    {"rt entry past eof", AT_RT, 0, 8, 1ULL << 45, false, "past the end", true},
    {"rt entry reserved", AT_RT, 0, 8, 1, true, "reserved bits", true},
    {"rt entry far", AT_RT, 0, 8, 0x1000000, false, "past the end", true},
};

/* A small image with data (so L1, an L2 table and a refcount block hold entries) and a backing
 * file (so that qemu-img writes header extensions: the backing format, the feature names). */
static void make_victim(void)
{
    SH("qemu-img create -f raw vb.raw 1M");
    SH("qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096 -b vb.raw -F raw v.qcow2 1M");
    SH("qemu-io -f qcow2 -c 'write -P 0x66 0 8k' -c 'write -P 0x67 900k 4k' v.qcow2");
}

/* Opening fails with a clean -errno and a one-line message naming the file; nothing changes. */
static void expect_refused(const char *name, bool ro, enum disk_format fmt, const char *expect)
{
    size_t n0, n1;
    uint8_t *before = slurp(name, &n0);
    struct disk_image *img = NULL;
    char err[KILN_ERRMSG_MAX];
    int ret = kopen_fmt(name, ro, fmt, &img, err);
    ck_assert_msg(ret < 0 && ret > -4096, "%s (%s) opened: %d", name, ro ? "ro" : "rw", ret);
    ck_assert_msg(strstr(err, P(name)) && !strchr(err, '\n') && !strncmp(err, "disk ", 5),
                  "message '%s' must be one line naming %s", err, name);
    ck_assert_msg(strstr(err, expect), "message '%s' lacks '%s'", err, expect);
    uint8_t *after = slurp(name, &n1);
    ck_assert_msg(n0 == n1 && !memcmp(before, after, n0), "%s changed by a refused open", name);
    free(before);
    free(after);
}

START_TEST(test_hostile_fields)
{
    const struct hostile *h = &hostiles[_i];
    make_victim();
    uint64_t l1 = peek("v.qcow2", 40, 8), rt = peek("v.qcow2", 48, 8);
    uint64_t hl = peek("v.qcow2", 100, 4);
    uint64_t at = h->at == AT_L1 ? l1 : h->at == AT_RT ? rt : h->at == AT_EXT ? hl : 0;
    uint64_t v = h->value + (h->add ? peek("v.qcow2", at + h->off, h->width) : 0);
    poke("v.qcow2", at + h->off, h->width, v);
    expect_refused("v.qcow2", false, DISK_FORMAT_QCOW2, h->expect);
    if (!h->rw_only)
        expect_refused("v.qcow2", true, DISK_FORMAT_QCOW2, h->expect);
}
END_TEST

START_TEST(test_hostile_refcounts)
{
    make_victim();
    uint64_t rt = peek("v.qcow2", 48, 8), rb = peek("v.qcow2", rt, 8);
    uint64_t l2 = peek("v.qcow2", peek("v.qcow2", 40, 8), 8) & 0x00fffffffffffe00ULL;
    copy_file("v.qcow2", "a.qcow2");
    poke("a.qcow2", rb + (l2 / 4096) * 2, 2, 0); /* the L2 table counted 0 times */
    expect_refused("a.qcow2", false, DISK_FORMAT_AUTO, "an L2 table at");
    struct disk_image *img = kopen("a.qcow2", true); /* a reader does not need refcounts */
    disk_image_close(img);
    copy_file("v.qcow2", "b.qcow2");
    poke("b.qcow2", rb, 2, 0); /* the header counted 0 times */
    expect_refused("b.qcow2", false, DISK_FORMAT_AUTO, "the header at 0x0 has refcount 0");
}
END_TEST

START_TEST(test_hostile_truncated_and_formats)
{
    make_victim();
    size_t n;
    uint8_t *d = slurp("v.qcow2", &n);
    spit("short", d, 60);
    expect_refused("short", false, DISK_FORMAT_QCOW2, "too small");
    spit("cut", d, 4096 + 100); /* the header, not its tables */
    expect_refused("cut", false, DISK_FORMAT_AUTO, "past the end of the file");
    spit("empty", d, 0);
    expect_refused("empty", false, DISK_FORMAT_QCOW2, "too small");
    free(d);
    /* A real v3 image with extended L2 entries, and one with the zstd compression type. */
    SH("qemu-img create -f qcow2 -o extended_l2=on x.qcow2 1M");
    expect_refused("x.qcow2", false, DISK_FORMAT_AUTO, "extended L2 entries");
    copy_file("v.qcow2", "z.qcow2");
    poke("z.qcow2", 79, 1, 8);
    poke("z.qcow2", 104, 1, 1);
    expect_refused("z.qcow2", false, DISK_FORMAT_AUTO, "zstd");
}
END_TEST

/* The feature name table names a bit kiln does not know: the message uses its name. */
START_TEST(test_hostile_named_feature)
{
    /* As qemu-img create writes it with 64 KiB clusters (not with 4 KiB ones, and qemu-io
     * rewrites the header without the table). */
    SH("qemu-img create -f raw vb.raw 1M");
    SH("qemu-img create -f qcow2 -o compat=1.1 -b vb.raw -F raw v.qcow2 1M");
    size_t n;
    uint8_t *d = slurp("v.qcow2", &n);
    uint64_t pos = peek("v.qcow2", 100, 4);
    bool found = false;
    while (pos + 8 < 4096) {
        uint32_t type = (uint32_t)peek("v.qcow2", pos, 4),
                 len = (uint32_t)peek("v.qcow2", pos + 4, 4);
        if (type == 0)
            break;
        if (type == 0x6803f857) { /* entry 0 is "dirty", incompatible bit 0: make it bit 9 */
            ck_assert_int_eq(d[pos + 8], 0);
            poke("v.qcow2", pos + 8 + 1, 1, 9);
            found = true;
        }
        pos += 8 + align_up(len, 8);
    }
    free(d);
    ck_assert_msg(found, "qemu-img wrote no feature name table");
    poke("v.qcow2", 72, 8, 1u << 9);
    expect_refused("v.qcow2", false, DISK_FORMAT_AUTO,
                   "unsupported incompatible feature 'dirty bit' (bit 9)");
}
END_TEST

START_TEST(test_hostile_backing_chains)
{
    /* A loop a -> b -> a, a self-loop, a missing file, a format kiln lacks, a deep chain. */
    SH("qemu-img create -f qcow2 a.qcow2 1M && qemu-img create -f qcow2 -b a.qcow2 -F qcow2 "
       "b.qcow2");
    SH("qemu-img rebase -u -b b.qcow2 -F qcow2 a.qcow2");
    expect_refused("b.qcow2", false, DISK_FORMAT_AUTO, "loops back");
    expect_refused("a.qcow2", true, DISK_FORMAT_AUTO, "loops back");
    SH("qemu-img create -f qcow2 s.qcow2 1M && qemu-img rebase -u -b s.qcow2 -F qcow2 s.qcow2");
    expect_refused("s.qcow2", false, DISK_FORMAT_AUTO, "loops back");
    SH("qemu-img create -f raw gone.raw 1M && qemu-img create -f qcow2 -b gone.raw -F raw m.qcow2");
    SH("rm gone.raw");
    expect_refused("m.qcow2", false, DISK_FORMAT_AUTO, "No such file");
    SH("qemu-img create -f raw r.raw 1M && qemu-img create -f qcow2 -b r.raw -F raw f.qcow2");
    uint64_t pos = peek("f.qcow2", 100, 4);
    ck_assert_uint_eq(peek("f.qcow2", pos, 4), 0xe2792aca); /* the backing format extension */
    poke("f.qcow2", pos + 8, 3, 0x78797a);                  /* "raw" -> "xyz" */
    expect_refused("f.qcow2", false, DISK_FORMAT_AUTO, "backing file format 'xyz'");
    SH("qemu-img create -f raw d0 1M");
    for (int i = 1; i <= 16; i++)
        SH("qemu-img create -f qcow2 -b d%d -F %s d%d 1M", i - 1, i == 1 ? "raw" : "qcow2", i);
    expect_refused("d16", true, DISK_FORMAT_AUTO, "longer than 16");
    struct disk_image *img = kopen("d15", true); /* 16 images: the limit */
    disk_image_close(img);
}
END_TEST

/* Corrupt L2 entries and compressed data: the open succeeds, I/O on them fails with -EIO. */
static void expect_io_fails(const char *name, uint64_t off, uint64_t len, uint64_t good)
{
    uint64_t before = file_size(name);
    struct disk_image *img = kopen(name, false);
    uint8_t *buf = calloc(1, len);
    ck_assert_int_eq(kread_ret(img, buf, off, len, 1), -EIO);
    ck_assert_int_eq(kwrite_ret(img, buf, off + 1, 100, 1), -EIO); /* a write needs the old data */
    ck_assert_int_eq(kread_ret(img, buf, good, 512, 1), 0);        /* the rest still reads */
    disk_image_discard(img, 0, disk_image_size(img));              /* whatever it returns */
    disk_image_close(img);
    ck_assert_msg(file_size(name) <= before + (1 << 20), "%s grew to %llu", name,
                  (unsigned long long)file_size(name));
    free(buf);
}

static const uint64_t bad_l2[] = {
    (1ULL << 50) | (1ULL << 63), /* past the end of the file */
    4096 + 512 + (1ULL << 63),   /* misaligned */
    (1ULL << 58),                /* reserved bits */
    (1ULL << 63),                /* COPIED without an offset (external data) */
    0,                           /* replaced below: the L1 table's own cluster */
    (1ULL << 62) | (1ULL << 50), /* compressed, past the end of the file */
};

START_TEST(test_hostile_l2_entries)
{
    SH("qemu-img create -f qcow2 -o compat=1.1,cluster_size=4096 v.qcow2 1M");
    SH("qemu-io -f qcow2 -c 'write -P 0x66 0 12k' v.qcow2");
    uint64_t l1 = peek("v.qcow2", 40, 8);
    uint64_t l2 = peek("v.qcow2", l1, 8) & 0x00fffffffffffe00ULL;
    uint64_t e = _i == 4 ? (l1 | (1ULL << 63)) : bad_l2[_i];
    poke("v.qcow2", l2, 8, e);
    expect_io_fails("v.qcow2", 0, 4096, 8192);
}
END_TEST

START_TEST(test_hostile_compressed_data)
{
    make_compressed("c.qcow2", "compat=1.1,cluster_size=4096", "1M");
    uint64_t l1 = peek("c.qcow2", 40, 8), l2 = peek("c.qcow2", l1, 8) & 0x00fffffffffffe00ULL;
    uint64_t e = peek("c.qcow2", l2, 8);
    ck_assert_msg(e & (1ULL << 62), "cluster 0 is not compressed");
    uint64_t off = e & ((1ULL << 58) - 1);
    uint8_t junk[64];
    memset(junk, 0xe7, sizeof(junk));
    int fd = open(P("c.qcow2"), O_WRONLY);
    ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), (off_t)off), (ssize_t)sizeof(junk));
    close(fd);
    expect_io_fails("c.qcow2", 0, 4096, 500 << 10); /* far from the junk */
    /* A zero flag in a v2 image is corrupt too. */
    SH("qemu-img create -f qcow2 -o compat=0.10,cluster_size=4096 w.qcow2 1M");
    SH("qemu-io -f qcow2 -c 'write -P 0x66 0 12k' w.qcow2");
    uint64_t wl2 = peek("w.qcow2", peek("w.qcow2", 40, 8), 8) & 0x00fffffffffffe00ULL;
    poke("w.qcow2", wl2, 8, peek("w.qcow2", wl2, 8) | 1);
    expect_io_fails("w.qcow2", 0, 4096, 8192);
}
END_TEST

/* Auto-detection and explicit formats. */
START_TEST(test_formats)
{
    SH("qemu-img create -f qcow2 q.qcow2 1M && qemu-io -f qcow2 -c 'write -P 7 0 4k' q.qcow2");
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(kopen_fmt("q.qcow2", true, DISK_FORMAT_RAW, &img, err), 0);
    ck_assert_str_eq(disk_image_format_name(img), "raw"); /* the file's own bytes */
    ck_assert_uint_eq(disk_image_size(img), file_size("q.qcow2"));
    disk_image_close(img);
    ck_assert_int_eq(kopen_fmt("q.qcow2", true, DISK_FORMAT_QCOW2, &img, err), 0);
    ck_assert_uint_eq(disk_image_size(img), 1 << 20);
    ck_assert_int_ge(disk_image_fd(img), 0);
    disk_image_close(img);
    SH("qemu-img create -f raw r.raw 1M");
    expect_refused("r.raw", false, DISK_FORMAT_QCOW2, "not a qcow2 image");
    struct disk_image_config cfg = {.path = "", .format = DISK_FORMAT_AUTO};
    ck_assert_int_eq(disk_image_open(&cfg, &img, err), -EINVAL);
}
END_TEST

/* Locks: a writable image and its backing files. */
START_TEST(test_locks)
{
    SH("qemu-img create -f raw base 1M && qemu-img create -f qcow2 -b base -F raw t.qcow2 1M");
    struct disk_image *a = kopen("t.qcow2", false), *b, *c;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(disk_image_lock(a, err), 0);
    b = kopen("t.qcow2", true);
    ck_assert_int_eq(disk_image_lock(b, err), -EBUSY);
    ck_assert_msg(strstr(err, "locked") && strstr(err, P("t.qcow2")), "%s", err);
    disk_image_close(b);
    b = kopen("base", false); /* writing the backing file of an image in use */
    ck_assert_int_eq(disk_image_lock(b, err), -EBUSY);
    disk_image_close(b);
    c = kopen("base", true); /* reading it is fine */
    ck_assert_int_eq(disk_image_lock(c, err), 0);
    disk_image_close(c);
    disk_image_close(a);
    b = kopen("base", false);
    ck_assert_int_eq(disk_image_lock(b, err), 0);
    disk_image_close(b);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

/* Cases: read, write, hostile, api (CK_RUN_CASE=NAME runs one). */
static Suite *qcow2_suite(void)
{
    Suite *s = suite_create("qcow2");
    TCase *tc = tcase(s, "read");
    tcase_add_test(tc, test_qemu_tools_present);
    tcase_add_loop_test(tc, test_read_patterns, 0, ARRAY_SIZE(read_opts));
    tcase_add_test(tc, test_read_zero_and_discarded);
    tcase_add_loop_test(tc, test_read_compressed, 0, ARRAY_SIZE(compressed_opts));
    tcase_add_test(tc, test_read_backing_chain);
    tc = tcase(s, "write");
    tcase_add_loop_test(tc, test_write_scenarios, 0, ARRAY_SIZE(scenarios));
    tcase_add_test(tc, test_discard_frees_and_reuses);
    tcase_add_test(tc, test_refcount_table_grows);
    tcase_add_test(tc, test_snapshot_clusters_copied);
    tcase_add_test(tc, test_concurrent_writes);
    tcase_add_test(tc, test_worker_seccomp);
    tc = tcase(s, "hostile");
    tcase_add_loop_test(tc, test_hostile_fields, 0, ARRAY_SIZE(hostiles));
    tcase_add_test(tc, test_hostile_refcounts);
    tcase_add_test(tc, test_hostile_truncated_and_formats);
    tcase_add_test(tc, test_hostile_named_feature);
    tcase_add_test(tc, test_hostile_backing_chains);
    tcase_add_loop_test(tc, test_hostile_l2_entries, 0, ARRAY_SIZE(bad_l2));
    tcase_add_test(tc, test_hostile_compressed_data);
    tc = tcase(s, "api");
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_formats);
    tcase_add_test(tc, test_locks);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(qcow2_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
