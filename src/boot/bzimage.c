/* bzimage.c: loads a Linux bzImage through the 64-bit boot protocol (no real-mode setup code). */
#include <asm/bootparam.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "boot/bootparams.h"
#include "boot/loader.h"
#include "platform/layout.h"
#include "util.h"

#define BZ_SETUP_HEADER_OFF 0x1f1
#define BZ_HEADER_OFF 0x202
#define BZ_JUMP_OFF 0x201 /* the jump's 8-bit displacement: where the setup header ends */
#define BZ_SECTOR 512
#define BZ_DEFAULT_SETUP_SECTS 4 /* setup_sects 0 means 4 (ancient boot sectors) */
#define BZ_ENTRY64_OFF 0x200     /* startup_64, relative to the protected-mode load address */
#define BZ_MIN_VERSION 0x020c    /* 2.12: xloadflags and XLF_KERNEL_64 */

/* What the checks learn about the image before anything is written to guest RAM. */
struct bz_plan {
    uint8_t head[BOOT_BLOB_HEAD]; /* start of the file: boot sector and setup header */
    size_t head_len;
    struct setup_header hdr; /* from the file, zero-filled where the file is short */
    uint64_t setup_size;     /* boot sector and setup sectors: skipped, never run */
    uint64_t payload_len;    /* protected-mode kernel, loaded at LAYOUT_KERNEL_START */
    uint64_t kernel_end;     /* end of the image and of the kernel's decompression area */
    uint64_t initrd_addr;
};

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static int bz_parse_header(const struct boot_blob *k, struct bz_plan *p, char *errmsg)
{
    p->head_len = k->len < sizeof(p->head) ? k->len : sizeof(p->head);
    int ret = blob_read(k, 0, p->head, p->head_len);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "kernel '%s': read failed: %s", k->name, strerror(-ret));
    if (!bzimage_detect(p->head, p->head_len))
        return kiln_fail(errmsg, ENOEXEC, "kernel '%s': not a bzImage (no boot flag or HdrS magic)",
                         k->name);
    memset(&p->hdr, 0, sizeof(p->hdr));
    size_t avail = p->head_len - BZ_SETUP_HEADER_OFF;
    memcpy(&p->hdr, p->head + BZ_SETUP_HEADER_OFF, avail < sizeof(p->hdr) ? avail : sizeof(p->hdr));
    unsigned version = p->hdr.version;
    if (version < BZ_MIN_VERSION)
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': boot protocol %u.%02u is too old (kiln needs 2.12 or later)",
                         k->name, version >> 8, version & 0xff);
    if (!(p->hdr.xloadflags & XLF_KERNEL_64))
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)",
                         k->name);
    return 0;
}

static int bz_parse_sizes(const struct boot_blob *k, struct bz_plan *p, char *errmsg)
{
    uint64_t sects = p->hdr.setup_sects ? p->hdr.setup_sects : BZ_DEFAULT_SETUP_SECTS;
    p->setup_size = (sects + 1) * BZ_SECTOR;
    if (p->setup_size > k->len)
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': truncated bzImage (setup needs %llu bytes, file has %zu)",
                         k->name, (unsigned long long)p->setup_size, k->len);
    if (p->setup_size == k->len)
        return kiln_fail(errmsg, ENOEXEC,
                         "kernel '%s': truncated bzImage (no kernel after the %llu setup bytes)",
                         k->name, (unsigned long long)p->setup_size);
    p->payload_len = k->len - p->setup_size;
    return 0;
}

/*
 * Where the kernel decompresses itself: its runtime start, computed as boot.rst describes under
 * init_size. A relocatable kernel moves up to pref_address and kernel_alignment, a fixed one to
 * pref_address; with a typical 16 MiB pref_address that is well above the 1 MiB load address.
 * Returns false if the header's values overflow.
 */
static bool bz_runtime_start(const struct setup_header *h, uint64_t *start)
{
    uint64_t s = h->pref_address ? h->pref_address : LAYOUT_KERNEL_START;
    if (!h->relocatable_kernel) {
        *start = s;
        return true;
    }
    s = max_u64(s, LAYOUT_KERNEL_START);
    uint64_t align = h->kernel_alignment;
    /* Only a power of two is a meaningful alignment; the kernel's own file says which. */
    if (align > 1 && (align & (align - 1)) == 0) {
        if (s > UINT64_MAX - (align - 1))
            return false;
        s = align_up(s, align);
    }
    *start = s;
    return true;
}

