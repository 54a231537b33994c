/* virtio.h: the virtio device core between transports (PCI, MMIO) and devices (blk, net). */
#ifndef KILN_VIRTIO_H
#define KILN_VIRTIO_H

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtqueue.h"

/* Device IDs (virtio 1.x, "Device Types"). */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2

/* Transport-independent feature bits. */
#define VIRTIO_F_INDIRECT_DESC (1ULL << 28)
#define VIRTIO_F_EVENT_IDX (1ULL << 29)
#define VIRTIO_F_VERSION_1 (1ULL << 32)

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* ISR status bits (PCI ISR capability, MMIO InterruptStatus). */
#define VIRTIO_ISR_QUEUE 0x01
#define VIRTIO_ISR_CONFIG 0x02

#define VIRTIO_MAX_QUEUES 32
#define VIRTIO_NO_VECTOR 0xffff

struct virtio_device;

/*
 * What a device implements. dev is the shape every device has (device.h), used here as:
 *   - read/write: the device-specific configuration space, region 0, offset + len <= config_len
 *     (little-endian); vCPU threads, with the device lock held;
 *   - reset: the driver reset the device (loop thread): stop taking requests and forget per-run
 *     state. Return 0 if the device is quiet now, 1 if requests are still in flight on the back
 *     end: the device then calls virtio_reset_done() when the last one has finished (it must not
 *     touch the queues or guest memory for them any more). Not called for a reset of a device
 *     the driver has not set DRIVER_OK on since the last reset (nothing can have started): the
 *     core resets that one at once, so the driver's wait for status 0 costs nothing;
 *   - start, stop, destroy, stats: the device's back end, driven by its transport's own hooks
 *     (the transport owns the device once attached).
 * activate and queue_notify run on the VM's event loop thread, which is also the only thread
 * that touches the virtqueues once the device is active.
 */
struct virtio_device_ops {
    struct device_ops dev;
    const char *name; /* for log messages, e.g. "virtio-blk" */
    uint32_t device_id;
    /* Bytes of device-specific configuration space the transport exposes (0: none). */
    uint32_t config_len;
    /* DRIVER_OK was set: the queues the driver enabled are ready. Return 0 or -errno. */
    int (*activate)(struct virtio_device *vd);
    /* The driver kicked queue index q (an ioeventfd fired). */
    void (*queue_notify)(struct virtio_device *vd, unsigned q);
};

/* Per-queue state the driver configures through the transport. */
struct virtio_queue {
    struct virtq vq;
    uint16_t vector; /* MSI-X vector, VIRTIO_NO_VECTOR if none */
    bool enabled;    /* the driver wrote queue_enable = 1 */
    /* Restored from a snapshot: the ring positions activation resumes at (not from 0). */
    bool resume;
    uint16_t resume_avail, resume_used, resume_signalled;
};

/* How a transport delivers an interrupt for a queue (vector) or a config change. */
struct virtio_transport_ops {
    void (*signal_queue)(struct virtio_device *vd, unsigned q);
    void (*signal_config)(struct virtio_device *vd);
};

struct virtio_device {
    struct device dev; /* name and ops->dev */
    const struct virtio_device_ops *ops;
    void *priv; /* the device's own state */
    const struct virtio_transport_ops *transport;
    void *transport_priv;
    const struct guest_mem *mem;
    const struct kiln_log *log;
    const uint8_t *config; /* the device's config bytes, for virtio_config_read_bytes */

    pthread_mutex_t lock;     /* guards everything below against vCPU threads */
    uint64_t device_features; /* offered; the core adds VERSION_1 */
    uint64_t driver_features; /* accepted by the driver */
    uint8_t status;
    uint8_t isr;
    uint8_t config_generation;
    bool active;        /* activate() succeeded and no reset since */
    bool reset_pending; /* reset requested, device still draining: status reads stay non-zero */
    bool error_logged;  /* a hostile-driver message was already logged for this device */
    unsigned num_queues;
    uint16_t queue_max_size;
    uint16_t config_vector;
    struct virtio_queue queues[VIRTIO_MAX_QUEUES];
};

