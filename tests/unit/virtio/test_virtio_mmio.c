/* test_virtio_mmio.c: the virtio-mmio transport against a fake device and a fake KVM ioctl layer.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "state.h"
#include "fixtures.h"
#include "platform/acpi.h"
#include "platform/aml.h"
#include "platform/irq_routing.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtio/virtio_mmio.h"

#define RAM (16ULL << 20)
#define FEAT_X (1ULL << 5) /* some device feature */
#define BASE VIRTIO_MMIO_WINDOW_BASE
#define GSI 5

static const struct virtio_device_ops fake_ops = VFX_DEV_OPS;

static unsigned log_lines;
static const struct kiln_log test_log = {fixture_count_log, &log_lines, KILN_LOG_WARN};

/* ---- Fixture: RAM, fake KVM, routing, MMIO bus, the device on it, a libuv loop. */

struct t {
    struct guest_mem gm;
    struct vfx_kvm kvm;
    struct vm_ioctl vmi;
    struct irq_routing *irqs;
    struct bus mmio;
    struct vfx_dev dev;
    struct virtio_mmio *vm;
    uv_loop_t loop;
    int line, resample; /* the level line's irqfd and resamplefd */
};

static struct virtio_mmio_config mmio_cfg(struct t *t)
{
    return (struct virtio_mmio_config){.irqs = t->irqs, .base = BASE, .gsi = GSI, .log = &test_log};
}

static void base_setup(struct t *t, int fail_ioeventfd)
{
    memset(t, 0, sizeof(*t));
    log_lines = 0;
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    t->vmi = vfx_kvm_init(&t->kvm, fail_ioeventfd);
    ck_assert_int_eq(irq_routing_create(&t->vmi, &test_log, &t->irqs), 0);
    bus_init(&t->mmio);
    vfx_dev_init(&t->dev, &fake_ops, FEAT_X | VIRTIO_F_EVENT_IDX, &t->gm, &test_log);
}

static void spin(struct t *t)
{
    vfx_spin(&t->loop, 4);
}

/* The device on the bus, its loop made but not started (where a restore happens). */
static void setup_unstarted(struct t *t, int fail_ioeventfd)
{
    base_setup(t, fail_ioeventfd);
    const struct virtio_mmio_config cfg = mmio_cfg(t);
    ck_assert_int_eq(virtio_mmio_create(&t->dev.vd, &cfg, &t->vm), 0);
    ck_assert_int_eq(bus_add_device(NULL, &t->mmio, virtio_mmio_device(t->vm), NULL), 0);
    ck_assert_uint_eq(t->kvm.nirqfd, 1);
    t->line = t->kvm.irqfd[0].fd;
    t->resample = t->kvm.irqfd[0].resample_fd;
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
}

static void setup_with(struct t *t, int fail_ioeventfd)
{
    setup_unstarted(t, fail_ioeventfd);
    ck_assert_int_eq(virtio_mmio_start(t->vm, &t->loop), 0);
    spin(t);
}

static void setup(struct t *t)
{
    setup_with(t, 0);
}

static void base_teardown(struct t *t)
{
    irq_routing_destroy(t->irqs);
    bus_free(&t->mmio);
    virtio_device_destroy(&t->dev.vd);
    guest_mem_free(&t->gm);
    pthread_mutex_destroy(&t->kvm.lock);
}

static void teardown(struct t *t)
{
    virtio_mmio_stop(t->vm);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    virtio_mmio_destroy(t->vm);
    ck_assert_uint_eq(vfx_active_ioevents(&t->kvm, 0), 0);
    base_teardown(t);
}

/* ---- Guest-side accessors. */

static int acc_w(struct t *t, uint64_t off, uint64_t v, uint32_t len)
{
    uint8_t d[8];
    for (int i = 0; i < 8; i++)
        d[i] = (uint8_t)(v >> (8 * i));
    return bus_access(&t->mmio, BASE + off, d, len, true);
}

static uint64_t acc_r(struct t *t, uint64_t off, uint32_t len)
{
    uint8_t d[8] = {0};
    bus_access(&t->mmio, BASE + off, d, len, false);
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)d[i] << (8 * i);
    return v;
}

static void w32(struct t *t, unsigned reg, uint32_t v)
{
    ck_assert_int_eq(acc_w(t, reg, v, 4), 0);
}

static uint32_t r32(struct t *t, unsigned reg)
{
    return (uint32_t)acc_r(t, reg, 4);
}

/* Reset, ACKNOWLEDGE, DRIVER, accept features, FEATURES_OK; returns the status read back. */
static uint32_t negotiate(struct t *t, uint64_t features)
{
    w32(t, VIRTIO_MMIO_STATUS, 0);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_STATUS), 0);
    w32(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    w32(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (unsigned sel = 0; sel < 2; sel++) {
        w32(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        w32(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> (32 * sel)));
    }
    w32(t, VIRTIO_MMIO_STATUS, 0x0b);
    return r32(t, VIRTIO_MMIO_STATUS);
}

static uint64_t ring_base(unsigned q)
{
    return 0x100000 + q * 0x10000;
}

/* Queue q: 16 entries with rings in RAM, then QueueReady, the way Linux's driver does it. */
static void setup_queue(struct t *t, unsigned q)
{
    uint64_t base = ring_base(q);
    w32(t, VIRTIO_MMIO_QUEUE_SEL, q);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_QUEUE_READY), 0);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    w32(t, VIRTIO_MMIO_QUEUE_NUM, 16);
    w32(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)base);
    w32(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    w32(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)base + 0x1000);
    w32(t, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0);
    w32(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)base + 0x2000);
    w32(t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0);
    w32(t, VIRTIO_MMIO_QUEUE_READY, 1);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_QUEUE_READY), 1);
}

