/* pci.c: PCI bus 0: conf1 config access, type-0 config spaces, BAR placement and MMIO dispatch. */
#include "pci/pci.h"
#include "state.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Host bridge identity: an Intel 440FX, which every PC guest knows and needs no driver for. */
#define HOST_VENDOR 0x8086
#define HOST_DEVICE 0x1237
#define HOST_REVISION 0x02
#define HOST_CLASS 0x060000

/* Address latch bits that exist: enable, extended register (AMD), bus, device, function, dword. */
#define CONF1_ADDR_MASK 0x8ffffffcu

#define COMMAND_WRITABLE                                                                           \
    (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |               \
     PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)

struct pci_bus {
    struct device dev; /* conf1 ports and the BAR window (pci_bus_device) */
    /* The configuration lock: the conf1 latch, every config space and BAR register. */
    pthread_mutex_t lock;
    uint32_t conf1;
    /* Filled while the VM is built; MMIO dispatch reads it without locks afterwards. */
    struct pci_device *devs[PCI_MAX_SLOTS];
    struct pci_device host;
    uint64_t mmio_base, mmio_size;
    uint64_t mmio_next; /* BAR placement cursor */
    const struct kiln_log *log;
    atomic_bool unmapped_logged;
    atomic_bool conf1_logged;
};

uint32_t pci_cfg_get(const struct pci_device *dev, unsigned off, unsigned len)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
        v |= (uint32_t)dev->cfg[off + i] << (8 * i);
    return v;
}

void pci_cfg_set(struct pci_device *dev, unsigned off, unsigned len, uint32_t v)
{
    for (unsigned i = 0; i < len && off + i < PCI_CFG_SIZE; i++)
        dev->cfg[off + i] = (uint8_t)(v >> (8 * i));
}

uint16_t pci_device_command(const struct pci_device *dev)
{
    return atomic_load(&dev->command);
}

/* A function without hooks: its BARs, if any, read as all ones. */
static const struct pci_device_ops no_ops;

void pci_device_init(struct pci_device *dev, const struct pci_id *id,
                     const struct pci_device_ops *ops, void *priv, const char *name)
{
    memset(dev, 0, sizeof(*dev));
    atomic_init(&dev->command, 0);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        atomic_init(&dev->bars[i].mapped, 0);
    dev->ops = ops ? ops : &no_ops;
    dev->device = (struct device){.name = name, .ops = &dev->ops->dev};
    dev->priv = priv;
    pci_cfg_set(dev, PCI_VENDOR_ID, 2, id->vendor);
    pci_cfg_set(dev, PCI_DEVICE_ID, 2, id->device);
    pci_cfg_set(dev, PCI_REVISION_ID, 1, id->revision);
    pci_cfg_set(dev, PCI_CLASS_PROG, 3, id->class_code);
    pci_cfg_set(dev, PCI_SUBSYSTEM_VENDOR_ID, 2, id->subsys_vendor);
    pci_cfg_set(dev, PCI_SUBSYSTEM_ID, 2, id->subsys_id);
    pci_cfg_set(dev, PCI_INTERRUPT_PIN, 1, id->intx ? 1 : 0); /* INTA# */
    /* Header type 0, single function; status bits are all read-only (no error reporting). */
    dev->wmask[PCI_COMMAND] = (uint8_t)COMMAND_WRITABLE;
    dev->wmask[PCI_COMMAND + 1] = (uint8_t)(COMMAND_WRITABLE >> 8);
    dev->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    dev->wmask[PCI_LATENCY_TIMER] = 0xff;
    dev->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

static bool power_of_two(uint64_t v)
{
    return v && !(v & (v - 1));
}

int pci_device_add_bar(struct pci_device *dev, unsigned bar, uint64_t size, unsigned flags)
{
    bool is64 = flags & PCI_BAR_MEM_64;
    if (bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS) || !power_of_two(size) ||
        size < 16 || (!is64 && size > (1ULL << 31)) ||
        (flags & ~(unsigned)(PCI_BAR_MEM_64 | PCI_BAR_MEM_PREFETCH)))
        return -EINVAL;
    if (dev->bars[bar].size || dev->bars[bar].upper ||
        (is64 && (dev->bars[bar + 1].size || dev->bars[bar + 1].upper)))
        return -EINVAL;
    dev->bars[bar].size = size;
    dev->bars[bar].flags = (uint8_t)flags;
    if (is64)
        dev->bars[bar + 1].upper = true;
    return 0;
}

