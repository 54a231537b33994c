/* test_acpi.c: ACPI tables (checksums, links, FADT, MADT, DSDT) and the ACPI/pvpanic devices. */
#include <check.h>
#include <string.h>
#include <time.h>

#include "devices/acpi_pm.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "kiln.h"
#include "memory.h"
#include "pci/pci.h"
#include "platform/acpi.h"
#include "platform/aml.h"
#include "platform/layout.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A table at gpa: checks its signature and checksum, returns its host address. */
static const uint8_t *table(const struct guest_mem *gm, uint64_t gpa, const char *sig)
{
    const uint8_t *h = gpa_to_host(gm, gpa, 36);
    ck_assert_ptr_nonnull(h);
    ck_assert_msg(memcmp(h, sig, 4) == 0, "expected %s at 0x%llx", sig, (unsigned long long)gpa);
    uint32_t len = rd32(h + 4);
    ck_assert_uint_ge(len, 36);
    ck_assert_uint_le(gpa + len, LAYOUT_ACPI_END);
    ck_assert_uint_eq(sum(h, len), 0);
    return h;
}

static const uint8_t *find_in_xsdt(const struct guest_mem *gm, const uint8_t *xsdt, const char *sig)
{
    uint32_t n = (rd32(xsdt + 4) - 36) / 8;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = rd64(xsdt + 36 + 8 * i);
        const uint8_t *h = gpa_to_host(gm, gpa, 4);
        if (h && memcmp(h, sig, 4) == 0)
            return table(gm, gpa, sig);
    }
    return NULL;
}

static const uint8_t *memfind(const uint8_t *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

static void no_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    (void)ctx;
    (void)reason;
    (void)status;
    (void)error;
    (void)msg;
    ck_abort_msg("no device may end the VM here");
}

/* The devices with a DSDT entry, as the VM makes them: COM1, pvpanic, PCI bus 0. */
struct dsdt_devices {
    struct device *list[3];
    struct serial *serial;
    struct pci_bus *pci;
};

static void dsdt_devices_make(struct dsdt_devices *d)
{
    static const struct kiln_log log = {.level = KILN_LOG_ERROR};
    const struct end_vm end = {no_end, NULL};
    const struct serial_config sc = {.in_fd = -1, .out_fd = -1, .irq_fd = -1, .end = end};
    ck_assert_int_eq(serial_create(&sc, &d->serial), 0);
    d->list[0] = serial_device(d->serial);
    ck_assert_int_eq(pvpanic_create(&end, &log, &d->list[1]), 0);
    ck_assert_int_eq(pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, &log, &d->pci), 0);
    d->list[2] = pci_bus_device(d->pci);
}

static void dsdt_devices_free(struct dsdt_devices *d)
{
    for (unsigned i = 0; i < 3; i++)
        d->list[i]->ops->destroy(d->list[i]);
}

