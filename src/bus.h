/* bus.h: a PIO or MMIO bus: non-overlapping address ranges, each dispatching to one device. */
#ifndef KILN_BUS_H
#define KILN_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

/* [base, base + len) reaches region `region` of dev (device.h). */
struct bus_range {
    uint64_t base;
    uint64_t len;
    struct device *dev;
    unsigned region;
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

/*
 * Add [base, base + len) for region `region` of dev. Returns 0, -EINVAL (len 0, wraps, or dev
 * without read and write), -EEXIST (overlap), -ENOMEM.
 */
int bus_insert(struct bus *bus, uint64_t base, uint64_t len, struct device *dev, unsigned region);

/*
 * Put every range of d on pio or mmio, by its space, with the range's index as its region.
 * Returns 0, or the first bus_insert error with *bad (if bad is not NULL) the failing range.
 * Ranges put on a bus before a failure stay there: the caller abandons the VM.
 */
int bus_add_device(struct bus *pio, struct bus *mmio, struct device *d, unsigned *bad);

/* The range containing addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatch an access of len bytes at addr to the device's read or write with the offset into
 * its range. Returns 0 if a device took it, -ENOENT if no device covers the whole access (a
 * read then returns all ones).
 */
int bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
