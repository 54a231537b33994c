/* bootparams.c: command line, initrd placement and the Linux zero page shared by the loaders. */
#include "boot/bootparams.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <string.h>

#include "boot/e820.h"
#include "platform/layout.h"
#include "util.h"

/* Where the boot sector signature and the setup header magic sit in a bzImage. */
#define BZ_BOOT_FLAG_OFF 0x1fe
#define BZ_HEADER_OFF 0x202

/* Top of the real-mode heap, relative to the setup segment (boot protocol 2.01+). */
#define BOOT_HEAP_END (0xfe00 - 0x200)

int blob_read(const struct boot_blob *b, uint64_t off, void *dst, uint64_t len)
{
    if (!range_within(off, len, b->len))
        return -EINVAL;
    if (b->data) {
        memcpy(dst, b->data + off, len);
        return 0;
    }
    /* Straight from the file to its destination (usually guest RAM): no bounce buffer. */
    return pread_full(b->fd, dst, len, off);
}

bool bzimage_detect(const uint8_t *img, size_t len)
{
    if (!img || len < BZ_HEADER_OFF + 4)
        return false;
    uint16_t flag;
    uint32_t magic;
    memcpy(&flag, img + BZ_BOOT_FLAG_OFF, sizeof(flag));
    memcpy(&magic, img + BZ_HEADER_OFF, sizeof(magic));
    return flag == BOOT_FLAG_MAGIC && magic == BOOT_HEADER_MAGIC;
}

int boot_cmdline_check(const struct boot_input *in, uint64_t limit, char *errmsg)
{
    /* The NUL must fit too, and the area ends before LAYOUT_CMDLINE + LAYOUT_CMDLINE_MAX. */
    if (limit > LAYOUT_CMDLINE_MAX - 1)
        limit = LAYOUT_CMDLINE_MAX - 1;
    size_t n = strlen(in->cmdline);
    if (n > limit)
        return kiln_fail(errmsg, E2BIG,
                         "kernel '%s': command line is %zu bytes, more than the %llu allowed",
                         in->kernel.name, n, (unsigned long long)limit);
    return 0;
}

int boot_cmdline_write(const struct guest_mem *gm, const struct boot_input *in, char *errmsg)
{
    if (guest_write(gm, LAYOUT_CMDLINE, in->cmdline, strlen(in->cmdline) + 1) < 0)
        return kiln_fail(errmsg, ENOMEM, "kernel '%s': no guest RAM for the command line at 0x%llx",
                         in->kernel.name, LAYOUT_CMDLINE);
    return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

int boot_initrd_place(const struct guest_mem *gm, const struct boot_input *in, uint64_t floor,
                      uint64_t ceiling, uint64_t *addr, char *errmsg)
{
    *addr = 0;
    if (!in->initrd.len)
        return 0;
    /* 32-bit loaders and the zero page's 32-bit ramdisk fields: stay in the low region. */
    ceiling = min_u64(ceiling, min_u64(guest_low_end(gm), LAYOUT_PCI_HOLE_START));
    uint64_t len = in->initrd.len;
    /* floor may be anywhere in guest RAM (even above 4 GiB); compare before aligning. */
    if (len > ceiling || floor > ceiling - len ||
        align_down(ceiling - len, 4096) < align_up(floor, 4096))
        return kiln_fail(errmsg, ENOMEM,
                         "initrd '%s': %llu bytes do not fit below 0x%llx above the kernel's end "
                         "at 0x%llx",
                         in->initrd.name, (unsigned long long)len, (unsigned long long)ceiling,
                         (unsigned long long)floor);
    *addr = align_down(ceiling - len, 4096);
    return 0;
}

int boot_initrd_write(const struct guest_mem *gm, const struct boot_input *in, uint64_t addr,
                      char *errmsg)
{
    const struct boot_blob *b = &in->initrd;
    if (!b->len)
        return 0;
    uint8_t *dst = gpa_to_host(gm, addr, b->len);
    if (!dst)
        return kiln_fail(errmsg, EFAULT, "initrd '%s': cannot write at 0x%llx", b->name,
                         (unsigned long long)addr);
    int ret = blob_read(b, 0, dst, b->len);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "initrd '%s': read failed: %s", b->name, strerror(-ret));
    return 0;
}

/* Copy kiln's memory map into the zero page. */
static void bootparams_set_e820(const struct guest_mem *gm, struct boot_params *bp)
{
    struct e820_range map[E820_MAX_ENTRIES_ZEROPAGE];
    unsigned n = e820_build(gm, map, ARRAY_SIZE(map));
    for (unsigned i = 0; i < n; i++) {
        struct boot_e820_entry e = {.addr = map[i].addr, .size = map[i].size, .type = map[i].type};
        memcpy(&bp->e820_table[i], &e, sizeof(e));
    }
    bp->e820_entries = (uint8_t)n;
}

int bootparams_write(const struct guest_mem *gm, struct boot_params *bp,
                     const struct boot_input *in, uint64_t initrd_addr, char *errmsg)
{
    uint64_t initrd_size = in->initrd.len;
    bp->hdr.type_of_loader = 0xff; /* "undefined" loader ID */
    bp->hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
    bp->hdr.heap_end_ptr = BOOT_HEAP_END;
    bp->hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
    bp->ext_cmd_line_ptr = 0;
    /* Initrd and command line live below 4 GiB, so the ext_* high halves stay zero. */
    bp->hdr.ramdisk_image = (uint32_t)initrd_addr;
    bp->hdr.ramdisk_size = (uint32_t)initrd_size;
    bp->ext_ramdisk_image = 0;
    bp->ext_ramdisk_size = 0;
    /* setup_data is a loader-built list; a pointer taken from the file would be garbage. */
    bp->hdr.setup_data = 0;
    bp->acpi_rsdp_addr = in->rsdp_addr;
    bootparams_set_e820(gm, bp);
    if (guest_write(gm, LAYOUT_ZERO_PAGE, bp, sizeof(*bp)) < 0)
        return kiln_fail(errmsg, ENOMEM, "no guest RAM for the zero page at 0x%llx",
                         LAYOUT_ZERO_PAGE);
    return 0;
}
