/* memory.c: guest RAM allocation, layout around the PCI hole, and checked translation. */
#include "memory.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

#define HUGE_PAGE (2ULL << 20)

/* The regions of ram_size bytes of RAM at base: below the PCI hole, and the rest above 4 GiB. */
static void layout(struct guest_mem *gm, uint8_t *base, uint64_t ram_size)
{
    gm->base = base;
    gm->size = ram_size;
    uint64_t low = ram_size < GUEST_MEM_HOLE_START ? ram_size : GUEST_MEM_HOLE_START;
    gm->regions[0] = (struct guest_region){.gpa = 0, .size = low, .host = gm->base};
    gm->nregions = 1;
    if (ram_size > low) {
        gm->regions[1] = (struct guest_region){
            .gpa = GUEST_MEM_HIGH_START, .size = ram_size - low, .host = gm->base + low};
        gm->nregions = 2;
    }
}

static bool size_ok(uint64_t ram_size)
{
    return ram_size != 0 && ram_size % 4096 == 0 && ram_size <= (1ULL << 46);
}

int guest_mem_init(struct guest_mem *gm, uint64_t ram_size)
{
    memset(gm, 0, sizeof(*gm));
    if (!size_ok(ram_size))
        return -EINVAL;
    /*
     * Reserve 2 MiB more than needed and trim, so guest RAM starts on a huge-page boundary:
     * transparent huge pages then back it, which cuts page faults and EPT entries.
     */
    uint64_t map_size = ram_size + HUGE_PAGE;
    uint8_t *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    uint8_t *base = (uint8_t *)align_up((uintptr_t)p, HUGE_PAGE);
    if (base > p)
        munmap(p, (size_t)(base - p));
    if (base + ram_size < p + map_size)
        munmap(base + ram_size, (size_t)(p + map_size - (base + ram_size)));
    madvise(base, ram_size, MADV_HUGEPAGE);
    /* Guest RAM never belongs in a core dump of kiln. */
    madvise(base, ram_size, MADV_DONTDUMP);
    layout(gm, base, ram_size);
    return 0;
}

int guest_mem_map_file(struct guest_mem *gm, uint64_t ram_size, int fd)
{
    memset(gm, 0, sizeof(*gm));
    if (!size_ok(ram_size))
        return -EINVAL;
    /* Private: the guest's writes stay in this process; pages are read from the file on use. */
    uint8_t *base =
        mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    madvise(base, ram_size, MADV_DONTDUMP);
    layout(gm, base, ram_size);
    return 0;
}

void guest_mem_free(struct guest_mem *gm)
{
    if (gm->base)
        munmap(gm->base, gm->size);
    memset(gm, 0, sizeof(*gm));
}

void *gpa_to_host(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < gm->nregions; i++) {
        const struct guest_region *r = &gm->regions[i];
        if (gpa < r->gpa)
            continue;
        uint64_t off = gpa - r->gpa;
        if (off < r->size && len <= r->size - off)
            return r->host + off;
    }
    return NULL;
}

int guest_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
    void *dst = gpa_to_host(gm, gpa, len);
    if (!dst)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}

int guest_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
    const void *src = gpa_to_host(gm, gpa, len);
    if (!src)
        return -EFAULT;
    memcpy(dst, src, len);
    return 0;
}

uint64_t guest_low_end(const struct guest_mem *gm)
{
    return gm->nregions ? gm->regions[0].size : 0;
}

uint64_t guest_resident_bytes(const struct guest_mem *gm)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t total = 0;
    unsigned char vec[4096];
    /* mincore in chunks so the vector stays on the stack. */
    for (uint64_t off = 0; off < gm->size;) {
        uint64_t chunk = (uint64_t)page * sizeof(vec);
        if (chunk > gm->size - off)
            chunk = gm->size - off;
        if (mincore(gm->base + off, chunk, vec) < 0)
            return 0;
        uint64_t pages = (chunk + page - 1) / page;
        for (uint64_t i = 0; i < pages; i++)
            total += (vec[i] & 1) ? (uint64_t)page : 0;
        off += chunk;
    }
    return total;
}
