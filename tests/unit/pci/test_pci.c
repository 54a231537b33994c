/* test_pci.c: conf1 decoding, config space masks, BAR sizing/moves, capabilities, the DSDT AML. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/acpi.h"
#include "bus.h"
#include "pci/pci.h"
#include "state.h"
#include "util.h"

#define WIN PCI_MMIO_WINDOW_BASE

/* A device that records what the bus does to it; BAR bytes read back as their offset. */
struct rec {
    struct pci_device dev;
    unsigned remaps;
    uint64_t last_base[PCI_NUM_BARS];
    unsigned writes, last_write_off, last_write_len;
    unsigned io_bar;
    uint64_t io_off;
    uint32_t io_len;
    bool io_write;
    unsigned ios;
};

/* The record behind a function's struct device (the first member of struct pci_device). */
static struct rec *rec_of(struct device *d)
{
    return ((struct pci_device *)d)->priv;
}

static void rec_io(struct rec *r, unsigned bar, uint64_t off, uint32_t len, bool is_write)
{
    r->ios++;
    r->io_bar = bar;
    r->io_off = off;
    r->io_len = len;
    r->io_write = is_write;
}

static void rec_read(struct device *d, unsigned bar, uint64_t off, uint8_t *data, uint32_t len)
{
    rec_io(rec_of(d), bar, off, len, false);
    for (uint32_t i = 0; i < len; i++)
        data[i] = (uint8_t)(off + i);
}

static void rec_write(struct device *d, unsigned bar, uint64_t off, const uint8_t *data,
                      uint32_t len)
{
    (void)data;
    rec_io(rec_of(d), bar, off, len, true);
}

static void rec_remap(struct pci_device *dev, unsigned bar, uint64_t base)
{
    struct rec *r = dev->priv;
    r->remaps++;
    r->last_base[bar] = base;
}

static void rec_written(struct pci_device *dev, unsigned off, unsigned len)
{
    struct rec *r = dev->priv;
    r->writes++;
    r->last_write_off = off;
    r->last_write_len = len;
}

static const struct pci_device_ops rec_ops = {
    .dev = {.read = rec_read, .write = rec_write},
    .bar_remap = rec_remap,
    .cfg_written = rec_written,
};

struct t {
    struct bus pio, mmio;
    struct pci_bus *pci;
};

static void setup_window(struct t *t, uint64_t size)
{
    bus_init(&t->pio);
    bus_init(&t->mmio);
    ck_assert_int_eq(pci_bus_create(WIN, size, NULL, &t->pci), 0);
    ck_assert_int_eq(bus_add_device(&t->pio, &t->mmio, pci_bus_device(t->pci), NULL), 0);
}

static void setup(struct t *t)
{
    setup_window(t, PCI_MMIO_WINDOW_SIZE);
}

static void teardown(struct t *t)
{
    pci_bus_destroy(t->pci);
    bus_free(&t->pio);
    bus_free(&t->mmio);
}

static void out(struct t *t, uint16_t port, uint32_t v, uint32_t len)
{
    uint8_t d[4];
    for (int i = 0; i < 4; i++)
        d[i] = (uint8_t)(v >> (8 * i));
    bus_access(&t->pio, port, d, len, true);
}

static uint32_t in(struct t *t, uint16_t port, uint32_t len)
{
    uint8_t d[4] = {0};
    bus_access(&t->pio, port, d, len, false);
    uint32_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint32_t)d[i] << (8 * i);
    return v;
}

static uint32_t addr_of(unsigned slot, unsigned reg)
{
    return PCI_CONF1_ENABLE | slot << 11 | (reg & 0xfc);
}

static uint32_t cfg_rd(struct t *t, unsigned slot, unsigned reg, uint32_t len)
{
    out(t, PCI_CONF1_ADDR_PORT, addr_of(slot, reg), 4);
    return in(t, PCI_CONF1_DATA_PORT + (reg & 3), len);
}

static void cfg_wr(struct t *t, unsigned slot, unsigned reg, uint32_t v, uint32_t len)
{
    out(t, PCI_CONF1_ADDR_PORT, addr_of(slot, reg), 4);
    out(t, PCI_CONF1_DATA_PORT + (reg & 3), v, len);
}

static uint64_t mmio_rd(struct t *t, uint64_t addr, uint32_t len)
{
    uint8_t d[8] = {0};
    bus_access(&t->mmio, addr, d, len, false);
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)d[i] << (8 * i);
    return v;
}

