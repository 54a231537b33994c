/* fuzz_virtio_pci.c: the virtio-pci transport (virtio_pci.c, pci/) under guest accesses. */
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "platform/irq_routing.h"
#include "virtio/virtio_pci.h"
#include "virtio_fixture.h"

/*
 * The VM's side as kiln builds it for --transport pci: a fake KVM (virtio_fixture.h) behind the
 * interrupt routing, PCI bus 0 on the PIO and MMIO buses, one virtio-pci function with a device
 * behind it (fuzz_virtio_dev.h), and the libuv loop its kicks and status work run on. Guest
 * accesses go through bus_access(), as a vCPU's exits do.
 *
 * Input:
 *   u8  device kind (mod 3: fake, virtio-net, virtio-blk)
 *   u8  device flags (fzd_create), bit 7: KVM refuses ioeventfds (kicks take the exit path)
 *   u16 length of the operation program; the program (run_op); guest RAM contents
 */

#define RAM_SIZE (256u << 10)

struct fv {
    struct vfx_kvm kvm;
    struct vm_ioctl vmi;
    struct irq_routing *irqs;
    struct bus pio, mmio;
    struct pci_bus *pci;
    struct fzd dev;
    struct virtio_pci *vp;
    uv_loop_t loop;
};

static struct fz_ram ram;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzd_init();
    fz_ram_alloc(&ram, RAM_SIZE, 0);
    return 0;
}

/* Access sizes: a vCPU's MMIO exit carries 1 to 8 bytes, a port access 1, 2 or 4. */
static uint32_t mmio_len(uint8_t op, struct fz *f)
{
    static const uint32_t sizes[4] = {1, 2, 4, 8};
    return op & 0x80 ? 1 + fz_u8(f) % 8 : sizes[(op >> 5) & 3];
}

static uint32_t pio_len(uint8_t op)
{
    static const uint32_t sizes[4] = {1, 2, 4, 4};
    return sizes[(op >> 5) & 3];
}

/* An MMIO access at addr: its size, then (for a write) its value, from the input in that order. */
static void mmio_access(struct fv *v, uint64_t addr, uint8_t op, struct fz *f)
{
    uint32_t len = mmio_len(op, f);
    fzd_access(&v->mmio, addr, len, op & 0x10, f);
}

/* A config space access through mechanism #1: the latch (addr), then the data port. */
static void conf1(struct fv *v, uint32_t latch, uint8_t op, struct fz *f)
{
    uint8_t a[4];
    le_put(a, 4, latch);
    bus_access(&v->pio, PCI_CONF1_ADDR_PORT, a, 4, true);
    fzd_access(&v->pio, PCI_CONF1_DATA_PORT + (latch & 3), pio_len(op), op & 0x10, f);
}

/* Where BAR bar of the function decodes now (or was programmed, if it does not). */
static uint64_t bar_base(struct fv *v, unsigned bar)
{
    const struct pci_bar *b = &virtio_pci_function(v->vp)->bars[bar];
    uint64_t mapped = atomic_load(&b->mapped);
    return mapped ? mapped : b->addr;
}

/* BAR 0 by structure: common config, ISR, device config or notify, then an offset in it. */
static uint64_t bar0_addr(struct fv *v, struct fz *f)
{
    static const uint64_t part[4] = {VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_ISR_OFF,
                                     VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_NOTIFY_OFF};
    uint8_t sel = fz_u8(f);
    return bar_base(v, VIRTIO_PCI_CAPS_BAR) + part[sel >> 6] + (sel & 0x3f);
}

static void run_op(struct fv *v, struct fz *f)
{
    uint8_t op = fz_u8(f);
    unsigned slot = virtio_pci_function(v->vp)->slot;
    uint64_t addr;
    switch (op & 0xf) {
    case 0: /* config space of the function */
        conf1(v, PCI_CONF1_ENABLE | slot << 11 | fz_u8(f), op, f);
        break;
    case 1: /* any latch value: other slots, functions, buses, the host bridge */
        conf1(v, fz_u32(f), op, f);
        break;
    case 2:
        addr = bar0_addr(v, f);
        mmio_access(v, addr, op, f);
        break;
    case 3: /* MSI-X table and PBA */
        addr = bar_base(v, VIRTIO_PCI_MSIX_BAR) + fz_u16(f) % 0x1000;
        mmio_access(v, addr, op, f);
        break;
    case 4: /* anywhere in the PCI window (and BAR 0 past its structures) */
        addr = PCI_MMIO_WINDOW_BASE + fz_u32(f) % PCI_MMIO_WINDOW_SIZE;
        mmio_access(v, addr, op, f);
        break;
    case 5: /* the conf1 ports themselves, any width and offset */
        addr = PCI_CONF1_ADDR_PORT + fz_u8(f) % 8;
        fzd_access(&v->pio, addr, pio_len(op), op & 0x10, f);
        break;
    case 6: /* EOI of the INTx line */
        fzd_eoi(&v->dev, &v->kvm, &v->loop);
        break;
    case 7: /* a kick at the notify address that KVM's ioeventfd catches */
        fzd_ioevent_kick(&v->dev, &v->kvm, &v->loop, f);
        break;
    case 8:
        fzd_backend(&v->dev, f);
        fzd_settle(&v->dev, &v->loop);
        break;
    default:
        fzd_settle(&v->dev, &v->loop);
        break;
    }
}

static void setup(struct fv *v, enum fzd_kind kind, uint8_t flags)
{
    memset(v, 0, sizeof(*v));
    v->vmi = vfx_kvm_init(&v->kvm, flags & 0x80 ? -ENOSYS : 0);
    FZ_CHECK(irq_routing_create(&v->vmi, fz_log(), &v->irqs) == 0);
    bus_init(&v->pio);
    bus_init(&v->mmio);
    FZ_CHECK(pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, fz_log(), &v->pci) == 0);
    FZ_CHECK(bus_add_device(&v->pio, &v->mmio, pci_bus_device(v->pci), NULL) == 0);
    FZ_CHECK(uv_loop_init(&v->loop) == 0);
    fzd_create(&v->dev, kind, flags, &v->loop, &ram.gm);
    const struct virtio_pci_config cfg = {.bus = v->pci, .irqs = v->irqs, .log = fz_log()};
    FZ_CHECK(virtio_pci_create(v->dev.vd, &cfg, &v->vp) == 0);
    /* From here on, as the VM does: the function's device hooks run its life cycle. */
    struct device *fn = virtio_pci_device(v->vp);
    FZ_CHECK(fn->ops->start(fn, &v->loop) == 0);
    fzd_settle(&v->dev, &v->loop);
}

static void teardown(struct fv *v)
{
    fzd_transport_end(&v->dev, virtio_pci_device(v->vp), &v->kvm, &v->loop);
    pci_bus_destroy(v->pci);
    irq_routing_destroy(v->irqs);
    bus_free(&v->pio);
    bus_free(&v->mmio);
    pthread_mutex_destroy(&v->kvm.lock);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fv v;
    struct fz f = {data, size};
    enum fzd_kind kind;
    uint8_t flags;
    struct fz prog = fzd_transport_input(&f, &ram, &kind, &flags);
    setup(&v, kind, flags);
    while (fz_more(&prog))
        run_op(&v, &prog);
    teardown(&v);
    return 0;
}