int pci_device_add_cap(struct pci_device *dev, uint8_t id, const void *body, unsigned len)
{
    unsigned off = dev->cap_end ? (unsigned)align_up(dev->cap_end, 4) : PCI_CAP_START;
    if (len > PCI_CFG_SIZE || off + 2 + len > PCI_CFG_SIZE)
        return -E2BIG;
    dev->cfg[off] = id;
    dev->cfg[off + 1] = 0; /* end of the list until another one is added */
    memcpy(&dev->cfg[off + 2], body, len);
    if (dev->cap_last)
        dev->cfg[dev->cap_last + 1] = (uint8_t)off;
    else
        dev->cfg[PCI_CAPABILITY_LIST] = (uint8_t)off;
    dev->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    dev->cap_last = (uint8_t)off;
    dev->cap_end = (uint8_t)(off + 2 + len);
    return (int)off;
}

/* ---- BARs: programmed through config space, decoded through the window. */

static bool bar_in_window(const struct pci_bus *bus, const struct pci_bar *b)
{
    return b->addr >= bus->mmio_base &&
           range_within(b->addr - bus->mmio_base, b->size, bus->mmio_size);
}

/* Recompute where BAR i decodes and tell the device if that changed. Config lock held. */
static void bar_update(struct pci_device *dev, unsigned i)
{
    struct pci_bar *b = &dev->bars[i];
    if (!b->size)
        return;
    uint64_t want = 0;
    if ((atomic_load(&dev->command) & PCI_COMMAND_MEMORY) && dev->bus && bar_in_window(dev->bus, b))
        want = b->addr;
    if (atomic_load(&b->mapped) == want)
        return;
    atomic_store(&b->mapped, want);
    if (dev->ops->bar_remap)
        dev->ops->bar_remap(dev, i, want);
}

static void bars_update(struct pci_device *dev)
{
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        bar_update(dev, i);
}

void pci_device_save(const struct pci_device *dev, struct device_state *st)
{
    state_put(st, dev->cfg, PCI_CFG_SIZE);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        state_put_u64(st, dev->bars[i].addr);
}

int pci_device_restore(struct pci_device *dev, struct device_state *st)
{
    uint8_t cfg[PCI_CFG_SIZE];
    uint64_t addr[PCI_NUM_BARS];
    state_get(st, cfg, PCI_CFG_SIZE);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        addr[i] = state_get_u64(st);
    /* The identity and layout are the function's own; only what the guest may write changes. */
    for (unsigned i = 0; !st->err && i < PCI_CFG_SIZE; i++)
        if ((cfg[i] ^ dev->cfg[i]) & ~dev->wmask[i])
            return -EINVAL;
    if (st->err)
        return -EINVAL;
    pthread_mutex_lock(&dev->bus->lock);
    memcpy(dev->cfg, cfg, PCI_CFG_SIZE);
    atomic_store(&dev->command, (uint16_t)pci_cfg_get(dev, PCI_COMMAND, 2));
    for (unsigned i = 0; i < PCI_NUM_BARS; i++)
        dev->bars[i].addr = addr[i];
    bars_update(dev);
    pthread_mutex_unlock(&dev->bus->lock);
    return 0;
}