/* Everything up to DRIVER_OK, both queues ready. */
static void bring_up(struct t *t)
{
    unsigned before = t->dev.activates;
    ck_assert_uint_eq(negotiate(t, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX), 0x0b);
    setup_queue(t, 0);
    setup_queue(t, 1);
    w32(t, VIRTIO_MMIO_STATUS, 0x0f);
    spin(t);
    ck_assert_uint_eq(t->dev.activates, before + 1);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_STATUS), 0x0f);
}

/* ---- Tests. */

START_TEST(test_identity)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_VERSION_REG), 2);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_STATUS), 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
    /* The bus range is exactly the 0x200-byte window. */
    const struct bus_range *r = bus_find(&t.mmio, BASE);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->len, VIRTIO_MMIO_SIZE);
    ck_assert_ptr_null(bus_find(&t.mmio, BASE + VIRTIO_MMIO_SIZE));
    /* Queues 0 and 1 exist; QueueNumMax 0 tells the driver queue 2 does not. */
    for (unsigned q = 0; q < 3; q++) {
        w32(&t, VIRTIO_MMIO_QUEUE_SEL, q);
        ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), q < 2 ? 256 : 0);
        ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_READY), 0);
    }
    /* The level line: a resampling irqfd on our GSI. */
    ck_assert_uint_eq(t.kvm.irqfd[0].gsi, GSI);
    ck_assert_uint_eq(t.kvm.irqfd[0].flags, KVM_IRQFD_FLAG_RESAMPLE);
    /* One 4-byte datamatch ioeventfd per queue on QueueNotify. */
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 2);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_uint_eq(t.kvm.ioev[i].addr, BASE + VIRTIO_MMIO_QUEUE_NOTIFY);
        ck_assert_uint_eq(t.kvm.ioev[i].len, 4);
        ck_assert_uint_eq(t.kvm.ioev[i].datamatch, i);
        ck_assert(t.kvm.ioev[i].flags & KVM_IOEVENTFD_FLAG_DATAMATCH);
    }
    ck_assert_uint_eq(log_lines, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_config_space)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG, 1), 0x01);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG + 2, 2), 0x0403);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG + 4, 4), 0x08070605);
    acc_w(&t, VIRTIO_MMIO_CONFIG + 1, 0xaa, 1);
    ck_assert_uint_eq(t.dev.config[1], 0xaa);
    ck_assert_uint_eq(t.dev.config_writes, 1);
    unsigned reads = t.dev.config_reads;
    /* Past config_len, misaligned, 8 bytes: zeros, and the device is never asked. */
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG + 8, 1), 0);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG + 6, 4), 0);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG + 1, 2), 0);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_CONFIG, 8), 0);
    acc_w(&t, VIRTIO_MMIO_CONFIG + 0xfc, 0xffffffff, 4);
    ck_assert_uint_eq(t.dev.config_reads, reads);
    ck_assert_uint_eq(t.dev.config_writes, 1);
    ck_assert_uint_eq(log_lines, 1); /* one kind, logged once */
    teardown(&t);
}
END_TEST

