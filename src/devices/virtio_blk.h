/* virtio_blk.h: virtio-blk over a raw image file or block device, with I/O on libuv's pool. */
#ifndef KILN_VIRTIO_BLK_H
#define KILN_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "block/image.h"
#include "devices/devices.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtio.h"

/* Feature bits (virtio 1.x, "Block Device"). */
#define VIRTIO_BLK_F_SIZE_MAX (1ULL << 1)
#define VIRTIO_BLK_F_SEG_MAX (1ULL << 2)
#define VIRTIO_BLK_F_GEOMETRY (1ULL << 4)
#define VIRTIO_BLK_F_RO (1ULL << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ULL << 6)
#define VIRTIO_BLK_F_FLUSH (1ULL << 9)
#define VIRTIO_BLK_F_TOPOLOGY (1ULL << 10)
#define VIRTIO_BLK_F_CONFIG_WCE (1ULL << 11)
#define VIRTIO_BLK_F_MQ (1ULL << 12)
#define VIRTIO_BLK_F_DISCARD (1ULL << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ULL << 14)

/* Request types (struct virtio_blk_req.type). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

/* Status byte values. */
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* Discard / write-zeroes segment flags. */
#define VIRTIO_BLK_WZ_F_UNMAP 1u

#define VIRTIO_BLK_SECTOR 512u
#define VIRTIO_BLK_HDR_LEN 16u      /* le32 type, le32 reserved, le64 sector */
#define VIRTIO_BLK_SEG_LEN 16u      /* le64 sector, le32 num_sectors, le32 flags */
#define VIRTIO_BLK_ID_BYTES 20u     /* GET_ID: NUL-padded ASCII, no NUL when 20 long */
#define VIRTIO_BLK_QUEUE_SIZE 256u  /* maximum queue size offered */
#define VIRTIO_BLK_MAX_INFLIGHT 64u /* requests handed to the thread pool at once */

/* Config space offsets (little-endian fields) and the length kiln exposes. */
#define VIRTIO_BLK_CFG_CAPACITY 0
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_CFG_PHYS_EXP 24
#define VIRTIO_BLK_CFG_MIN_IO 26
#define VIRTIO_BLK_CFG_NUM_QUEUES 34
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGN 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56
#define VIRTIO_BLK_CONFIG_LEN 60 /* through unused1[3] after write_zeroes_may_unmap */

struct virtio_blk;

/* One virtio-blk per configured disk (kiln_config.disks), on the VM's virtio transport. */
extern const struct device_class virtio_blk_class;

struct virtio_blk_config {
    const char *path;        /* image file or block device; required */
    bool read_only;          /* open O_RDONLY, offer VIRTIO_BLK_F_RO, take a read (shared) lock */
    const char *serial;      /* GET_ID string: NULL or "" for none, else 1..20 printable ASCII */
    enum disk_format format; /* auto (qcow2 by its magic, else raw), raw or qcow2 */
    const struct sandbox *sandbox; /* NULL, or the filters whose SANDBOX_WORKER the I/O enters */
};

/*
 * Open and lock the image and set up the device (one request queue). The image must be a
 * regular file or a block device holding at least one 512-byte sector; a partial last sector
 * is not exposed. The image is locked with an OFD lock (exclusive when writable, shared when
 * read-only): if another process or another disk in this one holds a conflicting lock, returns
 * -EBUSY. Errors return -errno with a one-line message naming the path in errmsg. loop is the
 * VM's event loop (requests are processed and completed on it), mem the guest RAM.
 */
int virtio_blk_create(const struct virtio_blk_config *cfg, uv_loop_t *loop,
                      const struct guest_mem *mem, const struct kiln_log *log,
                      struct virtio_blk **out, char *errmsg);

/* The embedded virtio device, for the transport (which sets transport/transport_priv). */
struct virtio_device *virtio_blk_device(struct virtio_blk *blk);

/* Size seen by the guest, in 512-byte sectors. */
uint64_t virtio_blk_capacity(const struct virtio_blk *blk);

/* Requests are on the thread pool (the loop has completions still to run). Loop thread only. */
bool virtio_blk_busy(const struct virtio_blk *blk);

/*
 * Free the device and close the image (which releases the lock). Call on the loop thread but
 * not from a callback of loop, while guest RAM is still mapped. Requests still in flight are
 * waited for by running the loop (their results are dropped, the queues not touched); after
 * the VM's loop has run until it had nothing left to do there are none.
 */
void virtio_blk_destroy(struct virtio_blk *blk);

#endif
