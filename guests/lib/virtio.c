/* virtio.c: the virtio 1.x driver core shared by kiln's test guests (see virtio.h). */
#include "virtio.h"
#include "guest.h"
#include "pci.h"

/* virtio-pci capability types (cfg_type) and common configuration registers. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESCLO 0x20
#define COMMON_Q_DESCHI 0x24
#define COMMON_Q_AVAILLO 0x28
#define COMMON_Q_AVAILHI 0x2c
#define COMMON_Q_USEDLO 0x30
#define COMMON_Q_USEDHI 0x34

/* virtio-mmio registers. */
#define MMIO_DEVICE_FEATURES 0x010
#define MMIO_DEVICE_FEATURES_SEL 0x014
#define MMIO_DRIVER_FEATURES 0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL 0x030
#define MMIO_QUEUE_NUM_MAX 0x034
#define MMIO_QUEUE_NUM 0x038
#define MMIO_QUEUE_READY 0x044
#define MMIO_QUEUE_NOTIFY 0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACK 0x064
#define MMIO_STATUS 0x070
#define MMIO_QUEUE_DESC_LOW 0x080
#define MMIO_QUEUE_DESC_HIGH 0x084
#define MMIO_QUEUE_DRIVER_LOW 0x090
#define MMIO_QUEUE_DRIVER_HIGH 0x094
#define MMIO_QUEUE_DEVICE_LOW 0x0a0
#define MMIO_QUEUE_DEVICE_HIGH 0x0a4

static void w8(uint64_t a, uint8_t v)
{
    *(volatile uint8_t *)(uintptr_t)a = v;
}
static void w16(uint64_t a, uint16_t v)
{
    *(volatile uint16_t *)(uintptr_t)a = v;
}
static void w32(uint64_t a, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)a = v;
}
static void w64(uint64_t a, uint64_t v)
{
    *(volatile uint64_t *)(uintptr_t)a = v;
}
static uint8_t r8(uint64_t a)
{
    return *(volatile uint8_t *)(uintptr_t)a;
}
static uint16_t r16(uint64_t a)
{
    return *(volatile uint16_t *)(uintptr_t)a;
}
static uint32_t r32(uint64_t a)
{
    return *(volatile uint32_t *)(uintptr_t)a;
}

static inline void full_barrier(void)
{
    __asm__ volatile("mfence" ::: "memory");
}

static bool is_pci(const struct virtio_dev *d)
{
    return d->transport == VIRTIO_TRANSPORT_PCI;
}

