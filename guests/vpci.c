/* vpci.c: a tiny virtio-pci driver: reads and writes a virtio-blk disk with MSI-X, then INTx. */
#include "apic.h"
#include "guest.h"

#define VEC_MSIX 0x40
#define VEC_INTX 0x41
#define VEC_SPURIOUS 0x2f
#define IDT_ENTRIES 0x50
#define RING 0x1000000ULL /* desc, avail at +0x1000, used at +0x2000, header/data/status after */
#define REQ (RING + 0x3000)
#define DATA (RING + 0x4000)
#define STAT (RING + 0x5000)
#define NEW_BAR0 0xe0100000ULL
#define WAIT_TSC 20000000000ULL

struct idt_gate {
    uint16_t lo, sel;
    uint8_t ist, type;
    uint16_t mid;
    uint32_t hi, res;
} __attribute__((packed));
static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(16)));
extern const char vp_exception_stubs[];
void vp_msix_entry(void), vp_intx_entry(void), vp_spurious_entry(void);
volatile uint32_t vp_msix_count, vp_intx_count, vp_intx_spurious;
static uint64_t isr_addr;

__attribute__((noreturn, used)) void vp_exception(uint64_t v)
{
    serial_puts("vpci: exception ");
    serial_put_dec(v);
    serial_putc('\n');
    guest_exit(9);
}

__attribute__((used)) void vp_intx_handler(void)
{
    if (*(volatile uint8_t *)(uintptr_t)isr_addr & 1) /* reading acknowledges */
        vp_intx_count++;
    else
        vp_intx_spurious++;
}

static void gate(unsigned v, const void *h, uint16_t cs)
{
    uint64_t a = (uint64_t)(uintptr_t)h;
    idt[v] =
        (struct idt_gate){(uint16_t)a, cs, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
}

static void idt_setup(void)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } r = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (unsigned v = 0; v < 32; v++)
        gate(v, vp_exception_stubs + 16 * v, cs);
    gate(VEC_MSIX, vp_msix_entry, cs);
    gate(VEC_INTX, vp_intx_entry, cs);
    gate(VEC_SPURIOUS, vp_spurious_entry, cs);
    __asm__ volatile("lidt %0" : : "m"(r) : "memory");
}

static inline void outl(uint16_t p, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(p));
}
static inline uint32_t inl(uint16_t p)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p));
    return v;
}
static inline void outw(uint16_t p, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(p));
}
static inline uint16_t inw(uint16_t p)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p));
    return v;
}

static unsigned slot;
static uint32_t cfg32(unsigned s, unsigned reg)
{
    outl(0xcf8, 0x80000000u | s << 11 | (reg & 0xfc));
    return inl(0xcfc);
}
static uint8_t cfg8(unsigned reg)
{
    outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
    return inb(0xcfc + (reg & 3));
}
static uint16_t cfg16(unsigned reg)
{
    outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
    return inw(0xcfc + (reg & 2));
}
static void wcfg32(unsigned reg, uint32_t v)
{
    outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
    outl(0xcfc, v);
}
static void wcfg16(unsigned reg, uint16_t v)
{
    outl(0xcf8, 0x80000000u | slot << 11 | (reg & 0xfc));
    outw(0xcfc + (reg & 2), v);
}

static uint64_t bar0, common, notify, isr, devcfg, msix_table;
static unsigned msix_cap;
static void w8(uint64_t a, uint8_t v)
{
    *(volatile uint8_t *)(uintptr_t)a = v;
}
static void w16(uint64_t a, uint16_t v)
{
    *(volatile uint16_t *)(uintptr_t)a = v;
}
static void w32(uint64_t a, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)a = v;
}
static uint8_t r8(uint64_t a)
{
    return *(volatile uint8_t *)(uintptr_t)a;
}
static uint16_t r16(uint64_t a)
{
    return *(volatile uint16_t *)(uintptr_t)a;
}
static uint32_t r32(uint64_t a)
{
    return *(volatile uint32_t *)(uintptr_t)a;
}

