/* memory.h: guest RAM (one anonymous mapping split around the PCI hole) and checked access. */
#ifndef KILN_MEMORY_H
#define KILN_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2

/* RAM stops below 4 GiB where the 32-bit PCI hole starts, and the rest resumes at 4 GiB. */
#define GUEST_MEM_HOLE_START 0xc0000000ULL
#define GUEST_MEM_HIGH_START 0x100000000ULL

struct guest_region {
    uint64_t gpa;  /* guest-physical start */
    uint64_t size; /* bytes */
    uint8_t *host; /* host address of gpa */
};

struct guest_mem {
    struct guest_region regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    uint8_t *base; /* the whole mapping */
    uint64_t size; /* RAM bytes (sum of region sizes) */
};

/*
 * Reserve ram_size bytes of guest RAM (anonymous, MAP_NORESERVE: pages are allocated on first
 * touch) and lay them out: [0, min(size, GUEST_MEM_HOLE_START)) and, for larger guests, the rest
 * from GUEST_MEM_HIGH_START.
 * Returns 0 or -errno.
 */
int guest_mem_init(struct guest_mem *gm, uint64_t ram_size);
/*
 * The same layout, with RAM mapped copy-on-write from the first ram_size bytes of file fd (a
 * snapshot's memory): nothing is copied up front, and the file is never written.
 */
int guest_mem_map_file(struct guest_mem *gm, uint64_t ram_size, int fd);
void guest_mem_free(struct guest_mem *gm);

/*
 * Host pointer for [gpa, gpa + len) if the whole range lies inside one RAM region, else NULL.
 * Overflow-safe for any gpa and len; len 0 is allowed (a valid gpa is still required).
 */
void *gpa_to_host(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copy to/from guest RAM. Return 0, or -EFAULT if the range is not entirely RAM. */
int guest_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);
int guest_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);

/* End (exclusive) of the RAM region that starts at 0: everything a 32-bit loader may use. */
uint64_t guest_low_end(const struct guest_mem *gm);

/* Bytes of guest RAM currently resident on the host (pages the guest or kiln touched). */
uint64_t guest_resident_bytes(const struct guest_mem *gm);

#endif
