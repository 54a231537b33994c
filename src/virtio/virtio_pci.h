/* virtio_pci.h: the modern virtio-pci transport: capabilities, MSI-X or INTx, ioeventfd kicks. */
#ifndef KILN_VIRTIO_PCI_H
#define KILN_VIRTIO_PCI_H

#include <uv.h>

#include "platform/irq_routing.h"
#include "pci/pci.h"
#include "util.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* modern device ID = 0x1040 + virtio device ID */
#define VIRTIO_PCI_REVISION 1         /* >= 1: not a transitional device */

/* Capability types (virtio_pci_cap.cfg_type). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Offsets inside a virtio capability (from its first byte). */
#define VIRTIO_PCI_CAP_LEN 2
#define VIRTIO_PCI_CAP_CFG_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_CAP_NOTIFY_MULT 16 /* notify capability */
#define VIRTIO_PCI_CAP_PCI_CFG_DATA 16

/* BAR 0 (64-bit): the four virtio structures, each on its own page. */
#define VIRTIO_PCI_CAPS_BAR 0
#define VIRTIO_PCI_CAPS_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_ISR_LEN 1
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_DEVICE_MAX 0x1000 /* largest config_len */
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_LEN 2 /* every queue kicks here: notify_off_multiplier is 0 */

/* BAR 2 (32-bit): MSI-X table and PBA. */
#define VIRTIO_PCI_MSIX_BAR 2
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x800

/* Common configuration registers (struct virtio_pci_common_cfg). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESC 0x20
#define VIRTIO_PCI_COMMON_Q_DRIVER 0x28
#define VIRTIO_PCI_COMMON_Q_DEVICE 0x30

struct virtio_pci;

struct virtio_pci_config {
    struct pci_bus *bus;      /* the device is plugged into the next free slot */
    struct irq_routing *irqs; /* MSI routes, the INTx irqfd, and KVM_IOEVENTFD via its ioctl */
    const struct kiln_log *log;
};

/*
 * Put vd (initialized with virtio_device_init, at least one queue) on the PCI bus: becomes its
 * transport, places its BARs, registers one KVM ioeventfd per queue on the notify address and
 * an INTx irqfd. Build time only. Returns 0 or -errno.
 */
int virtio_pci_create(struct virtio_device *vd, const struct virtio_pci_config *cfg,
                      struct virtio_pci **out);
/* Unplug and free; after virtio_pci_stop, before the device, the bus and the routing go. */
void virtio_pci_destroy(struct virtio_pci *t);

/*
 * Start/stop the loop side (the loop thread, like serial_start/serial_stop): an async handle
 * for status work (activation, reset), a poller per queue kick eventfd and one for INTx
 * resampling. virtio_pci_stop is safe after a failed or no start; it only uv_close()s, the
 * caller runs the loop once more for the close callbacks.
 */
int virtio_pci_start(struct virtio_pci *t, uv_loop_t *loop);
void virtio_pci_stop(struct virtio_pci *t);

/* The PCI function (slot, BAR addresses), for tests and diagnostics. */
struct pci_device *virtio_pci_function(struct virtio_pci *t);

/*
 * The transport as the VM's device (device.h): BAR accesses, and start/stop/destroy/stats that
 * also drive vd's own hooks. Its destroy frees vd too (the VM hands vd over with it); tests
 * that own vd call virtio_pci_destroy instead.
 */
struct device *virtio_pci_device(struct virtio_pci *t);

#endif