/* The 32-bit BAR register i as the guest reads it. */
static uint32_t bar_reg(const struct pci_device *dev, unsigned i)
{
    const struct pci_bar *b = &dev->bars[i];
    if (b->upper)
        return (uint32_t)(dev->bars[i - 1].addr >> 32);
    if (!b->size)
        return 0;
    return (uint32_t)b->addr | b->flags;
}

/*
 * Address bits below the size are hardwired to zero, so writing all ones reads back the size
 * mask: BAR sizing needs no special case. Any other value moves the BAR (see bar_update).
 */
static void bar_reg_write(struct pci_device *dev, unsigned i, uint32_t v)
{
    struct pci_bar *b = &dev->bars[i];
    if (b->upper) {
        b = &dev->bars[--i];
        b->addr = (((uint64_t)v << 32) | (uint32_t)b->addr) & ~(b->size - 1);
    } else if (b->size) {
        uint64_t hi = (b->flags & PCI_BAR_MEM_64) ? b->addr & 0xffffffff00000000ULL : 0;
        b->addr = (hi | (v & ~0xfu)) & ~(b->size - 1);
    } else {
        return; /* unused BAR: hardwired to zero */
    }
    bar_update(dev, i);
}

static bool is_bar_reg(unsigned off)
{
    return off >= PCI_BAR0 && off < PCI_BAR0 + 4 * PCI_NUM_BARS;
}

/* ---- Config space access. off % 4 + len <= 4 (one dword), len 1, 2 or 4. Lock held. */

static uint32_t cfg_read(struct pci_device *dev, unsigned off, unsigned len)
{
    if (dev->ops->cfg_read)
        dev->ops->cfg_read(dev, off, len);
    unsigned dw = off & ~3u;
    uint32_t v;
    if (is_bar_reg(dw))
        v = bar_reg(dev, (dw - PCI_BAR0) / 4) >> (8 * (off - dw));
    else
        v = pci_cfg_get(dev, off, len);
    return len == 4 ? v : v & ((1u << (8 * len)) - 1);
}

static void command_changed(struct pci_device *dev)
{
    atomic_store(&dev->command, (uint16_t)pci_cfg_get(dev, PCI_COMMAND, 2));
    bars_update(dev);
}

static void cfg_write(struct pci_device *dev, unsigned off, unsigned len, uint32_t v)
{
    unsigned dw = off & ~3u;
    if (is_bar_reg(dw)) {
        unsigned i = (dw - PCI_BAR0) / 4, shift = 8 * (off - dw);
        uint32_t mask = len == 4 ? ~0u : ((1u << (8 * len)) - 1) << shift;
        bar_reg_write(dev, i, (bar_reg(dev, i) & ~mask) | ((v << shift) & mask));
    } else {
        for (unsigned i = 0; i < len; i++) {
            uint8_t m = dev->wmask[off + i], b = (uint8_t)(v >> (8 * i));
            dev->cfg[off + i] = (uint8_t)((dev->cfg[off + i] & ~m) | (b & m));
        }
        if (pci_cfg_overlaps(off, len, PCI_COMMAND, 2))
            command_changed(dev);
    }
    if (dev->ops->cfg_written)
        dev->ops->cfg_written(dev, off, len);
}

/* ---- Configuration mechanism #1. */

static void log_once(struct pci_bus *bus, atomic_bool *flag, const char *msg, uint64_t a,
                     uint32_t len)
{
    if (!atomic_exchange(flag, true))
        klog(bus->log, KILN_LOG_DEBUG, "pci: %s (0x%llx, %u bytes; logged once)", msg,
             (unsigned long long)a, len);
}

static uint32_t get_le(const uint8_t *data, uint32_t len)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < len && i < 4; i++)
        v |= (uint32_t)data[i] << (8 * i);
    return v;
}

static void put_le(uint8_t *data, uint32_t len, uint64_t v)
{
    for (uint32_t i = 0; i < len; i++)
        data[i] = (uint8_t)(v >> (8 * i));
}