START_TEST(test_feature_negotiation)
{
    struct t t;
    setup(&t);
    uint64_t offered = FEAT_X | VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1;
    w32(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)offered);
    w32(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)(offered >> 32));
    w32(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
    /* Without VERSION_1 FEATURES_OK stays clear; with an unoffered bit too. */
    ck_assert_uint_eq(negotiate(&t, FEAT_X), 0x03);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1 | (1ULL << 40)), 0x03);
    /* The accepted set lands in the core. */
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1 | FEAT_X), 0x0b);
    ck_assert_uint_eq(t.dev.vd.driver_features, VIRTIO_F_VERSION_1 | FEAT_X);
    /* After FEATURES_OK the accepted set is frozen (logged once). */
    unsigned logs = log_lines;
    w32(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    w32(&t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
    w32(&t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
    ck_assert_uint_eq(t.dev.vd.driver_features, VIRTIO_F_VERSION_1 | FEAT_X);
    ck_assert_uint_eq(log_lines, logs + 1);
    /* A reset clears the selectors with the device. */
    w32(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    w32(&t, VIRTIO_MMIO_STATUS, 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)offered);
    ck_assert_uint_eq(t.dev.vd.driver_features, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_queue_setup)
{
    struct t t;
    setup(&t);
    bring_up(&t);
    for (unsigned q = 0; q < 2; q++) {
        const struct virtq *vq = &t.dev.vd.queues[q].vq;
        ck_assert(t.dev.vd.queues[q].enabled);
        ck_assert_uint_eq(vq->size, 16);
        ck_assert_uint_eq(vq->desc_gpa, ring_base(q));
        ck_assert_uint_eq(vq->avail_gpa, ring_base(q) + 0x1000);
        ck_assert_uint_eq(vq->used_gpa, ring_base(q) + 0x2000);
    }
    ck_assert(t.dev.vd.active);
    ck_assert_uint_eq(log_lines, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_queue_high_addresses)
{
    struct t t;
    setup(&t);
    w32(&t, VIRTIO_MMIO_QUEUE_SEL, 1);
    w32(&t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x12);
    w32(&t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x34000);
    w32(&t, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0x1);
    w32(&t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0xffffffff);
    w32(&t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, 0x1000);
    const struct virtq *vq = &t.dev.vd.queues[1].vq;
    ck_assert_uint_eq(vq->desc_gpa, 0x1200034000ULL);
    ck_assert_uint_eq(vq->avail_gpa, 0x100000000ULL);
    ck_assert_uint_eq(vq->used_gpa, 0xffffffff00001000ULL);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.desc_gpa, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_queue_config_refused)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1), 0x0b);
    w32(&t, VIRTIO_MMIO_QUEUE_SEL, 0);
    /* Not a power of two, above the maximum, zero: the size stays at its reset value. */
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 24);
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 512);
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 0);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.size, 256);
    ck_assert_uint_eq(log_lines, 1);
    /* QueueReady values other than 0 and 1 are ignored; 0 on a queue not ready is a no-op. */
    w32(&t, VIRTIO_MMIO_QUEUE_READY, 2);
    w32(&t, VIRTIO_MMIO_QUEUE_READY, 0);
    ck_assert(!t.dev.vd.queues[0].enabled);
    /* Bad QueueSel: writes refused, reads say "no queue". */
    w32(&t, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 16);
    w32(&t, VIRTIO_MMIO_QUEUE_READY, 1);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_READY), 0);
    /* Once ready, the queue's configuration is frozen. */
    setup_queue(&t, 0);
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 32);
    w32(&t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
    w32(&t, VIRTIO_MMIO_QUEUE_READY, 0);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.size, 16);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.desc_gpa, ring_base(0));
    ck_assert(t.dev.vd.queues[0].enabled);
    /* After DRIVER_OK, even a queue not made ready cannot be configured. */
    w32(&t, VIRTIO_MMIO_STATUS, 0x0f);
    spin(&t);
    w32(&t, VIRTIO_MMIO_QUEUE_SEL, 1);
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 32);
    w32(&t, VIRTIO_MMIO_QUEUE_READY, 1);
    ck_assert_uint_eq(t.dev.vd.queues[1].vq.size, 256);
    ck_assert(!t.dev.vd.queues[1].enabled);
    /* Each kind of mistake was logged once: value, select, late. */
    ck_assert_uint_eq(log_lines, 3);
    teardown(&t);
}
END_TEST

START_TEST(test_notify_ioeventfd)
{
    struct t t;
    setup(&t);
    bring_up(&t);
    /* KVM signals the queue's eventfd for a matching write: the loop runs queue_notify. */
    vfx_poke(vfx_ioevent_fd(&t.kvm, 1));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[1], 1);
    ck_assert_uint_eq(t.dev.notifies[0], 0);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 1); /* eventfd counts coalesce: one pass of the ring */
    ck_assert_uint_eq(log_lines, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_notify_exit_path)
{
    struct t t;
    setup_with(&t, -ENOSYS); /* no ioeventfd: every QueueNotify write exits to kiln */
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    ck_assert_uint_eq(log_lines, 1);
    bring_up(&t);
    w32(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 1);
    w32(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[1], 1);
    /* A queue that does not exist: ignored, logged once. */
    w32(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 2);
    w32(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0x10000);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0] + t.dev.notifies[1], 2);
    ck_assert_uint_eq(log_lines, 2);
    teardown(&t);
}
END_TEST

START_TEST(test_kick_before_driver_ok)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1), 0x0b);
    setup_queue(&t, 0);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 0);
    ck_assert_uint_eq(log_lines, 1);
    /* DRIVER_OK, then a kick for the queue never made ready: still ignored. */
    w32(&t, VIRTIO_MMIO_STATUS, 0x0f);
    spin(&t);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 1));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[1], 0);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 1);
    teardown(&t);
}
END_TEST

