/* io.h: iovec slicing and whole transfers on a file descriptor, shared by the image formats. */
#ifndef KILN_BLOCK_IO_H
#define KILN_BLOCK_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* A read-only buffer of zeros, for writing zeros through an iovec. */
#define BLOCK_ZEROS_LEN 65536u
extern const uint8_t block_zeros[BLOCK_ZEROS_LEN];

/* Room for a slice of a request's iovec plus a head and a tail buffer around it. */
#define BLOCK_IOV_SLICE_MAX (1024u + 2u)

/* Total length of an iovec array (the caller keeps it from overflowing: DISK_IMAGE_IOV_MAX). */
uint64_t block_iov_len(const struct iovec *iov, unsigned n);

/*
 * Point dst at bytes [skip, skip + len) of src. Returns the number of dst entries used, or
 * -EINVAL if they would be more than max or src holds fewer bytes.
 */
int block_iov_slice(const struct iovec *src, unsigned n, uint64_t skip, uint64_t len,
                    struct iovec *dst, unsigned max);

/* Set bytes [skip, skip + len) of the iovec to zero (it must hold them). */
void block_iov_zero(const struct iovec *iov, unsigned n, uint64_t skip, uint64_t len);

/* Copy len bytes from buf to the iovec, starting skip bytes into it (it must hold them). */
void block_iov_from_buf(const struct iovec *iov, unsigned n, uint64_t skip, const void *buf,
                        uint64_t len);

/* Copy len bytes of the iovec, starting skip bytes into it, to buf. */
void block_iov_to_buf(const struct iovec *iov, unsigned n, uint64_t skip, void *buf, uint64_t len);

/*
 * Transfer all of iov at off (preadv/pwritev, looping over short transfers; iov is consumed).
 * A read that meets the end of the file fails with -EIO, or, with zero_eof, gives zeros for the
 * rest (qcow2: a cluster allocated at the end of the file may not have been written whole).
 * Returns 0 or -errno.
 */
int block_rw(int fd, struct iovec *iov, unsigned n, uint64_t off, bool write, bool zero_eof);

/* pread/pwrite of one buffer, whole; a read past the end of the file is -EIO. */
int block_pread(int fd, void *buf, uint64_t len, uint64_t off);
int block_pwrite(int fd, const void *buf, uint64_t len, uint64_t off);

/* fdatasync. Returns 0 or -errno. */
int block_sync(int fd);

/* Write len zero bytes at off (fallocate's zero range where the file system has it). */
int block_write_zeros(int fd, uint64_t off, uint64_t len);

#endif
