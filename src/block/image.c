/* image.c: opening an image (format detection, backing chains), checked I/O entry points, locks. */
#include "block/image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/io.h"
#include "util.h"

static const uint8_t qcow2_magic[4] = {'Q', 'F', 'I', 0xfb};

/* Open without blocking on a FIFO or taking a terminal; O_NONBLOCK is cleared afterwards. */
static int open_fd(const char *path, bool read_only, int *fd, char *errmsg)
{
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    *fd = open(path, flags);
    if (*fd < 0 && errno == EISDIR)
        return kiln_fail(errmsg, EISDIR, "%s: is a directory", path);
    if (*fd < 0) {
        int e = errno;
        bool perm = !read_only && (e == EACCES || e == EPERM || e == EROFS || e == ETXTBSY);
        return kiln_fail(errmsg, e, "%s: cannot open%s: %s", path,
                         perm ? " for writing (read-only disk?)" : "", strerror(e));
    }
    int fl = fcntl(*fd, F_GETFL);
    if (fl < 0 || fcntl(*fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return kiln_fail(errmsg, errno, "%s: fcntl: %s", path, strerror(errno));
    return 0;
}

/* Size and block size of a regular file or block device; anything else is refused. */
static int file_size(struct image_file *f, const struct stat *st, char *errmsg)
{
    if (S_ISDIR(st->st_mode))
        return kiln_fail(errmsg, EISDIR, "%s: is a directory", f->path);
    if (S_ISREG(st->st_mode)) {
        f->size = (uint64_t)st->st_size;
        f->block_size = (uint32_t)st->st_blksize;
        return 0;
    }
    if (!S_ISBLK(st->st_mode))
        return kiln_fail(errmsg, EINVAL, "%s: not a regular file or block device", f->path);
    unsigned int pbs = 0;
    if (ioctl(f->fd, BLKGETSIZE64, &f->size) < 0 || ioctl(f->fd, BLKPBSZGET, &pbs) < 0)
        return kiln_fail(errmsg, errno, "%s: cannot get the device size: %s", f->path,
                         strerror(errno));
    f->block_size = pbs;
    return 0;
}

/* Refuse a file already in the chain (a loop) and a chain deeper than the limit. */
static int check_chain(const struct image_file *f, const struct stat *st,
                       const struct image_chain *child, char *errmsg)
{
    if (child && child->depth + 1 >= DISK_IMAGE_CHAIN_MAX)
        return kiln_fail(errmsg, ELOOP, "%s: backing chain longer than %u images", f->path,
                         DISK_IMAGE_CHAIN_MAX);
    for (const struct image_chain *c = child; c; c = c->child)
        if (c->dev == st->st_dev && c->ino == st->st_ino)
            return kiln_fail(errmsg, ELOOP, "%s: backing chain loops back to an image in it",
                             f->path);
    return 0;
}

/* AUTO: qcow2 if the file starts with its magic, else raw. */
static int probe(struct image_file *f, enum disk_format *format, char *errmsg)
{
    if (*format != DISK_FORMAT_AUTO)
        return 0;
    uint8_t head[sizeof(qcow2_magic)] = {0};
    if (f->size >= sizeof(head)) {
        int ret = block_pread(f->fd, head, sizeof(head), 0);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "%s: cannot read: %s", f->path, strerror(-ret));
    }
    bool qcow2 = memcmp(head, qcow2_magic, sizeof(head)) == 0;
    *format = qcow2 ? DISK_FORMAT_QCOW2 : DISK_FORMAT_RAW;
    f->probed_raw = !qcow2;
    return 0;
}

/* Open path as format (read-only for backing files), under child in the chain. */
static int open_file(const char *path, enum disk_format format, bool read_only,
                     const struct image_chain *child, struct disk_image **out, char *errmsg)
{
    struct image_file f = {.fd = -1, .path = path, .read_only = read_only};
    struct stat st;
    int ret = open_fd(path, read_only, &f.fd, errmsg);
    if (!ret && fstat(f.fd, &st) < 0)
        ret = kiln_fail(errmsg, errno, "%s: stat: %s", path, strerror(errno));
    if (!ret)
        ret = file_size(&f, &st, errmsg);
    if (!ret)
        ret = check_chain(&f, &st, child, errmsg);
    if (!ret)
        ret = probe(&f, &format, errmsg);
    if (!ret) {
        struct image_chain here = {st.st_dev, st.st_ino, child ? child->depth + 1 : 0, child};
        ret = format == DISK_FORMAT_QCOW2 ? qcow2_open(&f, &here, out, errmsg)
                                          : raw_open(&f, out, errmsg);
    }
    if (ret < 0 && f.fd >= 0)
        close(f.fd);
    return ret;
}

int disk_image_open(const struct disk_image_config *cfg, struct disk_image **out, char *errmsg)
{
    if (!cfg || !cfg->path || !cfg->path[0])
        return kiln_fail(errmsg, EINVAL, "disk: no image path");
    if (cfg->format > DISK_FORMAT_QCOW2)
        return kiln_fail(errmsg, EINVAL, "disk %s: unknown image format", cfg->path);
    char why[KILN_ERRMSG_MAX];
    int ret = open_file(cfg->path, cfg->format, cfg->read_only, NULL, out, why);
    if (ret >= 0)
        return 0;
    /* why is "FILE: reason" for the file that failed: this one, or one of its backing chain. */
    size_t n = strlen(cfg->path);
    if (!strncmp(why, cfg->path, n) && why[n] == ':')
        return kiln_fail(errmsg, -ret, "disk %s", why);
    return kiln_fail(errmsg, -ret, "disk %s: backing file %s", cfg->path, why);
}

int disk_image_open_backing(const char *path, enum disk_format format,
                            const struct image_chain *chain, struct disk_image **out, char *errmsg)
{
    return open_file(path, format, true, chain, out, errmsg);
}

int disk_image_init(struct disk_image *img, const struct disk_image_ops *ops,
                    const struct image_file *f)
{
    img->ops = ops;
    img->fd = f->fd;
    img->read_only = f->read_only;
    img->block_size = f->block_size;
    img->path = strdup(f->path);
    return img->path ? 0 : -ENOMEM;
}

/* ---- I/O entry points: the checks every format relies on. */

static int check_rw(const struct disk_image *img, const struct iovec *iov, unsigned niov,
                    uint64_t off, uint64_t *len)
{
    if (niov > DISK_IMAGE_IOV_MAX)
        return -EINVAL;
    *len = block_iov_len(iov, niov);
    return range_within(off, *len, img->size) ? 0 : -EINVAL;
}

int disk_image_read(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off)
{
    uint64_t len;
    int ret = check_rw(img, iov, niov, off, &len);
    if (ret < 0 || len == 0)
        return ret;
    return img->ops->read(img, iov, niov, off, len);
}

int disk_image_write(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off)
{
    uint64_t len;
    int ret = check_rw(img, iov, niov, off, &len);
    if (ret < 0 || len == 0)
        return ret;
    return img->read_only ? -EROFS : img->ops->write(img, iov, niov, off, len);
}

int disk_image_flush(struct disk_image *img)
{
    return img->read_only ? 0 : img->ops->flush(img); /* nothing can be dirty */
}

int disk_image_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
    if (!range_within(off, len, img->size))
        return -EINVAL;
    if (img->read_only)
        return -EROFS;
    return len ? img->ops->discard(img, off, len) : 0;
}

