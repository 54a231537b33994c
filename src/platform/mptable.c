/* mptable.c: Intel MultiProcessor Specification 1.4 tables describing the guest's CPUs and IRQs. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "platform/layout.h"
#include "platform/mptable.h"

/*
 * The floating pointer goes in the first KiB of the EBDA (LAYOUT_EBDA_START), one of the places
 * the guest scans. The configuration table needs 44 + 20 * cpus + 168 bytes, over 5 KiB for 255
 * CPUs, which does not fit in the 1 KiB EBDA; it lives in the BIOS area instead, which e820 reports
 * as reserved. 0xf0000 leaves [LAYOUT_BIOS_START, 0xf0000) free for ACPI tables and their RSDP.
 */
#define MPTABLE_CONFIG_ADDR 0xf0000ULL
#define MPTABLE_CONFIG_END LAYOUT_HIGH_START

#define MP_SPEC_REV 4   /* 1.4 */
#define MP_MAX_CPUS 255 /* 8-bit APIC IDs */
#define MP_ISA_IRQS 16

/* Entry types. */
#define MP_ENTRY_CPU 0
#define MP_ENTRY_BUS 1
#define MP_ENTRY_IOAPIC 2
#define MP_ENTRY_IOINT 3
#define MP_ENTRY_LINT 4

/* Interrupt types. */
#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02
#define MP_IOAPIC_ENABLED 0x01
#define MP_ALL_LAPICS 0xff

#define LAPIC_VERSION 0x14                   /* integrated xAPIC, as KVM reports */
#define IOAPIC_VERSION 0x11                  /* 82093AA-style, as KVM's I/O APIC reports */
#define CPU_SIGNATURE 0x600                  /* family 6, model 0, stepping 0 */
#define CPU_FEATURES ((1u << 0) | (1u << 9)) /* FPU and on-chip APIC (CPUID.1:EDX) */

struct mp_floating {
    char signature[4];
    uint32_t config_addr;
    uint8_t length; /* in 16-byte units */
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t features[5]; /* all 0: a config table is present, virtual wire mode */
} __attribute__((packed));

struct mp_config {
    char signature[4];
    uint16_t length; /* base table, header included */
    uint8_t spec_rev;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {
    uint8_t type;
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t flags;
    uint32_t signature;
    uint32_t features;
    uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
    uint8_t type;
    uint8_t bus_id;
    char bus_type[6];
} __attribute__((packed));

struct mp_ioapic {
    uint8_t type;
    uint8_t id;
    uint8_t version;
    uint8_t flags;
    uint32_t addr;
} __attribute__((packed));

/* I/O and local interrupt assignment entries share one layout. */
struct mp_irq {
    uint8_t type;
    uint8_t irq_type;
    uint16_t flags; /* 0: polarity and trigger conform to the bus */
    uint8_t src_bus;
    uint8_t src_irq;
    uint8_t dst_apic;
    uint8_t dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mp_floating) == 16, "MP floating pointer is 16 bytes");
_Static_assert(sizeof(struct mp_config) == 44, "MP config header is 44 bytes");
_Static_assert(sizeof(struct mp_cpu) == 20, "MP processor entry is 20 bytes");
_Static_assert(sizeof(struct mp_bus) == 8 && sizeof(struct mp_ioapic) == 8 &&
                   sizeof(struct mp_irq) == 8,
               "MP 8-byte entries");

/* Appends entries to the config table being built in guest RAM. */
struct mp_writer {
    uint8_t *base;
    size_t off;
    uint16_t entries;
};

static void mp_put(struct mp_writer *w, const void *entry, size_t len)
{
    memcpy(w->base + w->off, entry, len);
    w->off += len;
    w->entries++;
}

/* The value that makes the bytes of [p, p + len) sum to zero once stored among them. */
static uint8_t mp_checksum(const uint8_t *p, size_t len)
{
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    return (uint8_t)-sum;
}

static size_t mp_config_size(unsigned cpus)
{
    return sizeof(struct mp_config) + cpus * sizeof(struct mp_cpu) + sizeof(struct mp_bus) +
           sizeof(struct mp_ioapic) + MP_ISA_IRQS * sizeof(struct mp_irq) +
           2 * sizeof(struct mp_irq);
}

static void mp_put_cpus(struct mp_writer *w, unsigned cpus)
{
    for (unsigned i = 0; i < cpus; i++) {
        struct mp_cpu c = {
            .type = MP_ENTRY_CPU,
            .apic_id = (uint8_t)i,
            .apic_version = LAPIC_VERSION,
            .flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
            .signature = CPU_SIGNATURE,
            .features = CPU_FEATURES,
        };
        mp_put(w, &c, sizeof(c));
    }
}