/* Set up a device: features offered (VERSION_1 is added), queue count and their maximum size. */
void virtio_device_init(struct virtio_device *vd, const struct virtio_device_ops *ops, void *priv,
                        uint64_t features, unsigned num_queues, uint16_t queue_max_size,
                        const struct guest_mem *mem, const struct kiln_log *log);
void virtio_device_destroy(struct virtio_device *vd);
/* The device's own destroy hook (it frees vd and what holds it), if it has one. */
void virtio_device_free(struct virtio_device *vd);
/* Add the device's counters (its stats hook) to st. */
void virtio_device_stats(const struct virtio_device *vd, struct kiln_stats *st);

/*
 * Transport side (device lock held). virtio_write_status applies the driver's status write:
 * 0 starts a reset (done at once if the device never got DRIVER_OK since the last reset, else
 * on the loop, status reads staying non-zero until then); FEATURES_OK is refused (left clear)
 * unless the accepted features are a subset of the offered ones and include VERSION_1; DRIVER_OK
 * asks the loop to activate. Returns true if the loop thread must run virtio_loop_work()
 * (activation or reset).
 */
bool virtio_write_status(struct virtio_device *vd, uint8_t status);
uint8_t virtio_read_status(const struct virtio_device *vd);

/* Register helpers the transports share (device lock held). */
/* Half `select` (0: bits 0-31, 1: bits 32-63) of a feature set; 0 for any other select. */
uint32_t virtio_feature_half(uint64_t features, uint32_t select);
/* Set half `select` of the driver's features. False (nothing changed) once FEATURES_OK is set,
 * while a reset is pending, or for a select above 1. */
bool virtio_set_driver_features_half(struct virtio_device *vd, uint32_t select, uint32_t v);
/* Queue index, or NULL for one the device does not have. */
struct virtio_queue *virtio_queue_at(struct virtio_device *vd, unsigned index);
/* The driver may still configure q: not enabled, device neither started nor resetting. */
bool virtio_queue_configurable(const struct virtio_device *vd, const struct virtio_queue *q);
/* A queue size q may take: a power of two (split rings), 1..max_size. */
bool virtio_queue_size_ok(const struct virtio_queue *q, uint64_t size);

/* Loop side: carry out a pending activation or reset. */
void virtio_loop_work(struct virtio_device *vd);

/* Device side (loop thread). */
/* After pushing used buffers on queue q: interrupt the driver if the ring asks for it. */
void virtio_queue_signal(struct virtio_device *vd, unsigned q);
/* The device configuration changed (e.g. capacity, link status). */
void virtio_config_changed(struct virtio_device *vd);
/* The driver broke the rules on queue q: log once, set NEEDS_RESET, tell the driver. */
void virtio_device_error(struct virtio_device *vd, unsigned q, int err);
/* A reset that the device finished asynchronously is complete. */
void virtio_reset_done(struct virtio_device *vd);
/* The configuration read (dev.read) of a device whose config space is the immutable bytes
 * vd->config[0, ops->config_len). */
void virtio_config_read_bytes(struct device *d, unsigned region, uint64_t offset, uint8_t *data,
                              uint32_t len);
/* The configuration write (dev.write) of a device whose every config field is read-only. */
void virtio_config_write_ignored(struct device *d, unsigned region, uint64_t offset,
                                 const uint8_t *data, uint32_t len);
/* The virtio device whose dev is d. */
static inline struct virtio_device *virtio_device_of(struct device *d)
{
    return (struct virtio_device *)((char *)d - offsetof(struct virtio_device, dev));
}

/*
 * Snapshot (loop thread, device quiet): the core's state (features, status, ISR, queues and
 * their ring positions) then the device's own (its dev.save; -ENOTSUP without one). restore
 * puts it back into a device made from the same configuration, before the loop runs: a device
 * that was running is activated again when its transport starts, its queues resuming where
 * they were.
 */
struct device_state;
int virtio_save(const struct virtio_device *vd, struct device_state *st);
int virtio_restore(struct virtio_device *vd, struct device_state *st);

/* True if feature bit f was negotiated. */
bool virtio_has_feature(const struct virtio_device *vd, uint64_t f);

#endif
