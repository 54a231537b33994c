/* vmmio.c: a tiny virtio-mmio driver: finds its disk from the command line, does I/O by IRQ. */
#include "apic.h"
#include "guest.h"

#define VEC_MSIX 0x40 /* unused here: vpci_vectors.S provides the entry points */
#define VEC_INTX 0x41
#define VEC_SPURIOUS 0x2f
#define IDT_ENTRIES 0x50
#define RING 0x1000000ULL /* desc, avail at +0x1000, used at +0x2000, header/data/status after */
#define REQ (RING + 0x3000)
#define DATA (RING + 0x4000)
#define STAT (RING + 0x5000)
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
static uint64_t base;

static void w32(uint64_t off, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)(base + off) = v;
}
static uint32_t r32(uint64_t off)
{
    return *(volatile uint32_t *)(uintptr_t)(base + off);
}

__attribute__((noreturn, used)) void vp_exception(uint64_t v)
{
    serial_puts("vmmio: exception ");
    serial_put_dec(v);
    serial_putc('\n');
    guest_exit(9);
}

/* InterruptStatus, then InterruptACK of what was seen: the line drops at the EOI that follows. */
__attribute__((used)) void vp_intx_handler(void)
{
    uint32_t st = r32(0x060);
    w32(0x064, st);
    if (st & 1)
        vp_intx_count++;
    else
        vp_intx_spurious++; /* KVM's resampling re-delivers at times, as with virtio-pci INTx */
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

static uint16_t avail_idx;

static void virtio_init(void)
{
    w32(0x070, 0);
    while (r32(0x070))
        cpu_relax();
    w32(0x070, 1);
    w32(0x070, 3);
    w32(0x014, 1);
    GUEST_ASSERT(r32(0x010) & 1); /* VERSION_1 */
    w32(0x024, 0);
    w32(0x020, 0);
    w32(0x024, 1);
    w32(0x020, 1);
    w32(0x070, 0x0b);
    GUEST_ASSERT(r32(0x070) == 0x0b);
    w32(0x030, 0);
    GUEST_ASSERT(r32(0x044) == 0 && r32(0x034) >= 8);
    memset((void *)(uintptr_t)RING, 0, 0x6000);
    avail_idx = 0;
    w32(0x038, 8);
    w32(0x080, (uint32_t)RING);
    w32(0x084, 0);
    w32(0x090, (uint32_t)RING + 0x1000);
    w32(0x094, 0);
    w32(0x0a0, (uint32_t)RING + 0x2000);
    w32(0x0a4, 0);
    w32(0x044, 1);
    GUEST_ASSERT(r32(0x044) == 1);
    w32(0x070, 0x0f);
}

/* One request (type 0 read / 1 write) of sector; kicked through QueueNotify. */
static void submit(uint32_t type, uint64_t sector)
{
    *(volatile uint32_t *)(uintptr_t)REQ = type;
    *(volatile uint32_t *)(uintptr_t)(REQ + 4) = 0;
    *(volatile uint64_t *)(uintptr_t)(REQ + 8) = sector;
    *(volatile uint8_t *)(uintptr_t)STAT = 0xff;
    volatile uint64_t *d = (volatile uint64_t *)(uintptr_t)RING;
    d[0] = REQ;
    d[1] = 16 | (uint64_t)1 << 32 | (uint64_t)1 << 48; /* len, NEXT, next 1 */
    d[2] = DATA;
    d[3] = 512 | (uint64_t)(1 | (type ? 0 : 2)) << 32 | (uint64_t)2 << 48;
    d[4] = STAT;
    d[5] = 1 | (uint64_t)2 << 32; /* WRITE */
    *(volatile uint16_t *)(uintptr_t)(RING + 0x1000 + 4 + 2 * (avail_idx % 8)) = 0;
    __asm__ volatile("mfence" ::: "memory");
    *(volatile uint16_t *)(uintptr_t)(RING + 0x1000 + 2) = ++avail_idx;
    __asm__ volatile("mfence" ::: "memory");
    w32(0x050, 0);
}

static void wait_for(uint32_t want)
{
    uint64_t t0 = rdtsc();
    while (vp_intx_count < want && rdtsc() - t0 < WAIT_TSC)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    GUEST_ASSERT(vp_intx_count >= want);
    GUEST_ASSERT(phys_read16(RING + 0x2000 + 2) == avail_idx); /* used idx */
    GUEST_ASSERT(phys_read8(STAT) == 0);
}

static void io_round(const char *tag)
{
    submit(0, 0);
    wait_for(1);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, "KILNMMIO", 8) == 0);
    memset((void *)(uintptr_t)DATA, 0, 512);
    memcpy((void *)(uintptr_t)DATA, tag, strlen(tag));
    submit(1, 1);
    wait_for(2);
    memset((void *)(uintptr_t)DATA, 0, 512);
    submit(0, 1);
    wait_for(3);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, tag, strlen(tag)) == 0);
}

/* Level-triggered, active high: what kiln's MADT overrides say for virtio-mmio IRQs. */
static void ioapic_route(unsigned pin, unsigned apic)
{
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin + 1);
    mmio_write32(0xfec00000 + 0x10, apic << 24);
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin);
    mmio_write32(0xfec00000 + 0x10, VEC_INTX | 1u << 15);
}

int guest_main(void *zero_page)
{
    unsigned apic = mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    idt_setup();
    mmio_write32(LAPIC_BASE + LAPIC_SVR, SVR_ENABLE | VEC_SPURIOUS);
    mmio_write32(LAPIC_BASE + LAPIC_LVT_LINT0, LVT_MASKED);

    char dev[64];
    uint64_t size;
    unsigned irq;
    GUEST_ASSERT(
        cmdline_get(bootparams_cmdline(zero_page), "virtio_mmio.device", dev, sizeof(dev)));
    parse_device(dev, &size, &base, &irq);
    serial_puts("vmmio: device ");
    serial_puts(dev);
    serial_putc('\n');
    GUEST_ASSERT(size >= 0x100 && irq < 16);
    GUEST_ASSERT(r32(0x000) == 0x74726976 && r32(0x004) == 2 && r32(0x008) == 2);
    ioapic_route(irq, apic);
    virtio_init();
    uint64_t cap = r32(0x100) | (uint64_t)r32(0x104) << 32;
    serial_puts("vmmio: capacity ");
    serial_put_dec(cap);
    serial_putc('\n');
    io_round("mmio-was-here");
    serial_puts("vmmio: ok, interrupts ");
    serial_put_dec(vp_intx_count);
    serial_puts(" spurious ");
    serial_put_dec(vp_intx_spurious);
    serial_putc('\n');
    return 0;
}
