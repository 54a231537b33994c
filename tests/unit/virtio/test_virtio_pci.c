/* test_virtio_pci.c: the virtio-pci transport against a fake device and a fake KVM ioctl layer. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "fixtures.h"
#include "platform/irq_routing.h"
#include "pci/msix.h"
#include "pci/pci.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtio/virtio_pci.h"

#define RAM (16ULL << 20)
#define FEAT_X (1ULL << 5) /* some device feature */

static int irqfd_for_gsi(const struct vfx_kvm *k, unsigned gsi)
{
    for (unsigned i = 0; i < k->nirqfd; i++)
        if (k->irqfd[i].gsi == gsi)
            return (int)i;
    return -1;
}

static const struct virtio_device_ops fake_ops = VFX_DEV_OPS;

static unsigned log_lines;
static const struct kiln_log test_log = {fixture_count_log, &log_lines, KILN_LOG_WARN};

/* ---- Fixture: RAM, fake KVM, routing, PCI bus, the device on it, a libuv loop. */

struct t {
    struct guest_mem gm;
    struct vfx_kvm kvm;
    struct vm_ioctl vmi;
    struct irq_routing *irqs;
    struct bus pio, mmio;
    struct pci_bus *pci;
    struct vfx_dev dev;
    struct virtio_pci *vp;
    uv_loop_t loop;
    uint64_t bar0, bar2;
    unsigned slot;
};

static int create(struct t *t)
{
    const struct virtio_pci_config cfg = {.bus = t->pci, .irqs = t->irqs, .log = &test_log};
    return virtio_pci_create(&t->dev.vd, &cfg, &t->vp);
}

static void base_setup(struct t *t, int fail_ioeventfd)
{
    memset(t, 0, sizeof(*t));
    log_lines = 0;
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    t->vmi = vfx_kvm_init(&t->kvm, fail_ioeventfd);
    ck_assert_int_eq(irq_routing_create(&t->vmi, &test_log, &t->irqs), 0);
    bus_init(&t->pio);
    bus_init(&t->mmio);
    ck_assert_int_eq(pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, &test_log, &t->pci),
                     0);
    ck_assert_int_eq(bus_add_device(&t->pio, &t->mmio, pci_bus_device(t->pci), NULL), 0);
    vfx_dev_init(&t->dev, &fake_ops, FEAT_X | VIRTIO_F_EVENT_IDX, &t->gm, &test_log);
}

static void spin(struct t *t)
{
    vfx_spin(&t->loop, 4);
}

static void setup_with(struct t *t, int fail_ioeventfd)
{
    base_setup(t, fail_ioeventfd);
    ck_assert_int_eq(create(t), 0);
    struct pci_device *fn = virtio_pci_function(t->vp);
    t->bar0 = fn->bars[VIRTIO_PCI_CAPS_BAR].addr;
    t->bar2 = fn->bars[VIRTIO_PCI_MSIX_BAR].addr;
    t->slot = fn->slot;
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    ck_assert_int_eq(virtio_pci_start(t->vp, &t->loop), 0);
    spin(t);
}

static void setup(struct t *t)
{
    setup_with(t, 0);
}

static void base_teardown(struct t *t)
{
    pci_bus_destroy(t->pci);
    irq_routing_destroy(t->irqs);
    bus_free(&t->pio);
    bus_free(&t->mmio);
    virtio_device_destroy(&t->dev.vd);
    guest_mem_free(&t->gm);
    pthread_mutex_destroy(&t->kvm.lock);
}

static void teardown(struct t *t)
{
    virtio_pci_stop(t->vp);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    virtio_pci_destroy(t->vp);
    base_teardown(t);
}

/* ---- Guest-side accessors. */

static void mmio_w(struct t *t, uint64_t addr, uint64_t v, uint32_t len)
{
    uint8_t d[8];
    for (int i = 0; i < 8; i++)
        d[i] = (uint8_t)(v >> (8 * i));
    bus_access(&t->mmio, addr, d, len, true);
}

static uint64_t mmio_r(struct t *t, uint64_t addr, uint32_t len)
{
    uint8_t d[8] = {0};
    bus_access(&t->mmio, addr, d, len, false);
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint64_t)d[i] << (8 * i);
    return v;
}

static void cw(struct t *t, unsigned reg, uint64_t v, uint32_t len)
{
    mmio_w(t, t->bar0 + VIRTIO_PCI_COMMON_OFF + reg, v, len);
}

static uint64_t cr(struct t *t, unsigned reg, uint32_t len)
{
    return mmio_r(t, t->bar0 + VIRTIO_PCI_COMMON_OFF + reg, len);
}

