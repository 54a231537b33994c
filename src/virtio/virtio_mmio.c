/* virtio_mmio.c: virtio over MMIO: version 2 registers, a level IRQ line, ioeventfd kicks. */
#include "virtio/virtio_mmio.h"

#include "platform/aml.h"
#include "virtio/virtio_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "state.h"

_Static_assert(VIRTIO_MMIO_MAX_DEVICES - 1 <= VIRTIO_MMIO_MAX_INDEX, "a DSDT name per device");

/* ISA pins free on kiln's platform (see virtio_mmio.h), in the order devices get them. */
static const uint8_t mmio_gsis[VIRTIO_MMIO_GSI_COUNT] = {5, 6, 7, 9, 10, 11, 14, 15};

/*
 * vCPU threads enter through register accesses and take vd->lock; the loop thread through
 * kicks, resamples and status work (vd->lock, never held across device calls), like virtio-pci.
 */
struct virtio_mmio {
    struct device dev; /* the register window, and the life cycle of it and vd */
    struct virtio_device *vd;
    struct irq_routing *irqs;
    const struct kiln_log *log;
    uint64_t base;
    unsigned gsi, index; /* the line's pin, and the DSDT entry's _UID */
    /* Guarded by vd->lock. */
    uint32_t dfselect, gfselect, queue_select;
    /* Set at create. */
    struct irq_level line;
    /* Loop side (shared with virtio-pci): status work, kicks, the line and its resampler. */
    struct virtio_loop loop;
};

/* ---- Placement and the kernel command line. */

int virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi)
{
    if (index >= VIRTIO_MMIO_MAX_DEVICES)
        return -ENOSPC;
    *base = VIRTIO_MMIO_WINDOW_BASE + (uint64_t)index * VIRTIO_MMIO_STRIDE;
    *gsi = mmio_gsis[index % VIRTIO_MMIO_GSI_COUNT];
    return 0;
}

int virtio_mmio_cmdline_append(char *buf, size_t size, uint64_t base, unsigned gsi)
{
    size_t used = strnlen(buf, size);
    if (used >= size)
        return -ENOSPC; /* not even terminated: nothing safe to append to */
    /* Linux reads <size>@<base>:<irq> with memparse and sscanf("%lli:%u"): hex base is fine. */
    int n = snprintf(buf + used, size - used, "%svirtio_mmio.device=%u@0x%" PRIx64 ":%u",
                     used ? " " : "", VIRTIO_MMIO_SIZE, base, gsi);
    if (n < 0 || (size_t)n >= size - used) {
        buf[used] = '\0';
        return -ENOSPC;
    }
    return 0;
}

/* ---- The interrupt line (vd->lock held). */

/*
 * Level semantics over an irqfd with resampling: assert while InterruptStatus is non-zero; KVM
 * lowers the line at the EOI and the resample callback looks again (virtio_loop).
 */
static void line_update_locked(void *ctx)
{
    struct virtio_mmio *t = ctx;
    if (t->vd->isr)
        virtio_loop_raise_line(&t->loop);
}

/* The core has set the InterruptStatus bit already; queue and config share the one line. */
static void vm_signal(struct virtio_device *vd)
{
    struct virtio_mmio *t = vd->transport_priv;
    pthread_mutex_lock(&vd->lock);
    line_update_locked(t);
    pthread_mutex_unlock(&vd->lock);
}

static void vm_signal_queue(struct virtio_device *vd, unsigned q)
{
    (void)q;
    vm_signal(vd);
}

static const struct virtio_transport_ops vm_transport = {
    .signal_queue = vm_signal_queue,
    .signal_config = vm_signal,
};

/* ---- Loop side. */

int virtio_mmio_start(struct virtio_mmio *t, uv_loop_t *loop)
{
    return virtio_loop_start(&t->loop, loop);
}

void virtio_mmio_stop(struct virtio_mmio *t)
{
    virtio_loop_stop(&t->loop);
}

/* ---- Registers (vd->lock held). */