/* A function with a 4 KiB 32-bit BAR 0 and a 16 KiB 64-bit BAR 2 (registers 2 and 3). */
static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    const struct pci_id id = {.vendor = 0x1234,
                              .device = 0x5678,
                              .class_code = 0x018000,
                              .revision = 3,
                              .subsys_vendor = 0xaaaa,
                              .subsys_id = 0xbbbb,
                              .intx = true};
    pci_device_init(&r->dev, &id, &rec_ops, r, "rec");
    ck_assert_int_eq(pci_device_add_bar(&r->dev, 0, 0x1000, 0), 0);
    ck_assert_int_eq(pci_device_add_bar(&r->dev, 2, 0x4000, PCI_BAR_MEM_64), 0);
}

START_TEST(test_host_bridge)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_VENDOR_ID, 2), 0x8086);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_DEVICE_ID, 2), 0x1237);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_REVISION_ID, 4), 0x06000002);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_HEADER_TYPE, 1), 0);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_BAR0, 4), 0);
    teardown(&t);
}
END_TEST

/* The host bridge's snapshot part: its own state back; a state with other identity bytes, a bad
 * latch or too few bytes refused with the bridge unchanged (found by tests/fuzz/fuzz_snapshot.c).
 */
START_TEST(test_host_bridge_restore)
{
    struct t t;
    setup(&t);
    struct device *d = pci_bus_device(t.pci);
    cfg_wr(&t, 0, PCI_COMMAND, 0x0006, 2);
    struct device_state good = {0};
    ck_assert_int_eq(d->ops->save(d, &good), 0);
    ck_assert_uint_eq(good.len, 4 + PCI_CFG_SIZE);
    uint8_t *bad = malloc(good.len);
    ck_assert_ptr_nonnull(bad);
    const size_t vendor = 4 + PCI_VENDOR_ID, latch_top = 3;
    const size_t flips[2] = {vendor, latch_top};
    for (unsigned i = 0; i < 3; i++) {
        memcpy(bad, good.buf, good.len);
        if (i < 2)
            bad[flips[i]] ^= 0x40;
        struct device_state r = state_reader(bad, i < 2 ? good.len : good.len - 1);
        ck_assert_int_eq(d->ops->restore(d, &r), -EINVAL);
        ck_assert_uint_eq(cfg_rd(&t, 0, PCI_VENDOR_ID, 2), 0x8086);
        ck_assert_uint_eq(cfg_rd(&t, 0, PCI_COMMAND, 2) & 0x0006, 0x0006);
    }
    struct device_state r = state_reader(good.buf, good.len);
    ck_assert_int_eq(d->ops->restore(d, &r), 0);
    ck_assert_int_eq(state_done(&r), 0);
    free(bad);
    state_free(&good);
    teardown(&t);
}
END_TEST

START_TEST(test_conf1_latch)
{
    struct t t;
    setup(&t);
    out(&t, PCI_CONF1_ADDR_PORT, 0x80000000, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_ADDR_PORT, 4), 0x80000000);
    /* Reserved bits 30:28 and the low two bits read as zero. */
    out(&t, PCI_CONF1_ADDR_PORT, 0xffffffff, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_ADDR_PORT, 4), 0x8ffffffc);
    /* Byte and word accesses are not the latch: writes ignored, reads all ones. */
    out(&t, PCI_CONF1_ADDR_PORT, 0x80000000, 4);
    out(&t, PCI_CONF1_ADDR_PORT + 3, 0x01, 1);
    out(&t, PCI_CONF1_ADDR_PORT, 0x1234, 2);
    ck_assert_uint_eq(in(&t, PCI_CONF1_ADDR_PORT, 4), 0x80000000);
    ck_assert_uint_eq(in(&t, PCI_CONF1_ADDR_PORT, 1), 0xff);
    ck_assert_uint_eq(in(&t, PCI_CONF1_ADDR_PORT + 2, 2), 0xffff);
    teardown(&t);
}
END_TEST

