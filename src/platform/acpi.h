/* acpi.h: ACPI tables for hardware-reduced x86 guests: RSDP, XSDT, FADT, DSDT, MADT. */
#ifndef KILN_ACPI_H
#define KILN_ACPI_H

#include <stdint.h>

#include "memory.h"

/* The value written to the reset register, and the sleep type reported in \_S5. */
#define ACPI_RESET_VALUE 0x01
#define ACPI_S5_SLP_TYP 5

/*
 * Write the tables for cpus vCPUs into [LAYOUT_ACPI_START, LAYOUT_ACPI_END), RSDP first.
 * Stores the RSDP address in *rsdp. Returns 0, -E2BIG if they do not fit, or -EFAULT.
 */
int acpi_write(const struct guest_mem *gm, unsigned cpus, uint64_t *rsdp);
/*
 * The same, with the ISA IRQs in level_irqs (bit n: IRQ n) declared level-triggered, active
 * high (MADT interrupt source overrides): virtio-mmio devices' lines.
 */
int acpi_write_level_irqs(const struct guest_mem *gm, unsigned cpus, uint16_t level_irqs,
                          uint64_t *rsdp);

/* EISA ID (e.g. "PNP0501") in the 32-bit form AML stores for _HID. */
uint32_t acpi_eisaid(const char id[7]);

#endif