static uint32_t queue_read(struct virtio_mmio *t, unsigned reg)
{
    struct virtio_queue *q = virtio_queue_at(t->vd, t->queue_select);
    if (!q)
        return 0; /* QueueNumMax 0: "queue not available", how drivers count queues */
    if (reg == VIRTIO_MMIO_QUEUE_NUM_MAX)
        return q->vq.max_size;
    /* A queue being torn down by a pending reset is no longer ready. */
    return q->enabled && !t->vd->reset_pending;
}

/* Returns true and the value for a readable register, false for a write-only or hole. */
static bool reg_read(struct virtio_mmio *t, unsigned reg, uint32_t *v)
{
    struct virtio_device *vd = t->vd;
    switch (reg) {
    case VIRTIO_MMIO_MAGIC_VALUE:
        *v = VIRTIO_MMIO_MAGIC;
        return true;
    case VIRTIO_MMIO_VERSION_REG:
        *v = VIRTIO_MMIO_VERSION;
        return true;
    case VIRTIO_MMIO_DEVICE_ID:
        *v = vd->ops->device_id;
        return true;
    case VIRTIO_MMIO_VENDOR_ID:
        *v = VIRTIO_MMIO_VENDOR;
        return true;
    case VIRTIO_MMIO_DEVICE_FEATURES:
        *v = virtio_feature_half(vd->device_features, t->dfselect);
        return true;
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
    case VIRTIO_MMIO_QUEUE_READY:
        *v = queue_read(t, reg);
        return true;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
        *v = vd->isr;
        return true;
    case VIRTIO_MMIO_STATUS:
        *v = virtio_read_status(vd);
        return true;
    case VIRTIO_MMIO_CONFIG_GENERATION:
        *v = vd->config_generation;
        return true;
    default:
        return false;
    }
}

/* Set the low or high half of a 64-bit ring address. */
static void set_half(uint64_t *gpa, bool high, uint32_t v)
{
    unsigned shift = high ? 32 : 0;
    *gpa = (*gpa & ~(0xffffffffULL << shift)) | ((uint64_t)v << shift);
}

static void queue_ready_set(struct virtio_mmio *t, struct virtio_queue *q, uint32_t v)
{
    if (v == 1)
        q->enabled = true; /* checked and started at DRIVER_OK (virtq_enable) */
    else if (v != 0)       /* 0 on a queue not ready is a no-op: Linux writes it when deleting */
        virtio_loop_warn(&t->loop, VIRTIO_LOG_QUEUE_VALUE, "queue %u: QueueReady %u ignored",
                         t->queue_select, v);
}

static void queue_set_value(struct virtio_mmio *t, struct virtio_queue *q, unsigned reg, uint32_t v)
{
    switch (reg) {
    case VIRTIO_MMIO_QUEUE_NUM:
        if (virtio_queue_size_ok(q, v))
            q->vq.size = (uint16_t)v;
        else
            virtio_loop_warn(&t->loop, VIRTIO_LOG_QUEUE_VALUE,
                             "queue %u: QueueNum %u refused (power of two <= %u)", t->queue_select,
                             v, q->vq.max_size);
        break;
    case VIRTIO_MMIO_QUEUE_READY:
        queue_ready_set(t, q, v);
        break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        set_half(&q->vq.desc_gpa, reg == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
        break;
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        set_half(&q->vq.avail_gpa, reg == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, v);
        break;
    default:
        set_half(&q->vq.used_gpa, reg == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, v);
        break;
    }
}

/* Queue configuration is fixed once the queue is ready or the device runs (or resets). */
static void queue_write(struct virtio_mmio *t, unsigned reg, uint32_t v)
{
    struct virtio_queue *q = virtio_queue_at(t->vd, t->queue_select);
    /* Disabling a queue that is not ready: nothing to do, nothing wrong (Linux does it). */
    if (q && reg == VIRTIO_MMIO_QUEUE_READY && v == 0 && !q->enabled)
        return;
    q = virtio_loop_queue_to_set(&t->loop, t->queue_select, reg);
    if (q)
        queue_set_value(t, q, reg, v);
}

static void driver_features_write(struct virtio_mmio *t, uint32_t v)
{
    if (!virtio_set_driver_features_half(t->vd, t->gfselect, v))
        virtio_loop_warn(&t->loop, VIRTIO_LOG_FEATURES,
                         "DriverFeatures write (select %u) after FEATURES_OK ignored", t->gfselect);
}

/* A kick that KVM did not catch (no ioeventfd) exits to here: same path as an ioeventfd. */
static void notify_write(struct virtio_mmio *t, uint32_t q)
{
    if (q >= t->vd->num_queues) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_NOTIFY, "QueueNotify for queue %u of %u ignored", q,
                         t->vd->num_queues);
        return;
    }
    virtio_loop_kick(&t->loop, q);
}

