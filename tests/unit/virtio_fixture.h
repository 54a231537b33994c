/* virtio_fixture.h: test helper: fakes and driver-side sequences the virtio unit tests share. */
#ifndef KILN_TEST_VIRTIO_FIXTURE_H
#define KILN_TEST_VIRTIO_FIXTURE_H

/*
 * Header-only (static inline) because each unit test links only its own file and fixtures.c.
 *
 * - a logger that records the count of lines and the last message;
 * - a fake transport that counts queue and config signals (struct vfx_rec);
 * - the driver's side of bringing a device up (vfx_drive_up) and resetting it (vfx_reset), and
 *   a queue interrupt raised as the device core does (vfx_queue_irq);
 * - for the transport tests: a fake device (struct vfx_dev) and a fake KVM VM-ioctl layer
 *   (struct vfx_kvm) that remembers the routing table, irqfds and ioeventfds it was given.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "bus.h"
#include "device.h"
#include "platform/irq_routing.h"
#include "virtio/virtio.h"
#include "virtq_builder.h"

/* ---- Loggers. */

/* What the fake transport and the capturing logger recorded. */
struct vfx_rec {
    unsigned nq;                     /* queues the device may signal: [0, nq) */
    unsigned sig[VIRTIO_MAX_QUEUES]; /* queue signals, by queue */
    unsigned csig;                   /* config signals */
    unsigned nlog;                   /* lines logged */
    char msg[512];                   /* the last of them */
};