/* level_irqs: ISA IRQs to declare level-triggered (virtio-mmio), 0 for none. */
static void check_tables(unsigned cpus, uint16_t level_irqs)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 64 << 20), 0);
    struct dsdt_devices devs;
    dsdt_devices_make(&devs);
    const struct acpi_config cfg = {
        .cpus = cpus, .level_irqs = level_irqs, .devices = devs.list, .ndevices = 3};
    uint64_t rsdp_gpa = 0;
    ck_assert_int_eq(acpi_write(&gm, &cfg, &rsdp_gpa), 0);
    ck_assert_uint_eq(rsdp_gpa, ACPI_RSDP_ADDR);
    /* Linux's legacy scan looks at 16-byte boundaries in 0xe0000-0xfffff. */
    ck_assert_uint_eq(rsdp_gpa % 16, 0);
    ck_assert_uint_ge(rsdp_gpa, 0xe0000);
    const uint8_t *rsdp = gpa_to_host(&gm, rsdp_gpa, 36);
    ck_assert_int_eq(memcmp(rsdp, "RSD PTR ", 8), 0);
    ck_assert_uint_eq(sum(rsdp, 20), 0);
    ck_assert_uint_eq(sum(rsdp, 36), 0);
    ck_assert_uint_eq(rsdp[15], 2);
    const uint8_t *xsdt = table(&gm, rd64(rsdp + 24), "XSDT");

    const uint8_t *fadt = find_in_xsdt(&gm, xsdt, "FACP");
    ck_assert_ptr_nonnull(fadt);
    ck_assert_uint_eq(rd32(fadt + 4), 276);
    ck_assert(rd32(fadt + 112) & (1u << 20)); /* HW_REDUCED_ACPI */
    ck_assert_uint_eq(fadt[116], 1);          /* reset register in I/O space */
    ck_assert_uint_eq(rd64(fadt + 120), PORT_ACPI_RESET);
    ck_assert_uint_eq(fadt[128], ACPI_RESET_VALUE);
    ck_assert_uint_eq(rd64(fadt + 244 + 4), PORT_ACPI_SLEEP_CONTROL);
    ck_assert_uint_eq(rd64(fadt + 256 + 4), PORT_ACPI_SLEEP_STATUS);
    const uint8_t *dsdt = table(&gm, rd64(fadt + 140), "DSDT");
    ck_assert_uint_eq(rd32(fadt + 40), rd64(fadt + 140));
    uint32_t dlen = rd32(dsdt + 4);
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "_S5_", 4));
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "QEMU0001", 8));
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "COM1", 4));
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "PCI0", 4));
    /* In the order the devices came: COM1, then pvpanic, then the host bridge. */
    ck_assert(memfind(dsdt, dlen, "COM1", 4) < memfind(dsdt, dlen, "PEVT", 4));
    ck_assert(memfind(dsdt, dlen, "PEVT", 4) < memfind(dsdt, dlen, "PCI0", 4));

    const uint8_t *madt = find_in_xsdt(&gm, xsdt, "APIC");
    ck_assert_ptr_nonnull(madt);
    ck_assert_uint_eq(rd32(madt + 36), LAYOUT_LAPIC);
    unsigned lapics = 0, ioapics = 0, overrides = 0;
    for (uint32_t off = 44; off < rd32(madt + 4); off += madt[off + 1]) {
        ck_assert_uint_ge(madt[off + 1], 2);
        if (madt[off] == 0) {
            ck_assert_uint_eq(madt[off + 3], lapics); /* APIC ID */
            ck_assert_uint_eq(madt[off + 4] & 1, 1);  /* enabled */
            lapics++;
        } else if (madt[off] == 1) {
            ck_assert_uint_eq(rd32(madt + off + 4), LAYOUT_IOAPIC);
            ioapics++;
        } else if (madt[off] == 2) {
            unsigned irq = madt[off + 3];
            ck_assert_uint_eq(madt[off + 1], 10);
            ck_assert(irq < 16 && (level_irqs & (1u << irq)));
            ck_assert_uint_eq(rd32(madt + off + 4), irq); /* same GSI: only the mode changes */
            ck_assert_uint_eq(madt[off + 8] | madt[off + 9] << 8, 0x000d); /* level, high */
            overrides++;
        }
    }
    ck_assert_uint_eq(lapics, cpus);
    ck_assert_uint_eq(ioapics, 1);
    /* KVM routes GSI n to I/O APIC pin n, as the MP table also says: overrides only for mode. */
    ck_assert_uint_eq(overrides, (unsigned)__builtin_popcount(level_irqs));
    dsdt_devices_free(&devs);
    guest_mem_free(&gm);
}

START_TEST(test_tables_1cpu)
{
    check_tables(1, 0);
}
END_TEST

START_TEST(test_tables_many_cpus)
{
    check_tables(8, 0);
    check_tables(KILN_MAX_CPUS, 0);
}
END_TEST

START_TEST(test_tables_level_irqs)
{
    check_tables(1, 1u << 5);
    check_tables(4, (1u << 5) | (1u << 6) | (1u << 7) | (1u << 9) | (1u << 10) | (1u << 11) |
                        (1u << 14) | (1u << 15));
    check_tables(KILN_MAX_CPUS, 0xffff);
}
END_TEST

START_TEST(test_eisaid_and_pkglen)
{
    ck_assert_uint_eq(acpi_eisaid("PNP0501"), 0x0105d041u);
    ck_assert_uint_eq(acpi_eisaid("PNP0A03"), 0x030ad041u);
    ck_assert_uint_eq(aml_pkglen_size(0), 1);
    ck_assert_uint_eq(aml_pkglen_size(62), 1);
    ck_assert_uint_eq(aml_pkglen_size(63), 2);
    ck_assert_uint_eq(aml_pkglen_size(0xffd), 2);
    ck_assert_uint_eq(aml_pkglen_size(0xffe), 3);
}
END_TEST

