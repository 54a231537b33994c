/* loader.h: kernel loaders (bzImage, ELF64 with or without PVH) and the boot data they build. */
#ifndef KILN_LOADER_H
#define KILN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"
#include "memory.h"

/* How the boot vCPU enters the guest. */
enum boot_mode {
    BOOT_MODE_LONG64, /* 64-bit long mode, kiln's identity-mapped page tables, rsi = boot_info */
    BOOT_MODE_PVH32,  /* 32-bit protected mode, paging off, ebx = boot_info (hvm_start_info) */
    BOOT_MODE_RESET,  /* the state a PC powers on in: real mode at the reset vector (firmware) */
};

struct boot_entry {
    enum boot_mode mode;
    uint64_t entry;     /* guest-physical entry point */
    uint64_t boot_info; /* zero page (LONG64) or hvm_start_info (PVH32) address */
};

/*
 * A machine with BIOS firmware (and its devices): a configuration without a kernel boots through
 * it. A restored VM boots nothing: it has firmware when its snapshot had, and then the VM's own
 * configuration names the image in firmware_path (kiln_vm_create sets it from the snapshot).
 */
static inline bool boot_via_firmware(const struct kiln_config *cfg)
{
    if (cfg->restore_dir)
        return cfg->firmware_path != NULL;
    return !cfg->kernel_path || !cfg->kernel_path[0];
}

/* What to boot. */
struct boot_request {
    const char *kernel_path;
    const char *initrd_path; /* NULL: none */
    const char *cmdline;     /* never NULL */
    uint64_t rsdp_addr;      /* ACPI RSDP to hand to the kernel, 0: none */
};

/*
 * Load the kernel named in req (format detected from its contents), the initrd and the command
 * line into guest RAM and build the boot parameters (zero page with e820, or hvm_start_info).
 * Returns 0, or -errno with a one-line message naming the file and the reason in errmsg
 * (KILN_ERRMSG_MAX bytes).
 */
int load_kernel(const struct guest_mem *gm, const struct boot_request *req, struct boot_entry *out,
                char *errmsg);

/*
 * The same steps on images already in memory; used by load_kernel() and by unit tests on
 * synthesized images. name is used in messages. initrd may be NULL.
 */
int load_bzimage(const struct guest_mem *gm, const char *name, const uint8_t *img, size_t len,
                 const uint8_t *initrd, size_t initrd_len, const char *cmdline,
                 struct boot_entry *out, char *errmsg);
int load_elf(const struct guest_mem *gm, const char *name, const uint8_t *img, size_t len,
             const uint8_t *initrd, size_t initrd_len, const char *cmdline, struct boot_entry *out,
             char *errmsg);

#endif