static void conf1(struct t *t, unsigned reg)
{
    uint8_t d[4];
    uint32_t a = PCI_CONF1_ENABLE | t->slot << 11 | (reg & 0xfc);
    memcpy(d, &a, 4);
    bus_access(&t->pio, PCI_CONF1_ADDR_PORT, d, 4, true);
}

static uint32_t cfg_r(struct t *t, unsigned reg, uint32_t len)
{
    uint8_t d[4] = {0};
    conf1(t, reg);
    bus_access(&t->pio, PCI_CONF1_DATA_PORT + (reg & 3), d, len, false);
    uint32_t v = 0;
    for (uint32_t i = 0; i < len; i++)
        v |= (uint32_t)d[i] << (8 * i);
    return v;
}

static void cfg_w(struct t *t, unsigned reg, uint32_t v, uint32_t len)
{
    uint8_t d[4];
    memcpy(d, &v, 4);
    conf1(t, reg);
    bus_access(&t->pio, PCI_CONF1_DATA_PORT + (reg & 3), d, len, true);
}

/* Config offset of the first capability with this id (and virtio cfg_type, if vendor). */
static unsigned find_cap(struct t *t, uint8_t id, uint8_t type)
{
    unsigned pos = cfg_r(t, PCI_CAPABILITY_LIST, 1);
    for (int n = 0; pos && n < 48; n++) {
        if (cfg_r(t, pos, 1) == id &&
            (id != PCI_CAP_ID_VNDR || cfg_r(t, pos + VIRTIO_PCI_CAP_CFG_TYPE, 1) == type))
            return pos;
        pos = cfg_r(t, pos + 1, 1);
    }
    return 0;
}

/* Reset, ACKNOWLEDGE, DRIVER, accept features, FEATURES_OK; returns the status read back. */
static uint8_t negotiate(struct t *t, uint64_t features)
{
    cw(t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    cw(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    cw(t, VIRTIO_PCI_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
    for (unsigned sel = 0; sel < 2; sel++) {
        cw(t, VIRTIO_PCI_COMMON_GFSELECT, sel, 4);
        cw(t, VIRTIO_PCI_COMMON_GF, (uint32_t)(features >> (32 * sel)), 4);
    }
    cw(t, VIRTIO_PCI_COMMON_STATUS, 0x0b, 1);
    return (uint8_t)cr(t, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* Queue q: 16 entries with rings in RAM, on vector (NO_VECTOR for INTx), enabled. */
static void setup_queue(struct t *t, unsigned q, uint16_t vector)
{
    uint64_t base = 0x100000 + q * 0x10000;
    cw(t, VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cw(t, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
    cw(t, VIRTIO_PCI_COMMON_Q_DESC, base, 4); /* the lo/hi halves, as Linux writes them */
    cw(t, VIRTIO_PCI_COMMON_Q_DESC + 4, 0, 4);
    cw(t, VIRTIO_PCI_COMMON_Q_DRIVER, base + 0x1000, 8);
    cw(t, VIRTIO_PCI_COMMON_Q_DEVICE, base + 0x2000, 4);
    cw(t, VIRTIO_PCI_COMMON_Q_DEVICE + 4, 0, 4);
    cw(t, VIRTIO_PCI_COMMON_Q_MSIX, vector, 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_MSIX, 2), vector);
    cw(t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
}

/* Everything up to DRIVER_OK, both queues on the given vectors. */
static void bring_up(struct t *t, uint16_t v0, uint16_t v1)
{
    unsigned before = t->dev.activates;
    ck_assert_uint_eq(negotiate(t, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX), 0x0b);
    setup_queue(t, 0, v0);
    setup_queue(t, 1, v1);
    cw(t, VIRTIO_PCI_COMMON_STATUS, 0x0f, 1);
    spin(t);
    ck_assert_uint_eq(t->dev.activates, before + 1);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
}

/* ---- Tests. */

START_TEST(test_identity)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(t.slot, 1);
    ck_assert_uint_eq(cfg_r(&t, PCI_VENDOR_ID, 4), 0x10421af4);
    ck_assert_uint_eq(cfg_r(&t, PCI_REVISION_ID, 4), 0x01800001);
    ck_assert_uint_eq(cfg_r(&t, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00021af4);
    ck_assert_uint_eq(cfg_r(&t, PCI_INTERRUPT_LINE, 2), 0x0110); /* INTA#, GSI 16 */
    ck_assert_uint_eq(cfg_r(&t, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
    /* BAR 0: 64-bit, 16 KiB; BAR 2: 32-bit, 4 KiB. */
    ck_assert_uint_eq(cfg_r(&t, PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_64);
    cfg_w(&t, PCI_BAR0 + 8, 0xffffffff, 4);
    ck_assert_uint_eq(cfg_r(&t, PCI_BAR0 + 8, 4), 0xfffff000);
    cfg_w(&t, PCI_BAR0 + 8, (uint32_t)t.bar2, 4);
    teardown(&t);
}
END_TEST

START_TEST(test_capabilities)
{
    struct t t;
    setup(&t);
    const struct {
        uint8_t type;
        uint32_t off, len;
        uint8_t cap_len;
    } want[] = {
        {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN, 16},
        {VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, 2, 20},
        {VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 16},
        {VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, 8, 16},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(want); i++) {
        unsigned c = find_cap(&t, PCI_CAP_ID_VNDR, want[i].type);
        ck_assert_uint_ne(c, 0);
        ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_LEN, 1), want[i].cap_len);
        ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_BAR, 1), VIRTIO_PCI_CAPS_BAR);
        ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_OFFSET, 4), want[i].off);
        ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_LENGTH, 4), want[i].len);
        if (want[i].type == VIRTIO_PCI_CAP_NOTIFY_CFG)
            ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_NOTIFY_MULT, 4), 0);
    }
    ck_assert_uint_ne(find_cap(&t, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG), 0);
    unsigned m = find_cap(&t, PCI_CAP_ID_MSIX, 0);
    ck_assert_uint_ne(m, 0);
    ck_assert_uint_eq(cfg_r(&t, m + 2, 2), 2); /* 3 vectors: 2 queues + config */
    ck_assert_uint_eq(cfg_r(&t, m + 4, 4), VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_MSIX_BAR);
    ck_assert_uint_eq(cfg_r(&t, m + 8, 4), VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
    /* The capability fields themselves are read-only. */
    unsigned c = find_cap(&t, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, 0x1234, 4);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_OFFSET, 4), VIRTIO_PCI_COMMON_OFF);
    teardown(&t);
}
END_TEST

