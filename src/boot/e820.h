/* e820.h: the BIOS memory map kiln reports for guest RAM (zero page, hvm_start_info). */
#ifndef KILN_E820_H
#define KILN_E820_H

#include <stdint.h>

#include "memory.h"

/* e820 entry types. */
#define E820_RAM 1
#define E820_RESERVED 2

struct e820_range {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

/*
 * The e820 map kiln reports for guest RAM gm: usable low memory up to the EBDA, the reserved
 * EBDA/BIOS area, RAM from 1 MiB up to the PCI hole, and RAM above 4 GiB. Returns the number of
 * entries written (at most max).
 */
unsigned e820_build(const struct guest_mem *gm, struct e820_range *out, unsigned max);

#endif