/* Only dword accesses reach the latch (byte writes to 0xcfb probe for mechanism #2). */
static bool conf1_addr_ok(struct pci_bus *bus, uint64_t off, uint32_t len)
{
    if (off == 0 && len == 4)
        return true;
    log_once(bus, &bus->conf1_logged, "non-dword access to the conf1 address port",
             PCI_CONF1_ADDR_PORT + off, len);
    return false;
}

static void conf1_addr_read(struct pci_bus *bus, uint64_t off, uint8_t *data, uint32_t len)
{
    if (!conf1_addr_ok(bus, off, len)) {
        memset(data, 0xff, len);
        return;
    }
    pthread_mutex_lock(&bus->lock);
    put_le(data, 4, bus->conf1);
    pthread_mutex_unlock(&bus->lock);
}

static void conf1_addr_write(struct pci_bus *bus, uint64_t off, const uint8_t *data, uint32_t len)
{
    if (!conf1_addr_ok(bus, off, len))
        return;
    pthread_mutex_lock(&bus->lock);
    bus->conf1 = get_le(data, 4) & CONF1_ADDR_MASK;
    pthread_mutex_unlock(&bus->lock);
}

/* The function the latch selects, or NULL: off, another bus or function, or nothing there. */
static struct pci_device *conf1_target(struct pci_bus *bus, uint32_t a)
{
    unsigned busn = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
    unsigned ext = (a >> 24) & 0xf; /* registers 256 and up: none on conventional PCI */
    if (!(a & PCI_CONF1_ENABLE) || busn || fn || ext)
        return NULL;
    return bus->devs[slot];
}

static bool conf1_data_ok(uint64_t off, uint32_t len)
{
    return (len == 1 || len == 2 || len == 4) && off + len <= 4;
}

static void conf1_data_read(struct pci_bus *bus, uint64_t off, uint8_t *data, uint32_t len)
{
    pthread_mutex_lock(&bus->lock);
    struct pci_device *dev = conf1_data_ok(off, len) ? conf1_target(bus, bus->conf1) : NULL;
    if (dev)
        put_le(data, len, cfg_read(dev, (bus->conf1 & 0xfc) + (unsigned)off, len));
    else
        memset(data, 0xff, len); /* no device: master abort reads all ones */
    pthread_mutex_unlock(&bus->lock);
}

static void conf1_data_write(struct pci_bus *bus, uint64_t off, const uint8_t *data, uint32_t len)
{
    pthread_mutex_lock(&bus->lock);
    struct pci_device *dev = conf1_data_ok(off, len) ? conf1_target(bus, bus->conf1) : NULL;
    if (dev)
        cfg_write(dev, (bus->conf1 & 0xfc) + (unsigned)off, len, get_le(data, len));
    pthread_mutex_unlock(&bus->lock);
}

/* ---- MMIO: the window is one bus range; BARs are found by their current address. */

/* The function and BAR decoding [addr, addr + len), or NULL; *off is the offset in the BAR. */
static struct pci_device *bar_at(struct pci_bus *bus, uint64_t addr, uint32_t len, unsigned *bar,
                                 uint64_t *off)
{
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_device *dev = bus->devs[s];
        for (unsigned i = 0; dev && i < PCI_NUM_BARS; i++) {
            const struct pci_bar *b = &dev->bars[i];
            uint64_t base = atomic_load(&b->mapped);
            if (!base || addr < base || addr - base >= b->size || len > b->size - (addr - base))
                continue;
            *bar = i;
            *off = addr - base;
            return dev;
        }
    }
    log_once(bus, &bus->unmapped_logged, "access to no BAR in the PCI window", addr, len);
    return NULL;
}

static void window_read(struct pci_bus *bus, uint64_t off, uint8_t *data, uint32_t len)
{
    unsigned bar;
    uint64_t boff;
    struct pci_device *dev = bar_at(bus, bus->mmio_base + off, len, &bar, &boff);
    if (dev && dev->device.ops->read)
        dev->device.ops->read(&dev->device, bar, boff, data, len);
    else
        memset(data, 0xff, len);
}