/* The driver acknowledges the bits it handled; the line stays up (re-asserts) while any is set. */
static void interrupt_ack(struct virtio_mmio *t, uint32_t v)
{
    t->vd->isr &= (uint8_t)~v;
}

/* Returns true if the loop must run virtio_loop_work. */
static bool status_write(struct virtio_mmio *t, uint32_t v)
{
    if (v == 0) /* the transport's own registers reset with the device */
        t->dfselect = t->gfselect = t->queue_select = 0;
    if (v > 0xff) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_ACCESS, "Status write 0x%x: high bits ignored", v);
        v &= 0xff;
    }
    return virtio_write_status(t->vd, (uint8_t)v);
}

/* Returns true if the loop must run virtio_loop_work. */
static bool reg_write(struct virtio_mmio *t, unsigned reg, uint32_t v)
{
    switch (reg) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        t->dfselect = v;
        return false;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        t->gfselect = v;
        return false;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        driver_features_write(t, v);
        return false;
    case VIRTIO_MMIO_QUEUE_SEL:
        t->queue_select = v;
        return false;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        notify_write(t, v);
        return false;
    case VIRTIO_MMIO_INTERRUPT_ACK:
        interrupt_ack(t, v);
        return false;
    case VIRTIO_MMIO_STATUS:
        return status_write(t, v);
    case VIRTIO_MMIO_QUEUE_NUM:
    case VIRTIO_MMIO_QUEUE_READY:
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
    case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
    case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
    case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
    case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        queue_write(t, reg, v);
        return false;
    default:
        virtio_loop_warn(&t->loop, VIRTIO_LOG_READ_ONLY,
                         "write of 0x%x to read-only or unknown register 0x%03x", v, reg);
        return false;
    }
}

/* ---- Bus access. */

static void registers_access(struct virtio_mmio *t, unsigned reg, uint8_t *data, uint32_t len,
                             bool is_write)
{
    /* The spec allows only aligned 32-bit accesses here; anything else is refused whole. */
    if (len != 4 || reg % 4) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_ACCESS,
                         "%u-byte %s at register offset 0x%03x refused", len,
                         is_write ? "write" : "read", reg);
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    struct virtio_device *vd = t->vd;
    pthread_mutex_lock(&vd->lock);
    if (is_write) {
        if (reg_write(t, reg, (uint32_t)le_get(data, 4)))
            virtio_loop_request_work(&t->loop);
    } else {
        uint32_t v = 0;
        if (!reg_read(t, reg, &v))
            virtio_loop_warn(&t->loop, VIRTIO_LOG_READ_ONLY,
                             "read of write-only or unknown register 0x%03x", reg);
        le_put(data, 4, v);
    }
    pthread_mutex_unlock(&vd->lock);
}

static void config_access(struct virtio_mmio *t, uint32_t off, uint8_t *data, uint32_t len,
                          bool is_write)
{
    bool size_ok = (len == 1 || len == 2 || len == 4) && off % len == 0;
    virtio_loop_config_access(&t->loop, off, data, len, is_write, size_ok);
}

