/* e820.c: prints and sanity-checks the e820 memory map kiln put in the zero page. */
#include "guest.h"

#define E820_RAM 1
#define LEGACY_HOLE_START 0xa0000ULL
#define LEGACY_HOLE_END 0x100000ULL
#define PCI_HOLE_START 0xc0000000ULL
#define PCI_HOLE_END 0x100000000ULL

/* True if [a, a + len) and [b_start, b_end) intersect. */
static bool overlaps(uint64_t a, uint64_t len, uint64_t b_start, uint64_t b_end)
{
    return a < b_end && b_start < a + len;
}

int guest_main(void *zero_page)
{
    const uint8_t *bp = zero_page;
    unsigned n = bp[BP_E820_ENTRIES];
    uint64_t usable = 0, prev_end = 0;

    GUEST_ASSERT(n > 0 && n <= BP_E820_MAX);
    for (unsigned i = 0; i < n; i++) {
        /* struct boot_e820_entry: u64 addr, u64 size, u32 type, packed (20 bytes). */
        uint64_t entry = (uint64_t)(uintptr_t)bp + BP_E820_TABLE + 20 * i;
        uint64_t addr = phys_read64(entry), size = phys_read64(entry + 8);
        uint32_t type = phys_read32(entry + 16);

        serial_puts("e820: ");
        serial_put_hex(addr);
        serial_puts(" size ");
        serial_put_hex(size);
        serial_puts(" type ");
        serial_put_dec(type);
        serial_putc('\n');
        /* Sorted, non-empty, non-overlapping, and no RAM where PC devices decode addresses. */
        GUEST_ASSERT(size != 0 && addr + size > addr);
        GUEST_ASSERT(addr >= prev_end);
        prev_end = addr + size;
        if (type == E820_RAM) {
            GUEST_ASSERT(!overlaps(addr, size, LEGACY_HOLE_START, LEGACY_HOLE_END));
            GUEST_ASSERT(!overlaps(addr, size, PCI_HOLE_START, PCI_HOLE_END));
            usable += size;
        }
    }
    serial_puts("e820: usable_kib=");
    serial_put_dec(usable >> 10);
    serial_putc('\n');
    return 0;
}
