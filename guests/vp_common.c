/* vp_common.c: the IDT, interrupt handler and virtio-blk requests of the vpci and vmmio guests. */
#include "vp_common.h"
#include "guest.h"

#define IDT_ENTRIES 0x50
#define RING 0x1000000ULL /* desc, avail at +0x1000, used at +0x2000, header/data/status after */
#define REQ (RING + 0x3000)
#define DATA (RING + 0x4000)
#define STAT (RING + 0x5000)
#define QUEUE_SIZE 8
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

struct virtio_dev vp_dev;
volatile uint32_t vp_msix_count, vp_intx_count, vp_intx_spurious;
static const char *vp_name = "vp";
static struct vring ring;

__attribute__((noreturn, used)) void vp_exception(uint64_t v)
{
    serial_puts(vp_name);
    serial_puts(": exception ");
    serial_put_dec(v);
    serial_putc('\n');
    guest_exit(9);
}

/*
 * Reading the ISR acknowledges on virtio-pci; virtio-mmio needs InterruptACK of what was seen,
 * and the line drops at the EOI that follows. KVM's resampling re-delivers at times with the
 * queue bit clear: those are counted apart.
 */
__attribute__((used)) void vp_intx_handler(void)
{
    if (virtio_isr_ack(&vp_dev) & 1)
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

void vp_idt_setup(const char *name)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } r = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    uint16_t cs;
    vp_name = name;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (unsigned v = 0; v < 32; v++)
        gate(v, vp_exception_stubs + 16 * v, cs);
    gate(VEC_MSIX, vp_msix_entry, cs);
    gate(VEC_INTX, vp_intx_entry, cs);
    gate(VEC_SPURIOUS, vp_spurious_entry, cs);
    __asm__ volatile("lidt %0" : : "m"(r) : "memory");
}

void vp_ioapic_route(unsigned pin, unsigned apic, uint32_t flags)
{
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin + 1);
    mmio_write32(0xfec00000 + 0x10, apic << 24);
    mmio_write32(0xfec00000 + 0, 0x10 + 2 * pin);
    mmio_write32(0xfec00000 + 0x10, VEC_INTX | flags);
}

void vp_blk_init(uint16_t msix_vector)
{
    bool pci = vp_dev.transport == VIRTIO_TRANSPORT_PCI;
    GUEST_ASSERT(virtio_negotiate(&vp_dev, 0, VIRTIO_F_VERSION_1, vp_name) == VIRTIO_F_VERSION_1);
    if (pci)
        GUEST_ASSERT(virtio_pci_num_queues(&vp_dev) >= 1);
    memset((void *)(uintptr_t)RING, 0, 0x6000);
    virtio_queue_setup(&vp_dev, 0, &ring, RING, QUEUE_SIZE, msix_vector);
    if (pci)
        virtio_pci_config_vector(&vp_dev, VIRTIO_MSI_NO_VECTOR);
    virtio_driver_ok(&vp_dev);
}

/* One request (type 0 read / 1 write) of sector in descriptors 0-2; kicked at once. */
static void submit(uint32_t type, uint64_t sector)
{
    *(volatile uint32_t *)(uintptr_t)REQ = type;
    *(volatile uint32_t *)(uintptr_t)(REQ + 4) = 0;
    *(volatile uint64_t *)(uintptr_t)(REQ + 8) = sector;
    *(volatile uint8_t *)(uintptr_t)STAT = 0xff;
    vring_set_desc(&ring, 0, REQ, 16, VRING_DESC_F_NEXT, 1);
    vring_set_desc(&ring, 1, DATA, 512, VRING_DESC_F_NEXT | (type ? 0 : VRING_DESC_F_WRITE), 2);
    vring_set_desc(&ring, 2, STAT, 1, VRING_DESC_F_WRITE, 0);
    vring_publish(&ring, 0);
    virtio_notify(&vp_dev, 0, &ring);
}

static void wait_for(volatile uint32_t *count, uint32_t want)
{
    uint64_t t0 = rdtsc();
    while (*count < want && rdtsc() - t0 < WAIT_TSC)
        __asm__ volatile("sti; hlt; cli" ::: "memory");
    GUEST_ASSERT(*count >= want);
    GUEST_ASSERT(vring_used_idx(&ring) == ring.avail_idx);
    GUEST_ASSERT(phys_read8(STAT) == 0);
}

void vp_blk_io_round(volatile uint32_t *count, const char *magic, const char *tag)
{
    uint32_t c = *count;
    submit(0, 0);
    wait_for(count, c + 1);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, magic, strlen(magic)) == 0);
    memset((void *)(uintptr_t)DATA, 0, 512);
    memcpy((void *)(uintptr_t)DATA, tag, strlen(tag));
    submit(1, 1);
    wait_for(count, c + 2);
    memset((void *)(uintptr_t)DATA, 0, 512);
    submit(0, 1);
    wait_for(count, c + 3);
    GUEST_ASSERT(memcmp((void *)(uintptr_t)DATA, tag, strlen(tag)) == 0);
}