static void window_write(struct pci_bus *bus, uint64_t off, const uint8_t *data, uint32_t len)
{
    unsigned bar;
    uint64_t boff;
    struct pci_device *dev = bar_at(bus, bus->mmio_base + off, len, &bar, &boff);
    if (dev && dev->device.ops->write)
        dev->device.ops->write(&dev->device, bar, boff, data, len);
}

/* ---- The bus as a device: its ranges, in the order pci_bus_create adds them. */

enum { RANGE_CONF1_ADDR, RANGE_CONF1_DATA, RANGE_WINDOW };

static struct pci_bus *bus_of(const struct device *d)
{
    return (struct pci_bus *)((char *)d - offsetof(struct pci_bus, dev));
}

static void bus_read(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len)
{
    struct pci_bus *bus = bus_of(d);
    if (region == RANGE_CONF1_ADDR)
        conf1_addr_read(bus, off, data, len);
    else if (region == RANGE_CONF1_DATA)
        conf1_data_read(bus, off, data, len);
    else
        window_read(bus, off, data, len);
}

static void bus_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                      uint32_t len)
{
    struct pci_bus *bus = bus_of(d);
    if (region == RANGE_CONF1_ADDR)
        conf1_addr_write(bus, off, data, len);
    else if (region == RANGE_CONF1_DATA)
        conf1_data_write(bus, off, data, len);
    else
        window_write(bus, off, data, len);
}

static void bus_describe(const struct device *d, struct aml *dsdt)
{
    const struct pci_bus *bus = bus_of(d);
    pci_acpi_describe(dsdt, bus->mmio_base, bus->mmio_size);
}

static void bus_device_destroy(struct device *d)
{
    pci_bus_destroy(bus_of(d));
}

/*
 * The conf1 address latch and the host bridge's config space. A function's own config space
 * (BARs, MSI-X) is its device's to save; none does yet, so a VM with one is not snapshotted.
 */
static int bus_save(const struct device *d, struct device_state *st)
{
    const struct pci_bus *bus = (const struct pci_bus *)d;
    state_put_u32(st, bus->conf1);
    state_put(st, bus->host.cfg, PCI_CFG_SIZE);
    return st->err ? -st->err : 0;
}

static int bus_restore(struct device *d, struct device_state *st)
{
    struct pci_bus *bus = (struct pci_bus *)d;
    uint32_t conf1 = state_get_u32(st);
    uint8_t cfg[PCI_CFG_SIZE];
    state_get(st, cfg, PCI_CFG_SIZE);
    if (st->err || (conf1 & ~CONF1_ADDR_MASK))
        return -EINVAL;
    /* As for a function: only what the guest may write differs; a refused state changes nothing. */
    for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
        if ((cfg[i] ^ bus->host.cfg[i]) & ~bus->host.wmask[i])
            return -EINVAL;
    pthread_mutex_lock(&bus->lock);
    bus->conf1 = conf1;
    memcpy(bus->host.cfg, cfg, PCI_CFG_SIZE);
    atomic_store(&bus->host.command, (uint16_t)pci_cfg_get(&bus->host, PCI_COMMAND, 2));
    pthread_mutex_unlock(&bus->lock);
    return 0;
}

static const struct device_ops bus_ops = {
    .read = bus_read,
    .write = bus_write,
    .save = bus_save,
    .restore = bus_restore,
    .destroy = bus_device_destroy,
    .describe = bus_describe,
};

struct device *pci_bus_device(struct pci_bus *bus)
{
    return &bus->dev;
}

/* ---- The bus. */

static void host_bridge_init(struct pci_bus *bus)
{
    const struct pci_id id = {
        .vendor = HOST_VENDOR,
        .device = HOST_DEVICE,
        .class_code = HOST_CLASS,
        .revision = HOST_REVISION,
    };
    pci_device_init(&bus->host, &id, NULL, NULL, "host bridge");
    bus->host.bus = bus;
    bus->devs[0] = &bus->host;
}

