/* virtio_pci.c: modern virtio-pci: config regions, MSI-X or INTx, ioeventfd kicks on libuv. */
#include "virtio/virtio_pci.h"

#include "virtio/virtio_loop.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pci/msix.h"
#include "state.h"

#define CLASS_STORAGE_OTHER 0x018000
#define CLASS_NETWORK_ETHERNET 0x020000
#define CLASS_OTHER 0xff0000

_Static_assert((VIRTIO_MAX_QUEUES + 1) * MSIX_ENTRY_SIZE <= VIRTIO_PCI_MSIX_PBA_OFF,
               "MSI-X table overlaps the PBA");

/*
 * Locks, outermost first: the PCI bus configuration lock (config hooks, BAR moves), vd->lock
 * (all virtio and MSI-X state), the routing table's own lock. vCPU threads enter through BAR
 * accesses (vd->lock only) and config accesses (bus lock, then vd->lock); the loop thread
 * through kicks, resamples and status work (vd->lock only, never held across device calls).
 */
struct virtio_pci {
    struct virtio_device *vd;
    struct pci_device pci;
    struct pci_bus *bus;
    struct irq_routing *irqs;
    const struct kiln_log *log;
    /* Guarded by vd->lock. */
    struct msix msix;
    struct irq_msi *msi; /* one per MSI-X vector */
    uint32_t dfselect, gfselect;
    uint16_t queue_select;
    /* Guarded by the bus configuration lock (BAR and config hooks). */
    uint64_t notify_addr; /* where the ioeventfds sit, 0 if nowhere */
    unsigned pci_cfg_cap;
    /* Set at create. */
    struct irq_level intx;
    /* Loop side (shared with virtio-mmio): status work, kicks, INTx and its resampler. */
    struct virtio_loop loop; /* kicks[q].ioeventfd: registered at notify_addr (config lock) */
};

/* ---- Interrupts (vd->lock held). */

static void intx_raise_locked(struct virtio_pci *t)
{
    if (!(pci_device_command(&t->pci) & PCI_COMMAND_INTX_DISABLE))
        virtio_loop_raise_line(&t->loop);
}

/*
 * Level semantics: the line is (re)asserted while ISR is non-zero and INTx is in use; KVM
 * lowers it at the EOI and the resample callback looks again (virtio_loop).
 */
static void intx_update_locked(void *ctx)
{
    struct virtio_pci *t = ctx;
    if (!msix_enabled(&t->msix) && t->vd->isr)
        intx_raise_locked(t);
}

static void raise_locked(struct virtio_pci *t, uint16_t vector)
{
    if (!msix_enabled(&t->msix)) {
        intx_raise_locked(t);
        return;
    }
    /* With MSI-X on, an event mapped to NO_VECTOR interrupts nobody (the driver polls). */
    if (vector != VIRTIO_NO_VECTOR)
        msix_fire(&t->msix, vector);
}

static void vp_signal_queue(struct virtio_device *vd, unsigned q)
{
    struct virtio_pci *t = vd->transport_priv;
    pthread_mutex_lock(&vd->lock);
    raise_locked(t, q < vd->num_queues ? vd->queues[q].vector : VIRTIO_NO_VECTOR);
    pthread_mutex_unlock(&vd->lock);
}

static void vp_signal_config(struct virtio_device *vd)
{
    struct virtio_pci *t = vd->transport_priv;
    pthread_mutex_lock(&vd->lock);
    raise_locked(t, vd->config_vector);
    pthread_mutex_unlock(&vd->lock);
}

static const struct virtio_transport_ops vp_transport = {
    .signal_queue = vp_signal_queue,
    .signal_config = vp_signal_config,
};

/* msix.c hands over a vector to send: KVM routes it (made or updated here) and injects it. */
static void vp_msix_deliver(void *ctx, unsigned vector, uint64_t addr, uint32_t data)
{
    struct virtio_pci *t = ctx;
    int ret = irq_msi_send(t->irqs, &t->msi[vector], addr, data);
    if (ret < 0)
        virtio_loop_warn(&t->loop, VIRTIO_LOG_IRQ, "MSI-X vector %u: %s", vector, strerror(-ret));
}

/* ---- Loop side. */

int virtio_pci_start(struct virtio_pci *t, uv_loop_t *loop)
{
    return virtio_loop_start(&t->loop, loop);
}