/* The PkgLength at p: its value (the package's length from p on) and its size in *n. */
static unsigned pkglen_at(const uint8_t *p, unsigned *n)
{
    *n = 1 + (p[0] >> 6);
    if (*n == 1)
        return p[0] & 0x3f;
    unsigned v = p[0] & 0x0f;
    for (unsigned i = 1; i < *n; i++)
        v |= (unsigned)p[i] << (4 + 8 * (i - 1));
    return v;
}

/*
 * Name(_CRS, Buffer) at p: checks the wrapping (NameOp, BufferOp, PkgLength, the size integer,
 * the End Tag last) and returns the descriptors' bytes, their count in *n.
 */
static const uint8_t *crs_at(const uint8_t *p, size_t avail, size_t *n)
{
    ck_assert_uint_ge(avail, 8);
    ck_assert_int_eq(memcmp(p, "\x08_CRS\x11", 6), 0);
    unsigned lsize, pkg = pkglen_at(p + 6, &lsize);
    ck_assert_uint_le(6 + pkg, avail);
    const uint8_t *q = p + 6 + lsize;
    unsigned size = 0;
    if (q[0] == 0x0a) { /* BytePrefix: every template here is short */
        size = q[1];
        q += 2;
    } else {
        ck_abort_msg("buffer size: opcode 0x%02x", q[0]);
    }
    ck_assert_uint_eq((size_t)(q - (p + 6)) + size, pkg); /* the package ends with the buffer */
    ck_assert_uint_ge(size, 2);
    ck_assert_uint_eq(q[size - 2], 0x79); /* End Tag, small item, length 1 */
    ck_assert_uint_eq(q[size - 1], 0x00); /* checksum 0: not checked */
    *n = size - 2;
    return q;
}

START_TEST(test_aml_resources)
{
    uint8_t rbuf[64], buf[128];
    struct aml res = {.buf = rbuf, .cap = sizeof(rbuf)};
    aml_res_memory32_fixed(&res, 0xd0003000u, 0x200, true);
    aml_res_memory32_fixed(&res, 0x12345678u, 0x9abcdef0u, false);
    aml_res_ext_irq(&res, 9, AML_IRQ_CONSUMER | AML_IRQ_SHARED);
    aml_res_ext_irq(&res, 0x01020304u, AML_IRQ_CONSUMER | AML_IRQ_EDGE | AML_IRQ_ACTIVE_LOW);
    ck_assert(!res.overflow);
    ck_assert_uint_eq(res.len, 12 + 12 + 9 + 9);
    struct aml a = {.buf = buf, .cap = sizeof(buf)};
    aml_crs(&a, &res);
    ck_assert(!a.overflow);
    size_t n;
    const uint8_t *d = crs_at(a.buf, a.len, &n);
    ck_assert_uint_eq(n, res.len);
    /* Memory32Fixed: tag 0x86, length 9, _RW in bit 0, then base and length little-endian. */
    const uint8_t mem1[12] = {0x86, 9, 0, 1, 0x00, 0x30, 0x00, 0xd0, 0x00, 0x02, 0, 0};
    const uint8_t mem2[12] = {0x86, 9, 0, 0, 0x78, 0x56, 0x34, 0x12, 0xf0, 0xde, 0xbc, 0x9a};
    ck_assert_int_eq(memcmp(d, mem1, 12), 0);
    ck_assert_int_eq(memcmp(d + 12, mem2, 12), 0);
    /* Extended Interrupt: tag 0x89, length 6, flags (consumer 1, edge 2, low 4, shared 8),
     * one entry, the GSI as a dword. */
    const uint8_t irq1[9] = {0x89, 6, 0, 0x09, 1, 9, 0, 0, 0};
    const uint8_t irq2[9] = {0x89, 6, 0, 0x07, 1, 0x04, 0x03, 0x02, 0x01};
    ck_assert_int_eq(memcmp(d + 24, irq1, 9), 0);
    ck_assert_int_eq(memcmp(d + 33, irq2, 9), 0);
    ck_assert_uint_eq(a.len, (size_t)(d - a.buf) + n + 2);

    /* aml_crs_ext_irq is the same encoding: level (flags 1) and edge (flags 3). */
    a.len = 0;
    aml_crs_ext_irq(&a, 5, false);
    d = crs_at(a.buf, a.len, &n);
    const uint8_t level5[9] = {0x89, 6, 0, 0x01, 1, 5, 0, 0, 0};
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(memcmp(d, level5, 9), 0);
    a.len = 0;
    aml_crs_ext_irq(&a, 5, true);
    d = crs_at(a.buf, a.len, &n);
    ck_assert_uint_eq(d[3], 0x03);

    /* A template that did not fit its scratch buffer poisons the output. */
    uint8_t tiny[8];
    struct aml small = {.buf = tiny, .cap = sizeof(tiny)};
    aml_res_memory32_fixed(&small, 0, 0, true);
    ck_assert(small.overflow);
    a.len = 0;
    aml_crs(&a, &small);
    ck_assert(a.overflow);
}
END_TEST