START_TEST(test_ioeventfds_follow_bar)
{
    struct t t;
    setup(&t);
    uint64_t notify = t.bar0 + VIRTIO_PCI_NOTIFY_OFF;
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, notify), 2);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_uint_eq(t.kvm.ioev[i].len, 2);
        ck_assert_uint_eq(t.kvm.ioev[i].datamatch, i);
        ck_assert_uint_eq(t.kvm.ioev[i].flags, KVM_IOEVENTFD_FLAG_DATAMATCH);
    }
    /* The guest moves BAR 0: deassigned at the old address, assigned at the new one. */
    uint64_t to = PCI_MMIO_WINDOW_BASE + 0x1000000;
    cfg_w(&t, PCI_BAR0, (uint32_t)to, 4);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, notify), 0);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, to + VIRTIO_PCI_NOTIFY_OFF), 2);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_NUMQ, 2), 0xffffffff & 0xffff); /* old: gone */
    t.bar0 = to;
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    /* Memory decoding off: no doorbells at all. */
    cfg_w(&t, PCI_COMMAND, 0, 2);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    cfg_w(&t, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 2);
    teardown(&t);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0); /* destroy took them down */
}
END_TEST

START_TEST(test_negotiation_end_to_end)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    cw(&t, VIRTIO_PCI_COMMON_DFSELECT, 0, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_DF, 4), (uint32_t)(FEAT_X | VIRTIO_F_EVENT_IDX));
    cw(&t, VIRTIO_PCI_COMMON_DFSELECT, 1, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_DF, 4), 1); /* VERSION_1 */
    cw(&t, VIRTIO_PCI_COMMON_DFSELECT, 7, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_DF, 4), 0);
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
    ck_assert(t.dev.vd.active);
    ck_assert(t.dev.vd.queues[1].vq.ready);
    ck_assert(t.dev.vd.queues[1].vq.event_idx);
    ck_assert_uint_eq(t.dev.vd.queues[1].vq.ring_size, 16);
    ck_assert_uint_eq(t.dev.vd.queues[1].vq.avail_gpa, 0x111000);
    cw(&t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)VIRTIO_F_EVENT_IDX);
    /* A kick through the ioeventfd KVM would signal for "1". */
    vfx_poke(vfx_ioevent_fd(&t.kvm, 1));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[1], 1);
    /* A kick that exits to kiln (no ioeventfd caught it) takes the same path. */
    mmio_w(&t, t.bar0 + VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 1);
    /* Device configuration goes to the device. */
    ck_assert_uint_eq(mmio_r(&t, t.bar0 + VIRTIO_PCI_DEVICE_OFF, 8), 0x0807060504030201ULL);
    ck_assert_uint_eq(mmio_r(&t, t.bar0 + VIRTIO_PCI_DEVICE_OFF + 6, 2), 0x0807);
    mmio_w(&t, t.bar0 + VIRTIO_PCI_DEVICE_OFF + 3, 0xaa, 1);
    ck_assert_uint_eq(t.dev.config[3], 0xaa);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_features_refused)
{
    struct t t;
    setup(&t);
    /* Not offered. */
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1 | (1ULL << 40)), 0x03);
    /* Without VERSION_1 (a legacy driver): kiln only speaks 1.x. */
    ck_assert_uint_eq(negotiate(&t, FEAT_X), 0x03);
    /* Accepted, then frozen: later driver_feature writes change nothing. */
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1 | FEAT_X), 0x0b);
    cw(&t, VIRTIO_PCI_COMMON_GFSELECT, 0, 4);
    cw(&t, VIRTIO_PCI_COMMON_GF, 0, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)FEAT_X);
    ck_assert(virtio_has_feature(&t.dev.vd, FEAT_X));
    /* A driver_feature_select beyond the two words takes nothing. */
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    cw(&t, VIRTIO_PCI_COMMON_GFSELECT, 2, 4);
    cw(&t, VIRTIO_PCI_COMMON_GF, 0xffffffff, 4);
    ck_assert_uint_eq(t.dev.vd.driver_features, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_queue_config_frozen)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1), 0x0b);
    setup_queue(&t, 0, VIRTIO_NO_VECTOR);
    /* Enabled: its configuration is fixed. */
    cw(&t, VIRTIO_PCI_COMMON_Q_SIZE, 32, 2);
    cw(&t, VIRTIO_PCI_COMMON_Q_DESC, 0x500000, 8);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 16);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_DESC, 8), 0x100000);
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 0x0f, 1);
    spin(&t);
    /* After DRIVER_OK even a queue the driver left alone is fixed. */
    cw(&t, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    cw(&t, VIRTIO_PCI_COMMON_Q_SIZE, 32, 2);
    cw(&t, VIRTIO_PCI_COMMON_Q_MSIX, 1, 2);
    cw(&t, VIRTIO_PCI_COMMON_Q_DRIVER, 0x500000, 8);
    cw(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_DRIVER, 8), 0);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    /* Kicks for the queue that was never enabled are dropped. */
    mmio_w(&t, t.bar0 + VIRTIO_PCI_NOTIFY_OFF, 1, 2);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[1], 0);
    teardown(&t);
}
END_TEST

