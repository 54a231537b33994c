/* virtio_attach.h: put a virtio device on the VM's transport (virtio-pci or virtio-mmio). */
#ifndef KILN_VIRTIO_ATTACH_H
#define KILN_VIRTIO_ATTACH_H

#include <stddef.h>

#include "device.h"
#include "kiln.h"
#include "pci/pci.h"
#include "platform/irq_routing.h"
#include "util.h"
#include "virtio/virtio.h"

/* Where the VM's virtio devices go; the builder fills it in, attach hands out the slots. */
struct virtio_env {
    enum kiln_transport transport;
    struct pci_bus *pci;      /* virtio-pci: functions go into its next free slots */
    struct irq_routing *irqs; /* MSI routes, INTx and level lines, KVM_IOEVENTFD */
    const struct kiln_log *log;
    unsigned mmio_next; /* virtio-mmio: the next slot (window and GSI, virtio_mmio_slot) */
};

/*
 * Attach vd (initialized, with its device ops) to the next slot of env's transport. The
 * transport owns vd from this call on, even when it fails (vd's destroy hook is then called).
 * *out is the transport as a device: its ranges (virtio-mmio's window; a PCI function's BARs
 * are reached through the PCI bus instead) and its start, stop, destroy and stats hooks, which
 * also drive vd's. Build time only. Returns 0 or -errno.
 */
int virtio_attach(struct virtio_env *env, struct virtio_device *vd, struct device **out);

/* "virtio-pci" or "virtio-mmio", for messages. */
const char *virtio_transport_name(const struct virtio_env *env);

/* virtio-mmio only: the kernel command line entries (virtio_mmio.device=) of the first n slots,
 * appended to the NUL-terminated string in buf of size bytes. Returns 0 or -ENOSPC. */
int virtio_mmio_cmdline(char *buf, size_t size, unsigned n);
/* virtio-mmio only: the ISA IRQs (bit n: IRQ n) the first n slots use. */
uint16_t virtio_mmio_level_irqs(unsigned n);

#endif
