/* irq_routing.h: the VM's whole KVM GSI routing table, MSI routes with irqfds, level INTx lines. */
#ifndef KILN_IRQ_ROUTING_H
#define KILN_IRQ_ROUTING_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm.h"
#include "util.h"

/* KVM_CREATE_IRQCHIP's defaults: GSI 0-15 on the PICs and the I/O APIC, 16-23 on the I/O APIC. */
#define IRQ_ROUTING_IRQCHIP_GSIS 24
/* GSIs kiln hands out for MSI routes: [24, IRQ_ROUTING_MAX_GSI). Old KVMs allow 1024 routes. */
#define IRQ_ROUTING_MAX_GSI 1024

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so one object per VM owns it: the default
 * IRQCHIP entries plus every MSI route. Thread-safe (its own lock); nothing else in the VM may
 * call KVM_SET_GSI_ROUTING.
 */
struct irq_routing;

/* Start from KVM's default table (it is already installed, nothing is sent). */
int irq_routing_create(const struct vm_ioctl *vmi, const struct kiln_log *log,
                       struct irq_routing **out);
void irq_routing_destroy(struct irq_routing *r);

/* The ioctl path, for other VM ioctls of the same devices (KVM_IOEVENTFD). */
const struct vm_ioctl *irq_routing_vm(const struct irq_routing *r);

/* A new MSI route on a fresh GSI; *gsi receives it. Returns 0, -ENOSPC, or the ioctl error. */
int irq_routing_add_msi(struct irq_routing *r, uint64_t addr, uint32_t data, unsigned *gsi);
/* Point an MSI route at a new address/data. Returns 0, -ENOENT, or the ioctl error. */
int irq_routing_update_msi(struct irq_routing *r, unsigned gsi, uint64_t addr, uint32_t data);
/* Number of entries in the table (tests). */
unsigned irq_routing_count(const struct irq_routing *r);

/*
 * One MSI source (an MSI-X vector): a GSI with an MSI route and an irqfd bound to it, made on
 * first use; later sends re-route only when address/data changed. The owner serializes calls.
 */
struct irq_msi {
    int gsi; /* -1 until the first send */
    int fd;  /* the irqfd eventfd, -1 until the first send */
    uint64_t addr;
    uint32_t data;
};

void irq_msi_init(struct irq_msi *m);
/* Raise the interrupt addr/data names. Returns 0 or -errno (nothing was sent). */
int irq_msi_send(struct irq_routing *r, struct irq_msi *m, uint64_t addr, uint32_t data);
/* Close the irqfd (KVM drops it); the GSI stays allocated. */
void irq_msi_release(struct irq_msi *m);

/*
 * A level-triggered line on an I/O APIC GSI (PCI INTx): asserting writes fd, KVM keeps the line
 * high until the guest's EOI, then lowers it and signals resample_fd; the owner then asserts
 * again if its interrupt condition still holds.
 */
struct irq_level {
    unsigned gsi;
    int fd;
    int resample_fd;
};

int irq_level_init(struct irq_routing *r, unsigned gsi, struct irq_level *l);
void irq_level_release(struct irq_level *l);
int irq_level_assert(const struct irq_level *l);
/* Consume a resample notification: true if the guest acknowledged the line since last time. */
bool irq_level_resampled(const struct irq_level *l);

/*
 * An ISA-style edge line on irqchip GSI gsi (< IRQ_ROUTING_IRQCHIP_GSIS): each write of 1 to *fd
 * (an eventfd bound with KVM_IRQFD) pulses the line. The caller closes *fd. Returns 0 or -errno.
 */
int irq_edge_init(struct irq_routing *r, unsigned gsi, int *fd);

#endif
