/* pvh.c: the PVH guest: checks hvm_start_info and prints the command line it was handed. */
#include "guest.h"

#define HVM_START_MAGIC 0x336ec578
/* Offsets in struct hvm_start_info. */
#define HSI_MAGIC 0
#define HSI_VERSION 4
#define HSI_CMDLINE_PADDR 24
#define HSI_MEMMAP_PADDR 40
#define HSI_MEMMAP_ENTRIES 48

/* pvh_entry.S maps only the first 1 GiB. */
#define MAPPED_LIMIT (1ULL << 30)

int guest_main(void *start_info)
{
    uint64_t si = (uint64_t)(uintptr_t)start_info;

    if (si == 0 || si >= MAPPED_LIMIT || phys_read32(si + HSI_MAGIC) != HVM_START_MAGIC) {
        serial_puts("bad start_info\n");
        return 4;
    }
    serial_puts("Hello from PVH\n");
    serial_puts("pvh: start_info version ");
    serial_put_dec(phys_read32(si + HSI_VERSION));
    serial_puts(", memmap entries ");
    serial_put_dec(phys_read32(si + HSI_MEMMAP_ENTRIES));
    serial_putc('\n');

    uint64_t cmdline = phys_read64(si + HSI_CMDLINE_PADDR);
    serial_puts("pvh: cmdline: ");
    if (cmdline && cmdline < MAPPED_LIMIT)
        serial_puts((const char *)(uintptr_t)cmdline);
    else if (cmdline)
        serial_puts("(above 1 GiB)");
    serial_putc('\n');
    return 0;
}