/* A round of hostile accesses; nothing may crash, change state or reach the device. */
static void hostile_round(struct t *t)
{
    cw(t, VIRTIO_PCI_COMMON_Q_SELECT, 7, 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cw(t, VIRTIO_PCI_COMMON_Q_SIZE, 16, 2);
    cw(t, VIRTIO_PCI_COMMON_Q_ENABLE, 1, 2);
    cw(t, VIRTIO_PCI_COMMON_Q_SELECT, 0, 2);
    const uint64_t sizes[] = {0, 3, 100, 512, 0xffff};
    for (unsigned i = 0; i < ARRAY_SIZE(sizes); i++)
        cw(t, VIRTIO_PCI_COMMON_Q_SIZE, sizes[i], 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    cw(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cw(t, VIRTIO_PCI_COMMON_Q_MSIX, 3, 2); /* 3 vectors: 0..2 */
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_NO_VECTOR);
    cw(t, VIRTIO_PCI_COMMON_MSIX, 0x8000, 2);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_NO_VECTOR);
    /* Unnatural sizes and offsets in the common structure. */
    ck_assert_uint_eq(cr(t, 0x01, 2), 0);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_NUMQ, 4), 0);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_DF, 8), 0);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_Q_DESC + 2, 4), 0);
    cw(t, VIRTIO_PCI_COMMON_STATUS, 0x0f, 2);
    cw(t, VIRTIO_PCI_COMMON_NUMQ, 9, 2);
    cw(t, VIRTIO_PCI_COMMON_CFGGENERATION, 9, 1);
    ck_assert_uint_eq(cr(t, VIRTIO_PCI_COMMON_NUMQ, 2), 2);
    /* Gaps, the ISR's rules, device config bounds, the doorbell's rules. */
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_COMMON_LEN, 4), 0);
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_ISR_OFF + 1, 1), 0);
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_ISR_OFF, 4), 0);
    mmio_w(t, t->bar0 + VIRTIO_PCI_ISR_OFF, 0xff, 1);
    unsigned reads = t->dev.config_reads, writes = t->dev.config_writes;
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_DEVICE_OFF + 6, 4), 0);
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_DEVICE_OFF, 3), 0);
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_DEVICE_OFF + 0xffc, 4), 0);
    mmio_w(t, t->bar0 + VIRTIO_PCI_DEVICE_OFF + 8, 1, 1);
    ck_assert_uint_eq(t->dev.config_reads, reads);
    ck_assert_uint_eq(t->dev.config_writes, writes);
    mmio_w(t, t->bar0 + VIRTIO_PCI_NOTIFY_OFF, 9, 2);
    mmio_w(t, t->bar0 + VIRTIO_PCI_NOTIFY_OFF, 0, 4);
    mmio_w(t, t->bar0 + VIRTIO_PCI_NOTIFY_OFF + 1, 0, 1);
    ck_assert_uint_eq(mmio_r(t, t->bar0 + VIRTIO_PCI_CAPS_BAR_SIZE - 8, 8), 0);
    /* MSI-X BAR: between table and PBA, odd sizes. */
    ck_assert_uint_eq(mmio_r(t, t->bar2 + 3 * 16, 4), 0xffffffff);
    ck_assert_uint_eq(mmio_r(t, t->bar2 + 2, 2), 0xffff);
    ck_assert_uint_eq(mmio_r(t, t->bar2 + VIRTIO_PCI_MSIX_PBA_OFF + 8, 8), ~0ULL);
}