struct events {
    int poweroff, reset, panic;
};

static void ev_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    struct events *ev = ctx;
    (void)status;
    (void)error;
    (void)msg;
    if (reason == KILN_EXIT_POWEROFF)
        ev->poweroff++;
    else if (reason == KILN_EXIT_REBOOT)
        ev->reset++;
    else if (reason == KILN_EXIT_CRASH)
        ev->panic++;
    else
        ck_abort_msg("unexpected end reason %d", (int)reason);
}

static void put(struct device *d, uint64_t off, uint8_t v)
{
    d->ops->write(d, 0, off, &v, 1);
}

static uint8_t get(struct device *d, uint64_t off)
{
    uint8_t v = 0;
    d->ops->read(d, 0, off, &v, 1);
    return v;
}

START_TEST(test_acpi_pm_device)
{
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    struct device *pm;
    ck_assert_int_eq(acpi_pm_create(&end, false, &pm), 0);
    ck_assert_uint_eq(pm->nranges, 1);
    ck_assert_uint_eq(pm->ranges[0].base, PORT_ACPI_SLEEP_CONTROL);
    put(pm, 0, (3 << 2) | 0x20);      /* S3: not supported, ignored */
    put(pm, 0, ACPI_S5_SLP_TYP << 2); /* S5 without SLP_EN: nothing yet */
    ck_assert_int_eq(ev.poweroff, 0);
    put(pm, 0, (ACPI_S5_SLP_TYP << 2) | 0x20);
    ck_assert_int_eq(ev.poweroff, 1);
    put(pm, 2, 0x55);
    ck_assert_int_eq(ev.reset, 0);
    put(pm, 2, ACPI_RESET_VALUE);
    ck_assert_int_eq(ev.reset, 1);
    ck_assert_uint_eq(get(pm, 1), 0x80); /* WAK_STS */
    pm->ops->destroy(pm);
}
END_TEST