static void window_access(struct virtio_mmio *t, uint64_t off, uint8_t *data, uint32_t len,
                          bool is_write)
{
    if (off < VIRTIO_MMIO_CONFIG)
        registers_access(t, (unsigned)off, data, len, is_write);
    else
        config_access(t, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data, len, is_write);
}

/* ---- The transport as a device (device.h). */

static void vm_read(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len)
{
    (void)region;
    window_access((struct virtio_mmio *)d, off, data, len, false);
}

static void vm_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                     uint32_t len)
{
    (void)region;
    uint8_t buf[8] = {0}; /* the register paths take one buffer both ways; len is at most 8 */
    memcpy(buf, data, len < sizeof(buf) ? len : sizeof(buf));
    window_access((struct virtio_mmio *)d, off, buf, len, true);
}

static int vm_start(struct device *d, uv_loop_t *loop)
{
    return virtio_mmio_start((struct virtio_mmio *)d, loop);
}

static void vm_stop(struct device *d)
{
    virtio_mmio_stop((struct virtio_mmio *)d);
}

static void vm_destroy(struct device *d)
{
    struct virtio_mmio *t = (struct virtio_mmio *)d;
    struct virtio_device *vd = t->vd;
    virtio_mmio_destroy(t);
    virtio_device_free(vd);
}

static void vm_stats(const struct device *d, struct kiln_stats *st)
{
    virtio_device_stats(((const struct virtio_mmio *)d)->vd, st);
}

/*
 * Snapshot (loop thread, vCPUs paused): the transport's select registers, then the virtio
 * device (core and its own state). The window's place and its line come from the config.
 */
static int vm_save(const struct device *d, struct device_state *st)
{
    const struct virtio_mmio *t = (const struct virtio_mmio *)d;
    pthread_mutex_lock(&t->vd->lock);
    state_put_u32(st, t->dfselect);
    state_put_u32(st, t->gfselect);
    state_put_u32(st, t->queue_select);
    pthread_mutex_unlock(&t->vd->lock);
    return virtio_save(t->vd, st);
}

/* MMIO has no MSI-X: a vector other than NO_VECTOR is a snapshot this transport never wrote. */
static bool vectors_unused(const struct virtio_device *vd)
{
    bool ok = vd->config_vector == VIRTIO_NO_VECTOR;
    for (unsigned i = 0; i < vd->num_queues; i++)
        ok = ok && vd->queues[i].vector == VIRTIO_NO_VECTOR;
    return ok;
}

/*
 * Before the loop runs. The selects take any value, as the registers do (reads check them);
 * the core checks queue sizes and features. A running device is activated again at start.
 */
static int vm_restore(struct device *d, struct device_state *st)
{
    struct virtio_mmio *t = (struct virtio_mmio *)d;
    pthread_mutex_lock(&t->vd->lock);
    t->dfselect = state_get_u32(st);
    t->gfselect = state_get_u32(st);
    t->queue_select = state_get_u32(st);
    pthread_mutex_unlock(&t->vd->lock);
    if (st->err)
        return -EINVAL;
    int ret = virtio_restore(t->vd, st);
    return ret < 0 ? ret : vectors_unused(t->vd) ? 0 : -EINVAL;
}

/*
 * The DSDT entry that lets a kernel without virtio_mmio.device= support (Debian's) find the
 * window: Linux's virtio_mmio driver matches _HID LNRO0005. The line is level-triggered and
 * active high, as the MADT's interrupt source override for the pin says; Shared, since devices
 * past VIRTIO_MMIO_GSI_COUNT share pins (and the driver requests every line shared).
 */
