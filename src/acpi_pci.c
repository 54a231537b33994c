/* acpi_pci.c: AML for the DSDT's PCI host bridge: PNP0A03 with its _CRS windows and INTx _PRT. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "acpi.h"
#include "pci.h"

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

struct aml_out {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
};

static void put(struct aml_out *a, const void *data, size_t n)
{
    if (a->overflow || n > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    memcpy(a->buf + a->len, data, n);
    a->len += n;
}

static void put8(struct aml_out *a, uint8_t v)
{
    put(a, &v, 1);
}

static void put_le(struct aml_out *a, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        put8(a, (uint8_t)(v >> (8 * i)));
}

/* PkgLength goes in front of contents already written from start. */
static void close_pkg(struct aml_out *a, size_t start)
{
    size_t content = a->len - start;
    unsigned n = aml_pkglen_size((unsigned)content);
    if (a->overflow || n > a->cap - a->len) {
        a->overflow = true;
        return;
    }
    size_t total = content + n;
    memmove(a->buf + start + n, a->buf + start, content);
    if (n == 1) {
        a->buf[start] = (uint8_t)total;
    } else {
        a->buf[start] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
        for (unsigned i = 1; i < n; i++)
            a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
    }
    a->len += n;
}

static void integer(struct aml_out *a, uint32_t v)
{
    if (v <= 1) {
        put8(a, (uint8_t)v); /* ZeroOp, OneOp */
    } else if (v <= 0xff) {
        put8(a, 0x0a);
        put8(a, (uint8_t)v);
    } else if (v <= 0xffff) {
        put8(a, 0x0b);
        put_le(a, v, 2);
    } else {
        put8(a, 0x0c);
        put_le(a, v, 4);
    }
}

static void name(struct aml_out *a, const char seg[4])
{
    put8(a, 0x08); /* NameOp */
    put(a, seg, 4);
}

/* Word/DWord/QWord address space descriptor, produced (a bridge window). */
static void addr_space(struct aml_out *a, uint8_t tag, unsigned width, uint8_t space,
                       uint8_t type_flags, uint64_t min, uint64_t len)
{
    put8(a, tag);
    put_le(a, 3 + 5 * width, 2); /* length of what follows the length field */
    put8(a, space);
    put8(a, ADDR_FIXED_PRODUCER);
    put8(a, type_flags);
    put_le(a, 0, width); /* granularity */
    put_le(a, min, width);
    put_le(a, min + len - 1, width);
    put_le(a, 0, width); /* translation offset */
    put_le(a, len, width);
}

/* Bus numbers 0-255, the conf1 ports, I/O around them, and the BAR window. */
static void crs_template(struct aml_out *r, uint64_t base, uint64_t size)
{
    addr_space(r, RES_WORD, 2, SPACE_BUS, 0, 0, 0x100);
    const uint8_t conf1[8] = {RES_IO, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
    put(r, conf1, sizeof(conf1));
    addr_space(r, RES_WORD, 2, SPACE_IO, IO_ENTIRE_RANGE, 0, PCI_CONF1_ADDR_PORT);
    addr_space(r, RES_WORD, 2, SPACE_IO, IO_ENTIRE_RANGE, 0x0d00, 0x10000 - 0x0d00);
    if (base + size - 1 <= 0xffffffffULL)
        addr_space(r, RES_DWORD, 4, SPACE_MEMORY, MEM_READ_WRITE, base, size);
    else
        addr_space(r, RES_QWORD, 8, SPACE_MEMORY, MEM_READ_WRITE, base, size);
    put8(r, RES_END);
    put8(r, 0); /* checksum 0: not checked */
}

static void crs(struct aml_out *a, uint64_t base, uint64_t size)
{
    uint8_t tmp[CRS_MAX];
    struct aml_out r = {.buf = tmp, .cap = sizeof(tmp)};
    crs_template(&r, base, size);
    if (r.overflow) {
        a->overflow = true;
        return;
    }
    name(a, "_CRS");
    put8(a, 0x11); /* BufferOp */
    size_t pkg = a->len;
    integer(a, (uint32_t)r.len);
    put(a, tmp, r.len);
    close_pkg(a, pkg);
}

/* Package (4) { 0xSSSSFFFF, pin, Zero (no link device), GSI } for INTA# of every slot. */
static void prt(struct aml_out *a)
{
    name(a, "_PRT");
    put8(a, 0x12); /* PackageOp */
    size_t pkg = a->len;
    put8(a, PCI_MAX_SLOTS - 1);
    for (unsigned slot = 1; slot < PCI_MAX_SLOTS; slot++) {
        put8(a, 0x12);
        size_t entry = a->len;
        put8(a, 4);
        put8(a, 0x0c); /* DWordConst: address, function 0xffff = any */
        put_le(a, (uint32_t)slot << 16 | 0xffff, 4);
        integer(a, 0); /* INTA# */
        integer(a, 0); /* source: none, the next field is a GSI */
        integer(a, pci_intx_gsi(slot));
        close_pkg(a, entry);
    }
    close_pkg(a, pkg);
}

int acpi_pci_aml(uint8_t *buf, size_t cap, uint64_t mmio_base, uint64_t mmio_size)
{
    if (!mmio_size || mmio_base + mmio_size - 1 < mmio_base)
        return -EINVAL;
    struct aml_out a = {.buf = buf, .cap = cap};
    put8(&a, 0x5b); /* ExtOpPrefix */
    put8(&a, 0x82); /* DeviceOp */
    size_t dev = a.len;
    put(&a, "PCI0", 4);
    name(&a, "_HID");
    put8(&a, 0x0c);
    put_le(&a, acpi_eisaid("PNP0A03"), 4);
    name(&a, "_UID");
    integer(&a, 0);
    name(&a, "_BBN");
    integer(&a, 0);
    crs(&a, mmio_base, mmio_size);
    prt(&a);
    close_pkg(&a, dev);
    return a.overflow ? -E2BIG : (int)a.len;
}