START_TEST(test_pvpanic_device)
{
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    const struct kiln_log log = {.level = KILN_LOG_ERROR};
    struct device *p;
    ck_assert_int_eq(pvpanic_create(&end, &log, &p), 0);
    ck_assert_uint_eq(get(p, 0), PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
    put(p, 0, 0xf0); /* unknown bits only: no event */
    ck_assert_int_eq(ev.panic, 0);
    put(p, 0, PVPANIC_CRASH_LOADED); /* a crash kernel is loaded: logged, the VM goes on */
    ck_assert_int_eq(ev.panic, 0);
    put(p, 0, PVPANIC_PANICKED);
    ck_assert_int_eq(ev.panic, 1);
    p->ops->destroy(p);
}
END_TEST

static void put16(struct device *d, unsigned region, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    d->ops->write(d, region, 0, b, 2);
}

static uint32_t get32(struct device *d, unsigned region)
{
    uint8_t b[4];
    d->ops->read(d, region, 0, b, 4);
    return rd32(b);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The full model: PM1 status is write-one-to-clear, SCI_EN reads 1, S5 through PM1 control. */
START_TEST(test_acpi_pm_full_hardware)
{
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    struct device *pm;
    ck_assert_int_eq(acpi_pm_create(&end, true, &pm), 0);
    ck_assert_uint_eq(pm->nranges, 4);
    ck_assert_uint_eq(pm->ranges[1].base, PORT_ACPI_PM1A_EVT);
    ck_assert_uint_eq(pm->ranges[2].base, PORT_ACPI_PM1A_CNT);
    ck_assert_uint_eq(pm->ranges[3].base, PORT_ACPI_PM_TMR);
    ck_assert_uint_eq(get32(pm, 2) & 0xffff, 1); /* SCI_EN: ACPI mode, nothing to switch */
    uint8_t en[2] = {0x20, 0x01};                /* GBL_EN and PWRBTN_EN, at offset 2 */
    pm->ops->write(pm, 1, 2, en, 2);
    ck_assert_uint_eq(get32(pm, 1), 0x01200000);
    put16(pm, 2, 3 << 10 | 1 << 13); /* S3: not supported, ignored */
    ck_assert_int_eq(ev.poweroff, 0);
    put16(pm, 2, ACPI_S5_SLP_TYP << 10); /* no SLP_EN */
    ck_assert_int_eq(ev.poweroff, 0);
    ck_assert_uint_eq(get32(pm, 2) & 0xffff, ACPI_S5_SLP_TYP << 10 | 1);
    put16(pm, 2, ACPI_S5_SLP_TYP << 10 | 1 << 13);
    ck_assert_int_eq(ev.poweroff, 1);
    ck_assert_uint_eq(get32(pm, 2) & (1 << 13), 0); /* SLP_EN is write-only */
    pm->ops->reset(pm);
    ck_assert_uint_eq(get32(pm, 1), 0);
    pm->ops->destroy(pm);
}
END_TEST

/* The PM timer counts at 3.579545 MHz (measured against CLOCK_MONOTONIC over 50 ms). */
START_TEST(test_acpi_pm_timer)
{
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    struct device *pm;
    ck_assert_int_eq(acpi_pm_create(&end, true, &pm), 0);
    double t0 = now_s();
    uint32_t a = get32(pm, 3);
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL);
    uint32_t b = get32(pm, 3);
    double t1 = now_s();
    double rate = (double)(uint32_t)(b - a) / (t1 - t0);
    ck_assert_msg(rate > 3579545 * 0.98 && rate < 3579545 * 1.02, "PM timer at %.0f Hz", rate);
    pm->ops->destroy(pm);
}
END_TEST

/* Full hardware: the button sets PWRBTN_STS (bit 8), write-one-to-clear; PWRBTN_EN is plain. */
START_TEST(test_power_button_pm1)
{
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    struct device *pm;
    ck_assert_int_eq(acpi_pm_create(&end, true, &pm), 0);
    acpi_pm_power_button(pm);
    ck_assert_uint_eq(acpi_pm_presses(pm), 1);
    ck_assert_uint_eq(get32(pm, 1), 0x0100); /* status set even before the guest enables it */
    uint8_t en[2] = {0x00, 0x01};
    pm->ops->write(pm, 1, 2, en, 2);
    ck_assert_uint_eq(get32(pm, 1), 0x01000100);
    uint8_t clr[2] = {0x00, 0x01}; /* write 1 to PWRBTN_STS: cleared, enable untouched */
    pm->ops->write(pm, 1, 0, clr, 2);
    ck_assert_uint_eq(get32(pm, 1), 0x01000000);
    acpi_pm_power_button(pm);
    ck_assert_uint_eq(get32(pm, 1), 0x01000100);
    ck_assert_int_eq(ev.poweroff, 0); /* the button only asks: the guest decides */
    pm->ops->destroy(pm);
}
END_TEST

/* Hardware-reduced: no fixed button in the FADT; the DSDT has a GED and a PNP0C0C button. */
START_TEST(test_power_button_ged)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 64 << 20), 0);
    struct events ev = {0};
    const struct end_vm end = {ev_end, &ev};
    struct device *list[2];
    ck_assert_int_eq(acpi_pm_create(&end, false, &list[0]), 0);
    ck_assert_int_eq(acpi_pm_create(&end, true, &list[1]), 0);
    const struct acpi_config cfg = {.cpus = 1, .devices = list, .ndevices = 1};
    uint64_t rsdp_gpa = 0;
    ck_assert_int_eq(acpi_write(&gm, &cfg, &rsdp_gpa), 0);
    const uint8_t *rsdp = gpa_to_host(&gm, rsdp_gpa, 36);
    const uint8_t *xsdt = table(&gm, rd64(rsdp + 24), "XSDT");
    const uint8_t *fadt = find_in_xsdt(&gm, xsdt, "FACP");
    ck_assert(rd32(fadt + 112) & (1u << 4)); /* PWR_BUTTON: no fixed power button */
    const uint8_t *dsdt = table(&gm, rd64(fadt + 140), "DSDT");
    uint32_t dlen = rd32(dsdt + 4);
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "GED0", 4));
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "ACPI0013", 8));
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, "_EVT", 4));
    /* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {ACPI_GED_IRQ} */
    const uint8_t irq[] = {0x89, 6, 0, 3, 1, ACPI_GED_IRQ, 0, 0, 0};
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, (const char *)irq, sizeof(irq)));
    /* _EVT: Notify(\_SB.PWRB, 0x80) */
    const uint8_t notify[] = {0x86, '\\', 0x2f, 2,   '_', 'S',  'B',
                              '_',  'P',  'W',  'R', 'B', 0x0a, 0x80};
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, (const char *)notify, sizeof(notify)));
    uint32_t pnp0c0c = acpi_eisaid("PNP0C0C");
    ck_assert_ptr_nonnull(memfind(dsdt, dlen, (const char *)&pnp0c0c, 4));
    /* The full model's device writes no GED: its button is the FADT's fixed one. */
    uint8_t body[256];
    struct aml a = {.buf = body, .cap = sizeof(body)};
    list[1]->ops->describe(list[1], &a);
    ck_assert_uint_eq(a.len, 0);
    acpi_pm_power_button(list[0]); /* no line in a unit test: counted, nothing raised */
    ck_assert_uint_eq(acpi_pm_presses(list[0]), 1);
    list[0]->ops->destroy(list[0]);
    list[1]->ops->destroy(list[1]);
    guest_mem_free(&gm);
}
END_TEST