static void find_caps(void)
{
    unsigned pos = cfg8(0x34);
    for (int n = 0; pos && n < 48; n++) {
        uint8_t id = cfg8(pos);
        if (id == 0x11)
            msix_cap = pos;
        if (id == 0x09) {
            uint8_t type = cfg8(pos + 3), bar = cfg8(pos + 4);
            uint32_t off = cfg32(slot, pos + 8);
            GUEST_ASSERT(type == 5 || bar == 0);
            if (type == 1)
                common = bar0 + off;
            if (type == 2) {
                notify = bar0 + off;
                GUEST_ASSERT(cfg32(slot, pos + 16) == 0);
            }
            if (type == 3)
                isr = bar0 + off;
            if (type == 4)
                devcfg = bar0 + off;
        }
        pos = cfg8(pos + 1);
    }
    GUEST_ASSERT(common && notify && isr && devcfg && msix_cap);
}

static uint16_t avail_idx;

static void virtio_init(uint16_t vector)
{
    w8(common + 0x14, 0);
    while (r8(common + 0x14))
        cpu_relax();
    w8(common + 0x14, 1);
    w8(common + 0x14, 3);
    w32(common + 0x00, 1);
    GUEST_ASSERT(r32(common + 0x04) & 1); /* VERSION_1 */
    w32(common + 0x08, 0);
    w32(common + 0x0c, 0);
    w32(common + 0x08, 1);
    w32(common + 0x0c, 1);
    w8(common + 0x14, 0x0b);
    GUEST_ASSERT(r8(common + 0x14) == 0x0b);
    GUEST_ASSERT(r16(common + 0x12) >= 1);
    w16(common + 0x16, 0);
    GUEST_ASSERT(r16(common + 0x18) >= 8 && r16(common + 0x1c) == 0);
    memset((void *)(uintptr_t)RING, 0, 0x6000);
    avail_idx = 0;
    w16(common + 0x18, 8);
    w32(common + 0x20, (uint32_t)RING);
    w32(common + 0x24, 0);
    w32(common + 0x28, (uint32_t)RING + 0x1000);
    w32(common + 0x2c, 0);
    w32(common + 0x30, (uint32_t)RING + 0x2000);
    w32(common + 0x34, 0);
    w16(common + 0x1a, vector);
    GUEST_ASSERT(r16(common + 0x1a) == vector);
    w16(common + 0x10, 0xffff);
    w16(common + 0x1c, 1);
    w8(common + 0x14, 0x0f);
}

/* One request (type 0 read / 1 write) of sector; kicked through the notify register. */
static void submit(uint32_t type, uint64_t sector)
{
    w32(REQ, type);
    w32(REQ + 4, 0);
    *(volatile uint64_t *)(uintptr_t)(REQ + 8) = sector;
    w8(STAT, 0xff);
    volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)RING;
    d[0] = REQ;
    d[1] = 16 | (uint64_t)1 << 32 | (uint64_t)1 << 48; /* len, NEXT, next 1 */
    d[2] = DATA;
    d[3] = 512 | (uint64_t)(1 | (type ? 0 : 2)) << 32 | (uint64_t)2 << 48;
    d[4] = STAT;
    d[5] = 1 | (uint64_t)2 << 32; /* WRITE */
    w16(RING + 0x1000 + 4 + 2 * (avail_idx % 8), 0);
    __asm__ volatile("mfence" ::: "memory");
    w16(RING + 0x1000 + 2, ++avail_idx);
    __asm__ volatile("mfence" ::: "memory");
    w16(notify, 0);
}

static void wait_for(volatile uint32_t *count, uint32_t want)
{
    uint64_t t0 = rdtsc();
    while (*count < want && rdtsc() - t0 < WAIT_TSC)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    GUEST_ASSERT(*count >= want);
    GUEST_ASSERT(r16(RING + 0x2000 + 2) == avail_idx); /* used idx */
    GUEST_ASSERT(r8(STAT) == 0);
}

