/* acpi.c: builds kiln's ACPI tables; the DSDT holds the entries the devices write themselves. */
#include "platform/acpi.h"

#include "platform/aml.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "platform/layout.h"
#include "util.h"

#define OEM_ID "KILN  "
#define OEM_TABLE_ID "KILNVM  "
#define CREATOR_ID "KILN"

struct __attribute__((packed)) acpi_header {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_rsdp {
    char signature[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
};

/* Generic Address Structure. */
struct __attribute__((packed)) acpi_gas {
    uint8_t space_id; /* 1: system I/O */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size; /* 1: byte */
    uint64_t address;
};

/* FADT, revision 6 layout (276 bytes); only the fields kiln sets are named. */
struct __attribute__((packed)) acpi_fadt {
    struct acpi_header h;
    uint32_t firmware_ctrl;
    uint32_t dsdt;
    uint8_t reserved0[46 - 44];
    uint16_t sci_int;
    uint32_t smi_cmd; /* 0: ACPI is always on, nothing to switch */
    uint8_t reserved1[56 - 52];
    uint32_t pm1a_evt_blk;
    uint32_t pm1b_evt_blk;
    uint32_t pm1a_cnt_blk;
    uint8_t reserved2[76 - 68];
    uint32_t pm_tmr_blk;
    uint8_t reserved3[88 - 80];
    uint8_t pm1_evt_len;
    uint8_t pm1_cnt_len;
    uint8_t pm2_cnt_len;
    uint8_t pm_tmr_len;
    uint8_t reserved4[109 - 92];
    uint16_t iapc_boot_arch;
    uint8_t reserved5;
    uint32_t flags;
    struct acpi_gas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    struct acpi_gas x_pm1a_evt_blk;
    uint8_t reserved6[172 - 160];
    struct acpi_gas x_pm1a_cnt_blk;
    uint8_t reserved7[208 - 184];
    struct acpi_gas x_pm_tmr_blk;
    uint8_t reserved8[244 - 220];
    struct acpi_gas sleep_control;
    struct acpi_gas sleep_status;
    char hypervisor_vendor[8];
};

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT layout");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags offset");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT offset");
_Static_assert(offsetof(struct acpi_fadt, pm_tmr_len) == 91, "FADT PM_TMR_LEN offset");
_Static_assert(offsetof(struct acpi_fadt, x_pm_tmr_blk) == 208, "FADT X_PM_TMR_BLK offset");

/* FACS (firmware control structure): only the full hardware model has one. */
struct __attribute__((packed)) acpi_facs {
    char signature[4];
    uint32_t length;
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version;
    uint8_t reserved[64 - 33];
};
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS layout");

#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4) /* no fixed power button (a control-method one instead) */
#define FADT_SLP_BUTTON (1u << 5) /* no fixed sleep button */
#define FADT_TMR_VAL_EXT (1u << 8)
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define BOOT_ARCH_VGA_NOT_PRESENT (1u << 2)
#define BOOT_ARCH_CMOS_RTC_NOT_PRESENT (1u << 5)

#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_ISO 2
#define MADT_LAPIC_NMI 4
#define MADT_ISO_LEVEL_HIGH 0x000d /* MPS INTI flags: active high (01), level-triggered (11) */
#define MADT_PCAT_COMPAT 1u

/* A bump allocator over a buffer that will sit at guest address base_gpa. */
struct acpi_area {
    uint8_t *base;
    uint64_t base_gpa;
    uint64_t used;
    uint64_t size;
    struct acpi_tables *t; /* where pointers and checksums are recorded */
};

/* len bytes at a guest address that is a multiple of align (16 or more, a power of two). */
static void *area_alloc_aligned(struct acpi_area *a, uint64_t len, uint64_t align, uint64_t *gpa)
{
    uint64_t off = align_up(a->base_gpa + a->used, align) - a->base_gpa;
    if (off > a->size || len > a->size - off)
        return NULL;
    a->used = off + len;
    *gpa = a->base_gpa + off;
    return memset(a->base + off, 0, len);
}

static void *area_alloc(struct acpi_area *a, uint64_t len, uint64_t *gpa)
{
    return area_alloc_aligned(a, len, 16, gpa);
}

/* Store gpa (size 4 or 8 bytes) at field, and remember the field for firmware's loader. */
static void put_pointer(struct acpi_area *a, void *field, uint64_t gpa, uint8_t size)
{
    memcpy(field, &gpa, size);
    struct acpi_tables *t = a->t;
    if (t->npointers < ACPI_MAX_FIXUPS)
        t->pointers[t->npointers++] =
            (struct acpi_pointer){(uint32_t)((uint8_t *)field - a->base), size};
    else
        t->overflow = true;
}

static void note_checksum(struct acpi_area *a, const void *start, uint32_t len, const void *field)
{
    struct acpi_tables *t = a->t;
    if (t->nsums < ACPI_MAX_FIXUPS)
        t->sums[t->nsums++] =
            (struct acpi_checksum){(uint32_t)((const uint8_t *)start - a->base), len,
                                   (uint32_t)((const uint8_t *)field - a->base)};
    else
        t->overflow = true;
}

static uint8_t checksum(const void *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += ((const uint8_t *)p)[i];
    return (uint8_t)-sum;
}

static void header_init(struct acpi_header *h, const char sig[4], uint32_t len, uint8_t rev)
{
    memcpy(h->signature, sig, 4);
    h->length = len;
    h->revision = rev;
    memcpy(h->oem_id, OEM_ID, 6);
    memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
    h->oem_revision = 1;
    memcpy(h->creator_id, CREATOR_ID, 4);
    h->creator_revision = 1;
}

static void header_seal(struct acpi_area *a, struct acpi_header *h)
{
    h->checksum = 0;
    h->checksum = checksum(h, h->length);
    note_checksum(a, h, h->length, &h->checksum);
}

/* ---- DSDT. */

/* Room for every entry, 16 virtio-mmio devices (about 70 bytes each) included. */
#define AML_MAX 4096

uint32_t acpi_eisaid(const char id[7])
{
    uint16_t vendor = (uint16_t)(((id[0] - 0x40) & 0x1f) << 10 | ((id[1] - 0x40) & 0x1f) << 5 |
                                 ((id[2] - 0x40) & 0x1f));
    uint16_t product = 0;
    for (int i = 3; i < 7; i++) {
        char c = id[i];
        product = (uint16_t)(product << 4 | (c >= 'A' ? c - 'A' + 10 : c - '0'));
    }
    /* Stored big-endian within each 16-bit half, read back as a little-endian dword. */
    return (uint32_t)(vendor >> 8) | (uint32_t)(vendor & 0xff) << 8 |
           (uint32_t)(product >> 8) << 16 | (uint32_t)(product & 0xff) << 24;
}

/* Scope (\_SB) with the entry of every device that has one, in the order the VM made them. */
static void dsdt_devices(struct aml *a, const struct acpi_config *cfg)
{
    aml_byte(a, 0x10); /* Scope(\_SB) */
    size_t scope = aml_open(a);
    aml_byte(a, '\\');
    aml_nameseg(a, "_SB_");
    for (unsigned i = 0; i < cfg->ndevices; i++) {
        const struct device *d = cfg->devices[i];
        if (d->ops->describe)
            d->ops->describe(d, a);
    }
    aml_close(a, scope);
}

/* \_S5: SLP_TYPa/SLP_TYPb for soft-off, written into the sleep control register. */
static void dsdt_s5(struct aml *a)
{
    aml_name(a, "_S5_");
    aml_byte(a, 0x12); /* PackageOp */
    size_t pkg = aml_open(a);
    aml_byte(a, 4);
    aml_integer(a, ACPI_S5_SLP_TYP);
    aml_integer(a, ACPI_S5_SLP_TYP);
    aml_integer(a, 0);
    aml_integer(a, 0);
    aml_close(a, pkg);
}

static int write_dsdt(struct acpi_area *area, const struct acpi_config *cfg, uint64_t *gpa)
{
    uint8_t body[AML_MAX];
    struct aml a = {.buf = body, .cap = sizeof(body)};
    dsdt_devices(&a, cfg);
    dsdt_s5(&a);
    if (a.overflow)
        return -E2BIG;
    uint32_t len = (uint32_t)(sizeof(struct acpi_header) + a.len);
    struct acpi_header *h = area_alloc(area, len, gpa);
    if (!h)
        return -E2BIG;
    header_init(h, "DSDT", len, 2);
    memcpy(h + 1, a.buf, a.len);
    header_seal(area, h);
    return 0;
}

static struct acpi_gas io_gas(uint16_t port)
{
    return (struct acpi_gas){.space_id = 1, .bit_width = 8, .access_size = 1, .address = port};
}

static struct acpi_gas io_gas_width(uint16_t port, uint8_t bits, uint8_t access)
{
    return (struct acpi_gas){
        .space_id = 1, .bit_width = bits, .access_size = access, .address = port};
}

/*
 * The full (not hardware-reduced) model, for guests that firmware boots: the PM1 event and
 * control blocks, the PM timer and the SCI, so that the operating system also takes over the
 * 8259 PIC firmware left running (a hardware-reduced one would assume there is none).
 */
static void fadt_full_hardware(struct acpi_area *area, struct acpi_fadt *f, uint64_t facs)
{
    put_pointer(area, &f->firmware_ctrl, facs, 4);
    put_pointer(area, &f->x_firmware_ctrl, facs, 8);
    f->sci_int = ACPI_SCI_IRQ;
    f->pm1a_evt_blk = PORT_ACPI_PM1A_EVT;
    f->pm1a_cnt_blk = PORT_ACPI_PM1A_CNT;
    f->pm_tmr_blk = PORT_ACPI_PM_TMR;
    f->pm1_evt_len = 4;
    f->pm1_cnt_len = 2;
    f->pm_tmr_len = 4;
    f->x_pm1a_evt_blk = io_gas_width(PORT_ACPI_PM1A_EVT, 32, 2);
    f->x_pm1a_cnt_blk = io_gas_width(PORT_ACPI_PM1A_CNT, 16, 2);
    f->x_pm_tmr_blk = io_gas_width(PORT_ACPI_PM_TMR, 32, 3);
    f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP;
    f->iapc_boot_arch = BOOT_ARCH_VGA_NOT_PRESENT; /* and a CMOS RTC */
}

static int write_fadt(struct acpi_area *area, uint64_t dsdt, const uint64_t *facs, uint64_t *gpa)
{
    struct acpi_fadt *f = area_alloc(area, sizeof(*f), gpa);
    if (!f)
        return -E2BIG;
    header_init(&f->h, "FACP", sizeof(*f), 6);
    put_pointer(area, &f->dsdt, dsdt, 4);
    put_pointer(area, &f->x_dsdt, dsdt, 8);
    f->minor_version = 5;
    f->reset_reg = io_gas(PORT_ACPI_RESET);
    f->reset_value = ACPI_RESET_VALUE;
    memcpy(f->hypervisor_vendor, "KILN\0\0\0\0", 8);
    if (facs) {
        fadt_full_hardware(area, f, *facs);
    } else {
        /* No PM timer, SCI, GPEs or PM1 blocks: just the sleep and reset registers. The power
         * button is a control-method one behind a Generic Event Device (devices/acpi_pm.c). */
        f->flags = FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
        /* No i8042 bit: Linux then skips probing a keyboard controller that has no keyboard. */
        f->iapc_boot_arch = BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT;
        f->sleep_control = io_gas(PORT_ACPI_SLEEP_CONTROL);
        f->sleep_status = io_gas(PORT_ACPI_SLEEP_STATUS);
    }
    header_seal(area, &f->h);
    return 0;
}

static int write_facs(struct acpi_area *area, uint64_t *gpa)
{
    struct acpi_facs *facs = area_alloc_aligned(area, sizeof(*facs), 64, gpa);
    if (!facs)
        return -E2BIG;
    memcpy(facs->signature, "FACS", 4);
    facs->length = sizeof(*facs);
    facs->version = 2;
    return 0;
}

static void put(uint8_t **p, const void *data, size_t n)
{
    memcpy(*p, data, n);
    *p += n;
}

/* An interrupt source override that keeps ISA IRQ irq on GSI irq but makes it level, high. */
static void put_level_iso(uint8_t **p, unsigned irq)
{
    const uint8_t iso[10] = {MADT_ISO,
                             10,
                             0,
                             (uint8_t)irq,
                             (uint8_t)irq,
                             0,
                             0,
                             0,
                             MADT_ISO_LEVEL_HIGH & 0xff,
                             MADT_ISO_LEVEL_HIGH >> 8};
    put(p, iso, sizeof(iso));
}

static int write_madt(struct acpi_area *area, unsigned cpus, uint16_t level_irqs, uint64_t *gpa)
{
    size_t len = sizeof(struct acpi_header) + 8 + 8 * (size_t)cpus + 12 + 6 +
                 10 * (size_t)__builtin_popcount(level_irqs);
    struct acpi_header *h = area_alloc(area, len, gpa);
    if (!h)
        return -E2BIG;
    header_init(h, "APIC", (uint32_t)len, 4);
    uint8_t *p = (uint8_t *)(h + 1);
    uint32_t lapic = (uint32_t)LAYOUT_LAPIC, flags = MADT_PCAT_COMPAT;
    put(&p, &lapic, 4);
    put(&p, &flags, 4);
    for (unsigned i = 0; i < cpus; i++) {
        const uint8_t e[8] = {MADT_LAPIC, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0};
        put(&p, e, sizeof(e));
    }
    uint32_t ioapic = (uint32_t)LAYOUT_IOAPIC;
    const uint8_t io[12] = {MADT_IOAPIC,
                            12,
                            (uint8_t)cpus,
                            0,
                            (uint8_t)ioapic,
                            (uint8_t)(ioapic >> 8),
                            (uint8_t)(ioapic >> 16),
                            (uint8_t)(ioapic >> 24),
                            0,
                            0,
                            0,
                            0};
    put(&p, io, sizeof(io));
    /*
     * KVM's default routing (kiln installs no other) sends GSI n to I/O APIC pin n, the in-kernel
     * PIT included, so ISA IRQs map one to one; overrides only change the trigger mode of the
     * level lines (virtio-mmio), which ISA would otherwise make edge-triggered.
     */
    for (unsigned irq = 0; irq < 16; irq++)
        if (level_irqs & (1u << irq))
            put_level_iso(&p, irq);
    /* NMI on LINT1 of every processor (ACPI processor UID 0xff). */
    const uint8_t nmi[6] = {MADT_LAPIC_NMI, 6, 0xff, 0, 0, 1};
    put(&p, nmi, sizeof(nmi));
    header_seal(area, h);
    return 0;
}

static int write_xsdt(struct acpi_area *area, const uint64_t *tables, unsigned n, uint64_t *gpa)
{
    uint32_t len = (uint32_t)(sizeof(struct acpi_header) + 8 * n);
    struct acpi_header *h = area_alloc(area, len, gpa);
    if (!h)
        return -E2BIG;
    header_init(h, "XSDT", len, 1);
    for (unsigned i = 0; i < n; i++)
        put_pointer(area, (uint8_t *)(h + 1) + 8 * i, tables[i], 8);
    header_seal(area, h);
    return 0;
}

int acpi_build(const struct acpi_config *cfg, uint64_t base, struct acpi_tables *t)
{
    *t = (struct acpi_tables){.base = base};
    uint64_t size = LAYOUT_ACPI_END - LAYOUT_ACPI_START;
    struct acpi_area area = {.base = calloc(1, size), .base_gpa = base, .size = size, .t = t};
    if (!area.base)
        return -ENOMEM;
    t->buf = area.base;
    uint64_t rsdp_at, dsdt, facs = 0, tables[2], xsdt;
    struct acpi_rsdp *rsdp = area_alloc(&area, sizeof(*rsdp), &rsdp_at);
    int ret = 0;
    if ((cfg->full_hardware && (ret = write_facs(&area, &facs)) < 0) ||
        (ret = write_dsdt(&area, cfg, &dsdt)) < 0 ||
        (ret = write_fadt(&area, dsdt, cfg->full_hardware ? &facs : NULL, &tables[0])) < 0 ||
        (ret = write_madt(&area, cfg->cpus, cfg->level_irqs, &tables[1])) < 0 ||
        (ret = write_xsdt(&area, tables, 2, &xsdt)) < 0) {
        acpi_tables_free(t);
        return ret;
    }
    memcpy(rsdp->signature, "RSD PTR ", 8);
    memcpy(rsdp->oem_id, OEM_ID, 6);
    rsdp->revision = 2;
    rsdp->length = sizeof(*rsdp);
    put_pointer(&area, &rsdp->xsdt_address, xsdt, 8);
    rsdp->checksum = checksum(rsdp, 20);
    rsdp->extended_checksum = checksum(rsdp, sizeof(*rsdp));
    note_checksum(&area, rsdp, 20, &rsdp->checksum);
    note_checksum(&area, rsdp, sizeof(*rsdp), &rsdp->extended_checksum);
    t->len = (uint32_t)area.used;
    t->tables_offset = (uint32_t)align_up(sizeof(*rsdp), 16);
    if (t->overflow) {
        acpi_tables_free(t);
        return -E2BIG;
    }
    return 0;
}

void acpi_tables_free(struct acpi_tables *t)
{
    free(t->buf);
    t->buf = NULL;
}

int acpi_write(const struct guest_mem *gm, const struct acpi_config *cfg, uint64_t *rsdp_gpa)
{
    struct acpi_tables t;
    int ret = acpi_build(cfg, LAYOUT_ACPI_START, &t);
    if (ret < 0)
        return ret;
    ret = guest_write(gm, LAYOUT_ACPI_START, t.buf, t.len);
    acpi_tables_free(&t);
    *rsdp_gpa = LAYOUT_ACPI_START;
    return ret;
}
