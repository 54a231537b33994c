/*
 * virtio.h: a minimal polled-or-interrupt virtio 1.x driver core for kiln's test guests: device
 * status and feature negotiation over either transport (modern virtio-pci or virtio-mmio
 * version 2), queue setup, and split-ring helpers.
 */
#ifndef KILN_GUEST_VIRTIO_H
#define KILN_GUEST_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_PCI_ID(type) ((uint32_t)(0x1040 + (type)) << 16 | VIRTIO_VENDOR)
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08

#define VIRTIO_F_VERSION_1 (1ULL << 32)
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Descriptor flags. */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2

/* virtio-mmio registers (offsets from the device's base). */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_CONFIG 0x100

enum virtio_transport { VIRTIO_TRANSPORT_PCI, VIRTIO_TRANSPORT_MMIO };

struct virtio_dev {
    enum virtio_transport transport;
    uint64_t base;                        /* mmio: the register block */
    uint64_t common, notify, isr, devcfg; /* pci: the structures the capabilities point at */
    uint32_t notify_mult;                 /* pci: notify_off_multiplier */
};

/*
 * A split virtqueue laid out in three 4 KiB pages from base (descriptors, available ring, used
 * ring), so at most 256 entries. The driver's place in both rings is kept here.
 */
struct vring {
    uint64_t desc, avail, used;
    uint16_t size;
    uint16_t avail_idx; /* next free available-ring slot (free-running) */
    uint16_t last_used; /* used-ring entries consumed so far (free-running) */
    uint16_t notify_off;
};
#define VRING_BYTES 0x3000u
#define VRING_MAX 256u

/* Set up a virtio-pci device on bus 0: memory decoding and bus mastering on, the common, notify,
 * ISR and device configuration structures found through the vendor capabilities. */
void virtio_pci_init(struct virtio_dev *d, unsigned slot);
/* Set up a virtio-mmio device (version 2) at base; asserts the magic value and version. */
void virtio_mmio_init(struct virtio_dev *d, uint64_t base);

uint8_t virtio_get_status(const struct virtio_dev *d);
void virtio_set_status(const struct virtio_dev *d, uint8_t status);
/* Write 0 to the status and wait until the device reads back reset. */
void virtio_reset(const struct virtio_dev *d);
/* The device's 64 feature bits. */
uint64_t virtio_device_features(const struct virtio_dev *d);

/*
 * Reset, ACKNOWLEDGE, DRIVER, then accept the features in `want` that the device offers and
 * set FEATURES_OK. Returns the accepted set, or 0 (after printing why on the serial console,
 * prefixed by `who`) if the device lacks a feature in `need` or refuses FEATURES_OK.
 */
uint64_t virtio_negotiate(const struct virtio_dev *d, uint64_t want, uint64_t need,
                          const char *who);

/* virtio-pci only: the number of queues, and the config-change MSI-X vector. */
unsigned virtio_pci_num_queues(const struct virtio_dev *d);
void virtio_pci_config_vector(const struct virtio_dev *d, uint16_t vector);

/*
 * Lay out (and zero) ring at base with `size` entries, then give it to the device as queue q
 * and enable it. msix_vector is the queue's MSI-X vector on virtio-pci (VIRTIO_MSI_NO_VECTOR
 * for none) and ignored on virtio-mmio.
 */
void virtio_queue_setup(const struct virtio_dev *d, unsigned q, struct vring *r, uint64_t base,
                        uint16_t size, uint16_t msix_vector);
void virtio_driver_ok(const struct virtio_dev *d);
/* Kick queue q. */
void virtio_notify(const struct virtio_dev *d, unsigned q, const struct vring *r);
/* Read (and on virtio-mmio acknowledge) the interrupt status. */
uint32_t virtio_isr_ack(const struct virtio_dev *d);

/* Device-specific configuration space. */
uint8_t virtio_cfg_read8(const struct virtio_dev *d, unsigned off);
uint16_t virtio_cfg_read16(const struct virtio_dev *d, unsigned off);
uint32_t virtio_cfg_read32(const struct virtio_dev *d, unsigned off);

/* Fill descriptor i. */
void vring_set_desc(const struct vring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                    uint16_t next);
/* Make the chain starting at descriptor head available (the caller kicks). */
void vring_publish(struct vring *r, uint16_t head);
/* The used ring's index as the device last wrote it. */
uint16_t vring_used_idx(const struct vring *r);
/* Take the next used element if there is one: its chain head and written length. */
bool vring_pop_used(struct vring *r, uint16_t *head, uint32_t *len);

#endif
