/* virtio_loop.h: what every virtio transport runs on the event loop: status work and kicks. */
#ifndef KILN_VIRTIO_LOOP_H
#define KILN_VIRTIO_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "platform/irq_routing.h"
#include "virtio/virtio.h"

struct virtio_loop;

/* What a hostile or buggy driver can do wrong on a transport: each kind is logged once. */
enum virtio_log {
    VIRTIO_LOG_ACCESS,      /* bad size, alignment or offset */
    VIRTIO_LOG_READ_ONLY,   /* write to a read-only register, read of a write-only one */
    VIRTIO_LOG_QUEUE_SEL,   /* queue register with the queue select beyond the queues */
    VIRTIO_LOG_QUEUE_LATE,  /* queue configuration after enabling it or DRIVER_OK */
    VIRTIO_LOG_QUEUE_VALUE, /* bad queue size or enable value */
    VIRTIO_LOG_FEATURES,    /* driver features after FEATURES_OK */
    VIRTIO_LOG_NOTIFY,      /* kick for a queue that does not exist */
    VIRTIO_LOG_PCI_CFG,     /* bad VIRTIO_PCI_CAP_PCI_CFG window */
    VIRTIO_LOG_IOEVENTFD,   /* KVM_IOEVENTFD failed: kicks take the MMIO exit path */
    VIRTIO_LOG_IRQ,         /* interrupt delivery failed */
    VIRTIO_LOG_KINDS
};

/* One queue's doorbell: an eventfd that KVM (an ioeventfd) or the transport's MMIO exit signals. */
struct virtio_kick {
    struct virtio_loop *l;
    unsigned q;
    int fd;
    bool ioeventfd; /* registered with KVM: the transport's business */
    uv_poll_t poll;
    bool poll_open;
};

struct virtio_loop {
    struct virtio_device *vd;
    const char *enable_name; /* what enables a queue on this transport, for messages */
    bool started;            /* guarded by vd->lock */
    struct virtio_kick kicks[VIRTIO_MAX_QUEUES];
    uv_async_t async; /* vCPU -> loop: virtio_loop_work (activation, reset) */
    bool async_open;
    atomic_bool early_kick_logged;
    /* A level interrupt line's resampler (virtio_loop_set_line), polled while started. */
    const struct irq_level *line;
    /*
     * The line as KVM's resampler holds it (vd->lock): raised by our irqfd write, lowered at the
     * guest's EOI (the resamplefd says so). Writing only while it is low keeps a late duplicate
     * write from raising the line again after the guest has already served it.
     */
    bool line_high;
    void (*line_update)(void *ctx);
    void *line_ctx;
    uv_poll_t resample;
    bool resample_open;
    atomic_bool logged[VIRTIO_LOG_KINDS];
};

/*
 * Create the kick eventfds for vd's queues. Returns 0 or -errno; virtio_loop_free undoes it,
 * and is also safe on a zero-initialised loop that init never reached.
 */
int virtio_loop_init(struct virtio_loop *l, struct virtio_device *vd, const char *enable_name);
void virtio_loop_free(struct virtio_loop *l);

/*
 * The transport's level interrupt line: while started, when KVM reports the guest's EOI on its
 * resamplefd, the line is marked low and update(ctx) runs with vd->lock held (the transport
 * raises it again if an interrupt is still pending).
 */
void virtio_loop_set_line(struct virtio_loop *l, const struct irq_level *line,
                          void (*update)(void *ctx), void *ctx);
/* Raise the line unless it is still high (vd->lock held); a failure is logged once. */
void virtio_loop_raise_line(struct virtio_loop *l);

/* Log a driver mistake of this kind once per transport, as "NAME: MESSAGE (logged once)". */
void virtio_loop_warn(struct virtio_loop *l, enum virtio_log kind, const char *fmt, ...)
    KILN_PRINTF(3, 4);

/*
 * A guest access to the device-specific configuration space at off: the device's read or write
 * under vd->lock, or, unless size_ok (the transport's rule) and inside config_len, refused:
 * logged once, a read gives zeros.
 */
void virtio_loop_config_access(struct virtio_loop *l, uint64_t off, uint8_t *data, uint32_t len,
                               bool is_write, bool size_ok);

/*
 * The queue a write of queue register reg with queue select `select` configures, or NULL
 * (logged once per kind) when the select names no queue or that queue is fixed already: enabled,
 * or the device started or resetting. vd->lock held.
 */
struct virtio_queue *virtio_loop_queue_to_set(struct virtio_loop *l, unsigned select, unsigned reg);

/*
 * Bind every queue's kick eventfd to a guest write of its index (len bytes) at addr with
 * KVM_IOEVENTFD (kicks[q].ioeventfd says which took); a queue KVM refuses is logged once and
 * kicks through virtio_loop_kick on the MMIO exit path. unbind drops the bindings made at addr.
 */
void virtio_loop_bind_kicks(struct virtio_loop *l, const struct vm_ioctl *vmi, uint64_t addr,
                            uint32_t len);
void virtio_loop_unbind_kicks(struct virtio_loop *l, const struct vm_ioctl *vmi, uint64_t addr,
                              uint32_t len);

/*
 * Start/stop servicing kicks, status work and the line's resampler on loop (the loop thread),
 * together with the device's own back end (its start hook runs first, its stop hook last).
 * Start also runs the line's update, so an interrupt a restored device had pending is raised.
 */
int virtio_loop_start(struct virtio_loop *l, uv_loop_t *loop);
void virtio_loop_stop(struct virtio_loop *l);

/* Ask the loop to run virtio_loop_work (vd->lock held, after virtio_write_status said so). */
void virtio_loop_request_work(struct virtio_loop *l);

/* A kick that arrived as an MMIO exit instead of an ioeventfd: signal queue q's eventfd. */
void virtio_loop_kick(struct virtio_loop *l, unsigned q);

/* uv_poll_init + start for reading fd; *open tells the caller to close the handle later. */
int virtio_loop_poll(uv_loop_t *loop, uv_poll_t *p, int fd, uv_poll_cb cb, void *data, bool *open);

#endif