/*
 * ISA IRQ i goes to I/O APIC pin i, IRQ 0 included. That is the routing KVM installs with
 * KVM_CREATE_IRQCHIP (GSI n -> PIC pin n and I/O APIC pin n), and the in-kernel PIT raises
 * GSI 0, so its interrupts arrive on pin 0. Routing IRQ 0 to pin 2, as PC firmware does, would
 * only be right if the VMM also replaced KVM's routing table to send GSI 0 to pin 2.
 */
static void mp_put_irqs(struct mp_writer *w, uint8_t ioapic_id)
{
    for (unsigned i = 0; i < MP_ISA_IRQS; i++) {
        struct mp_irq e = {.type = MP_ENTRY_IOINT,
                           .irq_type = MP_INT,
                           .src_bus = 0,
                           .src_irq = (uint8_t)i,
                           .dst_apic = ioapic_id,
                           .dst_pin = (uint8_t)i};
        mp_put(w, &e, sizeof(e));
    }
    /* Virtual wire: the PIC's output on LINT0, NMI on LINT1, of every local APIC. */
    struct mp_irq extint = {
        .type = MP_ENTRY_LINT, .irq_type = MP_EXTINT, .dst_apic = MP_ALL_LAPICS, .dst_pin = 0};
    struct mp_irq nmi = {
        .type = MP_ENTRY_LINT, .irq_type = MP_NMI, .dst_apic = MP_ALL_LAPICS, .dst_pin = 1};
    mp_put(w, &extint, sizeof(extint));
    mp_put(w, &nmi, sizeof(nmi));
}

static void mp_put_header(struct mp_writer *w)
{
    struct mp_config h = {
        .signature = {'P', 'C', 'M', 'P'},
        .length = (uint16_t)w->off,
        .spec_rev = MP_SPEC_REV,
        .entry_count = w->entries,
        .lapic_addr = (uint32_t)LAYOUT_LAPIC,
    };
    memcpy(h.oem_id, "KILN    ", sizeof(h.oem_id));
    memcpy(h.product_id, "KILNVM      ", sizeof(h.product_id));
    memcpy(w->base, &h, sizeof(h));
    w->base[offsetof(struct mp_config, checksum)] = mp_checksum(w->base, w->off);
}

static int mp_write_config(const struct guest_mem *gm, unsigned cpus)
{
    size_t size = mp_config_size(cpus);
    if (size > MPTABLE_CONFIG_END - MPTABLE_CONFIG_ADDR)
        return -E2BIG;
    uint8_t *p = gpa_to_host(gm, MPTABLE_CONFIG_ADDR, size);
    if (!p)
        return -ENOMEM;
    memset(p, 0, size);
    /* Entries first, after room for the header, whose length and count depend on them. */
    struct mp_writer w = {.base = p, .off = sizeof(struct mp_config), .entries = 0};
    mp_put_cpus(&w, cpus);
    struct mp_bus bus = {
        .type = MP_ENTRY_BUS, .bus_id = 0, .bus_type = {'I', 'S', 'A', ' ', ' ', ' '}};
    mp_put(&w, &bus, sizeof(bus));
    struct mp_ioapic io = {.type = MP_ENTRY_IOAPIC,
                           .id = (uint8_t)cpus,
                           .version = IOAPIC_VERSION,
                           .flags = MP_IOAPIC_ENABLED,
                           .addr = (uint32_t)LAYOUT_IOAPIC};
    mp_put(&w, &io, sizeof(io));
    mp_put_irqs(&w, (uint8_t)cpus);
    mp_put_header(&w);
    return 0;
}

static int mp_write_floating(const struct guest_mem *gm)
{
    struct mp_floating f = {
        .signature = {'_', 'M', 'P', '_'},
        .config_addr = (uint32_t)MPTABLE_CONFIG_ADDR,
        .length = 1,
        .spec_rev = MP_SPEC_REV,
    };
    f.checksum = mp_checksum((const uint8_t *)&f, sizeof(f));
    return guest_write(gm, LAYOUT_EBDA_START, &f, sizeof(f)) < 0 ? -ENOMEM : 0;
}

int mptable_write(const struct guest_mem *gm, unsigned cpus)
{
    if (cpus == 0)
        return -EINVAL;
    /* CPUs take APIC IDs 0..cpus-1 and the I/O APIC takes ID cpus: all must fit in 8 bits. */
    if (cpus > MP_MAX_CPUS)
        return -E2BIG;
    int ret = mp_write_config(gm, cpus);
    if (ret < 0)
        return ret;
    return mp_write_floating(gm);
}