START_TEST(test_interrupt_line)
{
    struct t t;
    setup(&t);
    bring_up(&t);
    vfx_queue_irq(&t.dev.vd, 0);
    ck_assert_uint_eq(vfx_fired(t.line), 1);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE);
    /* Reading does not acknowledge (unlike the PCI ISR). */
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE);
    /* While the line is high, more events do not write the irqfd again. */
    virtio_config_changed(&t.dev.vd);
    ck_assert_uint_eq(vfx_fired(t.line), 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_CONFIG_GENERATION), 1);
    /* EOI with a bit still set: asserted again. */
    w32(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_QUEUE);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_CONFIG);
    vfx_poke(t.resample);
    spin(&t);
    ck_assert_uint_eq(vfx_fired(t.line), 1);
    /* All bits acknowledged: the next EOI leaves the line low. */
    w32(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_CONFIG);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    vfx_poke(t.resample);
    spin(&t);
    ck_assert_uint_eq(vfx_fired(t.line), 0);
    /* Low again: the next event raises it at once. */
    vfx_queue_irq(&t.dev.vd, 1);
    ck_assert_uint_eq(vfx_fired(t.line), 1);
    /* Acknowledging bits that are not set changes nothing. */
    w32(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_CONFIG | 0xfc);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE);
    ck_assert_uint_eq(log_lines, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_device_error_interrupts)
{
    struct t t;
    setup(&t);
    bring_up(&t);
    virtio_device_error(&t.dev.vd, 0, -EINVAL);
    ck_assert_uint_eq(vfx_fired(t.line), 1);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_CONFIG);
    ck_assert(r32(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
    teardown(&t);
}
END_TEST

START_TEST(test_reset_after_driver_ok)
{
    struct t t;
    setup(&t);
    bring_up(&t);
    /* The device drains asynchronously: status and QueueReady tell the driver where it is. */
    t.dev.reset_ret = 1;
    w32(&t, VIRTIO_MMIO_STATUS, 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_STATUS), 0x0f);
    w32(&t, VIRTIO_MMIO_QUEUE_SEL, 0);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_READY), 0);
    spin(&t);
    ck_assert_uint_eq(t.dev.resets, 1);
    /* Configuration written while the reset is pending is refused. */
    w32(&t, VIRTIO_MMIO_QUEUE_NUM, 32);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.size, 16);
    virtio_reset_done(&t.dev.vd);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_STATUS), 0);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.size, 256);
    t.dev.reset_ret = 0;
    bring_up(&t);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 1);
    teardown(&t);
}
END_TEST

/* Bytes, halves, misaligned and 8-byte accesses to registers; write-only and read-only misuse. */
static void hostile_round(struct t *t)
{
    for (unsigned off = 0; off < VIRTIO_MMIO_CONFIG; off++) {
        for (uint32_t len = 1; len <= 8; len *= 2) {
            if (len == 4 && off % 4 == 0)
                continue;
            ck_assert_uint_eq(acc_r(t, off, len), 0);
            acc_w(t, off, 0xffffffffffffffffULL, len);
        }
    }
    /* Read-only registers keep their values. */
    w32(t, VIRTIO_MMIO_MAGIC_VALUE, 0);
    w32(t, VIRTIO_MMIO_DEVICE_FEATURES, 0);
    w32(t, VIRTIO_MMIO_QUEUE_NUM_MAX, 0);
    w32(t, VIRTIO_MMIO_INTERRUPT_STATUS, 0);
    w32(t, VIRTIO_MMIO_CONFIG_GENERATION, 5);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
    /* Write-only and unknown registers read as 0. */
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_QUEUE_NUM), 0);
    ck_assert_uint_eq(r32(t, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
    ck_assert_uint_eq(r32(t, 0x0f0), 0);
    w32(t, 0x0f0, 1);
}

START_TEST(test_hostile_driver)
{
    struct t t;
    setup(&t);
    hostile_round(&t);
    /* Nothing reached the device, the state is untouched, and the log is bounded. */
    ck_assert_uint_eq(t.dev.vd.status, 0);
    ck_assert_uint_eq(t.dev.vd.driver_features, 0);
    ck_assert_uint_eq(t.dev.vd.queues[0].vq.size, 256);
    ck_assert(!t.dev.vd.queues[0].enabled);
    unsigned logs = log_lines;
    ck_assert_uint_le(logs, 3);
    hostile_round(&t);
    ck_assert_uint_eq(log_lines, logs);
    /* Status high bits are dropped; the device still comes up normally. */
    w32(&t, VIRTIO_MMIO_STATUS, 0x101);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_STATUS), VIRTIO_STATUS_ACKNOWLEDGE);
    bring_up(&t);
    teardown(&t);
}
END_TEST

