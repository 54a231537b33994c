/* pci.h: PCI bus 0: config mechanism #1, a host bridge, type-0 config spaces and memory BARs. */
#ifndef KILN_PCI_H
#define KILN_PCI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "platform/layout.h"
#include "util.h"

#define PCI_CFG_SIZE 256 /* conventional PCI: no extended configuration space */
#define PCI_NUM_BARS 6
#define PCI_MAX_SLOTS 32

/* Configuration mechanism #1: an address latch and a 4-byte data window. */
#define PCI_CONF1_ADDR_PORT 0xcf8
#define PCI_CONF1_DATA_PORT 0xcfc
#define PCI_CONF1_ENABLE 0x80000000u

/* Where kiln places BARs: the top of the 32-bit PCI hole, up to the I/O APIC. */
#define PCI_MMIO_WINDOW_BASE 0xe0000000ULL
#define PCI_MMIO_WINDOW_SIZE (LAYOUT_IOAPIC - PCI_MMIO_WINDOW_BASE)

/*
 * INTx: INTA# of slot s (1..31) is I/O APIC pin PCI_INTX_GSI_BASE + (s - 1) % PCI_INTX_GSI_COUNT.
 * Pins 16-23 are no ISA IRQ, so no legacy device shares them; the DSDT's _PRT says the same.
 */
#define PCI_INTX_GSI_BASE 16
#define PCI_INTX_GSI_COUNT 8

/* Type-0 header registers. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_LATENCY_TIMER 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_ROM_ADDRESS 0x30
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_IO 0x0001
#define PCI_COMMAND_MEMORY 0x0002
#define PCI_COMMAND_MASTER 0x0004
#define PCI_COMMAND_PARITY 0x0040
#define PCI_COMMAND_SERR 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS_CAP_LIST 0x0010

/* Memory BAR flags (the low bits of the BAR register). */
#define PCI_BAR_MEM_64 0x4
#define PCI_BAR_MEM_PREFETCH 0x8

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_START 0x40 /* first byte after the type-0 header */

struct pci_bus;
struct pci_device;

/*
 * What a function implements; every hook is optional. dev is the shape every device has
 * (device.h): read/write are accesses of len (1, 2, 4 or 8) bytes at off, entirely inside BAR
 * `region`, on vCPU threads with no bus lock held; reset and the life cycle as device.h says.
 * The config hooks run with the bus configuration lock held (vCPU threads, or the builder): a
 * device may take its own lock inside them but must never call back into the bus.
 */
struct pci_device_ops {
    struct device_ops dev;
    /* BAR bar now decodes at base; 0: it stopped decoding (memory space off, or moved away). */
    void (*bar_remap)(struct pci_device *dev, unsigned bar, uint64_t base);
    /* The guest wrote config bytes [off, off + len); dev->cfg already holds the result. */
    void (*cfg_written)(struct pci_device *dev, unsigned off, unsigned len);
    /* A config read of [off, off + len) is about to return dev->cfg: refresh computed bytes. */
    void (*cfg_read)(struct pci_device *dev, unsigned off, unsigned len);
};

struct pci_bar {
    uint64_t size; /* power of two >= 16; 0: unused, or the upper half of a 64-bit BAR */
    uint8_t flags; /* PCI_BAR_MEM_64, PCI_BAR_MEM_PREFETCH */
    bool upper;    /* this register holds bits 63:32 of the BAR before it */
    uint64_t addr; /* what the guest (or kiln) programmed; bus configuration lock */
    /* Where the BAR decodes now, 0 if it does not; read without locks by MMIO dispatch. */
    _Atomic uint64_t mapped;
};

/* Identity registers of a function. */
struct pci_id {
    uint16_t vendor, device;
    uint16_t subsys_vendor, subsys_id;
    uint32_t class_code; /* class, subclass, programming interface: e.g. 0x018000 */
    uint8_t revision;
    bool intx; /* the function uses INTA# */
};

struct pci_device {
    struct device device;        /* name, and ops->dev for BAR accesses */
    uint8_t cfg[PCI_CFG_SIZE];   /* register values (BARs live in bars[]) */
    uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may change */
    struct pci_bar bars[PCI_NUM_BARS];
    const struct pci_device_ops *ops;
    void *priv;
    /* Set by pci_bus_add. */
    struct pci_bus *bus;
    unsigned slot;
    unsigned intx_gsi;         /* 0 if the function has no INTx */
    _Atomic uint16_t command;  /* copy of the command register, for any thread */
    uint8_t cap_last, cap_end; /* capability list builder: last entry, first free byte */
};