/* The image sits at 1 MiB and decompresses into [runtime start, + init_size): both must fit. */
static int bz_check_fit(const struct guest_mem *gm, const struct boot_blob *k, struct bz_plan *p,
                        char *errmsg)
{
    uint64_t low = guest_low_end(gm), start = UINT64_MAX;
    bool ok = bz_runtime_start(&p->hdr, &start) && range_within(start, p->hdr.init_size, low) &&
              range_within(LAYOUT_KERNEL_START, p->payload_len, low);
    uint64_t run_end =
        start > UINT64_MAX - p->hdr.init_size ? UINT64_MAX : start + p->hdr.init_size;
    uint64_t end = max_u64(run_end, LAYOUT_KERNEL_START + p->payload_len);
    if (!ok)
        return kiln_fail(errmsg, ENOMEM,
                         "kernel '%s': needs %llu MiB of RAM to load, the VM has %llu MiB", k->name,
                         (unsigned long long)(end / MIB + (end % MIB != 0)),
                         (unsigned long long)(low / MIB));
    p->kernel_end = end;
    return 0;
}

static int bz_plan(const struct guest_mem *gm, const struct boot_input *in, struct bz_plan *p,
                   char *errmsg)
{
    int ret = bz_parse_header(&in->kernel, p, errmsg);
    if (!ret)
        ret = bz_parse_sizes(&in->kernel, p, errmsg);
    if (!ret)
        ret = bz_check_fit(gm, &in->kernel, p, errmsg);
    if (!ret)
        ret = boot_cmdline_check(in, p->hdr.cmdline_size, errmsg);
    /* initrd_addr_max is the last byte the initrd may occupy. */
    if (!ret)
        ret = boot_initrd_place(gm, in, p->kernel_end, (uint64_t)p->hdr.initrd_addr_max + 1,
                                &p->initrd_addr, errmsg);
    return ret;
}

/* The zero page starts from the file's setup header, as far as the file says it extends. */
static int bz_write_zero_page(const struct guest_mem *gm, const struct boot_input *in,
                              const struct bz_plan *p, char *errmsg)
{
    struct boot_params bp;
    memset(&bp, 0, sizeof(bp));
    size_t hdr_len = BZ_HEADER_OFF + p->head[BZ_JUMP_OFF] - BZ_SETUP_HEADER_OFF;
    if (hdr_len > sizeof(bp.hdr))
        hdr_len = sizeof(bp.hdr);
    /* 0x1f1 + sizeof(hdr) < BOOT_BLOB_HEAD <= 5 sectors <= setup_size: the head holds it. */
    memcpy(&bp.hdr, p->head + BZ_SETUP_HEADER_OFF, hdr_len);
    return bootparams_write(gm, &bp, in, p->initrd_addr, errmsg);
}

int bzimage_load(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
                 char *errmsg)
{
    struct bz_plan p;
    int ret = bz_plan(gm, in, &p, errmsg);
    if (ret < 0)
        return ret;
    /* bz_plan checked that the payload fits in RAM from LAYOUT_KERNEL_START. */
    ret = blob_read(&in->kernel, p.setup_size, gpa_to_host(gm, LAYOUT_KERNEL_START, p.payload_len),
                    p.payload_len);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "kernel '%s': read failed: %s", in->kernel.name,
                         strerror(-ret));
    ret = boot_initrd_write(gm, in, p.initrd_addr, errmsg);
    if (!ret)
        ret = boot_cmdline_write(gm, in, errmsg);
    if (!ret)
        ret = bz_write_zero_page(gm, in, &p, errmsg);
    if (ret < 0)
        return ret;
    *out = (struct boot_entry){.mode = BOOT_MODE_LONG64,
                               .entry = LAYOUT_KERNEL_START + BZ_ENTRY64_OFF,
                               .boot_info = LAYOUT_ZERO_PAGE};
    return 0;
}