START_TEST(test_conf1_decoding)
{
    struct t t;
    setup(&t);
    /* Enable bit clear: no configuration cycle. */
    out(&t, PCI_CONF1_ADDR_PORT, 0x00000000, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT, 4), 0xffffffff);
    /* Absent slot, another bus, another function, extended registers: all ones. */
    ck_assert_uint_eq(cfg_rd(&t, 5, PCI_VENDOR_ID, 4), 0xffffffff);
    out(&t, PCI_CONF1_ADDR_PORT, PCI_CONF1_ENABLE | 1u << 16, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT, 4), 0xffffffff);
    out(&t, PCI_CONF1_ADDR_PORT, PCI_CONF1_ENABLE | 1u << 8, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT, 4), 0xffffffff);
    out(&t, PCI_CONF1_ADDR_PORT, PCI_CONF1_ENABLE | 1u << 24, 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT, 4), 0xffffffff);
    /* Writes to nothing do nothing (and do not crash). */
    cfg_wr(&t, 7, PCI_COMMAND, 0xffff, 2);
    ck_assert_uint_eq(cfg_rd(&t, 0, PCI_VENDOR_ID, 4), 0x12378086);
    teardown(&t);
}
END_TEST

START_TEST(test_conf1_odd_sizes)
{
    struct t t;
    setup(&t);
    out(&t, PCI_CONF1_ADDR_PORT, addr_of(0, 0), 4);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 0, 1), 0x86);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 1, 1), 0x80);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 2, 2), 0x1237);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 1, 2), 0x3780); /* unaligned, inside */
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 3, 1), 0x12);
    /* Crossing the data window or a 3-byte access: refused. */
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT + 2, 4), 0xffffffff);
    ck_assert_uint_eq(in(&t, PCI_CONF1_DATA_PORT, 3), 0xffffff);
    uint8_t d[8];
    ck_assert_int_eq(bus_access(&t.pio, PCI_CONF1_DATA_PORT, d, 8, false), -ENOENT);
    teardown(&t);
}
END_TEST

START_TEST(test_add_and_identity)
{
    struct t t;
    setup(&t);
    struct rec r;
    rec_init(&r);
    ck_assert_int_eq(pci_bus_add(t.pci, &r.dev), 0);
    ck_assert_uint_eq(r.dev.slot, 1);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_VENDOR_ID, 4), 0x56781234);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_REVISION_ID, 4), 0x01800003);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_SUBSYSTEM_VENDOR_ID, 4), 0xbbbbaaaa);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_INTERRUPT_PIN, 1), 1);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_INTERRUPT_LINE, 1), 16);
    ck_assert_uint_eq(r.dev.intx_gsi, 16);
    ck_assert_uint_eq(pci_intx_gsi(9), 16);
    ck_assert_uint_eq(pci_intx_gsi(31), 22);
    /* Memory decoding on, as firmware leaves it; the device was told where its BARs are. */
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
    ck_assert_uint_eq(r.last_base[0], r.dev.bars[0].addr);
    ck_assert_uint_eq(r.last_base[2], r.dev.bars[2].addr);
    teardown(&t);
}
END_TEST

