/* virtio.c: device status, feature negotiation, activation, reset and interrupts for devices. */
#include "virtio/virtio.h"

#include <errno.h>
#include <string.h>
#include <pthread.h>

#include "state.h"

static void queues_reset(struct virtio_device *vd)
{
    for (unsigned i = 0; i < vd->num_queues; i++) {
        struct virtio_queue *q = &vd->queues[i];
        virtq_init(&q->vq, vd->mem);
        q->vq.max_size = vd->queue_max_size;
        q->vq.size = vd->queue_max_size; /* the spec's reset value: the maximum */
        q->vector = VIRTIO_NO_VECTOR;
        q->enabled = false;
    }
}

void virtio_device_init(struct virtio_device *vd, const struct virtio_device_ops *ops, void *priv,
                        uint64_t features, unsigned num_queues, uint16_t queue_max_size,
                        const struct guest_mem *mem, const struct kiln_log *log)
{
    memset(vd, 0, sizeof(*vd));
    vd->dev = (struct device){.name = ops->name, .ops = &ops->dev};
    vd->ops = ops;
    vd->priv = priv;
    vd->mem = mem;
    vd->log = log;
    pthread_mutex_init(&vd->lock, NULL);
    vd->device_features = features | VIRTIO_F_VERSION_1;
    vd->num_queues = num_queues < VIRTIO_MAX_QUEUES ? num_queues : VIRTIO_MAX_QUEUES;
    vd->queue_max_size = queue_max_size;
    vd->config_vector = VIRTIO_NO_VECTOR;
    queues_reset(vd);
}

/* Back to the state after init (device lock held). */
static void reset_locked(struct virtio_device *vd)
{
    vd->status = 0;
    vd->driver_features = 0;
    vd->isr = 0;
    vd->active = false;
    vd->reset_pending = false;
    vd->error_logged = false;
    vd->config_vector = VIRTIO_NO_VECTOR;
    queues_reset(vd);
}

void virtio_device_destroy(struct virtio_device *vd)
{
    pthread_mutex_destroy(&vd->lock);
}

void virtio_device_free(struct virtio_device *vd)
{
    if (vd && vd->dev.ops->destroy)
        vd->dev.ops->destroy(&vd->dev);
}

void virtio_device_stats(const struct virtio_device *vd, struct kiln_stats *st)
{
    if (vd->dev.ops->stats)
        vd->dev.ops->stats(&vd->dev, st);
}

/* The driver may only accept what was offered, and kiln only speaks virtio 1.x. */
static bool features_acceptable(const struct virtio_device *vd)
{
    return (vd->driver_features & ~vd->device_features) == 0 &&
           (vd->driver_features & VIRTIO_F_VERSION_1);
}