START_TEST(test_hostile_driver)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1), 0x0b);
    hostile_round(&t);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0] + t.dev.notifies[1], 0);
    unsigned lines = log_lines;
    ck_assert_uint_gt(lines, 0);
    hostile_round(&t);
    spin(&t);
    ck_assert_uint_eq(log_lines, lines); /* each kind of abuse logged once */
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0b);
    teardown(&t);
}
END_TEST

START_TEST(test_kicks_before_driver_ok)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(negotiate(&t, VIRTIO_F_VERSION_1), 0x0b);
    setup_queue(&t, 0, VIRTIO_NO_VECTOR);
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 0);
    /*
     * A kick and DRIVER_OK both waiting for the loop, the kick's eventfd ready first (epoll
     * reports in that order): the loop sees the kick before the async carrying DRIVER_OK and
     * must activate the device first rather than drop the kick.
     */
    vfx_poke(vfx_ioevent_fd(&t.kvm, 0));
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 0x0f, 1);
    spin(&t);
    ck_assert_uint_eq(t.dev.activates, 1);
    ck_assert_uint_eq(t.dev.notifies[0], 1);
    ck_assert_str_eq(t.dev.order, "an");
    teardown(&t);
}
END_TEST

/* Enable MSI-X in the capability and program vector v of the table through BAR 2. */
static void msix_on(struct t *t)
{
    unsigned m = find_cap(t, PCI_CAP_ID_MSIX, 0);
    cfg_w(t, m + 2, MSIX_CTRL_ENABLE, 2);
}

static void program_vector(struct t *t, unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    mmio_w(t, t->bar2 + v * 16, addr, 8);
    mmio_w(t, t->bar2 + v * 16 + 8, data, 4);
    mmio_w(t, t->bar2 + v * 16 + 12, masked, 4);
}

START_TEST(test_msix_delivery)
{
    struct t t;
    setup(&t);
    msix_on(&t);
    program_vector(&t, 1, 0xfee00000, 0x41, false);
    bring_up(&t, 1, VIRTIO_NO_VECTOR);
    cw(&t, VIRTIO_PCI_COMMON_MSIX, 0, 2);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    ck_assert_uint_eq(t.kvm.routing_calls, 0); /* nothing fired yet */
    t.dev.vd.transport->signal_queue(&t.dev.vd, 0);
    /* The whole table went to KVM: the 40 IRQCHIP defaults plus the new MSI route. */
    ck_assert_uint_eq(t.kvm.routing_calls, 1);
    ck_assert_uint_eq(t.kvm.nr, 41);
    ck_assert_uint_eq(t.kvm.table[0].type, KVM_IRQ_ROUTING_IRQCHIP);
    const struct kvm_irq_routing_entry *e = &t.kvm.table[40];
    ck_assert_uint_eq(e->type, KVM_IRQ_ROUTING_MSI);
    ck_assert_uint_eq(e->gsi, 24);
    ck_assert_uint_eq(e->u.msi.address_lo, 0xfee00000);
    ck_assert_uint_eq(e->u.msi.data, 0x41);
    int i = irqfd_for_gsi(&t.kvm, 24);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(t.kvm.irqfd[i].flags, 0);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[i].fd), 1);
    /* Same vector again: no routing change. */
    t.dev.vd.transport->signal_queue(&t.dev.vd, 0);
    ck_assert_uint_eq(t.kvm.routing_calls, 1);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[i].fd), 1);
    /* The guest re-targets the vector (masked while it rewrites it, as Linux does). */
    program_vector(&t, 1, 0xfee01000, 0x42, true);
    mmio_w(&t, t.bar2 + 16 + 12, 0, 4);
    t.dev.vd.transport->signal_queue(&t.dev.vd, 0);
    ck_assert_uint_eq(t.kvm.routing_calls, 2);
    ck_assert_uint_eq(t.kvm.nr, 41);
    ck_assert_uint_eq(t.kvm.table[40].u.msi.data, 0x42);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[i].fd), 1);
    /* Queue 1 has no vector: with MSI-X on, nobody is interrupted (INTx neither). */
    t.dev.vd.transport->signal_queue(&t.dev.vd, 1);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[irqfd_for_gsi(&t.kvm, 16)].fd), 0);
    ck_assert_uint_eq(t.kvm.routing_calls, 2);
    teardown(&t);
}
END_TEST

