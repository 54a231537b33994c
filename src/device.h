/* device.h: the one shape of every emulated device: name, ranges, read, write, reset, life cycle.
 */
#ifndef KILN_DEVICE_H
#define KILN_DEVICE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

/*
 * Every device kiln emulates is a struct device, whichever bus reaches it:
 *   - a PIO or MMIO device lists its address ranges; the VM puts each on its bus, and an access
 *     of range r calls read/write with r as the region and the offset into the range;
 *   - a PCI function (pci/pci.h) is reached through its BARs: the region is the BAR number;
 *   - a virtio device (virtio/virtio.h) is reached through its transport: region 0 is its
 *     device-specific configuration space.
 * The VM keeps every device it owns in one list and drives the life cycle hooks from there.
 */

#define DEVICE_MAX_RANGES 4

enum device_space { DEVICE_PIO, DEVICE_MMIO };

struct device_range {
    enum device_space space;
    uint64_t base;
    uint64_t len;
};

/* libuv's loop (uv.h), named here without pulling uv.h into every device's includer. */
typedef struct uv_loop_s uv_loop_t;

struct device;
/* Saved device state for snapshots (state.h). */
struct device_state;
/* The DSDT being written (platform/aml.h). */
struct aml;

struct device_ops {
    /*
     * A guest access of len bytes (1, 2, 4 or 8) at off, entirely inside region. read fills
     * data. vCPU threads, no lock held: the device locks what it shares with other threads.
     */
    void (*read)(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len);
    void (*write)(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                  uint32_t len);
    /*
     * Back to the state the guest finds at power-on. Returns 0, or 1 when work the device had
     * handed to a back end is still finishing (the device says how it reports the end). NULL:
     * nothing to reset.
     */
    int (*reset)(struct device *d);
    /*
     * Snapshot (vm_snapshot.c): append the guest-visible state to st, with the VM paused and the
     * back end idle; restore reads it back, in the same order, into a device made from the same
     * configuration, before anything runs. Return 0 or -errno. A device without save cannot be
     * snapshotted: kiln refuses, naming it. A device with no state has a save that writes none.
     */
    int (*save)(const struct device *d, struct device_state *st);
    int (*restore)(struct device *d, struct device_state *st);
    /* Start and stop the back end on the VM's loop (the loop thread). NULL: none. */
    int (*start)(struct device *d, uv_loop_t *loop);
    void (*stop)(struct device *d);
    /* Free the device (stopped, or never started; no vCPU runs). */
    void (*destroy)(struct device *d);
    /* Append the device's entry in the DSDT's \_SB scope. NULL: none. */
    void (*describe)(const struct device *d, struct aml *dsdt);
    /* Add the device's counters to st. NULL: none. Any thread. */
    void (*stats)(const struct device *d, struct kiln_stats *st);
};

/* save and restore of a device with no state of its own (its registers are constants). */
static inline int device_save_none(const struct device *d, struct device_state *st)
{
    (void)d;
    (void)st;
    return 0;
}
static inline int device_restore_none(struct device *d, struct device_state *st)
{
    (void)d;
    (void)st;
    return 0;
}

struct device {
    const char *name; /* for messages: "COM1", "virtio-blk" */
    const struct device_ops *ops;
    struct device_range ranges[DEVICE_MAX_RANGES];
    unsigned nranges;
};

/* Append a PIO or MMIO range. Returns 0, or -E2BIG past DEVICE_MAX_RANGES. */
static inline int device_add_range(struct device *d, enum device_space space, uint64_t base,
                                   uint64_t len)
{
    if (d->nranges >= DEVICE_MAX_RANGES)
        return -E2BIG;
    d->ranges[d->nranges++] = (struct device_range){space, base, len};
    return 0;
}

#endif
