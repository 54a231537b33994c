/* acpi.h: ACPI tables for hardware-reduced x86 guests: RSDP, XSDT, FADT, DSDT, MADT. */
#ifndef KILN_ACPI_H
#define KILN_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "memory.h"
#include "platform/layout.h"

/* The SCI of the full hardware model: ISA IRQ 9, level-triggered. */
#define ACPI_SCI_IRQ 9
/*
 * Hardware-reduced ACPI: the Generic Event Device's interrupt (the power button), ISA IRQ 12,
 * edge-triggered, active high. No kiln device uses it otherwise (the i8042 has no mouse, and
 * Linux skips the i8042 altogether when the FADT says it is absent), nor do virtio-mmio slots.
 */
#define ACPI_GED_IRQ 12

/* The value written to the reset register, and the sleep type reported in \_S5. */
#define ACPI_RESET_VALUE 0x01
#define ACPI_S5_SLP_TYP 5

/* What the tables describe. */
struct acpi_config {
    unsigned cpus; /* APIC IDs 0..cpus-1 */
    /* ISA IRQs (bit n: IRQ n) declared level-triggered, active high: virtio-mmio lines. */
    uint16_t level_irqs;
    /* The VM's devices in the order they were made: each with a describe hook adds its entry
     * to the DSDT's \_SB scope. */
    struct device *const *devices;
    unsigned ndevices;
    /*
     * The full ACPI hardware model (firmware boot): PM1 blocks, PM timer, SCI, a FACS and a
     * CMOS RTC; otherwise hardware-reduced ACPI with kiln's sleep and reset registers.
     */
    bool full_hardware;
};

#define ACPI_RSDP_SIZE 36
#define ACPI_MAX_FIXUPS 16

/* A pointer field in the tables: its offset in the buffer and its size (4 or 8 bytes). */
struct acpi_pointer {
    uint32_t offset;
    uint8_t size;
};

/* A checksum byte at field that makes the bytes [start, start + len) sum to zero. */
struct acpi_checksum {
    uint32_t start, len, field;
};

/*
 * The tables in one buffer built for guest address base: the RSDP at offset 0, the others from
 * tables_offset. Every pointer holds base plus the offset of what it points at, and every
 * pointer and checksum is listed, which is what firmware's table loader needs to move them.
 */
struct acpi_tables {
    uint8_t *buf;
    uint32_t len;
    uint32_t tables_offset;
    uint64_t base;
    struct acpi_pointer pointers[ACPI_MAX_FIXUPS];
    unsigned npointers;
    struct acpi_checksum sums[ACPI_MAX_FIXUPS];
    unsigned nsums;
    bool overflow;
};

/* Build the tables cfg describes for base. Returns 0, -ENOMEM or -E2BIG (too large). */
int acpi_build(const struct acpi_config *cfg, uint64_t base, struct acpi_tables *t);
void acpi_tables_free(struct acpi_tables *t);

/*
 * Write the tables into [LAYOUT_ACPI_START, LAYOUT_ACPI_END), RSDP first, at ACPI_RSDP_ADDR
 * (stored in *rsdp too). Returns 0, -E2BIG if they do not fit, or -EFAULT.
 */
int acpi_write(const struct guest_mem *gm, const struct acpi_config *cfg, uint64_t *rsdp);

/* Where acpi_write puts the RSDP: known before the tables are, for the kernel's boot data. */
#define ACPI_RSDP_ADDR LAYOUT_ACPI_START

/* EISA ID (e.g. "PNP0501") in the 32-bit form AML stores for _HID. */
uint32_t acpi_eisaid(const char id[7]);

#endif