void virtio_pci_stop(struct virtio_pci *t)
{
    virtio_loop_stop(&t->loop);
}

/* ---- Common configuration (vd->lock held). */

static uint64_t queue_get(struct virtio_pci *t, unsigned reg)
{
    struct virtio_queue *q = virtio_queue_at(t->vd, t->queue_select);
    if (!q)
        return reg == VIRTIO_PCI_COMMON_Q_MSIX ? VIRTIO_NO_VECTOR : 0; /* size 0: no queue */
    switch (reg) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
        return q->vq.size;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        return q->vector;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        return q->enabled;
    case VIRTIO_PCI_COMMON_Q_DESC:
        return q->vq.desc_gpa;
    case VIRTIO_PCI_COMMON_Q_DRIVER:
        return q->vq.avail_gpa;
    case VIRTIO_PCI_COMMON_Q_DEVICE:
        return q->vq.used_gpa;
    default:
        return 0; /* queue_notify_off: every queue shares offset 0 */
    }
}

static uint64_t common_get(struct virtio_pci *t, unsigned reg)
{
    struct virtio_device *vd = t->vd;
    switch (reg) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        return t->dfselect;
    case VIRTIO_PCI_COMMON_DF:
        return virtio_feature_half(vd->device_features, t->dfselect);
    case VIRTIO_PCI_COMMON_GFSELECT:
        return t->gfselect;
    case VIRTIO_PCI_COMMON_GF:
        return virtio_feature_half(vd->driver_features, t->gfselect);
    case VIRTIO_PCI_COMMON_MSIX:
        return vd->config_vector;
    case VIRTIO_PCI_COMMON_NUMQ:
        return vd->num_queues;
    case VIRTIO_PCI_COMMON_STATUS:
        return virtio_read_status(vd);
    case VIRTIO_PCI_COMMON_CFGGENERATION:
        return vd->config_generation;
    case VIRTIO_PCI_COMMON_Q_SELECT:
        return t->queue_select;
    default:
        return queue_get(t, reg);
    }
}