START_TEST(test_msix_masked_pending)
{
    struct t t;
    setup(&t);
    msix_on(&t);
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    cw(&t, VIRTIO_PCI_COMMON_MSIX, 2, 2);
    /* Vector 2 is still masked (reset state): a config change stays pending. */
    virtio_config_changed(&t.dev.vd);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    ck_assert_uint_eq(mmio_r(&t, t.bar2 + VIRTIO_PCI_MSIX_PBA_OFF, 8), 1u << 2);
    ck_assert_uint_eq(t.kvm.routing_calls, 0);
    program_vector(&t, 2, 0xfee00000, 0x51, false);
    ck_assert_uint_eq(mmio_r(&t, t.bar2 + VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);
    ck_assert_uint_eq(t.kvm.routing_calls, 1);
    ck_assert_uint_eq(t.kvm.table[40].u.msi.data, 0x51);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[irqfd_for_gsi(&t.kvm, 24)].fd), 1);
    /* Function mask through config space holds it back the same way. */
    unsigned m = find_cap(&t, PCI_CAP_ID_MSIX, 0);
    cfg_w(&t, m + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL, 2);
    virtio_config_changed(&t.dev.vd);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[irqfd_for_gsi(&t.kvm, 24)].fd), 0);
    cfg_w(&t, m + 2, MSIX_CTRL_ENABLE, 2);
    ck_assert_uint_eq(vfx_fired(t.kvm.irqfd[irqfd_for_gsi(&t.kvm, 24)].fd), 1);
    teardown(&t);
}
END_TEST

START_TEST(test_intx)
{
    struct t t;
    setup(&t);
    int i = irqfd_for_gsi(&t.kvm, 16);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(t.kvm.irqfd[i].flags, KVM_IRQFD_FLAG_RESAMPLE);
    int line = t.kvm.irqfd[i].fd, resample = t.kvm.irqfd[i].resample_fd;
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    vfx_queue_irq(&t.dev.vd, 0);
    ck_assert_uint_eq(vfx_fired(line), 1);
    /* While the line is high (no EOI yet), more events do not write the irqfd again. */
    vfx_queue_irq(&t.dev.vd, 1);
    ck_assert_uint_eq(vfx_fired(line), 0);
    /* The guest's EOI while ISR is still set: asserted again. */
    vfx_poke(resample);
    spin(&t);
    ck_assert_uint_eq(vfx_fired(line), 1);
    /* Reading ISR acknowledges; the next EOI leaves the line low. */
    ck_assert_uint_eq(mmio_r(&t, t.bar0 + VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
    ck_assert_uint_eq(mmio_r(&t, t.bar0 + VIRTIO_PCI_ISR_OFF, 1), 0);
    vfx_poke(resample);
    spin(&t);
    ck_assert_uint_eq(vfx_fired(line), 0);
    /* A resample with ISR clear: the line is low again, the next event raises it. */
    vfx_queue_irq(&t.dev.vd, 0);
    ck_assert_uint_eq(vfx_fired(line), 1);
    ck_assert_uint_eq(mmio_r(&t, t.bar0 + VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
    vfx_poke(resample);
    spin(&t);
    /* INTx disabled in the command register: silent until re-enabled. */
    cfg_w(&t, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE, 2);
    vfx_queue_irq(&t.dev.vd, 1);
    ck_assert_uint_eq(vfx_fired(line), 0);
    cfg_w(&t, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    ck_assert_uint_eq(vfx_fired(line), 1);
    /* MSI-X on: INTx is no longer used. */
    msix_on(&t);
    vfx_queue_irq(&t.dev.vd, 0);
    ck_assert_uint_eq(vfx_fired(line), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_pci_cfg_window)
{
    struct t t;
    setup(&t);
    unsigned c = find_cap(&t, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
    ck_assert_uint_ne(c, 0);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_LEN, 1), 20);
    /* Point the window at device_status, write ACKNOWLEDGE through it, read it back. */
    cfg_w(&t, c + VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_CAPS_BAR, 1);
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_STATUS, 4);
    cfg_w(&t, c + VIRTIO_PCI_CAP_LENGTH, 1, 4);
    cfg_w(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, VIRTIO_STATUS_ACKNOWLEDGE, 1);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE);
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 3, 1);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 1), 3);
    /* num_queues as a word. */
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_COMMON_NUMQ, 4);
    cfg_w(&t, c + VIRTIO_PCI_CAP_LENGTH, 2, 4);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 2), 2);
    /* Bad windows: odd length, misaligned, beyond the BAR, a BAR that does not exist. */
    cfg_w(&t, c + VIRTIO_PCI_CAP_LENGTH, 3, 4);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4), 0);
    cfg_w(&t, c + VIRTIO_PCI_CAP_LENGTH, 4, 4);
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, 2, 4);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4), 0);
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_CAPS_BAR_SIZE, 4);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4), 0);
    cfg_w(&t, c + VIRTIO_PCI_CAP_OFFSET, 0, 4);
    cfg_w(&t, c + VIRTIO_PCI_CAP_BAR, 1, 1);
    ck_assert_uint_eq(cfg_r(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 4), 0);
    cfg_w(&t, c + VIRTIO_PCI_CAP_PCI_CFG_DATA, 0, 4);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 3);
    teardown(&t);
}
END_TEST

