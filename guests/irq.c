/* irq.c: interrupts through KVM's in-kernel irqchip: the LAPIC timer, then the PIT via I/O APIC. */
#include "apic.h"
#include "guest.h"
#include "mptable.h"

#define VEC_LAPIC_TIMER 0x20
#define VEC_PIT 0x21
#define VEC_SPURIOUS 0x2f
#define IDT_ENTRIES 0x30    /* vectors above VEC_SPURIOUS are never raised */
#define GATE_INTERRUPT 0x8e /* present, DPL 0, 64-bit interrupt gate */

#define TICKS 5
/* Wait for the first interrupt of each source, in TSC ticks (seconds at any plausible rate). */
#define FIRST_TICK_TSC 10000000000ULL
/* LAPIC timer period: KVM's APIC bus runs at 1 GHz, so 1 ms with the divider at 1. */
#define LAPIC_TIMER_COUNT 1000000
#define LAPIC_TIMER_DIV_1 0x0b
/* PIT channel 0, rate generator, about 1 kHz (1193182 Hz / 1193). */
#define PIT_CH0 0x40
#define PIT_CMD 0x43
#define PIT_CH0_RATE_LOHI 0x34
#define PIT_DIVISOR 1193
#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

/* Exit statuses besides 0, GUEST_EXIT_ASSERT and the MP table's 2. */
#define EXIT_MPTABLE 2
#define EXIT_EXCEPTION 9
#define EXIT_NO_LAPIC_TIMER 10
#define EXIT_NO_PIT 11

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed));

extern const char irq_exception_stubs[];
void irq_lapic_timer_entry(void);
void irq_pit_entry(void);
void irq_spurious_entry(void);

/* Counted by the handlers in irq_vectors.S. */
volatile uint32_t irq_lapic_ticks, irq_pit_ticks;

static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(16)));

__attribute__((noreturn, used)) void irq_exception(uint64_t vector)
{
    serial_puts("irq: unexpected exception ");
    serial_put_dec(vector);
    serial_putc('\n');
    guest_exit(EXIT_EXCEPTION);
}

static void set_gate(unsigned vector, uint64_t handler, uint16_t cs)
{
    idt[vector] = (struct idt_gate){.offset_lo = (uint16_t)handler,
                                    .selector = cs,
                                    .type = GATE_INTERRUPT,
                                    .offset_mid = (uint16_t)(handler >> 16),
                                    .offset_hi = (uint32_t)(handler >> 32)};
}

static void load_idt(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    uint16_t cs;

    /* Gates use whatever code selector kiln entered with (0x10 by its contract). */
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (unsigned v = 0; v < 32; v++)
        set_gate(v, (uint64_t)(uintptr_t)irq_exception_stubs + 16 * v, cs);
    set_gate(VEC_LAPIC_TIMER, (uint64_t)(uintptr_t)irq_lapic_timer_entry, cs);
    set_gate(VEC_PIT, (uint64_t)(uintptr_t)irq_pit_entry, cs);
    set_gate(VEC_SPURIOUS, (uint64_t)(uintptr_t)irq_spurious_entry, cs);
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

/*
 * Wait with interrupts on until *ticks reaches TICKS. The first tick is awaited in a bounded
 * spin, so a source that never fires is reported instead of hanging; the rest with hlt, which
 * checks that the in-kernel irqchip wakes a halted vCPU.
 */
static bool wait_ticks(volatile uint32_t *ticks)
{
    uint64_t t0 = rdtsc();
    __asm__ volatile("sti" ::: "memory");
    while (*ticks == 0 && rdtsc() - t0 < FIRST_TICK_TSC)
        cpu_relax();
    while (*ticks != 0 && *ticks < TICKS)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    __asm__ volatile("cli" ::: "memory");
    return *ticks >= TICKS;
}

static uint32_t ioapic_read(uint64_t base, uint32_t reg)
{
    mmio_write32(base + IOAPIC_REGSEL, reg);
    return mmio_read32(base + IOAPIC_WIN);
}

static void ioapic_write(uint64_t base, uint32_t reg, uint32_t v)
{
    mmio_write32(base + IOAPIC_REGSEL, reg);
    mmio_write32(base + IOAPIC_WIN, v);
}

/* From the MP table: the I/O APIC address and the pin ISA IRQ 0 (the PIT) is wired to. */
static bool pit_route(uint64_t *ioapic, unsigned *pin)
{
    uint64_t cfg = mp_config_table();
    int isa_bus = -1, found = 0;

    if (!cfg)
        return false;
    for (uint64_t e = mp_entries_start(cfg); e < mp_entries_end(cfg); e = mp_entry_next(e)) {
        uint8_t type = phys_read8(e);
        if (type == MP_ENTRY_BUS && memcmp((const void *)(uintptr_t)(e + 2), "ISA", 3) == 0)
            isa_bus = phys_read8(e + 1);
        else if (type == MP_ENTRY_IOAPIC && (phys_read8(e + 3) & 1))
            *ioapic = phys_read32(e + 4);
        /* Bus entries come before interrupt entries, as the specification requires. */
        else if (type == MP_ENTRY_IOINT && phys_read8(e + 1) == MP_INT &&
                 phys_read8(e + 4) == isa_bus && phys_read8(e + 5) == 0) {
            *pin = phys_read8(e + 7);
            found = 1;
        }
    }
    return found && *ioapic;
}

int guest_main(void *boot_info)
{
    unsigned bsp_id = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24, pin = 0;
    uint64_t ioapic = 0;
    (void)boot_info;

    /* The legacy PICs stay out of the way: all lines masked, and LINT0 (ExtINT) masked too. */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    load_idt();
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

    mmio_write32(LAPIC_BASE + LAPIC_TIMER_DIV, LAPIC_TIMER_DIV_1);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_TIMER_PERIODIC | VEC_LAPIC_TIMER);
    mmio_write32(LAPIC_BASE + LAPIC_TIMER_INIT, LAPIC_TIMER_COUNT);
    bool lapic_ok = wait_ticks(&irq_lapic_ticks);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_TIMER, LVT_MASKED);
    serial_puts("irq: lapic timer: ");
    serial_put_dec(irq_lapic_ticks);
    serial_puts(" ticks\n");
    if (!lapic_ok)
        return EXIT_NO_LAPIC_TIMER;

    if (!pit_route(&ioapic, &pin)) {
        serial_puts("irq: the MP table has no I/O APIC route for ISA IRQ 0\n");
        return EXIT_MPTABLE;
    }
    GUEST_ASSERT(pin <= ((ioapic_read(ioapic, IOAPIC_REG_VER) >> 16) & 0xff));
    /* Fixed delivery, physical destination (the BSP), edge triggered, active high, unmasked. */
    ioapic_write(ioapic, IOAPIC_REG_REDIR(pin) + 1, bsp_id << 24);
    ioapic_write(ioapic, IOAPIC_REG_REDIR(pin), VEC_PIT);
    outb(PIT_CMD, PIT_CH0_RATE_LOHI);
    outb(PIT_CH0, PIT_DIVISOR & 0xff);
    outb(PIT_CH0, PIT_DIVISOR >> 8);
    bool pit_ok = wait_ticks(&irq_pit_ticks);
    ioapic_write(ioapic, IOAPIC_REG_REDIR(pin), LVT_MASKED | VEC_PIT);
    serial_puts("irq: pit via ioapic pin ");
    serial_put_dec(pin);
    serial_puts(": ");
    serial_put_dec(irq_pit_ticks);
    serial_puts(" ticks\n");
    return pit_ok ? 0 : EXIT_NO_PIT;
}
