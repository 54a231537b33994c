/* io.c: iovec slicing and whole transfers on a file descriptor, shared by the image formats. */
#include "block/io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <unistd.h>

#define ZERO_IOV 16u

/* Read-only, so shared by every thread and image. */
const uint8_t block_zeros[BLOCK_ZEROS_LEN];

uint64_t block_iov_len(const struct iovec *iov, unsigned n)
{
    uint64_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

int block_iov_slice(const struct iovec *src, unsigned n, uint64_t skip, uint64_t len,
                    struct iovec *dst, unsigned max)
{
    unsigned i = 0, k = 0;
    while (i < n && skip >= src[i].iov_len)
        skip -= src[i++].iov_len;
    while (len > 0) {
        if (i >= n || k >= max)
            return -EINVAL;
        uint64_t take = src[i].iov_len - skip;
        if (take > len)
            take = len;
        dst[k++] = (struct iovec){(uint8_t *)src[i].iov_base + skip, (size_t)take};
        len -= take;
        skip = 0;
        i++;
    }
    return (int)k;
}

enum iov_op { IOV_ZERO, IOV_FROM_BUF, IOV_TO_BUF };

/* Zero bytes [skip, skip + len) of the iovec, or copy them from or to buf. */
static void iov_apply(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len,
                      uint8_t *buf, enum iov_op op)
{
    uint64_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        uint64_t take = iov[i].iov_len - skip;
        if (take > len - done)
            take = len - done;
        uint8_t *p = (uint8_t *)iov[i].iov_base + skip;
        if (op == IOV_ZERO)
            memset(p, 0, take);
        else if (op == IOV_FROM_BUF)
            memcpy(p, buf + done, take);
        else
            memcpy(buf + done, p, take);
        done += take;
        skip = 0;
    }
}

void block_iov_zero(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len)
{
    iov_apply(iov, n, skip, len, NULL, IOV_ZERO);
}

void block_iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf,
                        uint64_t len)
{
    iov_apply(iov, n, skip, len, (uint8_t *)buf, IOV_FROM_BUF);
}

void block_iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len)
{
    iov_apply(iov, n, skip, len, buf, IOV_TO_BUF);
}

/* Drop the first done bytes of an iovec array after a partial transfer. */
static void iov_advance(struct iovec **iov, unsigned *n, size_t done)
{
    while (*n > 0 && done >= (*iov)->iov_len) {
        done -= (*iov)->iov_len;
        (*iov)++;
        (*n)--;
    }
    if (*n > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + done;
        (*iov)->iov_len -= done;
    }
}

int block_rw(int fd, struct iovec *iov, unsigned n, uint64_t off, bool write, bool zero_eof)
{
    iov_advance(&iov, &n, 0); /* empty leading entries would look like the end of the file */
    while (n > 0) {
        ssize_t got =
            write ? pwritev(fd, iov, (int)n, (off_t)off) : preadv(fd, iov, (int)n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0 && !write && zero_eof) {
            block_iov_zero(iov, n, 0, block_iov_len(iov, n));
            return 0;
        }
        /* End of file: the image shrank under us (or a write made no progress). */
        if (got == 0)
            return -EIO;
        off += (uint64_t)got;
        iov_advance(&iov, &n, (size_t)got);
    }
    return 0;
}

int block_pread(int fd, void *buf, uint64_t len, uint64_t off)
{
    struct iovec iov = {buf, (size_t)len};
    return block_rw(fd, &iov, 1, off, false, false);
}

int block_pwrite(int fd, const void *buf, uint64_t len, uint64_t off)
{
    struct iovec iov = {(void *)buf, (size_t)len};
    return block_rw(fd, &iov, 1, off, true, false);
}

int block_sync(int fd)
{
    return fdatasync(fd) < 0 ? -errno : 0;
}

/* The file system (or kernel) cannot do this fallocate mode on this file. */
static bool fallocate_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == ENODEV;
}

int block_write_zeros(int fd, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return 0;
    if (!fallocate_unsupported(errno))
        return -errno;
    struct iovec iov[ZERO_IOV];
    while (len > 0) {
        unsigned n = 0;
        uint64_t chunk = 0;
        for (; n < ZERO_IOV && chunk < len; n++) {
            uint64_t take = len - chunk < BLOCK_ZEROS_LEN ? len - chunk : BLOCK_ZEROS_LEN;
            iov[n] = (struct iovec){(void *)block_zeros, (size_t)take};
            chunk += take;
        }
        int err = block_rw(fd, iov, n, off, true, false);
        if (err)
            return err;
        off += chunk;
        len -= chunk;
    }
    return 0;
}