START_TEST(test_write_masks)
{
    struct t t;
    setup(&t);
    struct rec r;
    rec_init(&r);
    ck_assert_int_eq(pci_bus_add(t.pci, &r.dev), 0);
    cfg_wr(&t, 1, PCI_VENDOR_ID, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_VENDOR_ID, 4), 0x56781234);
    cfg_wr(&t, 1, PCI_INTERRUPT_LINE, 0x0a, 1);
    cfg_wr(&t, 1, PCI_INTERRUPT_PIN, 0x04, 1);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_INTERRUPT_LINE, 2), 0x010a);
    /* Command: only the implemented bits stick; status is read-only. */
    cfg_wr(&t, 1, PCI_COMMAND, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_COMMAND, 2), 0x0547);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_STATUS, 2), 0);
    ck_assert_uint_eq(pci_device_command(&r.dev), 0x0547);
    ck_assert_uint_eq(r.last_write_off, PCI_COMMAND);
    ck_assert_uint_eq(r.last_write_len, 4);
    /* No expansion ROM: sizing it reads zero. */
    cfg_wr(&t, 1, PCI_ROM_ADDRESS, 0xfffff800, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_ROM_ADDRESS, 4), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_bar_sizing)
{
    struct t t;
    setup(&t);
    struct rec r;
    rec_init(&r);
    ck_assert_int_eq(pci_bus_add(t.pci, &r.dev), 0);
    uint32_t bar0 = cfg_rd(&t, 1, PCI_BAR0, 4);
    uint32_t bar2 = cfg_rd(&t, 1, PCI_BAR0 + 8, 4), bar3 = cfg_rd(&t, 1, PCI_BAR0 + 12, 4);
    ck_assert_uint_eq(bar0 % 0x1000, 0); /* 32-bit, non-prefetchable */
    ck_assert_uint_eq(bar2 & 0xf, PCI_BAR_MEM_64);
    ck_assert_uint_eq((bar2 & ~0xfu) % 0x4000, 0);
    ck_assert_uint_eq(bar3, 0);
    ck_assert_uint_ge(bar0, WIN);
    /* What Linux does: decoding off, all ones, read the mask, restore, decoding on. */
    cfg_wr(&t, 1, PCI_COMMAND, 0, 2);
    ck_assert_uint_eq(r.last_base[0], 0);
    cfg_wr(&t, 1, PCI_BAR0, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_BAR0, 4), 0xfffff000);
    cfg_wr(&t, 1, PCI_BAR0 + 8, 0xffffffff, 4);
    cfg_wr(&t, 1, PCI_BAR0 + 12, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_BAR0 + 8, 4), 0xffffc000 | PCI_BAR_MEM_64);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_BAR0 + 12, 4), 0xffffffff);
    /* Unused BAR registers stay zero. */
    cfg_wr(&t, 1, PCI_BAR0 + 4, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_BAR0 + 4, 4), 0);
    cfg_wr(&t, 1, PCI_BAR0, bar0, 4);
    cfg_wr(&t, 1, PCI_BAR0 + 8, bar2, 4);
    cfg_wr(&t, 1, PCI_BAR0 + 12, bar3, 4);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[0].mapped), 0); /* still not decoding */
    cfg_wr(&t, 1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[0].mapped), bar0);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[2].mapped), bar2 & ~0xfu);
    ck_assert_uint_eq(r.last_base[2], bar2 & ~0xfu);
    teardown(&t);
}
END_TEST

START_TEST(test_mmio_dispatch_and_move)
{
    struct t t;
    setup(&t);
    struct rec r;
    rec_init(&r);
    ck_assert_int_eq(pci_bus_add(t.pci, &r.dev), 0);
    uint64_t b2 = r.dev.bars[2].addr;
    ck_assert_uint_eq(mmio_rd(&t, b2 + 0x10, 4), 0x13121110);
    ck_assert_uint_eq(r.io_bar, 2);
    ck_assert_uint_eq(r.io_off, 0x10);
    ck_assert_uint_eq(mmio_rd(&t, b2 + 0x3ff8, 8), 0xfffefdfcfbfaf9f8ULL);
    /* Straddling the BAR end, or between BARs: nobody answers. */
    unsigned ios = r.ios;
    ck_assert_uint_eq(mmio_rd(&t, b2 + 0x3ffc, 8), 0xffffffffffffffffULL);
    ck_assert_uint_eq(mmio_rd(&t, WIN + 0x10000000, 4), 0xffffffff);
    ck_assert_uint_eq(r.ios, ios);
    /* The guest moves BAR 2 (partial byte write included): the device follows. */
    uint64_t to = WIN + 0x100000;
    cfg_wr(&t, 1, PCI_BAR0 + 8, (uint32_t)to | 0x5, 4);
    cfg_wr(&t, 1, PCI_BAR0 + 12, 0, 4);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[2].mapped), to);
    ck_assert_uint_eq(r.last_base[2], to);
    ck_assert_uint_eq(mmio_rd(&t, b2, 4), 0xffffffff);
    ck_assert_uint_eq(mmio_rd(&t, to + 4, 4), 0x07060504);
    cfg_wr(&t, 1, PCI_BAR0 + 10, 0xe020, 2); /* bits 31:16 of the address */
    ck_assert_uint_eq(atomic_load(&r.dev.bars[2].mapped), WIN + 0x200000);
    /* Outside the window (RAM, or above 4 GiB): not decoded at all. */
    cfg_wr(&t, 1, PCI_BAR0 + 12, 1, 4);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[2].mapped), 0);
    ck_assert_uint_eq(r.last_base[2], 0);
    cfg_wr(&t, 1, PCI_BAR0 + 12, 0, 4);
    ck_assert_uint_eq(atomic_load(&r.dev.bars[2].mapped), WIN + 0x200000);
    /* Memory space off: silent. */
    cfg_wr(&t, 1, PCI_COMMAND, 0, 2);
    ios = r.ios;
    ck_assert_uint_eq(mmio_rd(&t, WIN + 0x200000, 4), 0xffffffff);
    ck_assert_uint_eq(r.ios, ios);
    teardown(&t);
}
END_TEST