START_TEST(test_reset_after_driver_ok)
{
    struct t t;
    setup(&t);
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    cw(&t, VIRTIO_PCI_COMMON_Q_SELECT, 1, 2);
    t.dev.reset_ret = 1; /* requests still in flight */
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f); /* not done yet */
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    spin(&t);
    ck_assert_uint_eq(t.dev.resets, 1);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0x0f);
    /* Writes while draining are ignored; kicks are dropped. */
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 1, 1);
    cw(&t, VIRTIO_PCI_COMMON_Q_SIZE, 32, 2);
    mmio_w(&t, t.bar0 + VIRTIO_PCI_NOTIFY_OFF, 0, 2);
    spin(&t);
    ck_assert_uint_eq(t.dev.notifies[0], 0);
    virtio_reset_done(&t.dev.vd);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_SIZE, 2), 256);
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    /* And it comes up again. */
    t.dev.reset_ret = 0;
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    teardown(&t);
}
END_TEST

START_TEST(test_no_ioeventfd)
{
    struct t t;
    setup_with(&t, -ENOSYS);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    ck_assert_uint_eq(log_lines, 1); /* said once, not per queue */
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    mmio_w(&t, t.bar0 + VIRTIO_PCI_NOTIFY_OFF, 1, 2);
    mmio_w(&t, t.bar0 + VIRTIO_PCI_NOTIFY_OFF, 1, 2);
    spin(&t);
    ck_assert_uint_ge(t.dev.notifies[1], 1);
    teardown(&t);
}
END_TEST

START_TEST(test_create_errors)
{
    struct t t;
    base_setup(&t, 0);
    t.kvm.fail_irqfd = -EINVAL;
    ck_assert_int_eq(create(&t), -EINVAL);
    ck_assert_ptr_null(t.vp);
    ck_assert_ptr_null(t.dev.vd.transport);
    ck_assert_uint_eq(vfx_active_ioevents(&t.kvm, 0), 0);
    /* Its slot is free again. */
    uint8_t d[4];
    uint32_t a = PCI_CONF1_ENABLE | 1u << 11;
    memcpy(d, &a, 4);
    bus_access(&t.pio, PCI_CONF1_ADDR_PORT, d, 4, true);
    bus_access(&t.pio, PCI_CONF1_DATA_PORT, d, 4, false);
    ck_assert_uint_eq(d[0] & d[1] & d[2] & d[3], 0xff);
    virtio_device_destroy(&t.dev.vd);
    struct virtio_device_ops big = fake_ops;
    big.config_len = VIRTIO_PCI_DEVICE_MAX + 1;
    virtio_device_init(&t.dev.vd, &big, &t.dev, 0, 2, 256, &t.gm, NULL);
    ck_assert_int_eq(create(&t), -EINVAL);
    virtio_device_destroy(&t.dev.vd);
    big.config_len = 0; /* dev.read but no config space: refused, not a guest BUG() */
    virtio_device_init(&t.dev.vd, &big, &t.dev, 0, 2, 256, &t.gm, NULL);
    ck_assert_int_eq(create(&t), -EINVAL);
    virtio_device_destroy(&t.dev.vd);
    virtio_device_init(&t.dev.vd, &fake_ops, &t.dev, 0, 0, 256, &t.gm, NULL);
    ck_assert_int_eq(create(&t), -EINVAL);
    base_teardown(&t);
}
END_TEST

/* ---- Several vCPUs of a hostile guest at once, while the loop runs. */

#define FUZZ_THREADS 4
#define FUZZ_OPS 20000