int pci_bus_create(uint64_t mmio_base, uint64_t mmio_size, const struct kiln_log *log,
                   struct pci_bus **out)
{
    *out = NULL;
    if (!mmio_base || !mmio_size || mmio_base + mmio_size - 1 < mmio_base)
        return -EINVAL;
    struct pci_bus *bus = calloc(1, sizeof(*bus));
    if (!bus)
        return -ENOMEM;
    pthread_mutex_init(&bus->lock, NULL);
    bus->mmio_base = bus->mmio_next = mmio_base;
    bus->mmio_size = mmio_size;
    bus->log = log;
    host_bridge_init(bus);
    bus->dev = (struct device){.name = "PCI bus 0", .ops = &bus_ops};
    device_add_range(&bus->dev, DEVICE_PIO, PCI_CONF1_ADDR_PORT, 4);
    device_add_range(&bus->dev, DEVICE_PIO, PCI_CONF1_DATA_PORT, 4);
    device_add_range(&bus->dev, DEVICE_MMIO, mmio_base, mmio_size);
    *out = bus;
    return 0;
}

void pci_bus_destroy(struct pci_bus *bus)
{
    if (!bus)
        return;
    pthread_mutex_destroy(&bus->lock);
    free(bus);
}

/* Naturally aligned addresses for dev's BARs from the cursor; -ENOSPC if the window is full. */
static int place_bars(struct pci_bus *bus, struct pci_device *dev, uint64_t addr[PCI_NUM_BARS])
{
    uint64_t next = bus->mmio_next;
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        uint64_t size = dev->bars[i].size;
        if (!size)
            continue;
        if (size > bus->mmio_size)
            return -ENOSPC;
        addr[i] = align_up(next, size);
        if (addr[i] < next || !range_within(addr[i] - bus->mmio_base, size, bus->mmio_size))
            return -ENOSPC;
        next = addr[i] + size;
    }
    bus->mmio_next = next;
    return 0;
}

int pci_bus_add(struct pci_bus *bus, struct pci_device *dev)
{
    if (dev->bus)
        return -EINVAL;
    pthread_mutex_lock(&bus->lock);
    unsigned slot = 1;
    while (slot < PCI_MAX_SLOTS && bus->devs[slot])
        slot++;
    uint64_t addr[PCI_NUM_BARS] = {0};
    int ret = slot < PCI_MAX_SLOTS ? place_bars(bus, dev, addr) : -ENOSPC;
    if (ret == 0) {
        for (unsigned i = 0; i < PCI_NUM_BARS; i++)
            dev->bars[i].addr = addr[i];
        dev->bus = bus;
        dev->slot = slot;
        if (dev->cfg[PCI_INTERRUPT_PIN]) {
            dev->intx_gsi = pci_intx_gsi(slot);
            dev->cfg[PCI_INTERRUPT_LINE] = (uint8_t)dev->intx_gsi;
        }
        bus->devs[slot] = dev;
        /* What firmware would have done: memory decoding on, so the BARs are live at boot. */
        dev->cfg[PCI_COMMAND] |= PCI_COMMAND_MEMORY;
        command_changed(dev);
    }
    pthread_mutex_unlock(&bus->lock);
    return ret;
}

void pci_bus_remove(struct pci_bus *bus, struct pci_device *dev)
{
    pthread_mutex_lock(&bus->lock);
    if (dev->bus == bus && dev->slot && dev->slot < PCI_MAX_SLOTS && bus->devs[dev->slot] == dev) {
        dev->cfg[PCI_COMMAND] &= (uint8_t)~PCI_COMMAND_MEMORY;
        command_changed(dev);
        bus->devs[dev->slot] = NULL;
        dev->bus = NULL;
    }
    pthread_mutex_unlock(&bus->lock);
}
