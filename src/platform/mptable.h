/* mptable.h: the Intel MultiProcessor table, for guests that find CPUs without ACPI. */
#ifndef KILN_MPTABLE_H
#define KILN_MPTABLE_H

#include "memory.h"

/*
 * Write an Intel MultiProcessor table for cpus CPUs (APIC IDs 0..cpus-1, CPU 0 the BSP), one
 * I/O APIC at LAYOUT_IOAPIC with ID cpus, and ISA IRQ 0-15 routes, at LAYOUT_EBDA_START.
 * Returns 0 or -errno.
 */
int mptable_write(const struct guest_mem *gm, unsigned cpus);

#endif
