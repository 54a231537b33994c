/* e820.c: the BIOS-style memory map kiln reports to guests (zero page and PVH memmap). */
#include <stdint.h>

#include "platform/layout.h"
#include "boot/e820.h"

/* Appends entries while there is room; empty ranges are dropped. */
struct e820_out {
    struct e820_range *ranges;
    unsigned max;
    unsigned n;
};

static void e820_add(struct e820_out *o, uint64_t start, uint64_t end, uint32_t type)
{
    if (end <= start || o->n >= o->max)
        return;
    o->ranges[o->n++] = (struct e820_range){.addr = start, .size = end - start, .type = type};
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

unsigned e820_build(const struct guest_mem *gm, struct e820_range *out, unsigned max)
{
    struct e820_out o = {.ranges = out, .max = max, .n = 0};
    uint64_t low = guest_low_end(gm);
    /*
     * Below 1 MiB only what is backed by RAM is reported, clipped to the RAM end, so a tiny
     * guest never gets a range beyond its memory. The VGA/option ROM hole [640 KiB, 896 KiB) is
     * left out of the map entirely, as on a PC.
     */
    e820_add(&o, 0, min_u64(low, LAYOUT_EBDA_START), E820_RAM);
    /* EBDA: holds the MP floating pointer. */
    e820_add(&o, LAYOUT_EBDA_START, min_u64(low, LAYOUT_VGA_START), E820_RESERVED);
    /* BIOS area: MP configuration table and the ACPI RSDP search area. */
    e820_add(&o, LAYOUT_BIOS_START, min_u64(low, LAYOUT_HIGH_START), E820_RESERVED);
    e820_add(&o, LAYOUT_HIGH_START, low, E820_RAM);
    for (unsigned i = 0; i < gm->nregions && i < GUEST_MEM_MAX_REGIONS; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (r->gpa != 0 && r->size <= UINT64_MAX - r->gpa)
            e820_add(&o, r->gpa, r->gpa + r->size, E820_RAM);
    }
    return o.n;
}
