/* image.h: disk images (raw, qcow2) behind one interface: opened once, then I/O from any thread. */
#ifndef KILN_BLOCK_IMAGE_H
#define KILN_BLOCK_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Most iovec entries one request may have (the kernel's IOV_MAX). */
#define DISK_IMAGE_IOV_MAX 1024u
/* Longest backing chain: the image itself and at most 15 backing files under it. */
#define DISK_IMAGE_CHAIN_MAX 16u

enum disk_format {
    DISK_FORMAT_AUTO,  /* qcow2 if the file starts with "QFI\xfb", else raw */
    DISK_FORMAT_RAW,   /* the file's bytes are the disk's bytes */
    DISK_FORMAT_QCOW2, /* qcow2 version 2 or 3 */
};

struct disk_image_config {
    const char *path; /* image file or block device; required */
    bool read_only;   /* open O_RDONLY; every write, discard and write-zeroes fails with -EROFS */
    enum disk_format format;
};

struct disk_image;

/*
 * Open the image and everything it needs: for qcow2 the header and its tables are checked and
 * the backing chain (raw or qcow2, opened read-only, relative names taken from the directory of
 * the image that names them) is opened. Afterwards I/O fails only for host reasons (a disk
 * error, no space) or, on a corrupt table that is read lazily, with -EIO. A FIFO or a terminal
 * fails at once instead of blocking. Auto-detection that finds a raw image keeps the guest from
 * writing the qcow2 magic into its first four bytes (-EPERM), so a guest cannot turn its disk
 * into a qcow2 image naming a host file as backing file at the next start. Returns 0, or -errno
 * with a one-line message in errmsg (KILN_ERRMSG_MAX bytes) naming the file and the reason.
 * Nothing is locked: see disk_image_lock.
 */
int disk_image_open(const struct disk_image_config *cfg, struct disk_image **out, char *errmsg);

/*
 * Take OFD locks on the image (exclusive when writable, shared when read-only) and shared ones
 * on every backing file, so another VM cannot write an image or a backing file this one uses.
 * The locks go with disk_image_close. Returns 0; -EBUSY when another process or another image
 * of this process holds a conflicting lock; any other -errno when the file system cannot lock
 * (the caller may go on without locks). Each failure comes with a one-line message in errmsg.
 * Call before I/O starts, on the thread that opened the image (it uses fcntl).
 */
int disk_image_lock(struct disk_image *img, char *errmsg);

/*
 * I/O: any number of threads at once, each call blocking until done. The bytes [off, off + the
 * iovec's total length) must lie within disk_image_size (beyond: -EINVAL; refusing such requests
 * is the caller's job), niov at most DISK_IMAGE_IOV_MAX. The iovec array is not changed. A write
 * is on stable storage once it has returned and a flush started after that has returned 0.
 * Requests that overlap while in flight land in either order, as on a real disk. Errors are
 * -errno. Only preadv/pwritev/pread64/pwrite64, fdatasync and fallocate (plus memory and futex
 * calls) are made: the disk workers' seccomp filter allows nothing else. Memory is bounded per
 * image of the chain: qcow2 keeps its L1 table (at most 32 MiB) and, when writable, its refcount
 * table (at most 8 MiB) in memory, plus caches of 4 MiB of L2 tables and 1 MiB of refcount
 * blocks (at least 4 clusters each) and a cluster or two per request in flight.
 */
int disk_image_read(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off);
int disk_image_write(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off);

/* Make every write (and discard, and write-zeroes) completed before the call durable. */
int disk_image_flush(struct disk_image *img);

/*
 * A hint that [off, off + len) is no longer needed: its space may be freed (raw: a hole punched;
 * qcow2: whole clusters inside the range unmapped, parts of clusters left alone). Afterwards the
 * range reads as zeros, the old data or, for qcow2 with a backing file, the backing file's data.
 */
int disk_image_discard(struct disk_image *img, uint64_t off, uint64_t len);

/* [off, off + len) reads as zeros afterwards; may_unmap lets its space be freed as well. */
int disk_image_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool may_unmap);

/* Virtual size in bytes: what the guest sees (for raw, the file's size; not rounded). */
uint64_t disk_image_size(const struct disk_image *img);

/* Host block size worth aligning I/O to (a hint: a power of two from 512, or 0 if unknown). */
uint32_t disk_image_block_size(const struct disk_image *img);

/* Smallest range a discard can free (the qcow2 cluster size; the block size for raw). */
uint32_t disk_image_discard_granularity(const struct disk_image *img);

/* The image file's descriptor, for callers that lock it themselves (never close it). */
int disk_image_fd(const struct disk_image *img);

/* "raw" or "qcow2". */
const char *disk_image_format_name(const struct disk_image *img);

bool disk_image_read_only(const struct disk_image *img);

/*
 * Write back what the format caches (qcow2 metadata), make it durable, close the chain and free
 * the image. Call with no I/O in flight. Returns 0, or the -errno of the last write-back (the
 * image is freed whatever happens).
 */
int disk_image_close(struct disk_image *img);

/* ---- The format side: what raw.c and qcow2.c implement. Callers use only the above. ---- */

/*
 * A format's operations. The wrappers above have checked the range (within the virtual size),
 * niov and read_only before any of these runs; len is the iovec's total, more than 0.
 */
struct disk_image_ops {
    const char *name;
    int (*read)(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                uint64_t len);
    int (*write)(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                 uint64_t len);
    int (*flush)(struct disk_image *img);
    int (*discard)(struct disk_image *img, uint64_t off, uint64_t len);
    int (*write_zeroes)(struct disk_image *img, uint64_t off, uint64_t len, bool may_unmap);
    /* Write back and free what the format added; the generic part is image.c's to free. */
    int (*close)(struct disk_image *img);
};

/*
 * The generic part of every image: a format's own struct starts with it, so freeing the image
 * frees the format's struct. Immutable after open.
 */
struct disk_image {
    const struct disk_image_ops *ops;
    char *path;
    int fd;
    bool read_only;
    uint64_t size;                /* virtual size, bytes */
    uint32_t block_size;          /* host block size hint */
    uint32_t discard_granularity; /* bytes */
    struct disk_image *backing;   /* owned; NULL if none */
};

/* What opening learnt about a file before a format looks at it. */
struct image_file {
    int fd;
    const char *path;
    bool read_only;
    bool probed_raw; /* auto-detected as raw: keep the guest from writing the qcow2 magic */
    uint64_t size;   /* file or block device size, bytes */
    uint32_t block_size;
};

/* One image of a backing chain being opened, linked to the image that names it as backing. */
struct image_chain {
    dev_t dev;
    ino_t ino;
    unsigned depth; /* 0 for the image the user named */
    const struct image_chain *child;
};

/*
 * Format openers. On success the image owns f->fd; on failure the caller closes it. Messages
 * are "PATH: reason" (disk_image_open puts "disk " in front).
 */
int raw_open(const struct image_file *f, struct disk_image **out, char *errmsg);
int qcow2_open(const struct image_file *f, const struct image_chain *chain, struct disk_image **out,
               char *errmsg);

/*
 * Open the backing file of the image at chain, read-only: refuses a chain longer than
 * DISK_IMAGE_CHAIN_MAX and one that loops back to an image already in it (ELOOP).
 */
int disk_image_open_backing(const char *path, enum disk_format format,
                            const struct image_chain *chain, struct disk_image **out, char *errmsg);

/* Fill the generic part from f (the path is copied). Returns 0 or -ENOMEM. */
int disk_image_init(struct disk_image *img, const struct disk_image_ops *ops,
                    const struct image_file *f);

#endif