START_TEST(test_capabilities)
{
    struct t t;
    setup(&t);
    struct rec r;
    rec_init(&r);
    const uint8_t a[2] = {0xaa, 0xbb}, b[14] = {16, 1}, c[1] = {0xcc};
    int ca = pci_device_add_cap(&r.dev, 0x01, a, sizeof(a));
    int cb = pci_device_add_cap(&r.dev, PCI_CAP_ID_VNDR, b, sizeof(b));
    int cc = pci_device_add_cap(&r.dev, PCI_CAP_ID_MSIX, c, sizeof(c));
    ck_assert_int_eq(ca, PCI_CAP_START);
    ck_assert_int_eq(cb, 0x44);
    ck_assert_int_eq(cc, 0x54);
    ck_assert_int_eq(pci_bus_add(t.pci, &r.dev), 0);
    ck_assert_uint_eq(cfg_rd(&t, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
    /* Walk the list as a driver does. */
    const uint8_t ids[3] = {0x01, PCI_CAP_ID_VNDR, PCI_CAP_ID_MSIX};
    unsigned pos = cfg_rd(&t, 1, PCI_CAPABILITY_LIST, 1), n = 0;
    while (pos && n < 48) {
        ck_assert_uint_lt(n, 3);
        ck_assert_uint_eq(cfg_rd(&t, 1, pos, 1), ids[n]);
        n++;
        pos = cfg_rd(&t, 1, pos + 1, 1);
    }
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(cfg_rd(&t, 1, ca + 2, 2), 0xbbaa);
    /* Read-only unless the owner opened bits up. */
    cfg_wr(&t, 1, ca + 2, 0x1234, 2);
    ck_assert_uint_eq(cfg_rd(&t, 1, ca + 2, 2), 0xbbaa);
    r.dev.wmask[ca + 3] = 0xf0;
    cfg_wr(&t, 1, ca + 2, 0x1234, 2);
    ck_assert_uint_eq(cfg_rd(&t, 1, ca + 2, 2), 0x1baa);
    /* Full: 256 bytes. */
    uint8_t big[200] = {0};
    ck_assert_int_eq(pci_device_add_cap(&r.dev, 0x09, big, sizeof(big)), -E2BIG);
    teardown(&t);
}
END_TEST

START_TEST(test_bad_bars)
{
    struct rec r;
    rec_init(&r);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 6, 0x1000, 0), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 5, 0x1000, PCI_BAR_MEM_64), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 1, 0x1800, 0), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 1, 8, 0), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 0, 0x1000, 0), -EINVAL); /* taken */
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 3, 0x1000, 0), -EINVAL); /* upper half */
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 1, 0x1000, PCI_BAR_MEM_64), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 4, 1ULL << 32, 0), -EINVAL);
    ck_assert_int_eq(pci_device_add_bar(&r.dev, 4, 1ULL << 32, PCI_BAR_MEM_64), 0);
}
END_TEST

START_TEST(test_slots_and_window_full)
{
    struct t t;
    setup(&t);
    static struct rec r[32];
    for (unsigned i = 0; i < 31; i++) {
        rec_init(&r[i]);
        ck_assert_int_eq(pci_bus_add(t.pci, &r[i].dev), 0);
        ck_assert_uint_eq(r[i].dev.slot, i + 1);
    }
    rec_init(&r[31]);
    ck_assert_int_eq(pci_bus_add(t.pci, &r[31].dev), -ENOSPC);
    ck_assert_int_eq(pci_bus_add(t.pci, &r[3].dev), -EINVAL); /* already plugged */
    /* Unplugging frees the slot and stops decoding. */
    pci_bus_remove(t.pci, &r[4].dev);
    ck_assert_uint_eq(r[4].last_base[0], 0);
    ck_assert_uint_eq(cfg_rd(&t, 5, PCI_VENDOR_ID, 4), 0xffffffff);
    ck_assert_int_eq(pci_bus_add(t.pci, &r[31].dev), 0);
    ck_assert_uint_eq(r[31].dev.slot, 5);
    teardown(&t);

    /* A window too small for the BARs. */
    setup_window(&t, 0x6000);
    rec_init(&r[0]);
    ck_assert_int_eq(pci_bus_add(t.pci, &r[0].dev), -ENOSPC);
    ck_assert_ptr_null(r[0].dev.bus);
    teardown(&t);
}
END_TEST