/* A vector the table has, or NO_VECTOR: what the driver reads back tells it if we took it. */
static uint16_t checked_vector(struct virtio_pci *t, uint64_t v)
{
    return v < t->msix.nvec ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void queue_set_value(struct virtio_pci *t, struct virtio_queue *q, unsigned reg, uint64_t v)
{
    switch (reg) {
    case VIRTIO_PCI_COMMON_Q_SIZE:
        if (virtio_queue_size_ok(q, v))
            q->vq.size = (uint16_t)v;
        else
            virtio_loop_warn(&t->loop, VIRTIO_LOG_QUEUE_VALUE,
                             "queue %u: size %llu refused (power of two <= %u)", t->queue_select,
                             (unsigned long long)v, q->vq.max_size);
        break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
        q->vector = checked_vector(t, v);
        break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
        if (v == 1)
            q->enabled = true; /* checked and started at DRIVER_OK (virtq_enable) */
        else
            virtio_loop_warn(&t->loop, VIRTIO_LOG_QUEUE_VALUE,
                             "queue %u: queue_enable %llu ignored", t->queue_select,
                             (unsigned long long)v);
        break;
    case VIRTIO_PCI_COMMON_Q_DESC:
        q->vq.desc_gpa = v;
        break;
    case VIRTIO_PCI_COMMON_Q_DRIVER:
        q->vq.avail_gpa = v;
        break;
    case VIRTIO_PCI_COMMON_Q_DEVICE:
        q->vq.used_gpa = v;
        break;
    default:
        virtio_loop_warn(&t->loop, VIRTIO_LOG_READ_ONLY, "write to read-only queue_notify_off");
        break;
    }
}

/* Queue configuration is fixed once the queue is enabled or the device runs (or resets). */
static void queue_set(struct virtio_pci *t, unsigned reg, uint64_t v)
{
    struct virtio_queue *q = virtio_loop_queue_to_set(&t->loop, t->queue_select, reg);
    if (q)
        queue_set_value(t, q, reg, v);
}

/* GF is a 4-byte field (common_fields), so v fits 32 bits. */
static void driver_features_set(struct virtio_pci *t, uint64_t v)
{
    if (!virtio_set_driver_features_half(t->vd, t->gfselect, (uint32_t)v))
        virtio_loop_warn(&t->loop, VIRTIO_LOG_FEATURES,
                         "driver_feature write (select %u) after FEATURES_OK ignored", t->gfselect);
}

/* Returns true if the loop must run virtio_loop_work. */
static bool status_set(struct virtio_pci *t, uint64_t v)
{
    if (v == 0) /* the transport's own registers reset with the device */
        t->dfselect = t->gfselect = t->queue_select = 0;
    return virtio_write_status(t->vd, (uint8_t)v);
}

static bool common_set(struct virtio_pci *t, unsigned reg, uint64_t v)
{
    switch (reg) {
    case VIRTIO_PCI_COMMON_DFSELECT:
        t->dfselect = (uint32_t)v;
        break;
    case VIRTIO_PCI_COMMON_GFSELECT:
        t->gfselect = (uint32_t)v;
        break;
    case VIRTIO_PCI_COMMON_GF:
        driver_features_set(t, v);
        break;
    case VIRTIO_PCI_COMMON_MSIX:
        t->vd->config_vector = checked_vector(t, v);
        break;
    case VIRTIO_PCI_COMMON_STATUS:
        return status_set(t, v);
    case VIRTIO_PCI_COMMON_Q_SELECT:
        t->queue_select = (uint16_t)v;
        break;
    case VIRTIO_PCI_COMMON_DF:
    case VIRTIO_PCI_COMMON_NUMQ:
    case VIRTIO_PCI_COMMON_CFGGENERATION:
        virtio_loop_warn(&t->loop, VIRTIO_LOG_READ_ONLY, "write to read-only common register 0x%x",
                         reg);
        break;
    default:
        queue_set(t, reg, v);
        break;
    }
    return false;
}

/* struct virtio_pci_common_cfg: offset and size of every field. */
static const struct {
    uint8_t off, size;
} common_fields[] = {
    {VIRTIO_PCI_COMMON_DFSELECT, 4}, {VIRTIO_PCI_COMMON_DF, 4},
    {VIRTIO_PCI_COMMON_GFSELECT, 4}, {VIRTIO_PCI_COMMON_GF, 4},
    {VIRTIO_PCI_COMMON_MSIX, 2},     {VIRTIO_PCI_COMMON_NUMQ, 2},
    {VIRTIO_PCI_COMMON_STATUS, 1},   {VIRTIO_PCI_COMMON_CFGGENERATION, 1},
    {VIRTIO_PCI_COMMON_Q_SELECT, 2}, {VIRTIO_PCI_COMMON_Q_SIZE, 2},
    {VIRTIO_PCI_COMMON_Q_MSIX, 2},   {VIRTIO_PCI_COMMON_Q_ENABLE, 2},
    {VIRTIO_PCI_COMMON_Q_NOFF, 2},   {VIRTIO_PCI_COMMON_Q_DESC, 8},
    {VIRTIO_PCI_COMMON_Q_DRIVER, 8}, {VIRTIO_PCI_COMMON_Q_DEVICE, 8},
};

/* The field an access hits, if it is a natural one (64-bit fields also as two dwords). */
static int common_field(uint64_t off, uint32_t len)
{
    for (unsigned i = 0; i < ARRAY_SIZE(common_fields); i++) {
        unsigned f = common_fields[i].off, size = common_fields[i].size;
        if (off < f || off >= f + size)
            continue;
        bool whole = off == f && len == size;
        bool half = size == 8 && len == 4 && (off - f) % 4 == 0;
        return whole || half ? (int)i : -1;
    }
    return -1;
}

static void common_access(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                          bool is_write)
{
    int i = common_field(off, len);
    if (i < 0) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_ACCESS,
                         "common config: %u-byte access at 0x%llx refused", len,
                         (unsigned long long)off);
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    unsigned reg = common_fields[i].off, shift = 8 * (unsigned)(off - reg);
    uint64_t mask = len == 8 ? ~0ULL : ((1ULL << (8 * len)) - 1) << shift;
    struct virtio_device *vd = t->vd;
    pthread_mutex_lock(&vd->lock);
    bool work = false;
    if (is_write)
        work = common_set(t, reg, (common_get(t, reg) & ~mask) | (le_get(data, len) << shift));
    else
        le_put(data, len, common_get(t, reg) >> shift);
    if (work)
        virtio_loop_request_work(&t->loop);
    pthread_mutex_unlock(&vd->lock);
}

