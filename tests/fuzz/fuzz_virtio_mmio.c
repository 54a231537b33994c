/* fuzz_virtio_mmio.c: the virtio-mmio transport (virtio_mmio.c) under guest register accesses. */
#include <errno.h>
#include <string.h>

#include "bus.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "platform/irq_routing.h"
#include "virtio/virtio_mmio.h"
#include "virtio_fixture.h"

/*
 * The VM's side as kiln builds it for --transport mmio: a fake KVM (virtio_fixture.h) behind
 * the interrupt routing, the first virtio-mmio slot (window and level GSI from
 * virtio_mmio_slot()) on the MMIO bus with a device behind it (fuzz_virtio_dev.h), and the
 * libuv loop. Guest accesses go through bus_access(), as a vCPU's exits do.
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
    struct bus mmio;
    struct fzd dev;
    struct virtio_mmio *vm;
    uint64_t base;
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

/* A vCPU's MMIO exit carries 1 to 8 bytes; the registers want 4, the config space 1, 2 or 4. */
static uint32_t mmio_len(uint8_t op, struct fz *f)
{
    static const uint32_t sizes[4] = {4, 1, 2, 8};
    return op & 0x80 ? 1 + fz_u8(f) % 8 : sizes[(op >> 5) & 3];
}

/* An access at window offset off: its size, then (for a write) its value, in that order. */
static void window_access(struct fv *v, uint64_t off, uint8_t op, struct fz *f)
{
    uint32_t len = mmio_len(op, f);
    fzd_access(&v->mmio, v->base + off, len, op & 0x10, f);
}

static void run_op(struct fv *v, struct fz *f)
{
    uint8_t op = fz_u8(f);
    uint64_t off;
    switch (op & 0xf) {
    case 0: /* a register: one of the 64 dwords below the config space */
        off = 4 * (fz_u8(f) % 64);
        window_access(v, off, op, f);
        break;
    case 1: /* the device's config space */
        off = VIRTIO_MMIO_CONFIG + fz_u8(f);
        window_access(v, off, op, f);
        break;
    case 2: /* any offset, also past the window (no device there) */
        off = fz_u16(f) % 0x1000;
        window_access(v, off, op, f);
        break;
    case 3: /* EOI of the level line */
        fzd_eoi(&v->dev, &v->kvm, &v->loop);
        break;
    case 4: /* a kick on QueueNotify that KVM's ioeventfd catches */
        fzd_ioevent_kick(&v->dev, &v->kvm, &v->loop, f);
        break;
    case 5:
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
    bus_init(&v->mmio);
    FZ_CHECK(uv_loop_init(&v->loop) == 0);
    fzd_create(&v->dev, kind, flags, &v->loop, &ram.gm);
    struct virtio_mmio_config cfg = {.irqs = v->irqs, .log = fz_log()};
    FZ_CHECK(virtio_mmio_slot(0, &cfg.base, &cfg.gsi) == 0);
    v->base = cfg.base;
    FZ_CHECK(virtio_mmio_create(v->dev.vd, &cfg, &v->vm) == 0);
    /* From here on, as the VM does: the transport is a device with its ranges and hooks. */
    struct device *tr = virtio_mmio_device(v->vm);
    FZ_CHECK(bus_add_device(NULL, &v->mmio, tr, NULL) == 0);
    FZ_CHECK(tr->ops->start(tr, &v->loop) == 0);
    fzd_settle(&v->dev, &v->loop);
}

static void teardown(struct fv *v)
{
    fzd_transport_end(&v->dev, virtio_mmio_device(v->vm), &v->kvm, &v->loop);
    irq_routing_destroy(v->irqs);
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
