/* layout.h: kiln's x86 guest-physical memory map and the fixed addresses of boot structures. */
#ifndef KILN_LAYOUT_H
#define KILN_LAYOUT_H

#include "memory.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

/* Low RAM: usable conventional memory ends where the EBDA starts. */
#define LAYOUT_EBDA_START 0x9fc00ULL  /* 639 KiB; MP table lives here (reserved) */
#define LAYOUT_VGA_START 0xa0000ULL   /* 640 KiB - 1 MiB: legacy hole, not RAM for the OS */
#define LAYOUT_BIOS_START 0xe0000ULL  /* reserved: ACPI RSDP search area */
#define LAYOUT_HIGH_START 0x100000ULL /* 1 MiB: start of extended memory */

/* 32-bit PCI hole: RAM above this is moved above 4 GiB (guest RAM's own split, memory.h). */
#define LAYOUT_PCI_HOLE_START GUEST_MEM_HOLE_START
#define LAYOUT_4G GUEST_MEM_HIGH_START

/* Boot structures written by kiln below 1 MiB. */
#define LAYOUT_GDT 0x500ULL
#define LAYOUT_IDT 0x540ULL
#define LAYOUT_START_INFO 0x6000ULL /* PVH hvm_start_info, memmap right after it */
#define LAYOUT_ZERO_PAGE 0x7000ULL  /* Linux boot_params */
#define LAYOUT_BOOT_STACK 0x8ff0ULL
#define LAYOUT_PML4 0x9000ULL
#define LAYOUT_PDPT 0xa000ULL
#define LAYOUT_PD 0xb000ULL /* 4 page directories: identity map of the first 4 GiB */
#define LAYOUT_PD_COUNT 4
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL /* bytes including the terminating NUL */

/* ACPI tables (RSDP first, where Linux's legacy scan finds it), below the MP table at 0xf0000. */
#define LAYOUT_ACPI_START 0xe0000ULL
#define LAYOUT_ACPI_END 0xf0000ULL

/* I/O ports of kiln's platform devices (see also the devices' own headers). */
#define PORT_ACPI_SLEEP_CONTROL 0x600 /* FADT sleep control register (hardware-reduced ACPI) */
#define PORT_ACPI_SLEEP_STATUS 0x601  /* FADT sleep status register */
#define PORT_ACPI_RESET 0x602         /* FADT reset register */
#define PORT_ACPI_PM1A_EVT 0x604      /* full ACPI (firmware boot): PM1 status and enable */
#define PORT_ACPI_PM1A_CNT 0x608      /* full ACPI: PM1 control (SCI_EN, SLP_TYP, SLP_EN) */
#define PORT_ACPI_PM_TMR 0x60c        /* full ACPI: 32-bit PM timer at 3.579545 MHz */
#define PORT_PVPANIC 0x505            /* pvpanic, as QEMU places it (ACPI QEMU0001) */

/* bzImage protected-mode kernel load address. */
#define LAYOUT_KERNEL_START 0x100000ULL

/* Real-mode reset vector F000:FFF0: Linux jumps here for a "BIOS" reboot. */
#define LAYOUT_RESET_VECTOR 0xffff0ULL

/* Fixed platform MMIO. */
#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL
#define LAYOUT_TSS 0xfffbd000ULL /* 3 pages for KVM_SET_TSS_ADDR (Intel) */
#define LAYOUT_IDENTITY_MAP 0xfffbc000ULL

#endif