static void io_round(volatile uint32_t *count, const char *tag)
{
    uint32_t c = *count;
    submit(0, 0);
    wait_for(count, c + 1);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, "KILNPCI!", 8) == 0);
    memset((void *)(uintptr_t)DATA, 0, 512);
    memcpy((void *)(uintptr_t)DATA, tag, strlen(tag));
    submit(1, 1);
    wait_for(count, c + 2);
    memset((void *)(uintptr_t)DATA, 0, 512);
    submit(0, 1);
    wait_for(count, c + 3);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, tag, strlen(tag)) == 0);
}

static void ioapic_route(unsigned pin, unsigned apic)
{
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin + 1);
    mmio_write32(0xfec00000 + 0x10, apic << 24);
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin);
    mmio_write32(0xfec00000 + 0x10,
                 VEC_INTX | 1u << 15 | 1u << 13); /* level, active low: as Linux */
}

int guest_main(void *boot_info)
{
    (void)boot_info;
    unsigned apic = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    idt_setup();
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

    GUEST_ASSERT((cfg32(0, 0x08) >> 16) == 0x0600); /* host bridge */
    for (slot = 1; slot < 32; slot++)
        if (cfg32(slot, 0) == 0x10421af4)
            break;
    GUEST_ASSERT(slot < 32);
    GUEST_ASSERT(cfg32(slot + 1, 0) == 0xffffffff);
    /* Size BAR 0 like Linux, then move it: the doorbell must follow. */
    uint16_t cmd = cfg16(0x04);
    GUEST_ASSERT(cmd & 2);
    wcfg16(0x04, cmd & ~2);
    uint32_t lo = cfg32(slot, 0x10), hi = cfg32(slot, 0x14);
    wcfg32(0x10, 0xffffffff);
    wcfg32(0x14, 0xffffffff);
    GUEST_ASSERT(cfg32(slot, 0x10) == (0xffffc000u | 4) && cfg32(slot, 0x14) == 0xffffffff);
    wcfg32(0x10, lo);
    wcfg32(0x14, hi);
    wcfg32(0x10, (uint32_t)NEW_BAR0);
    wcfg16(0x04, cmd | 2 | 4);
    bar0 = NEW_BAR0;
    msix_table = cfg32(slot, 0x18) & ~0xfu;
    find_caps();
    uint64_t cap = r32(devcfg) | (uint64_t)r32(devcfg + 4) << 32;
    serial_puts("vpci: slot ");
    serial_put_dec(slot);
    serial_puts(" capacity ");
    serial_put_dec(cap);
    serial_puts(" line ");
    serial_put_dec(cfg8(0x3c));
    serial_putc('\n');
    isr_addr = isr;

    /* MSI-X: masked while programmed, queue 0 on vector 0, then unmasked. */
    wcfg16(msix_cap + 2, 0xc000);
    w32(msix_table + 0, 0xfee00000u | apic << 12);
    w32(msix_table + 4, 0);
    w32(msix_table + 8, VEC_MSIX);
    w32(msix_table + 12, 0);
    wcfg16(0x04, cfg16(0x04) | 0x400); /* INTx off, as Linux does with MSI-X */
    virtio_init(0);
    wcfg16(msix_cap + 2, 0x8000);
    io_round(&vp_msix_count, "msix-was-here");
    serial_puts("vpci: msix ok, interrupts ");
    serial_put_dec(vp_msix_count);
    serial_putc('\n');

    /* INTx: MSI-X off, the level line on the GSI the Interrupt Line register names. */
    wcfg16(msix_cap + 2, 0);
    w8(common + 0x14, 0); /* reset first: MSI-X mode left ISR bits nobody read */
    while (r8(common + 0x14))
        cpu_relax();
    wcfg16(0x04, cfg16(0x04) & ~0x400);
    ioapic_route(cfg8(0x3c), apic);
    virtio_init(0xffff);
    io_round(&vp_intx_count, "intx-was-here");
    serial_puts("vpci: intx ok, interrupts ");
    serial_put_dec(vp_intx_count);
    serial_puts(" spurious ");
    serial_put_dec(vp_intx_spurious);
    serial_putc('\n');
    GUEST_ASSERT(vp_msix_count == 3);
    return 0;
}
