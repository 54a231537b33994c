/* fuzz_qcow2.c: libFuzzer target: a qcow2 image file opened, then read, written and discarded. */
/*
 * Input: IMAGE || OPS || N. The last byte N: its low 4 bits are the number of 8-byte op records
 * just before it (fewer if the input is shorter), bit 7 opens the image read-only. IMAGE (the
 * rest, from the start) is written to a file in a private directory on /dev/shm (so that the
 * flushes cost nothing) and opened as qcow2 with src/block's disk_image_open. Each op record:
 *   byte 0      kind % 6: read, write, discard, write zeroes, flush, write then read back
 *   bytes 1-4   offset, little-endian, modulo the virtual size
 *   bytes 5-6   length - 1, little-endian, cut at the end of the disk
 *   byte 7      the data byte written; bit 0 is may_unmap for write zeroes
 * Then the image is closed. What is checked besides the sanitizers: every call returns 0 or a
 * small -errno, an open failure comes with a one-line message, and the file never grows by more
 * than the ops could need (no write far past the end of the image).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/image.h"
#include "fuzz_common.h"

#define OP_LEN 8u
#define MAX_OPS 15u
#define IO_MAX 65536u
/* Writes can allocate data clusters, L2 tables, refcount blocks and a larger refcount table
 * (up to 8 MiB), all past the old end: anything beyond this is a runaway write. */
#define GROWTH_MAX (64ull << 20)

static char image_dir[200], image_path[256];

/* The scratch file and its directory go when the fuzzer exits (a crash leaves them). */
static void remove_scratch(void)
{
    unlink(image_path);
    rmdir(image_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(image_dir, sizeof(image_dir), "%s/kiln-fuzz-qcow2-XXXXXX", base);
    if (!mkdtemp(image_dir))
        abort();
    snprintf(image_path, sizeof(image_path), "%s/image.qcow2", image_dir);
    atexit(remove_scratch);
    return 0;
}

static void write_image(const uint8_t *data, size_t len)
{
    int fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    if (len && write(fd, data, len) != (ssize_t)len)
        abort();
    close(fd);
}

static uint64_t image_file_size(void)
{
    struct stat st;
    return stat(image_path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* A call's result: 0 or -errno (nothing positive, nothing out of range). */
static void check_ret(int ret)
{
    FZ_CHECK(ret <= 0 && ret > -4096);
}

static void do_op(struct disk_image *img, const uint8_t *op, uint8_t *buf, uint8_t *back)
{
    uint64_t size = disk_image_size(img);
    if (size == 0)
        return;
    uint64_t off = le_get(op + 1, 4) % size, len = 1 + le_get(op + 5, 2);
    if (len > size - off)
        len = size - off;
    struct iovec iov[2] = {{buf, len / 2}, {buf + len / 2, len - len / 2}};
    struct iovec biov = {back, len};
    switch (op[0] % 6) {
    case 0:
        check_ret(disk_image_read(img, iov, 2, off));
        break;
    case 1:
    case 5:
        memset(buf, op[7], len);
        check_ret(disk_image_write(img, iov, 2, off));
        if (op[0] % 6 == 5)
            check_ret(disk_image_read(img, &biov, 1, off));
        break;
    case 2:
        check_ret(disk_image_discard(img, off, len));
        break;
    case 3:
        check_ret(disk_image_write_zeroes(img, off, len, op[7] & 1));
        break;
    default:
        check_ret(disk_image_flush(img));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t n = data[size - 1];
    size_t nops = n & 0xf, avail = (size - 1) / OP_LEN;
    if (nops > MAX_OPS)
        nops = MAX_OPS;
    if (nops > avail)
        nops = avail;
    size_t img_len = size - 1 - nops * OP_LEN;
    write_image(data, img_len);
    struct disk_image_config cfg = {
        .path = image_path, .read_only = n & 0x80, .format = DISK_FORMAT_QCOW2};
    struct disk_image *img;
    char err[KILN_ERRMSG_MAX];
    int ret = disk_image_open(&cfg, &img, err);
    fz_result("open", ret, err);
    if (ret < 0) {
        FZ_CHECK(ret > -4096 && err[0] && !strchr(err, '\n'));
        return 0;
    }
    uint8_t *buf = malloc(IO_MAX), *back = malloc(IO_MAX);
    if (!buf || !back)
        abort();
    for (size_t i = 0; i < nops; i++)
        do_op(img, data + img_len + i * OP_LEN, buf, back);
    check_ret(disk_image_close(img));
    FZ_CHECK(image_file_size() <= img_len + GROWTH_MAX);
    free(buf);
    free(back);
    return 0;
}
