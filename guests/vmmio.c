/*
 * vmmio.c: a tiny virtio-mmio driver: finds its disk from the command line, does I/O by IRQ.
 * rounds=N (default 1) repeats the I/O round, printing "vmmio: round I" after each; from the
 * second round on, sector 1 gets "mmio-round-I" (a snapshot test sees where it went on).
 */
#include "apic.h"
#include "guest.h"
#include "vp_common.h"

/* "<size>@0x<base>:<irq>", as kiln writes virtio_mmio.device=. */
static void parse_device(const char *s, uint64_t *size, uint64_t *addr, unsigned *irq)
{
    *size = *addr = 0;
    *irq = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        *size = *size * 10 + (uint64_t)(*s - '0');
    GUEST_ASSERT(s[0] == '@' && s[1] == '0' && s[2] == 'x');
    for (s += 3; (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'); s++)
        *addr = *addr * 16 + (uint64_t)(*s <= '9' ? *s - '0' : *s - 'a' + 10);
    GUEST_ASSERT(*s++ == ':');
    for (; *s >= '0' && *s <= '9'; s++)
        *irq = *irq * 10 + (unsigned)(*s - '0');
    GUEST_ASSERT(*s == '\0');
}

/* "mmio-round-I" into tag (32 bytes). */
static void round_tag(char *tag, uint64_t i)
{
    char digits[24];
    unsigned n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    memcpy(tag, "mmio-round-", 11);
    for (unsigned k = 0; k < n; k++)
        tag[11 + k] = digits[n - 1 - k];
    tag[11 + n] = '\0';
}

int guest_main(void *zero_page)
{
    unsigned apic = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    vp_idt_setup("vmmio");
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

    char dev[64];
    uint64_t size, base;
    unsigned irq;
    GUEST_ASSERT(
        cmdline_get(bootparams_cmdline(zero_page), "virtio_mmio.device", dev, sizeof(dev)));
    parse_device(dev, &size, &base, &irq);
    serial_puts("vmmio: device ");
    serial_puts(dev);
    serial_putc('\n');
    GUEST_ASSERT(size >= 0x100 && irq < 16);
    virtio_mmio_init(&vp_dev, base);
    GUEST_ASSERT(mmio_read32(base + VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_BLOCK);
    /* Level-triggered, active high: what kiln's MADT overrides say for virtio-mmio IRQs. */
    vp_ioapic_route(irq, apic, 1u << 15);
    vp_blk_init(VIRTIO_MSI_NO_VECTOR);
    uint64_t cap = virtio_cfg_read32(&vp_dev, 0) | (uint64_t)virtio_cfg_read32(&vp_dev, 4) << 32;
    serial_puts("vmmio: capacity ");
    serial_put_dec(cap);
    serial_putc('\n');
    char arg[24];
    uint64_t rounds = 1;
    if (cmdline_get(bootparams_cmdline(zero_page), "rounds", arg, sizeof(arg)))
        GUEST_ASSERT(parse_u64(arg, &rounds) && rounds >= 1);
    for (uint64_t i = 1; i <= rounds; i++) {
        char tag[32] = "mmio-was-here";
        if (rounds > 1)
            round_tag(tag, i);
        vp_blk_io_round(&vp_intx_count, "KILNMMIO", tag);
        if (rounds > 1) {
            serial_puts("vmmio: round ");
            serial_put_dec(i);
            serial_putc('\n');
        }
    }
    serial_puts("vmmio: ok, interrupts ");
    serial_put_dec(vp_intx_count);
    serial_puts(" spurious ");
    serial_put_dec(vp_intx_spurious);
    serial_putc('\n');
    return 0;
}
