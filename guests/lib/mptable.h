/* mptable.h: finding and walking the Intel MP configuration table from a test guest. */
#ifndef KILN_GUEST_MPTABLE_H
#define KILN_GUEST_MPTABLE_H

#include <stdint.h>

/* Entry types and fields (MP specification 1.4, chapter 4). */
#define MP_ENTRY_PROCESSOR 0 /* 20 bytes: [1] APIC ID, [3] flags */
#define MP_ENTRY_BUS 1       /* 8 bytes: [1] bus ID, [2..7] type string ("ISA   ") */
#define MP_ENTRY_IOAPIC 2    /* 8 bytes: [1] ID, [3] flags, [4..7] address */
#define MP_ENTRY_IOINT 3     /* 8 bytes: [1] type, [4] bus, [5] bus IRQ, [6] I/O APIC, [7] pin */
#define MP_ENTRY_LINT 4      /* 8 bytes */
#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02
#define MP_INT 0 /* I/O interrupt entry type: vectored interrupt */

/*
 * Physical address of the MP configuration table, found through the floating pointer in the
 * EBDA or the BIOS area, with both checksums verified; 0 (after printing why) if there is none.
 */
uint64_t mp_config_table(void);

/* Bounds of the entries: iterate with mp_entry_next() while e < end. */
uint64_t mp_entries_start(uint64_t cfg);
uint64_t mp_entries_end(uint64_t cfg);

/* The entry after e; asserts that e has a valid type. */
uint64_t mp_entry_next(uint64_t e);

#endif