/* ---- ISR, device configuration, notifications. */

static void isr_access(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                       bool is_write)
{
    if (off != 0 || len != 1 || is_write) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_ACCESS, "ISR: %u-byte %s at +%llu refused", len,
                         is_write ? "write" : "read", (unsigned long long)off);
        if (!is_write)
            memset(data, 0, len);
        return;
    }
    pthread_mutex_lock(&t->vd->lock);
    data[0] = t->vd->isr;
    t->vd->isr = 0; /* reading acknowledges; the INTx line drops at the guest's EOI */
    pthread_mutex_unlock(&t->vd->lock);
}

static void device_cfg_access(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                              bool is_write)
{
    bool size_ok = len == 1 || len == 2 || len == 4 || len == 8;
    virtio_loop_config_access(&t->loop, off, data, len, is_write, size_ok);
}

/* A kick that KVM did not catch (no ioeventfd, or a non-matching value) exits to here. */
static void notify_access(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                          bool is_write)
{
    if (!is_write) {
        memset(data, 0, len);
        return;
    }
    uint64_t q = le_get(data, len);
    if (off != 0 || len != 2 || q >= t->vd->num_queues) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_NOTIFY,
                         "notify: %u-byte write of %llu at +%llu ignored", len,
                         (unsigned long long)q, (unsigned long long)off);
        return;
    }
    /* Same path as an ioeventfd: the loop thread is the one that runs the device. */
    virtio_loop_kick(&t->loop, q);
}

static void caps_bar_io(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                        bool is_write)
{
    if (off < VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_LEN)
        common_access(t, off - VIRTIO_PCI_COMMON_OFF, data, len, is_write);
    else if (off >= VIRTIO_PCI_ISR_OFF && off < VIRTIO_PCI_ISR_OFF + VIRTIO_PCI_ISR_LEN)
        isr_access(t, off - VIRTIO_PCI_ISR_OFF, data, len, is_write);
    else if (off >= VIRTIO_PCI_DEVICE_OFF && off < VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_DEVICE_MAX)
        device_cfg_access(t, off - VIRTIO_PCI_DEVICE_OFF, data, len, is_write);
    else if (off >= VIRTIO_PCI_NOTIFY_OFF && off < VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_LEN)
        notify_access(t, off - VIRTIO_PCI_NOTIFY_OFF, data, len, is_write);
    else {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_ACCESS,
                         "%u-byte access at BAR offset 0x%llx outside the structures", len,
                         (unsigned long long)off);
        if (!is_write)
            memset(data, 0, len);
    }
}

static void msix_bar_io(struct virtio_pci *t, uint64_t off, uint8_t *data, uint32_t len,
                        bool is_write)
{
    pthread_mutex_lock(&t->vd->lock);
    if (off < VIRTIO_PCI_MSIX_PBA_OFF)
        msix_table_access(&t->msix, off - VIRTIO_PCI_MSIX_TABLE_OFF, data, len, is_write);
    else
        msix_pba_access(&t->msix, off - VIRTIO_PCI_MSIX_PBA_OFF, data, len, is_write);
    pthread_mutex_unlock(&t->vd->lock);
}

/* ---- PCI hooks. */

static struct virtio_pci *vp_of(struct pci_device *dev)
{
    return dev->priv;
}

static void vp_bar_io(struct pci_device *dev, unsigned bar, uint64_t off, uint8_t *data,
                      uint32_t len, bool is_write)
{
    struct virtio_pci *t = vp_of(dev);
    if (bar == VIRTIO_PCI_CAPS_BAR)
        caps_bar_io(t, off, data, len, is_write);
    else if (bar == VIRTIO_PCI_MSIX_BAR)
        msix_bar_io(t, off, data, len, is_write);
    else if (!is_write)
        memset(data, 0xff, len);
}

/* The function as a device (device.h): BAR accesses, and the life cycle of it and its device. */
static struct pci_device *function_of(struct device *d)
{
    return (struct pci_device *)((char *)d - offsetof(struct pci_device, device));
}