static void vm_describe(const struct device *d, struct aml *a)
{
    const struct virtio_mmio *t = (const struct virtio_mmio *)d;
    static const char hex[] = "0123456789ABCDEF";
    const char name[5] = {'V', 'R', hex[(t->index >> 4) & 0xf], hex[t->index & 0xf], '\0'};
    uint8_t buf[32];
    struct aml res = {.buf = buf, .cap = sizeof(buf)};
    aml_res_memory32_fixed(&res, (uint32_t)t->base, VIRTIO_MMIO_SIZE, true);
    aml_res_ext_irq(&res, t->gsi, AML_IRQ_CONSUMER | AML_IRQ_SHARED);
    size_t dev = aml_device_open(a, name);
    aml_name(a, "_HID");
    aml_string(a, "LNRO0005");
    aml_name(a, "_UID");
    aml_integer(a, t->index);
    aml_crs(a, &res);
    aml_close(a, dev);
}

static const struct device_ops vm_ops = {
    .read = vm_read,
    .write = vm_write,
    .start = vm_start,
    .stop = vm_stop,
    .destroy = vm_destroy,
    .stats = vm_stats,
    .save = vm_save,
    .restore = vm_restore,
    .describe = vm_describe,
};

struct device *virtio_mmio_device(struct virtio_mmio *t)
{
    return &t->dev;
}

/* ---- Construction. */

/* Per-queue kick eventfds, each on KVM's ioeventfd if it takes it (else the exit path kicks). */
static int setup_kicks(struct virtio_mmio *t)
{
    int ret = virtio_loop_init(&t->loop, t->vd, "QueueReady");
    if (ret == 0)
        virtio_loop_bind_kicks(&t->loop, irq_routing_vm(t->irqs),
                               t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4);
    return ret;
}

static void free_transport(struct virtio_mmio *t)
{
    irq_level_release(&t->line);
    virtio_loop_unbind_kicks(&t->loop, irq_routing_vm(t->irqs), t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
                             4);
    virtio_loop_free(&t->loop);
    free(t);
}

static struct virtio_mmio *alloc_transport(struct virtio_device *vd,
                                           const struct virtio_mmio_config *cfg)
{
    struct virtio_mmio *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->dev = (struct device){.name = vd->ops->name, .ops = &vm_ops};
    device_add_range(&t->dev, DEVICE_MMIO, cfg->base, VIRTIO_MMIO_SIZE);
    t->vd = vd;
    t->irqs = cfg->irqs;
    t->log = cfg->log;
    t->base = cfg->base;
    t->gsi = cfg->gsi;
    t->index = cfg->index;
    t->line = (struct irq_level){.fd = -1, .resample_fd = -1};
    virtio_loop_set_line(&t->loop, &t->line, line_update_locked, t);
    return t;
}

static bool config_valid(const struct virtio_device *vd, const struct virtio_mmio_config *cfg)
{
    /* A config read without config_len is a device bug: drivers would find no config space. */
    const struct virtio_device_ops *ops = vd->ops;
    return vd->num_queues && ops->config_len <= VIRTIO_MMIO_CONFIG_MAX && ops->name &&
           ops->queue_notify && !(ops->dev.read && !ops->config_len) && cfg->irqs &&
           cfg->base % VIRTIO_MMIO_SIZE == 0 && cfg->base <= UINT32_MAX - VIRTIO_MMIO_SIZE + 1 &&
           cfg->gsi < IRQ_ROUTING_IRQCHIP_GSIS && cfg->index <= VIRTIO_MMIO_MAX_INDEX;
}

int virtio_mmio_create(struct virtio_device *vd, const struct virtio_mmio_config *cfg,
                       struct virtio_mmio **out)
{
    *out = NULL;
    if (!config_valid(vd, cfg))
        return -EINVAL;
    struct virtio_mmio *t = alloc_transport(vd, cfg);
    if (!t)
        return -ENOMEM;
    int ret = irq_level_init(t->irqs, cfg->gsi, &t->line);
    if (ret == 0)
        ret = setup_kicks(t);
    if (ret < 0) {
        free_transport(t);
        return ret;
    }
    vd->transport = &vm_transport;
    vd->transport_priv = t;
    *out = t;
    return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
    if (!t)
        return;
    t->vd->transport = NULL;
    t->vd->transport_priv = NULL;
    free_transport(t);
}