START_TEST(test_slots_and_cmdline)
{
    uint64_t base;
    unsigned gsi;
    ck_assert_int_eq(virtio_mmio_slot(0, &base, &gsi), 0);
    ck_assert_uint_eq(base, 0xd0000000ULL);
    ck_assert_uint_eq(gsi, 5);
    ck_assert_int_eq(virtio_mmio_slot(3, &base, &gsi), 0);
    ck_assert_uint_eq(base, 0xd0003000ULL);
    ck_assert_uint_eq(gsi, 9);
    ck_assert_int_eq(virtio_mmio_slot(VIRTIO_MMIO_MAX_DEVICES - 1, &base, &gsi), 0);
    ck_assert_uint_lt(base + VIRTIO_MMIO_SIZE, 0xe0000000ULL); /* below the PCI window */
    ck_assert_int_eq(virtio_mmio_slot(VIRTIO_MMIO_MAX_DEVICES, &base, &gsi), -ENOSPC);
    /* No pin is a legacy device's, the PCI INTx range or out of the ISA range. */
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_DEVICES; i++) {
        ck_assert_int_eq(virtio_mmio_slot(i, &base, &gsi), 0);
        ck_assert(gsi < 16 && gsi != 0 && gsi != 1 && gsi != 2 && gsi != 4 && gsi != 8 &&
                  gsi != 12);
    }

    char buf[96] = "";
    ck_assert_int_eq(virtio_mmio_cmdline_append(buf, sizeof(buf), 0xd0000000ULL, 5), 0);
    ck_assert_str_eq(buf, "virtio_mmio.device=512@0xd0000000:5");
    strcpy(buf, "console=ttyS0");
    ck_assert_int_eq(virtio_mmio_cmdline_append(buf, sizeof(buf), 0xd0001000ULL, 6), 0);
    ck_assert_str_eq(buf, "console=ttyS0 virtio_mmio.device=512@0xd0001000:6");
    /* Too small: unchanged. */
    char small[40] = "console=ttyS0";
    ck_assert_int_eq(virtio_mmio_cmdline_append(small, sizeof(small), 0xd0000000ULL, 5), -ENOSPC);
    ck_assert_str_eq(small, "console=ttyS0");
    /* Exactly fitting (the NUL included) is fine. */
    char exact[36] = "";
    ck_assert_int_eq(virtio_mmio_cmdline_append(exact, sizeof(exact), 0xd0000000ULL, 5), 0);
    char unterminated[4] = {'a', 'b', 'c', 'd'};
    ck_assert_int_eq(virtio_mmio_cmdline_append(unterminated, 4, 0xd0000000ULL, 5), -ENOSPC);
}
END_TEST

/*
 * The DSDT entry, decoded byte by byte: Device (VRxx) { Name(_HID, "LNRO0005"), Name(_UID, i),
 * Name(_CRS, Buffer (0x19) { Memory32Fixed, Extended Interrupt, End Tag }) }.
 */
static void check_entry(const uint8_t *p, size_t n, unsigned index, uint64_t base, unsigned gsi)
{
    char name[5];
    snprintf(name, sizeof(name), "VR%02X", index);
    ck_assert_uint_ge(n, 4);
    ck_assert_uint_eq(p[0], 0x5b); /* ExtOpPrefix */
    ck_assert_uint_eq(p[1], 0x82); /* DeviceOp */
    /* The entry is under 63 bytes: a one-byte PkgLength, counting itself and what follows. */
    ck_assert_uint_eq(p[2] >> 6, 0);
    ck_assert_uint_eq(2 + (size_t)p[2], n);
    const uint8_t *q = p + 3;
    ck_assert_int_eq(memcmp(q, name, 4), 0);
    q += 4;
    ck_assert_int_eq(memcmp(q, "\x08_HID\x0dLNRO0005", 15), 0); /* 15: the string's NUL too */
    q += 15;
    ck_assert_int_eq(memcmp(q, "\x08_UID", 5), 0);
    q += 5;
    if (index <= 1) {
        ck_assert_uint_eq(*q++, index); /* ZeroOp, OneOp */
    } else {
        ck_assert_uint_eq(*q++, 0x0a);
        ck_assert_uint_eq(*q++, index);
    }
    /* Name(_CRS, Buffer): BufferOp, PkgLength, BytePrefix size, 12 + 9 + 2 bytes. */
    ck_assert_int_eq(memcmp(q, "\x08_CRS\x11", 6), 0);
    q += 6;
    ck_assert_uint_eq(q[0], 1 + 2 + 23); /* PkgLength: itself, the size, the bytes */
    ck_assert_uint_eq(q[1], 0x0a);
    ck_assert_uint_eq(q[2], 23);
    q += 3;
    const uint8_t want[23] = {/* Memory32Fixed(ReadWrite, base, 0x200) */
                              0x86, 9, 0, 1, (uint8_t)base, (uint8_t)(base >> 8),
                              (uint8_t)(base >> 16), (uint8_t)(base >> 24), 0x00, 0x02, 0, 0,
                              /* Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) {gsi} */
                              0x89, 6, 0, 0x09, 1, (uint8_t)gsi, 0, 0, 0,
                              /* End Tag */
                              0x79, 0};
    ck_assert_int_eq(memcmp(q, want, sizeof(want)), 0);
    ck_assert_ptr_eq(q + sizeof(want), p + n); /* nothing else in the device */
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* The table at gpa in the built tables: its bytes, after checking the signature and checksum. */
static const uint8_t *built_table(const struct acpi_tables *at, uint64_t gpa, const char *sig)
{
    ck_assert_uint_ge(gpa, at->base);
    const uint8_t *h = at->buf + (gpa - at->base);
    ck_assert_int_eq(memcmp(h, sig, 4), 0);
    uint32_t len;
    memcpy(&len, h + 4, 4);
    ck_assert_uint_le(gpa - at->base + len, at->len);
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++)
        sum += h[i];
    ck_assert_uint_eq(sum, 0);
    return h;
}