static void vp_read(struct device *d, unsigned bar, uint64_t off, uint8_t *data, uint32_t len)
{
    vp_bar_io(function_of(d), bar, off, data, len, false);
}

static void vp_write(struct device *d, unsigned bar, uint64_t off, const uint8_t *data,
                     uint32_t len)
{
    uint8_t buf[8] = {0}; /* the register paths take one buffer both ways; len is at most 8 */
    memcpy(buf, data, len < sizeof(buf) ? len : sizeof(buf));
    vp_bar_io(function_of(d), bar, off, buf, len, true);
}

static int vp_start(struct device *d, uv_loop_t *loop)
{
    return virtio_pci_start(vp_of(function_of(d)), loop);
}

static void vp_stop(struct device *d)
{
    virtio_pci_stop(vp_of(function_of(d)));
}

static void vp_destroy(struct device *d)
{
    struct virtio_pci *t = vp_of(function_of(d));
    struct virtio_device *vd = t->vd;
    virtio_pci_destroy(t);
    virtio_device_free(vd);
}

/*
 * Snapshot (loop thread, vCPUs paused): the function's config space and BARs, MSI-X, the
 * transport's select registers, then the virtio device (core and its own state).
 */
static int vp_save(const struct device *d, struct device_state *st)
{
    struct virtio_pci *t = vp_of(function_of((struct device *)d));
    pci_device_save(&t->pci, st);
    pthread_mutex_lock(&t->vd->lock);
    msix_save(&t->msix, st);
    state_put_u32(st, t->dfselect);
    state_put_u32(st, t->gfselect);
    state_put_u32(st, t->queue_select);
    pthread_mutex_unlock(&t->vd->lock);
    return virtio_save(t->vd, st);
}

/* Before the loop runs: the BARs decode where they did (the ioeventfds follow, bar_remap). */
static int vp_restore(struct device *d, struct device_state *st)
{
    struct virtio_pci *t = vp_of(function_of(d));
    int ret = pci_device_restore(&t->pci, st);
    if (ret < 0)
        return ret;
    pthread_mutex_lock(&t->vd->lock);
    ret = msix_restore(&t->msix, st);
    t->dfselect = state_get_u32(st);
    t->gfselect = state_get_u32(st);
    uint32_t queue_select = state_get_u32(st);
    t->queue_select = (uint16_t)queue_select;
    pthread_mutex_unlock(&t->vd->lock);
    if (ret == 0 && (st->err || queue_select > UINT16_MAX)) /* a 16-bit register */
        ret = -EINVAL;
    return ret < 0 ? ret : virtio_restore(t->vd, st);
}

static void vp_stats(const struct device *d, struct kiln_stats *st)
{
    virtio_device_stats(vp_of(function_of((struct device *)d))->vd, st);
}

/* BAR 0 moved, appeared or vanished: the ioeventfds follow the notify address. */
static void vp_bar_remap(struct pci_device *dev, unsigned bar, uint64_t base)
{
    struct virtio_pci *t = vp_of(dev);
    if (bar != VIRTIO_PCI_CAPS_BAR)
        return;
    const struct vm_ioctl *vmi = irq_routing_vm(t->irqs);
    virtio_loop_unbind_kicks(&t->loop, vmi, t->notify_addr, VIRTIO_PCI_NOTIFY_LEN);
    t->notify_addr = base ? base + VIRTIO_PCI_NOTIFY_OFF : 0;
    if (t->notify_addr)
        virtio_loop_bind_kicks(&t->loop, vmi, t->notify_addr, VIRTIO_PCI_NOTIFY_LEN);
}

/* VIRTIO_PCI_CAP_PCI_CFG: config-space window onto the BARs, for firmware without BAR access. */
static void pci_cfg_window(struct virtio_pci *t, bool is_write)
{
    struct pci_device *dev = &t->pci;
    unsigned c = t->pci_cfg_cap;
    unsigned bar = dev->cfg[c + VIRTIO_PCI_CAP_BAR];
    uint32_t off = pci_cfg_get(dev, c + VIRTIO_PCI_CAP_OFFSET, 4);
    uint32_t len = pci_cfg_get(dev, c + VIRTIO_PCI_CAP_LENGTH, 4);
    uint8_t *data = &dev->cfg[c + VIRTIO_PCI_CAP_PCI_CFG_DATA];
    bool len_ok = (len == 1 || len == 2 || len == 4) && off % len == 0;
    bool bar_ok = bar == VIRTIO_PCI_CAPS_BAR || bar == VIRTIO_PCI_MSIX_BAR;
    if (!len_ok || !bar_ok || !range_within(off, len, dev->bars[bar].size)) {
        virtio_loop_warn(&t->loop, VIRTIO_LOG_PCI_CFG,
                         "pci_cfg window bar %u offset 0x%x length %u refused", bar, off, len);
        if (!is_write)
            memset(data, 0, 4);
        return;
    }
    vp_bar_io(dev, bar, off, data, len, is_write);
}