/* Logger sink (ctx: a struct vfx_rec): counts the lines and keeps the last. */
static inline void vfx_capture(void *ctx, enum kiln_log_level level, const char *msg)
{
    struct vfx_rec *r = ctx;
    (void)level;
    r->nlog++;
    snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

/* ---- Fake transport: counts signals into the struct vfx_rec at transport_priv. */

static inline void vfx_signal_queue(struct virtio_device *vd, unsigned q)
{
    struct vfx_rec *r = vd->transport_priv;
    ck_assert_uint_lt(q, r->nq);
    r->sig[q]++;
}

static inline void vfx_signal_config(struct virtio_device *vd)
{
    ((struct vfx_rec *)vd->transport_priv)->csig++;
}

/* Put vd behind the fake transport, recording into r; queues [0, nq) may signal. */
static inline void vfx_attach_transport(struct virtio_device *vd, struct vfx_rec *r, unsigned nq)
{
    static const struct virtio_transport_ops ops = {vfx_signal_queue, vfx_signal_config};
    r->nq = nq;
    vd->transport = &ops;
    vd->transport_priv = r;
}

/* ---- The driver's side. */

/*
 * Negotiate as a driver would, with rings[i] (laid out by the fake driver) attached as queue i and
 * enabled: ACKNOWLEDGE | DRIVER, features (plus VERSION_1, and EVENT_IDX if asked), FEATURES_OK,
 * DRIVER_OK. Then run the activation the loop would.
 */
static inline void vfx_drive_up(struct virtio_device *vd, struct vqb *const *rings, unsigned n,
                                uint64_t features, bool event_idx)
{
    pthread_mutex_lock(&vd->lock);
    for (unsigned i = 0; i < n; i++)
        vqb_attach(rings[i], &vd->queues[i].vq);
    for (unsigned i = 0; i < n; i++)
        vd->queues[i].enabled = true;
    ck_assert(!virtio_write_status(vd, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER));
    vd->driver_features = features | VIRTIO_F_VERSION_1 | (event_idx ? VIRTIO_F_EVENT_IDX : 0);
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    ck_assert(!virtio_write_status(vd, st));
    ck_assert(virtio_read_status(vd) & VIRTIO_STATUS_FEATURES_OK);
    ck_assert(virtio_write_status(vd, st | VIRTIO_STATUS_DRIVER_OK));
    pthread_mutex_unlock(&vd->lock);
    virtio_loop_work(vd);
    ck_assert(vd->active);
}

/* The driver writes status 0 (under the device lock, as a transport does); the loop resets. */
static inline void vfx_reset(struct virtio_device *vd)
{
    pthread_mutex_lock(&vd->lock);
    ck_assert(virtio_write_status(vd, 0));
    pthread_mutex_unlock(&vd->lock);
    virtio_loop_work(vd);
}

/* Raise the queue interrupt the way virtio_queue_signal does (ISR bit, then the transport). */
static inline void vfx_queue_irq(struct virtio_device *vd, unsigned q)
{
    pthread_mutex_lock(&vd->lock);
    vd->isr |= VIRTIO_ISR_QUEUE;
    pthread_mutex_unlock(&vd->lock);
    vd->transport->signal_queue(vd, q);
}

/* Turn the loop rounds times without blocking. */
static inline void vfx_spin(uv_loop_t *loop, int rounds)
{
    for (int i = 0; i < rounds; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- eventfds as KVM would use them. */

/* Interrupts injected through fd since the last look. */
static inline uint64_t vfx_fired(int fd)
{
    uint64_t n = 0;
    if (read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return 0;
    return n;
}

/* What KVM does to an ioeventfd (or a resamplefd) when the guest hits it. */
static inline void vfx_poke(int fd)
{
    uint64_t one = 1;
    ck_assert_int_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* ---- Fake device: two queues, 8 bytes of config space, counts what the transport asks of it. */

struct vfx_dev {
    struct virtio_device vd;
    uint8_t config[8];
    unsigned activates, resets, notifies[2], config_reads, config_writes;
    int reset_ret;
    char order[16]; /* 'a' activate, 'n' notify */
    unsigned norder;
};

static inline void vfx_dev_config_read(struct device *dev, unsigned region, uint64_t off,
                                       uint8_t *data, uint32_t len)
{
    struct vfx_dev *d = virtio_device_of(dev)->priv;
    (void)region;
    ck_assert_uint_le(off + len, sizeof(d->config));
    memcpy(data, d->config + off, len);
    d->config_reads++;
}

static inline void vfx_dev_config_write(struct device *dev, unsigned region, uint64_t off,
                                        const uint8_t *data, uint32_t len)
{
    struct vfx_dev *d = virtio_device_of(dev)->priv;
    (void)region;
    ck_assert_uint_le(off + len, sizeof(d->config));
    memcpy(d->config + off, data, len);
    d->config_writes++;
}

static inline int vfx_dev_activate(struct virtio_device *vd)
{
    struct vfx_dev *d = vd->priv;
    d->activates++;
    if (d->norder < sizeof(d->order))
        d->order[d->norder++] = 'a';
    return 0;
}

static inline int vfx_dev_reset(struct device *dev)
{
    struct vfx_dev *d = virtio_device_of(dev)->priv;
    d->resets++;
    return d->reset_ret;
}

static inline void vfx_dev_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct vfx_dev *d = vd->priv;
    ck_assert_uint_lt(q, 2);
    d->notifies[q]++;
    if (d->norder < sizeof(d->order))
        d->order[d->norder++] = 'n';
}

/* Initializer for the fake device's struct virtio_device_ops. */
#define VFX_DEV_OPS                                                                                \
    {                                                                                              \
        .dev = {.read = vfx_dev_config_read,                                                       \
                .write = vfx_dev_config_write,                                                     \
                .reset = vfx_dev_reset,                                                            \
                .save = device_save_none,                                                          \
                .restore = device_restore_none},                                                   \
        .name = "fake-blk", .device_id = VIRTIO_ID_BLOCK, .config_len = 8,                         \
        .activate = vfx_dev_activate, .queue_notify = vfx_dev_queue_notify,                        \
    }

/* The fake device with ops, 2 queues of up to 256 and config bytes 1..8. */
static inline void vfx_dev_init(struct vfx_dev *d, const struct virtio_device_ops *ops,
                                uint64_t features, const struct guest_mem *gm,
                                const struct kiln_log *log)
{
    virtio_device_init(&d->vd, ops, d, features, 2, 256, gm, log);
    memcpy(d->config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
}

/* ---- Fake KVM: remembers the routing table, irqfds and ioeventfds it was given. */

#define VFX_MAX_REC 64

struct vfx_irqfd {
    int fd, resample_fd;
    unsigned gsi, flags;
};

struct vfx_ioev {
    uint64_t addr, datamatch;
    uint32_t len, flags;
    int fd;
    bool active;
};

struct vfx_kvm {
    pthread_mutex_t lock; /* vCPU threads and the loop may all issue VM ioctls */
    unsigned routing_calls;
    unsigned nr;
    struct kvm_irq_routing_entry table[VFX_MAX_REC];
    struct vfx_irqfd irqfd[VFX_MAX_REC];
    unsigned nirqfd;
    struct vfx_ioev ioev[VFX_MAX_REC];
    unsigned nioev;
    int fail_irqfd, fail_ioeventfd;
};

/* KVM_IOEVENTFD: assign into the first free slot, or deassign; a duplicate is refused. */
static inline int vfx_kvm_ioeventfd(struct vfx_kvm *k, const struct kvm_ioeventfd *e)
{
    if (k->fail_ioeventfd)
        return k->fail_ioeventfd;
    for (unsigned i = 0; i < k->nioev; i++) {
        struct vfx_ioev *v = &k->ioev[i];
        bool same = v->active && v->addr == e->addr && v->datamatch == e->datamatch &&
                    v->fd == e->fd && v->len == e->len;
        if (same && (e->flags & KVM_IOEVENTFD_FLAG_DEASSIGN)) {
            v->active = false;
            return 0;
        }
        if (same)
            return -EEXIST;
    }
    if (e->flags & KVM_IOEVENTFD_FLAG_DEASSIGN)
        return -ENOENT;
    unsigned i = 0;
    while (i < k->nioev && k->ioev[i].active)
        i++;
    if (i == VFX_MAX_REC)
        return -ENOSPC;
    k->ioev[i] = (struct vfx_ioev){e->addr, e->datamatch, e->len, e->flags, e->fd, true};
    k->nioev += i == k->nioev;
    return 0;
}

static inline int vfx_kvm_ioctl_locked(struct vfx_kvm *k, unsigned long req, void *arg)
{
    if (req == KVM_SET_GSI_ROUTING) {
        const struct kvm_irq_routing *r = arg;
        ck_assert_uint_le(r->nr, VFX_MAX_REC);
        k->routing_calls++;
        k->nr = r->nr;
        memcpy(k->table, r->entries, r->nr * sizeof(r->entries[0]));
        return 0;
    }
    if (req == KVM_IRQFD) {
        const struct kvm_irqfd *f = arg;
        if (k->fail_irqfd)
            return k->fail_irqfd;
        ck_assert_uint_lt(k->nirqfd, VFX_MAX_REC);
        k->irqfd[k->nirqfd++] =
            (struct vfx_irqfd){(int)f->fd, (int)f->resamplefd, f->gsi, f->flags};
        return 0;
    }
    if (req == KVM_IOEVENTFD)
        return vfx_kvm_ioeventfd(k, arg);
    return -ENOTTY;
}

/* struct vm_ioctl's fn, ctx a struct vfx_kvm. */
static inline int vfx_kvm_ioctl(void *ctx, unsigned long req, void *arg)
{
    struct vfx_kvm *k = ctx;
    pthread_mutex_lock(&k->lock);
    int ret = vfx_kvm_ioctl_locked(k, req, arg);
    pthread_mutex_unlock(&k->lock);
    return ret;
}

/* A fresh fake KVM (k zeroed by the caller) and the struct vm_ioctl that reaches it. */
static inline struct vm_ioctl vfx_kvm_init(struct vfx_kvm *k, int fail_ioeventfd)
{
    pthread_mutex_init(&k->lock, NULL);
    k->fail_ioeventfd = fail_ioeventfd;
    return (struct vm_ioctl){vfx_kvm_ioctl, k};
}

/* Active ioeventfds at addr (0: anywhere). */
static inline unsigned vfx_active_ioevents(const struct vfx_kvm *k, uint64_t addr)
{
    unsigned n = 0;
    for (unsigned i = 0; i < k->nioev; i++)
        n += k->ioev[i].active && (!addr || k->ioev[i].addr == addr);
    return n;
}

/* The eventfd KVM would signal for a write of q at the notify address. */
static inline int vfx_ioevent_fd(const struct vfx_kvm *k, unsigned q)
{
    for (unsigned i = 0; i < k->nioev; i++)
        if (k->ioev[i].active && k->ioev[i].datamatch == q)
            return k->ioev[i].fd;
    return -1;
}

#endif
