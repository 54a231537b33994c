/* virtqueue.h: the device side of a virtio 1.x split virtqueue over guest RAM. */
#ifndef KILN_VIRTQUEUE_H
#define KILN_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "memory.h"

#define VIRTQ_MAX_SIZE 32768 /* largest queue size (power of two) */
#define VIRTQ_CHAIN_MAX 256  /* longest chain kiln accepts (devices advertise seg_max to match) */

/* Descriptor flags (virtio 1.x, 2.7.5). */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1 /* avail->flags: driver needs no used-buffer interrupt */
#define VIRTQ_USED_F_NO_NOTIFY 1     /* used->flags: device needs no available-buffer kick */

/* Ring layout: sizes in bytes for a queue of n entries, including the event-index fields. */
#define VIRTQ_DESC_BYTES(n) (16u * (uint32_t)(n))
#define VIRTQ_AVAIL_BYTES(n) (6u + 2u * (uint32_t)(n))
#define VIRTQ_USED_BYTES(n) (6u + 8u * (uint32_t)(n))

/* One descriptor, translated. Readable buffers must not be written by the device. */
struct virtq_buf {
    void *host;
    uint32_t len;
    bool writable;
};

/* One available descriptor chain: readable buffers first, then writable ones. */
struct virtq_chain {
    uint16_t head;                       /* index to hand back in virtq_push */
    uint16_t count;                      /* number of bufs (at least 1) */
    uint32_t readable_len, writable_len; /* totals (overflow-checked) */
    struct virtq_buf buf[VIRTQ_CHAIN_MAX];
};

/*
 * All fields are touched by one thread (the device's event loop). The transport writes size,
 * the three addresses and event_idx while the queue is not ready; virtq_enable checks them and
 * copies what it needs, so later writes to them cannot affect a running queue.
 */
struct virtq {
    const struct guest_mem *mem;
    uint16_t max_size; /* device limit for size; virtq_init sets VIRTQ_MAX_SIZE */
    uint16_t size;     /* set by the driver through the transport; power of 2, <= max_size */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
    bool ready;
    bool broken;         /* the driver broke the rules: nothing is processed until virtq_reset */
    bool notify;         /* the device wants available-buffer notifications (virtq_set_notify) */
    uint16_t last_avail; /* next avail ring entry to take */
    uint16_t used_idx;   /* next used ring entry to fill (published in used->idx) */
    uint16_t signalled_used; /* used_idx when virtq_should_signal last ran */
    /* Resolved by virtq_enable. */
    uint16_t ring_size;
    uint8_t *desc;
    uint8_t *avail;
    uint8_t *used;
};

/* Reset all state; the queue reads guest RAM through mem. */
void virtq_init(struct virtq *q, const struct guest_mem *mem);

/*
 * Validate size (power of two, 1..max_size) and that the descriptor table (16*size), avail ring
 * (6+2*size) and used ring (6+8*size) lie in guest RAM with the alignment the spec requires
 * (16/2/4); resolve host pointers once, start at index 0 and mark the queue ready.
 * Returns 0 or -EINVAL.
 */
int virtq_enable(struct virtq *q);

/*
 * Stop the queue and forget its indices and broken state. The configuration (size, addresses,
 * event_idx, max_size) is kept: on a device reset the transport rewrites it itself.
 */
void virtq_reset(struct virtq *q);

/*
 * Take the next available chain: 1 = *c filled, 0 = none available (or the queue is not
 * ready), <0 = the driver broke the rules: q->broken is set and every later call returns -EIO
 * without touching guest memory until virtq_reset (the caller logs once and sets
 * DEVICE_NEEDS_RESET). Errors: -EFAULT (a buffer or indirect table not entirely in RAM),
 * -ELOOP (chain too long or looping), -EOVERFLOW (a length total overflows 32 bits), -EINVAL
 * (bad index, flags, indirect table length, ordering, or avail idx too far ahead).
 * On error *c holds garbage. Indirect tables may hold up to VIRTQ_CHAIN_MAX entries whatever
 * the queue size; the whole chain never exceeds VIRTQ_CHAIN_MAX buffers.
 */
int virtq_pop(struct virtq *q, struct virtq_chain *c);

/* Give a chain back with the number of bytes the device wrote into its writable buffers. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/*
 * The same for several chains the driver must see at once (a mergeable virtio-net frame):
 * virtq_fill writes used element used_idx + i without publishing it, virtq_flush publishes the
 * next n elements with one used->idx update.
 */
void virtq_fill(struct virtq *q, uint16_t i, uint16_t head, uint32_t written);
void virtq_flush(struct virtq *q, uint16_t n);

/*
 * After one or more pushes: should the device interrupt the driver? Honours
 * VIRTQ_AVAIL_F_NO_INTERRUPT, or with event_idx the used_event rule. Remembers the index it
 * looked at, so each push is considered once.
 */
bool virtq_should_signal(struct virtq *q);

/*
 * Ask the driver for (on) or not (off) notifications of new buffers: VIRTQ_USED_F_NO_NOTIFY,
 * or with event_idx avail_event (kept at last_avail by virtq_pop while on). Devices turn it off
 * while they are busy and use virtq_enable_notify_and_check before they stop polling.
 */
void virtq_set_notify(struct virtq *q, bool on);

/*
 * Turn notifications on, then look again: true if buffers arrived before the driver could see
 * the change (so no kick will come for them and the device must keep polling).
 */
bool virtq_enable_notify_and_check(struct virtq *q);

/*
 * Give back the last n chains taken with virtq_pop and not pushed: the next pops return them
 * again (re-read and re-checked). For a device that took buffers for a packet that then did not
 * fit, like virtio-net's mergeable receive buffers.
 */
void virtq_unpop(struct virtq *q, uint16_t n);

/*
 * The chains available up to avail index seen (q->last_avail when virtq_pop last found none)
 * were not enough: ask the driver for a kick as soon as it makes more available. Returns true
 * if more arrived meanwhile (no kick will come for them: try again now).
 */
bool virtq_wait_for_more(struct virtq *q, uint16_t seen);

/*
 * The buffers of a chain as one byte stream (the spec forbids relying on framing): copy len bytes
 * at offset off out of n buffers into dst (a stable copy: the guest cannot change it
 * afterwards), or from src into them, or describe them as at most n iovecs (returned count).
 * Bytes beyond the buffers are left alone; callers check lengths against the chain's totals.
 */
void virtq_bufs_read(const struct virtq_buf *buf, unsigned n, uint64_t off, void *dst,
                     uint64_t len);
void virtq_bufs_write(const struct virtq_buf *buf, unsigned n, uint64_t off, const void *src,
                      uint64_t len);
unsigned virtq_bufs_iov(const struct virtq_buf *buf, unsigned n, uint64_t off, uint64_t len,
                        struct iovec *iov);

#endif
