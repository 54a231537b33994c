/* bus.h: a PIO or MMIO bus: non-overlapping address ranges, each dispatching to one device. */
#ifndef KILN_BUS_H
#define KILN_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A device's access handler. offset is relative to the start of the device's range; data holds
 * len bytes (1, 2, 4 or 8), filled by the handler on a read and by the guest on a write.
 */
typedef void (*bus_io_fn)(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

struct bus_range {
    uint64_t base;
    uint64_t len;
    bus_io_fn io;
    void *dev;
    const char *name;
};

/*
 * Ranges are inserted while the VM is built and never change once vCPUs run, so dispatch needs
 * no lock.
 */
struct bus {
    struct bus_range *ranges; /* sorted by base */
    size_t count;
    size_t cap;
};

void bus_init(struct bus *bus);
void bus_free(struct bus *bus);

/* Add [base, base + len). Returns 0, -EINVAL (len 0 or wraps), -EEXIST (overlap), -ENOMEM. */
int bus_insert(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn io, void *dev,
               const char *name);

/* The range containing addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatch an access of len bytes at addr. Returns 0 if a device took it, -ENOENT if no device
 * covers the whole access (a read then returns all ones).
 */
int bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