/* The DSDT of tables built for devs: found through RSDP, XSDT and FADT, checksums checked. */
static const uint8_t *built_dsdt(const struct acpi_tables *at)
{
    uint64_t xsdt, fadt = 0, dsdt;
    memcpy(&xsdt, at->buf + 24, 8);
    const uint8_t *x = built_table(at, xsdt, "XSDT");
    for (unsigned i = 0; i < 2 && !fadt; i++) {
        uint64_t gpa;
        memcpy(&gpa, x + 36 + 8 * i, 8);
        if (memcmp(at->buf + (gpa - at->base), "FACP", 4) == 0)
            fadt = gpa;
    }
    memcpy(&dsdt, built_table(at, fadt, "FACP") + 140, 8);
    return built_table(at, dsdt, "DSDT");
}

START_TEST(test_acpi_entry)
{
    struct t t;
    setup(&t);
    /* The hook alone, for device index 3 at its slot. */
    struct vfx_dev other = {0};
    virtio_device_init(&other.vd, &fake_ops, &other, 0, 2, 64, &t.gm, &test_log);
    struct virtio_mmio_config cfg = mmio_cfg(&t);
    ck_assert_int_eq(virtio_mmio_slot(3, &cfg.base, &cfg.gsi), 0);
    cfg.index = 3;
    struct virtio_mmio *vm3;
    ck_assert_int_eq(virtio_mmio_create(&other.vd, &cfg, &vm3), 0);
    struct device *d3 = virtio_mmio_device(vm3);
    ck_assert_ptr_nonnull(d3->ops->describe);
    uint8_t buf[256];
    struct aml a = {.buf = buf, .cap = sizeof(buf)};
    d3->ops->describe(d3, &a);
    ck_assert(!a.overflow);
    check_entry(buf, a.len, 3, cfg.base, cfg.gsi);
    size_t entry_len = a.len;

    /* In the DSDT, in the order given, inside a table whose checksum and length hold. */
    struct device *devs[2] = {virtio_mmio_device(t.vm), d3};
    struct acpi_config ac = {
        .cpus = 1, .level_irqs = 1u << 5 | 1u << 9, .devices = devs, .ndevices = 2};
    struct acpi_tables at;
    ck_assert_int_eq(acpi_build(&ac, 0xe0000, &at), 0);
    const uint8_t *dsdt = built_dsdt(&at);
    uint32_t dlen;
    memcpy(&dlen, dsdt + 4, 4);
    const uint8_t *e0 = find_bytes(dsdt, dlen, "VR00", 4);
    const uint8_t *e3 = find_bytes(dsdt, dlen, "VR03", 4);
    ck_assert_ptr_nonnull(e0);
    ck_assert_ptr_nonnull(e3);
    ck_assert(e0 < e3);
    check_entry(e0 - 3, entry_len - 1, 0, BASE, GSI); /* _UID 0 is ZeroOp: one byte shorter */
    check_entry(e3 - 3, entry_len, 3, cfg.base, cfg.gsi);
    acpi_tables_free(&at);

    /* The most devices a VM has fit the DSDT (the same device 16 times: only the size counts). */
    struct device *many[VIRTIO_MMIO_MAX_DEVICES];
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_DEVICES; i++)
        many[i] = d3;
    ac.devices = many;
    ac.ndevices = VIRTIO_MMIO_MAX_DEVICES;
    ck_assert_int_eq(acpi_build(&ac, 0xe0000, &at), 0);
    memcpy(&dlen, built_dsdt(&at) + 4, 4);
    ck_assert_uint_gt(dlen, 36 + VIRTIO_MMIO_MAX_DEVICES * entry_len);
    acpi_tables_free(&at);

    virtio_mmio_destroy(vm3);
    virtio_device_destroy(&other.vd);
    teardown(&t);
}
END_TEST

static void other_read(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len)
{
    (void)d;
    (void)region;
    (void)off;
    (void)data;
    (void)len;
}

static void other_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                        uint32_t len)
{
    (void)d;
    (void)region;
    (void)off;
    (void)data;
    (void)len;
}

static const struct device_ops other_ops = {.read = other_read, .write = other_write};

START_TEST(test_create_errors)
{
    struct t t;
    base_setup(&t, 0);
    struct virtio_mmio_config cfg = mmio_cfg(&t);
    struct virtio_mmio *vm = NULL;
    /* Bad GSI, unaligned base, no IRQ routing: refused before anything is made. */
    cfg.gsi = IRQ_ROUTING_IRQCHIP_GSIS;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    cfg = mmio_cfg(&t);
    cfg.base = BASE + 0x10;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    cfg = mmio_cfg(&t);
    cfg.irqs = NULL;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    /* Past what the DSDT can describe: a window above 4 GiB, an index past VRFF. */
    cfg = mmio_cfg(&t);
    cfg.base = 0x100000000ULL;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    cfg = mmio_cfg(&t);
    cfg.index = VIRTIO_MMIO_MAX_INDEX + 1;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    ck_assert_ptr_null(vm);
    ck_assert_uint_eq(t.kvm.nirqfd + t.kvm.nioev, 0);
    /* The irqfd fails: nothing stays behind. */
    cfg = mmio_cfg(&t);
    t.kvm.fail_irqfd = -EIO;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EIO);
    t.kvm.fail_irqfd = 0;
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    /*
     * The window overlaps another device: the caller's bus refuses it, and destroying the
     * transport takes the ioeventfds back.
     */
    struct device other = {.name = "other", .ops = &other_ops};
    ck_assert_int_eq(bus_insert(&t.mmio, BASE + 0x100, 0x10, &other, 0), 0);
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), 0);
    ck_assert_int_eq(bus_add_device(NULL, &t.mmio, virtio_mmio_device(vm), NULL), -EEXIST);
    virtio_mmio_destroy(vm);
    ck_assert_ptr_null(t.dev.vd.transport);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    base_teardown(&t);
}
END_TEST

