/* virtio_loop.c: status work and queue kicks on the event loop, shared by PCI and MMIO. */
#include "virtio/virtio_loop.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int virtio_loop_init(struct virtio_loop *l, struct virtio_device *vd, const char *enable_name)
{
    l->vd = vd;
    l->enable_name = enable_name;
    atomic_init(&l->early_kick_logged, false);
    for (unsigned i = 0; i < VIRTIO_LOG_KINDS; i++)
        atomic_init(&l->logged[i], false);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
        l->kicks[q] = (struct virtio_kick){.l = l, .q = q, .fd = -1};
    for (unsigned q = 0; q < vd->num_queues; q++) {
        l->kicks[q].fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->kicks[q].fd < 0)
            return -errno;
    }
    return 0;
}

void virtio_loop_free(struct virtio_loop *l)
{
    /* A zeroed loop that never got to virtio_loop_init owns nothing (fd 0 is not its own). */
    if (!l->vd)
        return;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (l->kicks[q].fd >= 0)
            close(l->kicks[q].fd);
        l->kicks[q].fd = -1;
    }
}

void virtio_loop_request_work(struct virtio_loop *l)
{
    if (l->started)
        uv_async_send(&l->async);
}

void virtio_loop_kick(struct virtio_loop *l, unsigned q)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is saturated, so a kick is pending anyway. */
    if (write(l->kicks[q].fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        klog(l->vd->log, KILN_LOG_DEBUG, "%s: kick eventfd: %d", l->vd->ops->name, errno);
}

static void async_cb(uv_async_t *h)
{
    struct virtio_loop *l = h->data;
    virtio_loop_work(l->vd);
}

/* A kick reached the loop: hand it to the device if it may take it. */
static void deliver_kick(struct virtio_loop *l, unsigned q)
{
    struct virtio_device *vd = l->vd;
    pthread_mutex_lock(&vd->lock);
    bool starting = !vd->active && !vd->reset_pending && (vd->status & VIRTIO_STATUS_DRIVER_OK);
    pthread_mutex_unlock(&vd->lock);
    /* The first kick may overtake the async carrying DRIVER_OK: activate first, lose nothing. */
    if (starting)
        virtio_loop_work(vd);
    pthread_mutex_lock(&vd->lock);
    bool ok = vd->active && !vd->reset_pending && vd->queues[q].enabled;
    pthread_mutex_unlock(&vd->lock);
    if (!ok) {
        if (!atomic_exchange(&l->early_kick_logged, true))
            klog(vd->log, KILN_LOG_WARN,
                 "%s: kick for queue %u before DRIVER_OK or %s ignored (logged once)",
                 vd->ops->name, q, l->enable_name);
        return;
    }
    vd->ops->queue_notify(vd, q);
}

static void kick_cb(uv_poll_t *h, int status, int events)
{
    struct virtio_kick *k = h->data;
    uint64_t n;
    (void)events;
    if (status < 0 || read(k->fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
        return;
    deliver_kick(k->l, k->q);
}

int virtio_loop_poll(uv_loop_t *loop, uv_poll_t *p, int fd, uv_poll_cb cb, void *data, bool *open)
{
    int ret = uv_poll_init(loop, p, fd);
    if (ret < 0)
        return ret;
    *open = true;
    p->data = data;
    return uv_poll_start(p, UV_READABLE, cb);
}

void virtio_loop_set_line(struct virtio_loop *l, const struct irq_level *line,
                          void (*update)(void *ctx), void *ctx)
{
    l->line = line;
    l->line_update = update;
    l->line_ctx = ctx;
}

void virtio_loop_raise_line(struct virtio_loop *l)
{
    if (l->line_high)
        return;
    int ret = irq_level_assert(l->line);
    if (ret < 0)
        virtio_loop_warn(l, VIRTIO_LOG_IRQ, "interrupt on GSI %u: %s", l->line->gsi,
                         strerror(-ret));
    else
        l->line_high = true;
}

void virtio_loop_warn(struct virtio_loop *l, enum virtio_log kind, const char *fmt, ...)
{
    if (atomic_exchange(&l->logged[kind], true))
        return;
    char msg[256];
    KILN_VFORMAT(msg, fmt);
    klog(l->vd->log, KILN_LOG_WARN, "%s: %s (logged once)", l->vd->ops->name, msg);
}

void virtio_loop_config_access(struct virtio_loop *l, uint64_t off, uint8_t *data, uint32_t len,
                               bool is_write, bool size_ok)
{
    struct virtio_device *vd = l->vd;
    const struct device_ops *ops = vd->dev.ops;
    if (!size_ok || !range_within(off, len, vd->ops->config_len)) {
        virtio_loop_warn(l, VIRTIO_LOG_ACCESS,
                         "config: %u-byte access at 0x%llx refused (%u bytes)", len,
                         (unsigned long long)off, vd->ops->config_len);
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    pthread_mutex_lock(&vd->lock);
    if (is_write && ops->write)
        ops->write(&vd->dev, 0, off, data, len);
    else if (!is_write && ops->read)
        ops->read(&vd->dev, 0, off, data, len);
    else if (!is_write)
        memset(data, 0, len);
    pthread_mutex_unlock(&vd->lock);
}

struct virtio_queue *virtio_loop_queue_to_set(struct virtio_loop *l, unsigned select, unsigned reg)
{
    struct virtio_device *vd = l->vd;
    struct virtio_queue *q = virtio_queue_at(vd, select);
    if (!q)
        virtio_loop_warn(l, VIRTIO_LOG_QUEUE_SEL,
                         "queue register 0x%x written with queue select %u of %u queues", reg,
                         select, vd->num_queues);
    else if (!virtio_queue_configurable(vd, q))
        virtio_loop_warn(l, VIRTIO_LOG_QUEUE_LATE,
                         "queue %u: configuration written after %s or DRIVER_OK", select,
                         l->enable_name);
    else
        return q;
    return NULL;
}

static int ioeventfd(const struct vm_ioctl *vmi, const struct virtio_kick *k, uint64_t addr,
                     uint32_t len, bool assign)
{
    struct kvm_ioeventfd req = {
        .datamatch = k->q,
        .addr = addr,
        .len = len,
        .fd = k->fd,
        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    return vmi->fn(vmi->ctx, KVM_IOEVENTFD, &req);
}

void virtio_loop_bind_kicks(struct virtio_loop *l, const struct vm_ioctl *vmi, uint64_t addr,
                            uint32_t len)
{
    for (unsigned q = 0; q < l->vd->num_queues; q++) {
        struct virtio_kick *k = &l->kicks[q];
        int ret = ioeventfd(vmi, k, addr, len, true);
        k->ioeventfd = ret == 0;
        if (ret < 0)
            virtio_loop_warn(l, VIRTIO_LOG_IOEVENTFD,
                             "KVM_IOEVENTFD for queue %u: %s; kicks exit to kiln", q,
                             strerror(-ret));
    }
}

void virtio_loop_unbind_kicks(struct virtio_loop *l, const struct vm_ioctl *vmi, uint64_t addr,
                              uint32_t len)
{
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        struct virtio_kick *k = &l->kicks[q];
        if (k->ioeventfd)
            ioeventfd(vmi, k, addr, len, false);
        k->ioeventfd = false;
    }
}

static void resample_cb(uv_poll_t *h, int status, int events)
{
    struct virtio_loop *l = h->data;
    (void)events;
    if (status < 0 || !irq_level_resampled(l->line))
        return;
    pthread_mutex_lock(&l->vd->lock);
    l->line_high = false; /* KVM lowered the line at the EOI */
    l->line_update(l->line_ctx);
    pthread_mutex_unlock(&l->vd->lock);
}

int virtio_loop_start(struct virtio_loop *l, uv_loop_t *loop)
{
    /* The device's own back end first: the transport may activate it from the next turn. */
    const struct device_ops *ops = l->vd->dev.ops;
    int ret = ops->start ? ops->start(&l->vd->dev, loop) : 0;
    if (ret < 0)
        return ret;
    ret = uv_async_init(loop, &l->async, async_cb);
    if (ret < 0)
        return ret;
    l->async_open = true;
    l->async.data = l;
    for (unsigned q = 0; q < l->vd->num_queues && ret == 0; q++) {
        struct virtio_kick *k = &l->kicks[q];
        ret = virtio_loop_poll(loop, &k->poll, k->fd, kick_cb, k, &k->poll_open);
    }
    if (ret == 0 && l->line)
        ret = virtio_loop_poll(loop, &l->resample, l->line->resample_fd, resample_cb, l,
                               &l->resample_open);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&l->vd->lock);
    l->started = true;
    /* An interrupt pending in a restored device's ISR: its line goes up again (none at boot). */
    if (l->line)
        l->line_update(l->line_ctx);
    pthread_mutex_unlock(&l->vd->lock);
    uv_async_send(&l->async); /* status work the driver may have requested before the loop ran */
    return 0;
}

void virtio_loop_stop(struct virtio_loop *l)
{
    pthread_mutex_lock(&l->vd->lock);
    l->started = false;
    pthread_mutex_unlock(&l->vd->lock);
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        if (l->kicks[q].poll_open)
            uv_close((uv_handle_t *)&l->kicks[q].poll, NULL);
        l->kicks[q].poll_open = false;
    }
    if (l->async_open)
        uv_close((uv_handle_t *)&l->async, NULL);
    l->async_open = false;
    if (l->resample_open)
        uv_close((uv_handle_t *)&l->resample, NULL);
    l->resample_open = false;
    if (l->vd->dev.ops->stop)
        l->vd->dev.ops->stop(&l->vd->dev);
}