bool virtio_write_status(struct virtio_device *vd, uint8_t status)
{
    if (status == 0) {
        /*
         * Without DRIVER_OK since the last reset the device never started: reset it right here.
         * Drivers reset first thing at probe and poll until status reads 0; answering at once
         * also keeps their next writes from landing while a reset is still pending.
         */
        if (!vd->reset_pending && !vd->active && !(vd->status & VIRTIO_STATUS_DRIVER_OK)) {
            reset_locked(vd);
            return false;
        }
        /* Reading status returns the old value until the loop has quiesced the device. */
        vd->reset_pending = true;
        return true;
    }
    if (vd->reset_pending)
        return false; /* the driver must wait for the reset to finish first */
    uint8_t added = status & ~vd->status;
    if ((added & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(vd))
        status &= ~VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back and gives up */
    /* Bits only ever get added between resets; NEEDS_RESET is the device's to set. */
    vd->status = (vd->status | status) | (vd->status & VIRTIO_STATUS_NEEDS_RESET);
    bool ready = (vd->status & VIRTIO_STATUS_FEATURES_OK) && (added & VIRTIO_STATUS_DRIVER_OK);
    if ((added & VIRTIO_STATUS_DRIVER_OK) && !(vd->status & VIRTIO_STATUS_FEATURES_OK))
        klog(vd->log, KILN_LOG_WARN, "%s: driver set DRIVER_OK without FEATURES_OK", vd->ops->name);
    return ready;
}

uint32_t virtio_feature_half(uint64_t features, uint32_t select)
{
    return select == 0 ? (uint32_t)features : select == 1 ? (uint32_t)(features >> 32) : 0;
}

bool virtio_set_driver_features_half(struct virtio_device *vd, uint32_t select, uint32_t v)
{
    if ((vd->status & VIRTIO_STATUS_FEATURES_OK) || vd->reset_pending || select > 1)
        return false;
    unsigned shift = 32 * select;
    vd->driver_features =
        (vd->driver_features & ~(0xffffffffULL << shift)) | ((uint64_t)v << shift);
    return true;
}

struct virtio_queue *virtio_queue_at(struct virtio_device *vd, unsigned index)
{
    return index < vd->num_queues ? &vd->queues[index] : NULL;
}

bool virtio_queue_configurable(const struct virtio_device *vd, const struct virtio_queue *q)
{
    return !(vd->status & VIRTIO_STATUS_DRIVER_OK) && !vd->reset_pending && !q->enabled;
}

bool virtio_queue_size_ok(const struct virtio_queue *q, uint64_t size)
{
    return size && size <= q->vq.max_size && !(size & (size - 1));
}

uint8_t virtio_read_status(const struct virtio_device *vd)
{
    return vd->status;
}

void virtio_config_read_bytes(struct device *d, unsigned region, uint64_t offset, uint8_t *data,
                              uint32_t len)
{
    const struct virtio_device *vd = virtio_device_of(d);
    uint32_t cfg_len = vd->ops->config_len;
    (void)region;
    memset(data, 0, len);
    if (!vd->config || offset >= cfg_len)
        return;
    memcpy(data, vd->config + offset, cfg_len - offset < len ? cfg_len - offset : len);
}

void virtio_config_write_ignored(struct device *d, unsigned region, uint64_t offset,
                                 const uint8_t *data, uint32_t len)
{
    (void)d;
    (void)region;
    (void)offset;
    (void)data;
    (void)len;
}

bool virtio_has_feature(const struct virtio_device *vd, uint64_t f)
{
    return (vd->driver_features & f) == f;
}

void virtio_reset_done(struct virtio_device *vd)
{
    pthread_mutex_lock(&vd->lock);
    reset_locked(vd);
    pthread_mutex_unlock(&vd->lock);
}

/* Validate and start every queue the driver enabled, then let the device begin. */
static void activate(struct virtio_device *vd)
{
    pthread_mutex_lock(&vd->lock);
    bool event_idx = virtio_has_feature(vd, VIRTIO_F_EVENT_IDX);
    int err = 0;
    unsigned bad = 0;
    for (unsigned i = 0; i < vd->num_queues && !err; i++) {
        struct virtio_queue *q = &vd->queues[i];
        if (!q->enabled)
            continue;
        q->vq.event_idx = event_idx;
        err = virtq_enable(&q->vq);
        bad = i;
        if (!err && q->resume) { /* a restored queue goes on from its snapshot's positions */
            q->vq.last_avail = q->resume_avail;
            q->vq.used_idx = q->resume_used;
            q->vq.signalled_used = q->resume_signalled;
            q->resume = false;
        }
    }
    pthread_mutex_unlock(&vd->lock);
    if (!err)
        err = vd->ops->activate(vd);
    if (err) {
        virtio_device_error(vd, bad, err);
        return;
    }
    pthread_mutex_lock(&vd->lock);
    vd->active = true;
    pthread_mutex_unlock(&vd->lock);
}

void virtio_loop_work(struct virtio_device *vd)
{
    pthread_mutex_lock(&vd->lock);
    bool reset = vd->reset_pending;
    bool start = !reset && !vd->active && (vd->status & VIRTIO_STATUS_DRIVER_OK) &&
                 (vd->status & VIRTIO_STATUS_FEATURES_OK) &&
                 !(vd->status & VIRTIO_STATUS_NEEDS_RESET);
    pthread_mutex_unlock(&vd->lock);
    if (reset) {
        if (!vd->dev.ops->reset || vd->dev.ops->reset(&vd->dev) == 0)
            virtio_reset_done(vd);
    } else if (start) {
        activate(vd);
    }
}

static void save_queue(const struct virtio_queue *q, struct device_state *st)
{
    const struct virtq *vq = &q->vq;
    state_put_u32(st, (uint32_t)q->vector << 16 | vq->size);
    state_put_u32(st, (uint32_t)q->enabled | (uint32_t)vq->ready << 1);
    state_put_u64(st, vq->desc_gpa);
    state_put_u64(st, vq->avail_gpa);
    state_put_u64(st, vq->used_gpa);
    state_put_u32(st, (uint32_t)vq->last_avail << 16 | vq->used_idx);
    state_put_u32(st, vq->signalled_used);
}

static int restore_queue(struct virtio_queue *q, struct device_state *st)
{
    uint32_t vs = state_get_u32(st), flags = state_get_u32(st);
    q->vq.desc_gpa = state_get_u64(st);
    q->vq.avail_gpa = state_get_u64(st);
    q->vq.used_gpa = state_get_u64(st);
    uint32_t pos = state_get_u32(st), sig = state_get_u32(st);
    uint16_t size = (uint16_t)vs;
    /* As the registers allow: a size the queue may take, and running only if enabled. */
    if (st->err || flags > 3 || flags == 2 || !virtio_queue_size_ok(q, size))
        return -EINVAL;
    q->vector = (uint16_t)(vs >> 16);
    q->vq.size = (uint16_t)vs;
    q->enabled = flags & 1;
    /* Positions matter only for a queue that was running; activation checks the rings again. */
    q->resume = flags & 2;
    q->resume_avail = (uint16_t)(pos >> 16);
    q->resume_used = (uint16_t)pos;
    q->resume_signalled = (uint16_t)sig;
    return 0;
}

int virtio_save(const struct virtio_device *vd, struct device_state *st)
{
    struct virtio_device *v = (struct virtio_device *)vd; /* the lock, not the state */
    pthread_mutex_lock(&v->lock);
    bool quiet = !vd->reset_pending;
    state_put_u64(st, vd->device_features);
    state_put_u64(st, vd->driver_features);
    state_put_u32(st, (uint32_t)vd->status | (uint32_t)vd->isr << 8 |
                          (uint32_t)vd->config_generation << 16 | (uint32_t)vd->active << 24);
    state_put_u32(st, (uint32_t)vd->config_vector << 16 | vd->num_queues);
    for (unsigned i = 0; i < vd->num_queues; i++)
        save_queue(&vd->queues[i], st);
    pthread_mutex_unlock(&v->lock);
    if (!quiet)
        return -EBUSY; /* a reset is still draining: ask again once it is done */
    if (!vd->ops->dev.save)
        return -ENOTSUP;
    int ret = vd->ops->dev.save(&vd->dev, st);
    return ret < 0 ? ret : st->err ? -st->err : 0;
}

int virtio_restore(struct virtio_device *vd, struct device_state *st)
{
    uint64_t offered = state_get_u64(st), accepted = state_get_u64(st);
    uint32_t s = state_get_u32(st), q = state_get_u32(st);
    if (st->err || offered != vd->device_features || (accepted & ~offered) ||
        (q & 0xffff) != vd->num_queues)
        return -EINVAL; /* another device, or other features offered */
    vd->driver_features = accepted;
    vd->status = (uint8_t)s;
    vd->isr = (uint8_t)(s >> 8);
    vd->config_generation = (uint8_t)(s >> 16);
    vd->active = false; /* activated anew when the transport starts (virtio_loop_work) */
    vd->config_vector = (uint16_t)(q >> 16);
    for (unsigned i = 0; i < vd->num_queues; i++)
        if (restore_queue(&vd->queues[i], st) < 0)
            return -EINVAL;
    if (!vd->ops->dev.restore)
        return -ENOTSUP;
    return vd->ops->dev.restore(&vd->dev, st);
}

void virtio_queue_signal(struct virtio_device *vd, unsigned q)
{
    if (q >= vd->num_queues || !virtq_should_signal(&vd->queues[q].vq))
        return;
    pthread_mutex_lock(&vd->lock);
    vd->isr |= VIRTIO_ISR_QUEUE;
    pthread_mutex_unlock(&vd->lock);
    vd->transport->signal_queue(vd, q);
}

void virtio_config_changed(struct virtio_device *vd)
{
    pthread_mutex_lock(&vd->lock);
    vd->config_generation++;
    vd->isr |= VIRTIO_ISR_CONFIG;
    pthread_mutex_unlock(&vd->lock);
    vd->transport->signal_config(vd);
}

void virtio_device_error(struct virtio_device *vd, unsigned q, int err)
{
    pthread_mutex_lock(&vd->lock);
    bool first = !vd->error_logged;
    vd->error_logged = true;
    vd->status |= VIRTIO_STATUS_NEEDS_RESET;
    vd->isr |= VIRTIO_ISR_CONFIG;
    pthread_mutex_unlock(&vd->lock);
    /* Once per device until the driver resets it: a hostile guest cannot flood the log. */
    if (first)
        klog(vd->log, KILN_LOG_WARN, "%s: queue %u: driver error (%s); device needs reset",
             vd->ops->name, q, strerror(err < 0 ? -err : err));
    vd->transport->signal_config(vd);
}
