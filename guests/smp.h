/* smp.h: constants shared by the SMP guest's C code and its AP trampoline. */
#ifndef KILN_GUEST_SMP_H
#define KILN_GUEST_SMP_H

#include "apic.h"

/*
 * Where the BSP copies the real-mode trampoline: page aligned, below 1 MiB, clear of kiln's boot
 * structures (0x500-0xefff), command line (0x20000) and EBDA/MP table (0x9fc00 up).
 */
#define SMP_TRAMPOLINE_BASE 0x10000
#define SMP_MAX_CPUS 64        /* APIC IDs the guest can give a stack to */
#define SMP_AP_STACK_SIZE 4096 /* per AP; ap_main needs very little */

#endif