START_TEST(test_create_bad_device)
{
    struct t t;
    base_setup(&t, 0);
    struct virtio_mmio_config cfg = mmio_cfg(&t);
    struct virtio_mmio *vm = NULL;
    struct virtio_device_ops big = fake_ops;
    big.config_len = VIRTIO_MMIO_CONFIG_MAX + 1;
    t.dev.vd.ops = &big;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    t.dev.vd.ops = &fake_ops;
    t.dev.vd.num_queues = 0;
    ck_assert_int_eq(virtio_mmio_create(&t.dev.vd, &cfg, &vm), -EINVAL);
    ck_assert_ptr_null(vm);
    base_teardown(&t);
}
END_TEST

START_TEST(test_second_device)
{
    struct t t;
    setup(&t);
    struct vfx_dev other = {0};
    virtio_device_init(&other.vd, &fake_ops, &other, 0, 2, 64, &t.gm, &test_log);
    struct virtio_mmio_config cfg = mmio_cfg(&t);
    cfg.base = BASE + VIRTIO_MMIO_STRIDE;
    cfg.gsi = 6;
    struct virtio_mmio *vm2;
    ck_assert_int_eq(virtio_mmio_create(&other.vd, &cfg, &vm2), 0);
    ck_assert_int_eq(bus_add_device(NULL, &t.mmio, virtio_mmio_device(vm2), NULL), 0);
    ck_assert_uint_eq(t.kvm.irqfd[1].gsi, 6);
    ck_assert_uint_eq(acc_r(&t, VIRTIO_MMIO_STRIDE + VIRTIO_MMIO_QUEUE_NUM_MAX, 4), 64);
    ck_assert_uint_eq(r32(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 4);
    virtio_mmio_destroy(vm2);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 2);
    virtio_device_destroy(&other.vd);
    /* The range stays on the bus (no removal), so the fixture's bus must not outlive it. */
    teardown(&t);
}
END_TEST

/* ---- Snapshot. */

/* The transport's saved state: what vm_save wrote. */
static struct device_state save(struct t *t)
{
    struct device *d = virtio_mmio_device(t->vm);
    struct device_state st = {0};
    ck_assert_int_eq(d->ops->save(d, &st), 0);
    ck_assert_int_eq(st.err, 0);
    return st;
}

/* Restore buf into a fresh, unstarted transport; its result. */
static int restore_into(struct t *t, const struct device_state *saved)
{
    struct device *d = virtio_mmio_device(t->vm);
    struct device_state rd = state_reader(saved->buf, saved->len);
    int ret = d->ops->restore(d, &rd);
    return ret < 0 ? ret : state_done(&rd);
}

