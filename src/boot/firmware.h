/* firmware.h: BIOS firmware boot: the image read from its file, its place in the memory map. */
#ifndef KILN_FIRMWARE_H
#define KILN_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "boot/loader.h"
#include "memory.h"

/* The largest image: it ends at 4 GiB and must stay above KVM's TSS pages (platform/layout.h). */
#define FIRMWARE_MAX_SIZE (256u << 10)
#define FIRMWARE_MIN_SIZE (64u << 10)
/* The image's last 128 KiB (all of a smaller one) also show at 0xe0000-0xfffff, below 1 MiB. */
#define FIRMWARE_LEGACY_END 0x100000ULL
#define FIRMWARE_LEGACY_MAX (128u << 10)

struct firmware {
    uint8_t *image; /* page-aligned copy of the file, mapped read-only at 4 GiB - size */
    size_t size;
};

/*
 * Read the BIOS image at path (a multiple of 64 KiB, at most FIRMWARE_MAX_SIZE, ending in a
 * reset vector), copy its legacy part into guest RAM below 1 MiB, and say how vCPU 0 starts:
 * at the reset vector, as a PC does. Returns 0, or -errno with a one-line message naming path.
 */
int firmware_load(const struct guest_mem *gm, const char *path, struct firmware *fw,
                  struct boot_entry *entry, char *errmsg);

/*
 * A copy of an image already in memory (a snapshot's), checked as firmware_load checks a file,
 * and nothing written to guest RAM (the snapshot's RAM has the legacy part). Returns 0, -EINVAL
 * if it does not look like a BIOS image, or -ENOMEM.
 */
int firmware_copy(const void *image, size_t size, struct firmware *fw);

/* Where the image sits: it ends at 4 GiB. */
static inline uint64_t firmware_gpa(const struct firmware *fw)
{
    return (1ULL << 32) - fw->size;
}

void firmware_free(struct firmware *fw);

#endif