START_TEST(test_bus_conflicts)
{
    struct bus pio, mmio;
    bus_init(&pio);
    bus_init(&mmio);
    struct pci_bus *p;
    ck_assert_int_eq(pci_bus_create(0, 0x1000, NULL, &p), -EINVAL);
    ck_assert_int_eq(pci_bus_create(WIN, 0, NULL, &p), -EINVAL);
    ck_assert_int_eq(pci_bus_create(~0ULL - 10, 0x1000, NULL, &p), -EINVAL);
    ck_assert_int_eq(pci_bus_create(WIN, 0x1000, NULL, &p), 0);
    ck_assert_int_eq(bus_add_device(&pio, &mmio, pci_bus_device(p), NULL), 0);
    /* A second bus on the same buses: its ports and window are taken. */
    struct pci_bus *q;
    ck_assert_int_eq(pci_bus_create(WIN, 0x1000, NULL, &q), 0);
    ck_assert_int_eq(bus_add_device(&pio, &mmio, pci_bus_device(q), NULL), -EEXIST);
    pci_bus_destroy(q);
    pci_bus_destroy(p);
    bus_free(&pio);
    bus_free(&mmio);
}
END_TEST

/* Find the 4-byte name seg in AML; returns its offset or -1. */
static long find(const uint8_t *p, size_t n, const char *s)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (!memcmp(p + i, s, 4))
            return (long)i;
    return -1;
}

START_TEST(test_acpi_aml)
{
    uint8_t buf[1024];
    int n = acpi_pci_aml(buf, sizeof(buf), PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(buf[0], 0x5b);
    ck_assert_uint_eq(buf[1], 0x82);
    /* Two-byte PkgLength covering the whole term. */
    ck_assert_uint_eq(buf[2] >> 6, 1);
    ck_assert_int_eq(((buf[2] & 0xf) | buf[3] << 4) + 2, n);
    ck_assert_int_eq(find(buf, (size_t)n, "PCI0"), 4);
    long hid = find(buf, (size_t)n, "_HID");
    ck_assert_int_gt(hid, 0);
    uint32_t eisa;
    memcpy(&eisa, buf + hid + 5, 4);
    ck_assert_uint_eq(eisa, acpi_eisaid("PNP0A03"));
    ck_assert_int_gt(find(buf, (size_t)n, "_CRS"), 0);
    /* The window's DWordMemory: min and max. */
    const uint8_t lo[4] = {0x00, 0x00, 0x00, 0xe0}, hi[4] = {0xff, 0xff, 0xbf, 0xfe};
    ck_assert_int_gt(find(buf, (size_t)n, (const char *)lo), 0);
    ck_assert_int_gt(find(buf, (size_t)n, (const char *)hi), 0);
    long prt = find(buf, (size_t)n, "_PRT");
    ck_assert_int_gt(prt, 0);
    ck_assert_uint_eq(buf[prt + 4], 0x12);
    ck_assert_uint_eq(buf[prt + 7], 31); /* NumElements after a 2-byte PkgLength */
    /* First entry: Package (4) { 0x0001FFFF, Zero, Zero, 16 } */
    const uint8_t e1[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x0a, 16};
    ck_assert_int_eq(memcmp(buf + prt + 8, e1, sizeof(e1)), 0);
    ck_assert_int_eq(acpi_pci_aml(buf, 100, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE), -E2BIG);
    ck_assert_int_eq(acpi_pci_aml(buf, sizeof(buf), 0x1000, 0), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pci");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_host_bridge);
    tcase_add_test(tc, test_conf1_latch);
    tcase_add_test(tc, test_conf1_decoding);
    tcase_add_test(tc, test_conf1_odd_sizes);
    tcase_add_test(tc, test_add_and_identity);
    tcase_add_test(tc, test_write_masks);
    tcase_add_test(tc, test_bar_sizing);
    tcase_add_test(tc, test_mmio_dispatch_and_move);
    tcase_add_test(tc, test_capabilities);
    tcase_add_test(tc, test_bad_bars);
    tcase_add_test(tc, test_slots_and_window_full);
    tcase_add_test(tc, test_bus_conflicts);
    tcase_add_test(tc, test_acpi_aml);
    tcase_add_test(tc, test_host_bridge_restore);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