void virtio_pci_init(struct virtio_dev *d, unsigned slot)
{
    *d = (struct virtio_dev){.transport = VIRTIO_TRANSPORT_PCI};
    pci_write16(slot, PCI_COMMAND,
                pci_read16(slot, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    unsigned pos = pci_read8(slot, PCI_CAP_PTR);
    for (int n = 0; pos && n < 48; n++) {
        if (pci_read8(slot, pos) == PCI_CAP_ID_VENDOR) {
            uint8_t type = pci_read8(slot, pos + 3), bar = pci_read8(slot, pos + 4);
            uint64_t addr = 0;
            if (type != VIRTIO_PCI_CAP_PCI_CFG) {
                GUEST_ASSERT(bar < 6);
                addr = pci_bar_addr(slot, bar) + pci_read32(slot, pos + 8);
            }
            if (type == VIRTIO_PCI_CAP_COMMON_CFG)
                d->common = addr;
            if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
                d->notify = addr;
                d->notify_mult = pci_read32(slot, pos + 16);
            }
            if (type == VIRTIO_PCI_CAP_ISR_CFG)
                d->isr = addr;
            if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
                d->devcfg = addr;
        }
        pos = pci_read8(slot, pos + 1);
    }
    GUEST_ASSERT(d->common && d->notify && d->isr && d->devcfg);
}

void virtio_mmio_init(struct virtio_dev *d, uint64_t base)
{
    *d = (struct virtio_dev){.transport = VIRTIO_TRANSPORT_MMIO, .base = base};
    GUEST_ASSERT(r32(base + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC &&
                 r32(base + VIRTIO_MMIO_VERSION) == 2);
}

uint8_t virtio_get_status(const struct virtio_dev *d)
{
    return is_pci(d) ? r8(d->common + COMMON_STATUS) : (uint8_t)r32(d->base + MMIO_STATUS);
}

void virtio_set_status(const struct virtio_dev *d, uint8_t status)
{
    if (is_pci(d))
        w8(d->common + COMMON_STATUS, status);
    else
        w32(d->base + MMIO_STATUS, status);
}

void virtio_reset(const struct virtio_dev *d)
{
    virtio_set_status(d, 0);
    while (virtio_get_status(d))
        cpu_relax();
}

static uint32_t device_features32(const struct virtio_dev *d, uint32_t sel)
{
    if (is_pci(d)) {
        w32(d->common + COMMON_DFSELECT, sel);
        return r32(d->common + COMMON_DF);
    }
    w32(d->base + MMIO_DEVICE_FEATURES_SEL, sel);
    return r32(d->base + MMIO_DEVICE_FEATURES);
}

static void driver_features32(const struct virtio_dev *d, uint32_t sel, uint32_t v)
{
    if (is_pci(d)) {
        w32(d->common + COMMON_GFSELECT, sel);
        w32(d->common + COMMON_GF, v);
    } else {
        w32(d->base + MMIO_DRIVER_FEATURES_SEL, sel);
        w32(d->base + MMIO_DRIVER_FEATURES, v);
    }
}

uint64_t virtio_device_features(const struct virtio_dev *d)
{
    return device_features32(d, 0) | (uint64_t)device_features32(d, 1) << 32;
}

uint64_t virtio_negotiate(const struct virtio_dev *d, uint64_t want, uint64_t need, const char *who)
{
    virtio_reset(d);
    virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t offered = virtio_device_features(d);
    if ((offered & need) != need) {
        serial_puts(who);
        serial_puts(": the device offers features ");
        serial_put_hex(offered);
        serial_puts(", lacking ");
        serial_put_hex(need & ~offered);
        serial_putc('\n');
        return 0;
    }
    uint64_t accepted = offered & (want | need);
    driver_features32(d, 0, (uint32_t)accepted);
    driver_features32(d, 1, (uint32_t)(accepted >> 32));
    uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    virtio_set_status(d, st);
    if (virtio_get_status(d) != st) {
        serial_puts(who);
        serial_puts(": the device refused FEATURES_OK for features ");
        serial_put_hex(accepted);
        serial_putc('\n');
        return 0;
    }
    return accepted;
}

unsigned virtio_pci_num_queues(const struct virtio_dev *d)
{
    GUEST_ASSERT(is_pci(d));
    return r16(d->common + COMMON_NUMQ);
}

void virtio_pci_config_vector(const struct virtio_dev *d, uint16_t vector)
{
    GUEST_ASSERT(is_pci(d));
    w16(d->common + COMMON_MSIX, vector);
}

void virtio_queue_setup(const struct virtio_dev *d, unsigned q, struct vring *r, uint64_t base,
                        uint16_t size, uint16_t msix_vector)
{
    GUEST_ASSERT(size >= 1 && size <= VRING_MAX && (size & (size - 1)) == 0);
    memset((void *)(uintptr_t)base, 0, VRING_BYTES);
    *r = (struct vring){.desc = base, .avail = base + 0x1000, .used = base + 0x2000, .size = size};
    if (is_pci(d)) {
        uint64_t c = d->common;
        w16(c + COMMON_Q_SELECT, (uint16_t)q);
        GUEST_ASSERT(r16(c + COMMON_Q_SIZE) >= size && r16(c + COMMON_Q_ENABLE) == 0);
        w16(c + COMMON_Q_SIZE, size);
        w32(c + COMMON_Q_DESCLO, (uint32_t)r->desc);
        w32(c + COMMON_Q_DESCHI, (uint32_t)(r->desc >> 32));
        w32(c + COMMON_Q_AVAILLO, (uint32_t)r->avail);
        w32(c + COMMON_Q_AVAILHI, (uint32_t)(r->avail >> 32));
        w32(c + COMMON_Q_USEDLO, (uint32_t)r->used);
        w32(c + COMMON_Q_USEDHI, (uint32_t)(r->used >> 32));
        w16(c + COMMON_Q_MSIX, msix_vector);
        GUEST_ASSERT(r16(c + COMMON_Q_MSIX) == msix_vector);
        r->notify_off = r16(c + COMMON_Q_NOFF);
        w16(c + COMMON_Q_ENABLE, 1);
        GUEST_ASSERT(r16(c + COMMON_Q_ENABLE) == 1);
    } else {
        uint64_t b = d->base;
        w32(b + MMIO_QUEUE_SEL, q);
        GUEST_ASSERT(r32(b + MMIO_QUEUE_READY) == 0 && r32(b + MMIO_QUEUE_NUM_MAX) >= size);
        w32(b + MMIO_QUEUE_NUM, size);
        w32(b + MMIO_QUEUE_DESC_LOW, (uint32_t)r->desc);
        w32(b + MMIO_QUEUE_DESC_HIGH, (uint32_t)(r->desc >> 32));
        w32(b + MMIO_QUEUE_DRIVER_LOW, (uint32_t)r->avail);
        w32(b + MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(r->avail >> 32));
        w32(b + MMIO_QUEUE_DEVICE_LOW, (uint32_t)r->used);
        w32(b + MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(r->used >> 32));
        w32(b + MMIO_QUEUE_READY, 1);
        GUEST_ASSERT(r32(b + MMIO_QUEUE_READY) == 1);
    }
}

void virtio_driver_ok(const struct virtio_dev *d)
{
    virtio_set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                             VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

void virtio_notify(const struct virtio_dev *d, unsigned q, const struct vring *r)
{
    if (is_pci(d))
        w16(d->notify + (uint64_t)r->notify_off * d->notify_mult, (uint16_t)q);
    else
        w32(d->base + MMIO_QUEUE_NOTIFY, q);
}

uint32_t virtio_isr_ack(const struct virtio_dev *d)
{
    if (is_pci(d))
        return r8(d->isr); /* reading acknowledges */
    uint32_t st = r32(d->base + MMIO_INTERRUPT_STATUS);
    w32(d->base + MMIO_INTERRUPT_ACK, st);
    return st;
}

static uint64_t cfg_addr(const struct virtio_dev *d, unsigned off)
{
    return (is_pci(d) ? d->devcfg : d->base + VIRTIO_MMIO_CONFIG) + off;
}

uint8_t virtio_cfg_read8(const struct virtio_dev *d, unsigned off)
{
    return r8(cfg_addr(d, off));
}

uint16_t virtio_cfg_read16(const struct virtio_dev *d, unsigned off)
{
    return r16(cfg_addr(d, off));
}

uint32_t virtio_cfg_read32(const struct virtio_dev *d, unsigned off)
{
    return r32(cfg_addr(d, off));
}

void vring_set_desc(const struct vring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next)
{
    uint64_t e = r->desc + 16u * i;
    w64(e, addr);
    w64(e + 8, len | (uint64_t)flags << 32 | (uint64_t)next << 48);
}

void vring_publish(struct vring *r, uint16_t head)
{
    w16(r->avail + 4 + 2u * (r->avail_idx % r->size), head);
    full_barrier();
    w16(r->avail + 2, ++r->avail_idx);
    full_barrier();
}

uint16_t vring_used_idx(const struct vring *r)
{
    return r16(r->used + 2);
}

bool vring_pop_used(struct vring *r, uint16_t *head, uint32_t *len)
{
    if (vring_used_idx(r) == r->last_used)
        return false;
    full_barrier(); /* the element after the index */
    uint64_t e = r->used + 4 + 8u * (r->last_used % r->size);
    *head = (uint16_t)r32(e);
    *len = r32(e + 4);
    r->last_used++;
    return true;
}
