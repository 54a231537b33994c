/* virtio_loop.h: what every virtio transport runs on the event loop: status work and kicks. */
#ifndef KILN_VIRTIO_LOOP_H
#define KILN_VIRTIO_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

#include "platform/irq_routing.h"
#include "virtio/virtio.h"

struct virtio_loop;

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
    void (*line_lowered)(void *ctx);
    void *line_ctx;
    uv_poll_t resample;
    bool resample_open;
};

/*
 * Create the kick eventfds for vd's queues. Returns 0 or -errno; virtio_loop_free undoes it,
 * and is also safe on a zero-initialised loop that init never reached.
 */
int virtio_loop_init(struct virtio_loop *l, struct virtio_device *vd, const char *enable_name);
void virtio_loop_free(struct virtio_loop *l);

/*
 * The transport's level interrupt line: while started, when KVM reports the guest's EOI on its
 * resamplefd, lowered(ctx) runs with vd->lock held (the transport marks the line low and
 * re-asserts it if an interrupt is still pending).
 */
void virtio_loop_set_line(struct virtio_loop *l, const struct irq_level *line,
                          void (*lowered)(void *ctx), void *ctx);

/*
 * Start/stop servicing kicks, status work and the line's resampler on loop (the loop thread),
 * together with the device's own back end (its start hook runs first, its stop hook last).
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
