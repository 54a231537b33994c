/*
 * vp_common.h: what the vpci and vmmio guests share on top of the virtio driver core: the IDT
 * over vpci_vectors.S, IOAPIC routing, and virtio-blk request rounds on queue 0.
 */
#ifndef KILN_GUEST_VP_COMMON_H
#define KILN_GUEST_VP_COMMON_H

#include <stdint.h>

#include "virtio.h"

#define VEC_MSIX 0x40
#define VEC_INTX 0x41
#define VEC_SPURIOUS 0x2f

/* The device both guests drive, set before interrupts are enabled. */
extern struct virtio_dev vp_dev;
/* Interrupts seen: MSI-X, INTx with the queue bit set in the ISR, INTx with it clear. */
extern volatile uint32_t vp_msix_count, vp_intx_count, vp_intx_spurious;

/* Load an IDT: exceptions print "<name>: exception N" and exit 9; MSI-X, INTx, spurious. */
void vp_idt_setup(const char *name);
/* Route IOAPIC pin to VEC_INTX on this APIC; flags are redirection entry bits (trigger etc.). */
void vp_ioapic_route(unsigned pin, unsigned apic, uint32_t flags);

/* Negotiate VERSION_1 and set up queue 0 (8 entries) of the virtio-blk device vp_dev;
 * msix_vector as for virtio_queue_setup. */
void vp_blk_init(uint16_t msix_vector);
/*
 * Read sector 0 (it must start with magic), write tag to sector 1 and read it back, counting
 * one interrupt per request in *count.
 */
void vp_blk_io_round(volatile uint32_t *count, const char *magic, const char *tag);

#endif
