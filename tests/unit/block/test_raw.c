/* test_raw.c: raw images through src/block: I/O, zeroes, refusals, the qcow2-magic guard, locks. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/image.h"
#include "util.h"

static char dir[256];
static char path[300];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%.200s/kiln-raw-XXXXXX", tmp);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/disk.img", dir);
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_raw: could not remove %s\n", dir);
}

/* A file of size bytes, byte i holding i * 13 + 1. */
static void make_file(const char *p, uint64_t size)
{
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    uint8_t *buf = malloc(size + 1);
    for (uint64_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
    close(fd);
    free(buf);
}

static int open_img(const char *p, bool ro, enum disk_format f, struct disk_image **img, char *err)
{
    struct disk_image_config cfg = {.path = p, .read_only = ro, .format = f};
    err[0] = 0;
    return disk_image_open(&cfg, img, err);
}

static struct disk_image *must_open(const char *p, bool ro, enum disk_format f)
{
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    int ret = open_img(p, ro, f, &img, err);
    ck_assert_msg(ret == 0, "open %s: %d %s", p, ret, err);
    return img;
}

static int rw(struct disk_image *img, void *buf, uint64_t off, uint64_t len, bool write)
{
    /* Three uneven pieces, so that the iovec handling is exercised. */
    struct iovec iov[3];
    uint64_t a = len / 3, b = len / 2 - len / 3;
    iov[0] = (struct iovec){buf, a};
    iov[1] = (struct iovec){(uint8_t *)buf + a, b};
    iov[2] = (struct iovec){(uint8_t *)buf + a + b, len - a - b};
    return write ? disk_image_write(img, iov, 3, off) : disk_image_read(img, iov, 3, off);
}

static void expect_refused(const char *p, bool ro, const char *expect, int err_no)
{
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    int ret = open_img(p, ro, DISK_FORMAT_AUTO, &img, err);
    ck_assert_msg(ret == -err_no, "%s: %d, want %d (%s)", p, ret, -err_no, err);
    ck_assert_msg(strstr(err, p) && strstr(err, expect) && !strchr(err, '\n'),
                  "message '%s' lacks '%s' or the path", err, expect);
}

START_TEST(test_read_write)
{
    make_file(path, 1 << 20);
    struct disk_image *img = must_open(path, false, DISK_FORMAT_AUTO);
    ck_assert_str_eq(disk_image_format_name(img), "raw");
    ck_assert_uint_eq(disk_image_size(img), 1 << 20);
    ck_assert_uint_gt(disk_image_block_size(img), 0);
    ck_assert_uint_gt(disk_image_discard_granularity(img), 0);
    ck_assert(!disk_image_read_only(img));
    uint8_t buf[10000], back[10000];
    ck_assert_int_eq(rw(img, back, 777, sizeof(back), false), 0);
    for (unsigned i = 0; i < sizeof(back); i++)
        ck_assert_uint_eq(back[i], (uint8_t)((777 + i) * 13 + 1));
    memset(buf, 0xab, sizeof(buf));
    ck_assert_int_eq(rw(img, buf, 4095, sizeof(buf), true), 0);
    ck_assert_int_eq(rw(img, back, 4095, sizeof(back), false), 0);
    ck_assert_mem_eq(buf, back, sizeof(buf));
    ck_assert_int_eq(disk_image_flush(img), 0);
    /* Beyond the end, too many iovec entries: refused before any I/O. */
    ck_assert_int_eq(rw(img, buf, (1 << 20) - 100, 200, false), -EINVAL);
    ck_assert_int_eq(disk_image_discard(img, 1 << 20, 1), -EINVAL);
    struct iovec many[DISK_IMAGE_IOV_MAX + 1];
    for (unsigned i = 0; i < ARRAY_SIZE(many); i++)
        many[i] = (struct iovec){buf, 1};
    ck_assert_int_eq(disk_image_read(img, many, ARRAY_SIZE(many), 0), -EINVAL);
    ck_assert_int_eq(disk_image_read(img, many, 0, 0), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
}
END_TEST

START_TEST(test_zeroes_and_discard)
{
    make_file(path, 1 << 20);
    struct disk_image *img = must_open(path, false, DISK_FORMAT_RAW);
    uint8_t back[8192];
    ck_assert_int_eq(disk_image_write_zeroes(img, 10000, 8192, true), 0);
    ck_assert_int_eq(rw(img, back, 10000, 8192, false), 0);
    for (unsigned i = 0; i < sizeof(back); i++)
        ck_assert_uint_eq(back[i], 0);
    ck_assert_int_eq(disk_image_write_zeroes(img, 30000, 8192, false), 0);
    ck_assert_int_eq(rw(img, back, 30000, 8192, false), 0);
    for (unsigned i = 0; i < sizeof(back); i++)
        ck_assert_uint_eq(back[i], 0);
    ck_assert_int_eq(rw(img, back, 30000 + 8192, 1, false), 0); /* and not one byte more */
    ck_assert_uint_eq(back[0], (uint8_t)((30000 + 8192) * 13 + 1));
    ck_assert_int_eq(disk_image_discard(img, 65536, 65536), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
}
END_TEST

START_TEST(test_read_only)
{
    make_file(path, 65536);
    struct disk_image *img = must_open(path, true, DISK_FORMAT_AUTO);
    uint8_t buf[512] = {0};
    ck_assert(disk_image_read_only(img));
    ck_assert_int_eq(rw(img, buf, 0, sizeof(buf), true), -EROFS);
    ck_assert_int_eq(disk_image_discard(img, 0, 512), -EROFS);
    ck_assert_int_eq(disk_image_write_zeroes(img, 0, 512, false), -EROFS);
    ck_assert_int_eq(disk_image_flush(img), 0);
    ck_assert_int_eq(rw(img, buf, 0, sizeof(buf), false), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
}
END_TEST

START_TEST(test_refusals)
{
    char p[320];
    snprintf(p, sizeof(p), "%s/missing", dir);
    expect_refused(p, false, "No such file", ENOENT);
    expect_refused(dir, true, "is a directory", EISDIR);
    expect_refused(dir, false, "is a directory", EISDIR);
    snprintf(p, sizeof(p), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    expect_refused(p, true, "not a regular file or block device", EINVAL); /* at once */
    expect_refused(p, false, "not a regular file or block device", EINVAL);
    expect_refused("/dev/null", true, "not a regular file or block device", EINVAL);
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    struct disk_image_config none = {.path = NULL};
    ck_assert_int_eq(disk_image_open(&none, &img, err), -EINVAL);
    struct disk_image_config bad = {.path = path, .format = (enum disk_format)7};
    ck_assert_int_eq(disk_image_open(&bad, &img, err), -EINVAL);
    if (geteuid() != 0) { /* root opens a read-only file for writing anyway */
        make_file(path, 4096);
        ck_assert_int_eq(chmod(path, 0444), 0);
        expect_refused(path, false, "for writing", EACCES);
    }
}
END_TEST

/* A guest must not turn an auto-detected raw disk into a qcow2 image (naming a backing file). */
START_TEST(test_qcow2_magic_guard)
{
    make_file(path, 4096);
    struct disk_image *img = must_open(path, false, DISK_FORMAT_AUTO);
    uint8_t magic[4] = {'Q', 'F', 'I', 0xfb}, sector[512] = {'Q', 'F', 'I', 0xfb};
    ck_assert_int_eq(rw(img, sector, 0, sizeof(sector), true), -EPERM);
    ck_assert_int_eq(rw(img, magic, 0, 4, true), -EPERM);
    uint8_t q = 'Q';
    ck_assert_int_eq(rw(img, &q, 0, 1, true), 0); /* one byte is not the magic yet */
    ck_assert_int_eq(rw(img, magic + 1, 1, 3, true), -EPERM);
    ck_assert_int_eq(rw(img, magic + 2, 2, 2, true), 0); /* byte 1 still differs */
    sector[0] = 'X';
    ck_assert_int_eq(rw(img, sector, 0, sizeof(sector), true), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
    /* Named raw by the user: any bytes go. */
    img = must_open(path, false, DISK_FORMAT_RAW);
    ck_assert_int_eq(rw(img, magic, 0, 4, true), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
}
END_TEST

START_TEST(test_small_and_shrunk)
{
    make_file(path, 3); /* smaller than the magic: raw */
    struct disk_image *img = must_open(path, false, DISK_FORMAT_AUTO);
    ck_assert_uint_eq(disk_image_size(img), 3);
    uint8_t b[3];
    ck_assert_int_eq(rw(img, b, 0, 3, false), 0);
    ck_assert_int_eq(disk_image_close(img), 0);
    make_file(path, 65536);
    img = must_open(path, false, DISK_FORMAT_AUTO);
    ck_assert_int_eq(truncate(path, 4096), 0); /* shrunk on the host: the end is an error */
    uint8_t big[8192];
    ck_assert_int_eq(rw(img, big, 0, sizeof(big), false), -EIO);
    ck_assert_int_eq(disk_image_close(img), 0);
}
END_TEST

START_TEST(test_locks)
{
    make_file(path, 65536);
    struct disk_image *a = must_open(path, false, DISK_FORMAT_AUTO), *b;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(disk_image_lock(a, err), 0);
    b = must_open(path, false, DISK_FORMAT_AUTO);
    ck_assert_int_eq(disk_image_lock(b, err), -EBUSY);
    ck_assert_msg(strstr(err, "locked by another process or disk") && strstr(err, path), "%s", err);
    disk_image_close(b);
    b = must_open(path, true, DISK_FORMAT_AUTO);
    ck_assert_int_eq(disk_image_lock(b, err), -EBUSY);
    disk_image_close(b);
    disk_image_close(a);
    a = must_open(path, true, DISK_FORMAT_AUTO);
    b = must_open(path, true, DISK_FORMAT_AUTO);
    ck_assert_int_eq(disk_image_lock(a, err), 0);
    ck_assert_int_eq(disk_image_lock(b, err), 0); /* readers share */
    ck_assert_int_ge(disk_image_fd(a), 0);
    disk_image_close(a);
    disk_image_close(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("raw");
    TCase *tc = tcase_create("raw");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_read_write);
    tcase_add_test(tc, test_zeroes_and_discard);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_qcow2_magic_guard);
    tcase_add_test(tc, test_small_and_shrunk);
    tcase_add_test(tc, test_locks);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
