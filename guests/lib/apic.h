/* apic.h: local APIC and I/O APIC registers used by the test guests (C and assembler). */
#ifndef KILN_GUEST_APIC_H
#define KILN_GUEST_APIC_H

/* Local APIC, xAPIC mode: 32-bit registers at LAPIC_BASE + offset. */
#define LAPIC_BASE 0xfee00000
#define LAPIC_ID 0x20
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

#define SVR_ENABLE 0x100
#define LVT_MASKED 0x10000
#define LVT_TIMER_PERIODIC 0x20000
#define ICR_INIT 0x00000500
#define ICR_STARTUP 0x00000600
#define ICR_LEVEL_ASSERT 0x00004000
#define ICR_BUSY 0x00001000

/* I/O APIC: an index register and a data window. */
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_REG_VER 0x01
#define IOAPIC_REG_REDIR(pin) (0x10 + 2 * (pin)) /* low half; the high half follows */

#endif
