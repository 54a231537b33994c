/* bus.c: sorted, non-overlapping address ranges for PIO and MMIO dispatch. */
#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus)
{
    memset(bus, 0, sizeof(*bus));
}

void bus_free(struct bus *bus)
{
    free(bus->ranges);
    memset(bus, 0, sizeof(*bus));
}

/* Index of the first range whose base is greater than addr. */
static size_t upper_bound(const struct bus *bus, uint64_t addr)
{
    size_t lo = 0, hi = bus->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (bus->ranges[mid].base <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int bus_insert(struct bus *bus, uint64_t base, uint64_t len, struct device *dev, unsigned region)
{
    if (len == 0 || base + len - 1 < base || !dev || !dev->ops->read || !dev->ops->write)
        return -EINVAL;
    uint64_t last = base + len - 1;
    size_t pos = upper_bound(bus, base);
    /* The range before pos starts at or below base; the one at pos starts above base. */
    if (pos > 0) {
        const struct bus_range *prev = &bus->ranges[pos - 1];
        if (prev->base + (prev->len - 1) >= base)
            return -EEXIST;
    }
    if (pos < bus->count && bus->ranges[pos].base <= last)
        return -EEXIST;
    if (bus->count == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 8;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->count - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] = (struct bus_range){base, len, dev, region};
    bus->count++;
    return 0;
}

int bus_add_device(struct bus *pio, struct bus *mmio, struct device *d, unsigned *bad)
{
    for (unsigned r = 0; r < d->nranges; r++) {
        const struct device_range *dr = &d->ranges[r];
        struct bus *bus = dr->space == DEVICE_PIO ? pio : mmio;
        int ret = bus ? bus_insert(bus, dr->base, dr->len, d, r) : -EINVAL;
        if (ret < 0) {
            if (bad)
                *bad = r;
            return ret;
        }
    }
    return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
    size_t pos = upper_bound(bus, addr);
    if (pos == 0)
        return NULL;
    const struct bus_range *r = &bus->ranges[pos - 1];
    return addr - r->base < r->len ? r : NULL;
}

int bus_access(const struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
    const struct bus_range *r = bus_find(bus, addr);
    uint64_t off = r ? addr - r->base : 0;
    if (!r || len == 0 || len > r->len - off) {
        if (!is_write)
            memset(data, 0xff, len);
        return -ENOENT;
    }
    if (is_write)
        r->dev->ops->write(r->dev, r->region, off, data, len);
    else
        r->dev->ops->read(r->dev, r->region, off, data, len);
    return 0;
}
