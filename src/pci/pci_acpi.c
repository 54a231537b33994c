/* pci_acpi.c: AML for the DSDT's PCI host bridge: PNP0A03 with its _CRS windows and INTx _PRT. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "platform/acpi.h"
#include "platform/aml.h"
#include "pci/pci.h"

/*
 * Why this exists: with ACPI on, Linux/x86 enumerates PCI only below the host bridges the DSDT
 * declares (pci_acpi_init() succeeds, so pci_subsys_init() never calls pci_legacy_init(), the
 * "PCI: Probing PCI hardware" path). The hardware-reduced FADT changes nothing there. Config
 * access itself still goes through mechanism #1 on bus 0 (no MCFG table, so no ECAM).
 */

/* Resource descriptors (ACPI 6, 6.4): small IO, and large word/dword/qword address spaces. */
#define RES_IO 0x47
#define RES_WORD 0x88
#define RES_DWORD 0x87
#define RES_QWORD 0x8a
#define RES_END 0x79
#define SPACE_MEMORY 0
#define SPACE_IO 1
#define SPACE_BUS 2
#define ADDR_FIXED_PRODUCER 0x0c /* _MIF and _MAF set, positive decode, produced for children */
#define IO_ENTIRE_RANGE 0x03
#define MEM_READ_WRITE 0x01 /* non-cacheable: the BARs have side effects */

#define CRS_MAX 128

/* Word/DWord/QWord address space descriptor, produced (a bridge window). */
static void addr_space(struct aml *a, uint8_t tag, unsigned width, uint8_t space,
                       uint8_t type_flags, uint64_t min, uint64_t len)
{
    aml_byte(a, tag);
    aml_le(a, 3 + 5 * width, 2); /* length of what follows the length field */
    aml_byte(a, space);
    aml_byte(a, ADDR_FIXED_PRODUCER);
    aml_byte(a, type_flags);
    aml_le(a, 0, width); /* granularity */
    aml_le(a, min, width);
    aml_le(a, min + len - 1, width);
    aml_le(a, 0, width); /* translation offset */
    aml_le(a, len, width);
}

/* Bus numbers 0-255, the conf1 ports, I/O around them, and the BAR window. */
static void crs_template(struct aml *r, uint64_t base, uint64_t size)
{
    addr_space(r, RES_WORD, 2, SPACE_BUS, 0, 0, 0x100);
    const uint8_t conf1[8] = {RES_IO, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
    aml_bytes(r, conf1, sizeof(conf1));
    addr_space(r, RES_WORD, 2, SPACE_IO, IO_ENTIRE_RANGE, 0, PCI_CONF1_ADDR_PORT);
    addr_space(r, RES_WORD, 2, SPACE_IO, IO_ENTIRE_RANGE, 0x0d00, 0x10000 - 0x0d00);
    if (base + size - 1 <= 0xffffffffULL)
        addr_space(r, RES_DWORD, 4, SPACE_MEMORY, MEM_READ_WRITE, base, size);
    else
        addr_space(r, RES_QWORD, 8, SPACE_MEMORY, MEM_READ_WRITE, base, size);
    aml_byte(r, RES_END);
    aml_byte(r, 0); /* checksum 0: not checked */
}

static void crs(struct aml *a, uint64_t base, uint64_t size)
{
    uint8_t tmp[CRS_MAX];
    struct aml r = {.buf = tmp, .cap = sizeof(tmp)};
    crs_template(&r, base, size);
    if (r.overflow) {
        a->overflow = true;
        return;
    }
    aml_name(a, "_CRS");
    aml_byte(a, 0x11); /* BufferOp */
    size_t pkg = a->len;
    aml_integer(a, (uint32_t)r.len);
    aml_bytes(a, tmp, r.len);
    aml_close(a, pkg);
}

/* Package (4) { 0xSSSSFFFF, pin, Zero (no link device), GSI } for INTA# of every slot. */
static void prt(struct aml *a)
{
    aml_name(a, "_PRT");
    aml_byte(a, 0x12); /* PackageOp */
    size_t pkg = a->len;
    aml_byte(a, PCI_MAX_SLOTS - 1);
    for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
        aml_byte(a, 0x12);
        size_t entry = a->len;
        aml_byte(a, 4);
        aml_byte(a, 0x0c); /* DWordConst: address, function 0xffff = any */
        aml_le(a, (uint32_t)slot << 16 | 0xffff, 4);
        aml_integer(a, 0); /* INTA# */
        aml_integer(a, 0); /* source: none, the next field is a GSI */
        aml_integer(a, pci_intx_gsi(slot));
        aml_close(a, entry);
    }
    aml_close(a, pkg);
}

void pci_acpi_describe(struct aml *a, uint64_t mmio_base, uint64_t mmio_size)
{
    size_t dev = aml_device_open(a, "PCI0");
    aml_name(a, "_HID");
    aml_byte(a, 0x0c);
    aml_le(a, acpi_eisaid("PNP0A03"), 4);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_name(a, "_BBN");
    aml_integer(a, 0);
    crs(a, mmio_base, mmio_size);
    prt(a);
    aml_close(a, dev);
}

int acpi_pci_aml(uint8_t *buf, size_t cap, uint64_t mmio_base, uint64_t mmio_size)
{
    if (!mmio_size || mmio_base + mmio_size - 1 < mmio_base)
        return -EINVAL;
    struct aml a = {.buf = buf, .cap = cap};
    pci_acpi_describe(&a, mmio_base, mmio_size);
    return a.overflow ? -E2BIG : (int)a.len;
}