/* A running device with an interrupt pending and rings part used, saved and restored. */
START_TEST(test_snapshot_restore)
{
    struct t a;
    setup(&a);
    bring_up(&a);
    w32(&a, VIRTIO_MMIO_QUEUE_SEL, 1);
    w32(&a, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    w32(&a, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    virtio_config_changed(&a.dev.vd); /* generation 1, ISR config bit, the line up */
    vfx_queue_irq(&a.dev.vd, 0);
    ck_assert_uint_eq(vfx_fired(a.line), 1);
    struct virtq *vq = &a.dev.vd.queues[1].vq;
    vq->last_avail = 7;
    vq->used_idx = 6;
    vq->signalled_used = 5;
    struct device_state st = save(&a);
    teardown(&a);

    struct t b;
    setup_unstarted(&b, 0);
    ck_assert_int_eq(restore_into(&b, &st), 0);
    ck_assert_uint_eq(b.dev.activates, 0);
    ck_assert_int_eq(virtio_mmio_start(b.vm, &b.loop), 0);
    spin(&b);
    /* Activated again, the rings resumed where they were, the interrupt raised again. */
    ck_assert_uint_eq(b.dev.activates, 1);
    ck_assert(b.dev.vd.active);
    vq = &b.dev.vd.queues[1].vq;
    ck_assert(vq->ready);
    ck_assert_uint_eq(vq->last_avail, 7);
    ck_assert_uint_eq(vq->used_idx, 6);
    ck_assert_uint_eq(vq->signalled_used, 5);
    ck_assert_uint_eq(vq->desc_gpa, ring_base(1));
    ck_assert_uint_eq(vq->used_gpa, ring_base(1) + 0x2000);
    ck_assert_uint_eq(vfx_fired(b.line), 1);
    ck_assert_uint_eq(r32(&b, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
    ck_assert_uint_eq(r32(&b, VIRTIO_MMIO_CONFIG_GENERATION), 1);
    ck_assert_uint_eq(r32(&b, VIRTIO_MMIO_STATUS), 0x0f);
    /* The selects: queue 1, the high halves of the features. */
    ck_assert_uint_eq(r32(&b, VIRTIO_MMIO_QUEUE_READY), 1);
    ck_assert_uint_eq(r32(&b, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 is bit 32 */
    ck_assert_uint_eq(b.dev.vd.driver_features, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX);
    /* Kicks reach the device, and the EOI path works as before. */
    vfx_poke(vfx_ioevent_fd(&b.kvm, 1));
    spin(&b);
    ck_assert_uint_eq(b.dev.notifies[1], 1);
    w32(&b, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
    vfx_poke(b.resample);
    spin(&b);
    ck_assert_uint_eq(vfx_fired(b.line), 0);
    ck_assert_uint_eq(log_lines, 0);
    teardown(&b);
    state_free(&st);
}
END_TEST

/* Offsets in the saved state: 3 selects, then the core (features, status, vectors/count). */
#define ST_STATUS 28
#define ST_QUEUE0 36 /* vector << 16 | size, flags, 3 ring addresses, positions */

/* Restore of a state with one u32 at off replaced by v: refused. */
static void expect_refused(const struct device_state *good, size_t off, uint32_t v)
{
    struct device_state bad = {0};
    state_put(&bad, good->buf, good->len);
    memcpy(bad.buf + off, &v, sizeof(v));
    struct t t;
    setup_unstarted(&t, 0);
    ck_assert_msg(restore_into(&t, &bad) == -EINVAL, "0x%x at %zu taken", v, off);
    ck_assert_int_eq(virtio_mmio_start(t.vm, &t.loop), 0);
    teardown(&t);
    state_free(&bad);
}

/* What the registers refuse, a snapshot cannot bring in either. */
START_TEST(test_snapshot_refusals)
{
    struct t a;
    setup(&a);
    bring_up(&a);
    struct device_state st = save(&a);
    teardown(&a);
    uint32_t q0;
    memcpy(&q0, st.buf + ST_QUEUE0, 4);
    ck_assert_uint_eq(q0, (uint32_t)VIRTIO_NO_VECTOR << 16 | 16);
    expect_refused(&st, ST_QUEUE0, (uint32_t)VIRTIO_NO_VECTOR << 16 | 24);  /* not a power of 2 */
    expect_refused(&st, ST_QUEUE0, (uint32_t)VIRTIO_NO_VECTOR << 16 | 512); /* above the max */
    expect_refused(&st, ST_QUEUE0, (uint32_t)VIRTIO_NO_VECTOR << 16);       /* zero */
    expect_refused(&st, ST_QUEUE0, 16);                 /* an MSI-X vector on MMIO */
    expect_refused(&st, ST_QUEUE0 + 4, 4);              /* unknown queue flags */
    expect_refused(&st, ST_QUEUE0 + 4, 2);              /* running, not enabled */
    expect_refused(&st, ST_STATUS + 4, 0xffff0000 | 3); /* 3 queues */
    expect_refused(&st, 12, 1u << 6);                   /* other features offered */
    /* Short by a byte, or a byte too long. */
    struct t t;
    setup_unstarted(&t, 0);
    struct device_state cut = state_reader(st.buf, st.len - 1);
    struct device *d = virtio_mmio_device(t.vm);
    ck_assert_int_eq(d->ops->restore(d, &cut), -EINVAL);
    ck_assert_int_eq(virtio_mmio_start(t.vm, &t.loop), 0);
    teardown(&t);
    struct device_state longer = {0};
    state_put(&longer, st.buf, st.len);
    state_put_u32(&longer, 0);
    setup_unstarted(&t, 0);
    ck_assert_int_eq(restore_into(&t, &longer), -EINVAL);
    ck_assert_int_eq(virtio_mmio_start(t.vm, &t.loop), 0);
    teardown(&t);
    state_free(&longer);
    state_free(&st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_mmio");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_identity);
    tcase_add_test(tc, test_config_space);
    tcase_add_test(tc, test_feature_negotiation);
    tcase_add_test(tc, test_queue_setup);
    tcase_add_test(tc, test_queue_high_addresses);
    tcase_add_test(tc, test_queue_config_refused);
    tcase_add_test(tc, test_notify_ioeventfd);
    tcase_add_test(tc, test_notify_exit_path);
    tcase_add_test(tc, test_kick_before_driver_ok);
    tcase_add_test(tc, test_interrupt_line);
    tcase_add_test(tc, test_device_error_interrupts);
    tcase_add_test(tc, test_reset_after_driver_ok);
    tcase_add_test(tc, test_hostile_driver);
    tcase_add_test(tc, test_slots_and_cmdline);
    tcase_add_test(tc, test_acpi_entry);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_create_bad_device);
    tcase_add_test(tc, test_second_device);
    tcase_add_test(tc, test_snapshot_restore);
    tcase_add_test(tc, test_snapshot_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