/* Firmware boot's tables: FACS, the FADT's PM blocks and SCI, the SCI's interrupt override. */
START_TEST(test_tables_full_hardware)
{
    struct guest_mem gm;
    ck_assert_int_eq(guest_mem_init(&gm, 64 << 20), 0);
    struct dsdt_devices devs;
    dsdt_devices_make(&devs);
    const struct acpi_config cfg = {.cpus = 2,
                                    .level_irqs = 1 << ACPI_SCI_IRQ,
                                    .devices = devs.list,
                                    .ndevices = 3,
                                    .full_hardware = true};
    uint64_t rsdp_gpa = 0;
    ck_assert_int_eq(acpi_write(&gm, &cfg, &rsdp_gpa), 0);
    const uint8_t *rsdp = gpa_to_host(&gm, rsdp_gpa, 36);
    const uint8_t *xsdt = table(&gm, rd64(rsdp + 24), "XSDT");
    const uint8_t *fadt = find_in_xsdt(&gm, xsdt, "FACP");
    ck_assert_ptr_nonnull(fadt);
    ck_assert_uint_eq(rd32(fadt + 112) & (1u << 20), 0); /* not hardware-reduced */
    ck_assert_uint_eq(fadt[46] | fadt[47] << 8, ACPI_SCI_IRQ);
    ck_assert_uint_eq(rd32(fadt + 48), 0); /* SMI_CMD: ACPI is always enabled */
    ck_assert_uint_eq(rd32(fadt + 56), PORT_ACPI_PM1A_EVT);
    ck_assert_uint_eq(rd32(fadt + 64), PORT_ACPI_PM1A_CNT);
    ck_assert_uint_eq(rd32(fadt + 76), PORT_ACPI_PM_TMR);
    ck_assert_uint_eq(fadt[88], 4);
    ck_assert_uint_eq(fadt[89], 2);
    ck_assert_uint_eq(fadt[91], 4);
    ck_assert_uint_eq(rd64(fadt + 208 + 4), PORT_ACPI_PM_TMR); /* X_PM_TMR_BLK */
    uint64_t facs = rd32(fadt + 36);
    ck_assert_uint_eq(facs, rd64(fadt + 132));
    ck_assert_uint_eq(facs % 64, 0);
    const uint8_t *f = gpa_to_host(&gm, facs, 64);
    ck_assert_int_eq(memcmp(f, "FACS", 4), 0);
    ck_assert_uint_eq(rd32(f + 4), 64);
    const uint8_t *madt = find_in_xsdt(&gm, xsdt, "APIC");
    const uint8_t iso9[10] = {2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0};
    ck_assert_ptr_nonnull(memfind(madt, rd32(madt + 4), (const char *)iso9, sizeof(iso9)));
    dsdt_devices_free(&devs);
    guest_mem_free(&gm);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("acpi");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_tables_1cpu);
    tcase_add_test(tc, test_tables_many_cpus);
    tcase_add_test(tc, test_tables_level_irqs);
    tcase_add_test(tc, test_tables_full_hardware);
    tcase_add_test(tc, test_acpi_pm_full_hardware);
    tcase_add_test(tc, test_acpi_pm_timer);
    tcase_add_test(tc, test_power_button_pm1);
    tcase_add_test(tc, test_power_button_ged);
    tcase_add_test(tc, test_eisaid_and_pkglen);
    tcase_add_test(tc, test_aml_resources);
    tcase_add_test(tc, test_acpi_pm_device);
    tcase_add_test(tc, test_pvpanic_device);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