static void vp_cfg_written(struct pci_device *dev, unsigned off, unsigned len)
{
    struct virtio_pci *t = vp_of(dev);
    pthread_mutex_lock(&t->vd->lock);
    msix_cfg_written(&t->msix, dev, off, len);
    if (pci_cfg_overlaps(off, len, PCI_COMMAND, 2))
        intx_update_locked(t); /* INTx may just have been re-enabled */
    pthread_mutex_unlock(&t->vd->lock);
    if (pci_cfg_overlaps(off, len, t->pci_cfg_cap + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4))
        pci_cfg_window(t, true);
}

static void vp_cfg_read(struct pci_device *dev, unsigned off, unsigned len)
{
    struct virtio_pci *t = vp_of(dev);
    if (pci_cfg_overlaps(off, len, t->pci_cfg_cap + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4))
        pci_cfg_window(t, false);
}

static const struct pci_device_ops vp_pci_ops = {
    .dev =
        {
            .read = vp_read,
            .write = vp_write,
            .start = vp_start,
            .stop = vp_stop,
            .destroy = vp_destroy,
            .stats = vp_stats,
            .save = vp_save,
            .restore = vp_restore,
        },
    .bar_remap = vp_bar_remap,
    .cfg_written = vp_cfg_written,
    .cfg_read = vp_cfg_read,
};

/* ---- Construction. */

/* A virtio_pci_cap (16 bytes), or 20 with extra (notify multiplier, pci_cfg data). */
static int add_vcap(struct virtio_pci *t, uint8_t type, uint8_t bar, uint32_t off, uint32_t len,
                    bool extra)
{
    uint8_t body[18] = {0};
    unsigned n = extra ? 18 : 14;
    body[0] = (uint8_t)(n + 2); /* cap_len counts the id and next bytes too */
    body[1] = type;
    body[2] = bar;
    le_put(body + 6, 4, off);
    le_put(body + 10, 4, len);
    return pci_device_add_cap(&t->pci, PCI_CAP_ID_VNDR, body, n);
}

static uint32_t class_of(uint32_t device_id)
{
    return device_id == VIRTIO_ID_BLOCK ? CLASS_STORAGE_OTHER
           : device_id == VIRTIO_ID_NET ? CLASS_NETWORK_ETHERNET
                                        : CLASS_OTHER;
}

static int add_virtio_caps(struct virtio_pci *t)
{
    uint32_t cfg_len = t->vd->ops->config_len;
    int ret;
    if ((ret = add_vcap(t, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_COMMON_OFF,
                        VIRTIO_PCI_COMMON_LEN, false)) < 0 ||
        (ret = add_vcap(t, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_NOTIFY_OFF,
                        VIRTIO_PCI_NOTIFY_LEN, true)) < 0 || /* multiplier 0 */
        (ret = add_vcap(t, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_ISR_OFF,
                        VIRTIO_PCI_ISR_LEN, false)) < 0 ||
        (cfg_len && (ret = add_vcap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAPS_BAR,
                                    VIRTIO_PCI_DEVICE_OFF, cfg_len, false)) < 0) ||
        (ret = add_vcap(t, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, true)) < 0)
        return ret;
    /* The driver picks bar, offset and length of the window and moves data through it. */
    t->pci_cfg_cap = (unsigned)ret;
    t->pci.wmask[ret + VIRTIO_PCI_CAP_BAR] = 0xff;
    memset(&t->pci.wmask[ret + VIRTIO_PCI_CAP_OFFSET], 0xff, 12); /* offset, length, data */
    return 0;
}

