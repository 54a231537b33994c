/* raw.c: raw images (regular files and block devices): the file's bytes are the disk's bytes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "block/image.h"
#include "block/io.h"
#include "util.h"

struct raw {
    struct disk_image img; /* first: freeing the image frees this */
    bool probed;           /* format auto-detected: the first bytes must not become qcow2's */
};

static const uint8_t qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};

/*
 * A guest that writes the qcow2 magic into the first bytes of an auto-detected raw image would
 * have it opened as qcow2 next time, naming any host file as its backing file. Such a write is
 * refused: the bytes it leaves in front are what the first four bytes would become.
 */
static int check_magic(struct raw *r, const struct iovec *iov, unsigned niov, uint64_t off,
                       uint64_t len)
{
    uint8_t head[sizeof(qcow2_magic)] = {0};
    uint64_t n = r->img.size < sizeof(head) ? r->img.size : sizeof(head);
    int ret = n ? block_pread(r->img.fd, head, n, 0) : 0;
    if (ret < 0)
        return ret;
    uint64_t take = sizeof(head) - off < len ? sizeof(head) - off : len;
    block_iov_to_buf(iov, niov, 0, head + off, take);
    return memcmp(head, qcow2_magic, sizeof(head)) == 0 ? -EPERM : 0;
}

static int raw_rw(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                  bool write)
{
    struct iovec local[DISK_IMAGE_IOV_MAX]; /* block_rw consumes the array it is given */
    memcpy(local, iov, niov * sizeof(*iov));
    return block_rw(img->fd, local, niov, off, write, false);
}

static int raw_read(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                    uint64_t len)
{
    (void)len;
    return raw_rw(img, iov, niov, off, false);
}

static int raw_write(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                     uint64_t len)
{
    struct raw *r = (struct raw *)img;
    if (r->probed && off < sizeof(qcow2_magic)) {
        int ret = check_magic(r, iov, niov, off, len);
        if (ret < 0)
            return ret;
    }
    return raw_rw(img, iov, niov, off, true);
}

static int raw_flush(struct disk_image *img)
{
    return block_sync(img->fd);
}

/* The file system (or kernel) cannot do this fallocate mode on this file. */
static bool fallocate_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == EINVAL || err == ENODEV;
}

static int punch_hole(int fd, uint64_t off, uint64_t len)
{
    int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
    return fallocate(fd, mode, (off_t)off, (off_t)len) == 0 ? 0 : -errno;
}

/* Punching a hole is the deallocation a discard allows; it is only a hint, so a file system that
 * cannot punch holes makes it a successful no-op. */
static int raw_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
    int ret = punch_hole(img->fd, off, len);
    return ret < 0 && fallocate_unsupported(-ret) ? 0 : ret;
}

/* Reads must return zeros afterwards, so without hole punching the zeros are written. */
static int raw_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool may_unmap)
{
    if (may_unmap && punch_hole(img->fd, off, len) == 0)
        return 0;
    return block_write_zeros(img->fd, off, len);
}

static const struct disk_image_ops raw_ops = {
    .name = "raw",
    .read = raw_read,
    .write = raw_write,
    .flush = raw_flush,
    .discard = raw_discard,
    .write_zeroes = raw_write_zeroes,
};

int raw_open(const struct image_file *f, struct disk_image **out, char *errmsg)
{
    struct raw *r = calloc(1, sizeof(*r));
    if (!r || disk_image_init(&r->img, &raw_ops, f) < 0) {
        free(r);
        return kiln_fail(errmsg, ENOMEM, "%s: out of memory", f->path);
    }
    r->probed = f->probed_raw && !f->read_only;
    r->img.size = f->size;
    r->img.discard_granularity = f->block_size;
    *out = &r->img;
    return 0;
}
