/* bootparams.h: helpers shared by the kernel loaders (zero page, command line, initrd). */
#ifndef KILN_BOOTPARAMS_H
#define KILN_BOOTPARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory.h"

struct boot_params;
/* What a loader produces (boot/loader.h); the loaders behind load_kernel() fill it in. */
struct boot_entry;

/* setup_header.boot_flag and setup_header.header values of a Linux boot sector. */
#define BOOT_FLAG_MAGIC 0xaa55
#define BOOT_HEADER_MAGIC 0x53726448 /* "HdrS" */

/* An image held in host memory, and the name it goes by in messages. */
struct boot_blob {
    const char *name;
    const uint8_t *data; /* contents in host memory, or NULL */
    size_t len;          /* 0: absent */
    int fd;              /* with data NULL and len > 0: read the contents from this file */
};

/* Everything a loader needs besides guest RAM. */
struct boot_input {
    struct boot_blob kernel;
    struct boot_blob initrd;
    const char *cmdline; /* never NULL */
    uint64_t rsdp_addr;  /* ACPI RSDP for the kernel, 0: none */
};

/* Loaders behind load_kernel(), load_bzimage() and load_elf(). */
int bzimage_load(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
                 char *errmsg);
int elf_load(const struct guest_mem *gm, const struct boot_input *in, struct boot_entry *out,
             char *errmsg);

/*
 * Open path as an image of at most limit bytes (limit_desc says what the limit is, for the
 * message) and size it into out, with its fd. A missing, unreadable, non-regular, oversized or
 * empty (empty_err) file fails with a one-line message naming what and path.
 */
int boot_open(const char *what, const char *path, uint64_t limit, const char *limit_desc,
              int empty_err, struct boot_blob *out, char *errmsg);

/* Bytes at the start of a kernel image that hold every header kiln detects formats by. */
#define BOOT_BLOB_HEAD 1024

/*
 * Copy [off, off + len) of an image to dst: from memory, or read from its file. Returns 0,
 * -EINVAL if the range is not inside the image, or -errno from the read.
 */
int blob_read(const struct boot_blob *b, uint64_t off, void *dst, uint64_t len);

/* True if img carries the bzImage boot sector flag and the "HdrS" setup header magic. */
bool bzimage_detect(const uint8_t *img, size_t len);

/* Check that the command line has at most limit bytes (NUL excluded) and fits LAYOUT_CMDLINE. */
int boot_cmdline_check(const struct boot_input *in, uint64_t limit, char *errmsg);

/* Copy the (checked) command line, NUL-terminated, to LAYOUT_CMDLINE. */
int boot_cmdline_write(const struct guest_mem *gm, const struct boot_input *in, char *errmsg);

/*
 * Pick the initrd address: page-aligned, as high as possible, at or above floor and ending at or
 * below min(ceiling, guest_low_end, LAYOUT_PCI_HOLE_START). *addr is 0 when there is no initrd.
 */
int boot_initrd_place(const struct guest_mem *gm, const struct boot_input *in, uint64_t floor,
                      uint64_t ceiling, uint64_t *addr, char *errmsg);

/* Copy the initrd (if any) to addr, as chosen by boot_initrd_place(). */
int boot_initrd_write(const struct guest_mem *gm, const struct boot_input *in, uint64_t addr,
                      char *errmsg);

/*
 * Fill the fields of bp that kiln owns (loader type, load flags, heap, command line pointer,
 * initrd of in placed at initrd_addr, ACPI RSDP, e820 table) and write bp to LAYOUT_ZERO_PAGE.
 * The setup header's magic fields are the caller's business.
 */
int bootparams_write(const struct guest_mem *gm, struct boot_params *bp,
                     const struct boot_input *in, uint64_t initrd_addr, char *errmsg);

#endif