static int build_function(struct virtio_pci *t)
{
    uint32_t id = t->vd->ops->device_id;
    const struct pci_id pid = {
        .vendor = VIRTIO_PCI_VENDOR,
        .device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + id),
        .subsys_vendor = VIRTIO_PCI_VENDOR,
        .subsys_id = (uint16_t)id,
        .class_code = class_of(id),
        .revision = VIRTIO_PCI_REVISION,
        .intx = true,
    };
    pci_device_init(&t->pci, &pid, &vp_pci_ops, t, t->vd->ops->name);
    int ret;
    if ((ret = pci_device_add_bar(&t->pci, VIRTIO_PCI_CAPS_BAR, VIRTIO_PCI_CAPS_BAR_SIZE,
                                  PCI_BAR_MEM_64)) < 0 ||
        (ret = pci_device_add_bar(&t->pci, VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_BAR_SIZE, 0)) < 0)
        return ret;
    ret = msix_add_cap(&t->msix, &t->pci, VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
                       VIRTIO_PCI_MSIX_BAR, VIRTIO_PCI_MSIX_PBA_OFF);
    return ret < 0 ? ret : add_virtio_caps(t);
}

/* Per-vector MSI sources and per-queue kick eventfds. */
static int alloc_fds(struct virtio_pci *t)
{
    t->msi = calloc(t->msix.nvec, sizeof(*t->msi));
    if (!t->msi)
        return -ENOMEM;
    for (unsigned v = 0; v < t->msix.nvec; v++)
        irq_msi_init(&t->msi[v]);
    return virtio_loop_init(&t->loop, t->vd, "queue_enable");
}

static void free_transport(struct virtio_pci *t)
{
    irq_level_release(&t->intx);
    for (unsigned v = 0; t->msi && v < t->msix.nvec; v++)
        irq_msi_release(&t->msi[v]);
    virtio_loop_free(&t->loop);
    free(t->msi);
    msix_destroy(&t->msix);
    free(t);
}

static struct virtio_pci *alloc_transport(struct virtio_device *vd,
                                          const struct virtio_pci_config *cfg)
{
    struct virtio_pci *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->vd = vd;
    t->bus = cfg->bus;
    t->irqs = cfg->irqs;
    t->log = cfg->log;
    t->intx = (struct irq_level){.fd = -1, .resample_fd = -1};
    virtio_loop_set_line(&t->loop, &t->intx, intx_update_locked, t);
    return t;
}

int virtio_pci_create(struct virtio_device *vd, const struct virtio_pci_config *cfg,
                      struct virtio_pci **out)
{
    *out = NULL;
    /* A config read without config_len is a device bug: drivers would find no config space. */
    const struct virtio_device_ops *ops = vd->ops;
    if (vd->num_queues == 0 || ops->config_len > VIRTIO_PCI_DEVICE_MAX || !ops->name ||
        !ops->queue_notify || (ops->dev.read && !ops->config_len))
        return -EINVAL;
    struct virtio_pci *t = alloc_transport(vd, cfg);
    if (!t)
        return -ENOMEM;
    /* One vector per queue plus one for configuration changes. */
    int ret = msix_init(&t->msix, vd->num_queues + 1, vp_msix_deliver, t, cfg->log);
    if (ret == 0)
        ret = alloc_fds(t);
    if (ret == 0)
        ret = build_function(t);
    if (ret < 0) {
        free_transport(t);
        return ret;
    }
    vd->transport = &vp_transport;
    vd->transport_priv = t;
    ret = pci_bus_add(t->bus, &t->pci);
    if (ret == 0) {
        ret = irq_level_init(t->irqs, t->pci.intx_gsi, &t->intx);
        if (ret < 0)
            pci_bus_remove(t->bus, &t->pci);
    }
    if (ret < 0) {
        vd->transport = NULL;
        vd->transport_priv = NULL;
        free_transport(t);
        return ret;
    }
    *out = t;
    return 0;
}

void virtio_pci_destroy(struct virtio_pci *t)
{
    if (!t)
        return;
    pci_bus_remove(t->bus, &t->pci); /* drops the ioeventfds through vp_bar_remap */
    free_transport(t);
}

struct pci_device *virtio_pci_function(struct virtio_pci *t)
{
    return &t->pci;
}

struct device *virtio_pci_device(struct virtio_pci *t)
{
    return &t->pci.device;
}