int disk_image_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool may_unmap)
{
    if (!range_within(off, len, img->size))
        return -EINVAL;
    if (img->read_only)
        return -EROFS;
    return len ? img->ops->write_zeroes(img, off, len, may_unmap) : 0;
}

uint64_t disk_image_size(const struct disk_image *img)
{
    return img->size;
}

uint32_t disk_image_block_size(const struct disk_image *img)
{
    return img->block_size;
}

uint32_t disk_image_discard_granularity(const struct disk_image *img)
{
    return img->discard_granularity;
}

int disk_image_fd(const struct disk_image *img)
{
    return img->fd;
}

const char *disk_image_format_name(const struct disk_image *img)
{
    return img->ops->name;
}

bool disk_image_read_only(const struct disk_image *img)
{
    return img->read_only;
}

/* ---- Locks and closing. */

/*
 * An OFD lock belongs to the open file description, so it conflicts with another VM and with a
 * second image of the same file in this process, and goes away when the fd is closed.
 */
static int lock_one(const struct disk_image *img, bool exclusive, const char *top, char *errmsg)
{
    struct flock fl = {.l_type = exclusive ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET};
    if (fcntl(img->fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    const char *as = img->path == top ? "" : " (a backing file)";
    if (errno == EAGAIN || errno == EACCES)
        return kiln_fail(errmsg, EBUSY,
                         "disk %s%s: locked by another process or disk (in use by another VM?)",
                         img->path, as);
    return kiln_fail(errmsg, errno, "disk %s%s: cannot lock (%s): other users are not kept out",
                     img->path, as, strerror(errno));
}

int disk_image_lock(struct disk_image *img, char *errmsg)
{
    for (const struct disk_image *i = img; i; i = i->backing) {
        int ret = lock_one(i, !i->read_only, img->path, errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int disk_image_close(struct disk_image *img)
{
    if (!img)
        return 0;
    int ret = img->ops->close ? img->ops->close(img) : 0;
    int bret = disk_image_close(img->backing);
    if (img->fd >= 0)
        close(img->fd);
    free(img->path);
    free(img);
    return ret < 0 ? ret : bret;
}