struct fuzzer {
    struct t *t;
    uint64_t seed;
    atomic_int *running;
    pthread_t thread;
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random access: BAR 0, BAR 2 (as first placed) or config space, any size. */
static void fuzz_one(struct t *t, uint64_t *seed)
{
    uint64_t r = next_rand(seed), v = next_rand(seed);
    static const uint32_t lens[] = {1, 2, 4, 8, 3};
    uint32_t len = lens[r % ARRAY_SIZE(lens)];
    bool write = (r >> 8) & 1;
    uint8_t d[8];
    memcpy(d, &v, sizeof(d));
    unsigned where = (unsigned)(r >> 16) % 10;
    if (where < 5) {
        uint64_t off = (r >> 24) % (VIRTIO_PCI_CAPS_BAR_SIZE + 16);
        if ((r >> 40) % 2) /* mostly the live registers */
            off = (r >> 24) % (VIRTIO_PCI_COMMON_LEN + 2);
        bus_access(&t->mmio, t->bar0 + off, d, len, write);
    } else if (where < 8) {
        bus_access(&t->mmio, t->bar2 + (r >> 24) % (VIRTIO_PCI_MSIX_BAR_SIZE + 16), d, len, write);
    } else {
        uint32_t a = (uint32_t)v | PCI_CONF1_ENABLE;
        if ((r >> 40) % 4) /* mostly our function */
            a = PCI_CONF1_ENABLE | t->slot << 11 | (uint32_t)((r >> 24) & 0xfc);
        uint8_t ad[4];
        memcpy(ad, &a, 4);
        bus_access(&t->pio, PCI_CONF1_ADDR_PORT, ad, 4, true);
        bus_access(&t->pio, PCI_CONF1_DATA_PORT + (r >> 32) % 4, d, len > 4 ? 4 : len, write);
    }
}

static void *fuzz_thread(void *arg)
{
    struct fuzzer *f = arg;
    for (int i = 0; i < FUZZ_OPS; i++)
        fuzz_one(f->t, &f->seed);
    atomic_fetch_sub(f->running, 1);
    return NULL;
}

START_TEST(test_concurrent_fuzz)
{
    struct t t;
    setup(&t);
    /* Give the fuzzers a live device to break: MSI-X on, queues up. */
    msix_on(&t);
    program_vector(&t, 0, 0xfee00000, 0x30, false);
    bring_up(&t, 0, 1);
    atomic_int running = FUZZ_THREADS;
    struct fuzzer f[FUZZ_THREADS];
    for (int i = 0; i < FUZZ_THREADS; i++) {
        f[i] = (struct fuzzer){&t, 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1), &running, 0};
        ck_assert_int_eq(pthread_create(&f[i].thread, NULL, fuzz_thread, &f[i]), 0);
    }
    while (atomic_load(&running) > 0) {
        uv_run(&t.loop, UV_RUN_NOWAIT);
        t.dev.vd.transport->signal_queue(&t.dev.vd, 0);
        virtio_config_changed(&t.dev.vd);
    }
    for (int i = 0; i < FUZZ_THREADS; i++)
        pthread_join(f[i].thread, NULL);
    spin(&t);
    /* Whatever state the guest left: a driver can still reset and start the device. */
    cfg_w(&t, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
    cfg_w(&t, PCI_BAR0, (uint32_t)t.bar0, 4);
    cfg_w(&t, PCI_BAR0 + 4, (uint32_t)(t.bar0 >> 32), 4);
    cw(&t, VIRTIO_PCI_COMMON_STATUS, 0, 1);
    spin(&t);
    if (t.dev.vd.reset_pending)
        virtio_reset_done(&t.dev.vd); /* a fake reset that reported requests in flight */
    ck_assert_uint_eq(cr(&t, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    bring_up(&t, VIRTIO_NO_VECTOR, VIRTIO_NO_VECTOR);
    teardown(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_pci");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_identity);
    tcase_add_test(tc, test_capabilities);
    tcase_add_test(tc, test_ioeventfds_follow_bar);
    tcase_add_test(tc, test_negotiation_end_to_end);
    tcase_add_test(tc, test_features_refused);
    tcase_add_test(tc, test_queue_config_frozen);
    tcase_add_test(tc, test_hostile_driver);
    tcase_add_test(tc, test_kicks_before_driver_ok);
    tcase_add_test(tc, test_msix_delivery);
    tcase_add_test(tc, test_msix_masked_pending);
    tcase_add_test(tc, test_intx);
    tcase_add_test(tc, test_pci_cfg_window);
    tcase_add_test(tc, test_reset_after_driver_ok);
    tcase_add_test(tc, test_no_ioeventfd);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_concurrent_fuzz);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