/*
 * Snapshot of a function's config space and BAR addresses (no vCPU running). restore puts them
 * back and decodes the BARs where they were, telling the device (bar_remap) as a guest write
 * would. Returns 0 or -errno.
 */
struct device_state;
void pci_device_save(const struct pci_device *dev, struct device_state *st);
int pci_device_restore(struct pci_device *dev, struct device_state *st);

/* Start a function's config space: ids, header type 0, the writable command bits. ops may be
 * NULL (a function with no BARs and no hooks). */
void pci_device_init(struct pci_device *dev, const struct pci_id *id,
                     const struct pci_device_ops *ops, void *priv, const char *name);

/*
 * Declare memory BAR bar (0-5) of size bytes (a power of two, at least 16); flags may hold
 * PCI_BAR_MEM_64 (the BAR also takes register bar + 1) and PCI_BAR_MEM_PREFETCH.
 * Returns 0 or -EINVAL. I/O BARs are not supported.
 */
int pci_device_add_bar(struct pci_device *dev, unsigned bar, uint64_t size, unsigned flags);

/*
 * Append a capability: id, the next pointer, then len bytes of body (the fields after the next
 * pointer). Returns its config offset, or -E2BIG if it does not fit in 256 bytes.
 * Its bytes are read-only until the caller sets dev->wmask for them.
 */
int pci_device_add_cap(struct pci_device *dev, uint8_t id, const void *body, unsigned len);

/* Little-endian config register helpers (len 1, 2 or 4; off + len <= 256). */
uint32_t pci_cfg_get(const struct pci_device *dev, unsigned off, unsigned len);
void pci_cfg_set(struct pci_device *dev, unsigned off, unsigned len, uint32_t v);

/* The command register as the guest last wrote it; any thread. */
uint16_t pci_device_command(const struct pci_device *dev);

/* True if [off, off + len) and [reg, reg + reg_len) overlap. */
static inline bool pci_cfg_overlaps(unsigned off, unsigned len, unsigned reg, unsigned reg_len)
{
    return off < reg + reg_len && reg < off + len;
}

/*
 * Create bus 0 with its host bridge at 00:00.0, decoding BARs in [mmio_base, mmio_base +
 * mmio_size). The bus is itself a device (pci_bus_device): the conf1 address and data ports
 * are its PIO ranges 0 and 1, the BAR window its MMIO range 2, and it describes the host bridge
 * (PCI0) in the DSDT. Returns 0 or -errno.
 */
int pci_bus_create(uint64_t mmio_base, uint64_t mmio_size, const struct kiln_log *log,
                   struct pci_bus **out);
void pci_bus_destroy(struct pci_bus *bus);
struct device *pci_bus_device(struct pci_bus *bus);

/*
 * Plug dev into the next free slot (1..31), place its BARs in the window (naturally aligned),
 * wire INTA# to its GSI (Interrupt Line register), and turn memory decoding on as firmware
 * would, which calls bar_remap for each BAR. Only while the VM is built: MMIO dispatch reads
 * the slot table without locks. Returns 0, -ENOSPC (no slot or window space) or -EINVAL.
 */
int pci_bus_add(struct pci_bus *bus, struct pci_device *dev);

/* Unplug dev (build-time error paths and teardown): its BARs stop decoding first. */
void pci_bus_remove(struct pci_bus *bus, struct pci_device *dev);

/* The I/O APIC GSI that INTA# of slot is wired to. */
static inline unsigned pci_intx_gsi(unsigned slot)
{
    return PCI_INTX_GSI_BASE + (slot - 1) % PCI_INTX_GSI_COUNT;
}

/*
 * The DSDT's PCI host bridge (pci_acpi.c): Device (PCI0) with _HID PNP0A03,
 * _CRS (bus numbers, the conf1 ports, I/O and the MMIO window) and _PRT (INTA# of each slot to
 * its GSI). Writes the AML term into buf. Returns its length, or -E2BIG if cap is too small.
 */
int acpi_pci_aml(uint8_t *buf, size_t cap, uint64_t mmio_base, uint64_t mmio_size);
/* The same term appended to a (platform/aml.h); a->overflow reports a full buffer. */
void pci_acpi_describe(struct aml *a, uint64_t mmio_base, uint64_t mmio_size);

#endif
