/* fuzz_snapshot.c: each device's restore() fed a crafted saved state, as a snapshot file gives. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/acpi_pm.h"
#include "devices/fw_cfg.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio_9p.h"
#include "devices/virtio_console.h"
#include "devices/virtio_vsock.h"
#include "fs/p9.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "pci/pci.h"
#include "platform/irq_routing.h"
#include "platform/layout.h"
#include "state.h"
#include "virtio/virtio_attach.h"
#include "virtio/virtio_mmio.h"
#include "virtio/virtio_pci.h"
#include "virtio_fixture.h"

/*
 * A crafted DIR/state reaches each device's restore() with a part of any content (the CRC is
 * no authentication). The harness builds one device as the VM builder does (virtio devices
 * attached to their transport with virtio_attach, over the fake KVM of virtio_fixture.h), has it
 * restore the input's state through state_reader and checks state_done as vm_snapshot.c does.
 *
 * Input:
 *   u8  device kind (mod 13): 0 PCI host bridge, 1 serial (COM1), 2 RTC, 3 fw_cfg, 4 i8042,
 *       5 ACPI PM (full hardware), 6 the 9P server alone (p9_server_restore), 7 the unit tests'
 *       fake virtio device, 8 virtio-net, 9 virtio-blk, 10 virtio-console, 11 virtio-vsock,
 *       12 virtio-9p (kinds 7-12: the transport's restore, then the virtio core's, then the
 *       device's own)
 *   u8  flags: bit 7 virtio-pci (else virtio-mmio); bits 0-5 fzd_create's flags (virtio-net and
 *       -blk); bits 0-1 the ports of virtio-console (mod 3, plus 1); bit 0 a read-only share (9P)
 *   u8  number of accesses (mod 17) made after a successful restore, each 8 bytes: u8 region
 *       (bit 7: a write; the rest mod the device's ranges, or a virtio-pci function's BARs),
 *       u8 width (1 << (mod 4), at most the region's size), u16 offset (mod what fits), u32
 *       value
 *   ... the rest: the device's saved state
 * The checks: restore answers 0 or -EINVAL; a state it takes (state_done too) saves again, and
 * that saved state restores into a second fresh device whose own save is byte-identical; after a
 * refused state the device still takes its own fresh state back and saves it unchanged. In
 * between, the restored device runs as a restored VM's does: it starts, takes the accesses, runs
 * its loop, saves (any answer), stops and is destroyed with nothing left on its loop. Sanitizers
 * catch the rest, leaks included.
 *
 * KILN_FUZZ_SNAPSHOT_SEEDS=DIR: write two seeds per kind (and transport) to DIR, then exit
 * (tests/fuzz/corpus/snapshot): the state of a device brought up by a virtio driver, a 9P client
 * or register writes (with two accesses after the restore), and that of a fresh one.
 */

#define RAM_SIZE (256u << 10)
#define QUEUE_GPA 0x10000u /* rings of queue q: desc + 0x1000 * q, avail + 0x400, used + 0x800 */
#define MAX_PORTS 3

enum kind {
    K_PCI_HOST,
    K_SERIAL,
    K_RTC,
    K_FW_CFG,
    K_I8042,
    K_ACPI_PM,
    K_P9_SERVER,
    K_VIRTIO_FAKE,
    K_VIRTIO_NET,
    K_VIRTIO_BLK,
    K_VIRTIO_CONSOLE,
    K_VIRTIO_VSOCK,
    K_VIRTIO_9P,
    NKINDS
};

static const char *const kind_names[NKINDS] = {"pci_host", "serial",    "rtc",  "fw_cfg", "i8042",
                                               "acpi_pm",  "p9_server", "fake", "net",    "blk",
                                               "console",  "vsock",     "9p"};

/* One device and what it sits on (its own loop, fake KVM and buses, as in a VM of its own). */
struct inst {
    enum kind kind;
    uint8_t flags;
    struct device *dev;    /* whose save and restore run (NULL: the 9P server alone) */
    struct p9_server *srv; /* K_P9_SERVER */
    struct vfx_kvm kvm;
    struct vm_ioctl vmi;
    struct irq_routing *irqs;
    struct pci_bus *pci; /* K_PCI_HOST, and virtio-pci's bus */
    bool pci_fn;         /* dev is a virtio-pci function: its regions are BARs */
    struct virtio_device *vd;
    struct fzd fzd; /* K_VIRTIO_FAKE, _NET, _BLK */
    struct fw_cfg *fw;
    uv_loop_t loop;
    int host[MAX_PORTS];
    unsigned nhost;
    bool started;
};

static struct fz_ram ram;
static char tmp[64], share[96], vsock_path[96];
static unsigned ends; /* the VM ended by a device (i8042 reset, ACPI sleep): counted only */

static void on_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    (void)ctx;
    (void)reason;
    (void)status;
    (void)error;
    (void)msg;
    ends++;
}

static bool is_virtio(enum kind k)
{
    return k >= K_VIRTIO_FAKE;
}

static int share_fd(void)
{
    int fd = open(share, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FZ_CHECK(fd >= 0);
    return fd;
}

/* The virtio device of kind x->kind, attached to the transport flags bit 7 picks. */
static void make_virtio(struct inst *x)
{
    char err[KILN_ERRMSG_MAX];
    struct virtio_device *vd = NULL;
    switch (x->kind) {
    case K_VIRTIO_FAKE:
    case K_VIRTIO_NET:
    case K_VIRTIO_BLK: {
        static const enum fzd_kind fk[3] = {FZD_FAKE, FZD_NET, FZD_BLK};
        fzd_create(&x->fzd, fk[x->kind - K_VIRTIO_FAKE], x->flags & 0x3f, &x->loop, &ram.gm);
        vd = x->fzd.vd;
        break;
    }
    case K_VIRTIO_CONSOLE: {
        static const char *const names[MAX_PORTS] = {"results", "echo", "org.fuzz.c"};
        struct virtio_console_port_spec specs[MAX_PORTS];
        x->nhost = 1 + (x->flags & 3) % MAX_PORTS;
        for (unsigned i = 0; i < x->nhost; i++) {
            int sv[2];
            FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
            x->host[i] = sv[1];
            specs[i] = (struct virtio_console_port_spec){names[i], sv[0], true};
        }
        struct virtio_console *c;
        FZ_CHECK(virtio_console_create(specs, x->nhost, &x->loop, &ram.gm, fz_log(), &c, err) == 0);
        vd = virtio_console_device(c);
        break;
    }
    case K_VIRTIO_VSOCK: {
        struct virtio_vsock *v;
        FZ_CHECK(virtio_vsock_create(3, vsock_path, -1, NULL, &x->loop, &ram.gm, fz_log(), &v,
                                     err) == 0);
        vd = virtio_vsock_device(v);
        break;
    }
    default: {
        struct virtio_9p *p;
        FZ_CHECK(virtio_9p_create(share_fd(), "fuzz", x->flags & 1, &ram.gm, fz_log(), &p, err) ==
                 0);
        vd = virtio_9p_device(p);
        break;
    }
    }
    x->vd = vd;
    x->vmi = vfx_kvm_init(&x->kvm, 0);
    FZ_CHECK(irq_routing_create(&x->vmi, fz_log(), &x->irqs) == 0);
    struct virtio_env env = {.irqs = x->irqs, .log = fz_log()};
    if (x->flags & 0x80) {
        env.transport = KILN_TRANSPORT_PCI;
        FZ_CHECK(pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, fz_log(), &x->pci) ==
                 0);
        env.pci = x->pci;
    } else {
        env.transport = KILN_TRANSPORT_MMIO;
    }
    FZ_CHECK(virtio_attach(&env, vd, &x->dev) == 0);
    x->pci_fn = x->pci != NULL;
}

/* The PCI function whose device x->dev is (virtio_pci_device returns &function->device). */
static struct pci_device *vp_function(struct inst *x)
{
    return (struct pci_device *)((char *)x->dev - offsetof(struct pci_device, device));
}

static void make(struct inst *x, enum kind kind, uint8_t flags)
{
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->flags = flags;
    FZ_CHECK(uv_loop_init(&x->loop) == 0);
    const struct end_vm end = {on_end, NULL};
    switch (kind) {
    case K_PCI_HOST:
        FZ_CHECK(pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, fz_log(), &x->pci) ==
                 0);
        x->dev = pci_bus_device(x->pci);
        break;
    case K_SERIAL: {
        const struct serial_config cfg = {-1, -1, -1, false, end, fz_log()};
        struct serial *s;
        FZ_CHECK(serial_create(&cfg, &s) == 0);
        x->dev = serial_device(s);
        break;
    }
    case K_RTC: {
        const struct rtc_config cfg = {.ram_below_4g = RAM_SIZE, .cpus = 2};
        FZ_CHECK(rtc_create(&cfg, &x->dev) == 0);
        break;
    }
    case K_FW_CFG: {
        FZ_CHECK(fw_cfg_create(&ram.gm, fz_log(), &x->fw) == 0);
        static const uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        FZ_CHECK(fw_cfg_add_file(x->fw, "etc/a", data, 3) == 0);
        FZ_CHECK(fw_cfg_add_file(x->fw, "bootorder", data, 8) == 0);
        x->dev = fw_cfg_device(x->fw);
        break;
    }
    case K_I8042:
        FZ_CHECK(i8042_create(&end, &x->dev) == 0);
        break;
    case K_ACPI_PM:
        FZ_CHECK(acpi_pm_create(&end, true, &x->dev) == 0);
        break;
    case K_P9_SERVER:
        FZ_CHECK(p9_server_create(share_fd(), flags & 1, &x->srv) == 0);
        break;
    default:
        make_virtio(x);
        break;
    }
}

static void settle(struct inst *x)
{
    vfx_spin(&x->loop, 4);
    while (x->fzd.blk && virtio_blk_busy(x->fzd.blk))
        uv_run(&x->loop, UV_RUN_ONCE);
    vfx_spin(&x->loop, 2);
}

static void start(struct inst *x)
{
    if (x->dev && x->dev->ops->start) {
        FZ_CHECK(x->dev->ops->start(x->dev, &x->loop) == 0);
        x->started = true;
        settle(x);
    }
}

static void destroy(struct inst *x)
{
    if (x->started) {
        x->dev->ops->stop(x->dev);
        x->started = false;
    }
    uv_run(&x->loop, UV_RUN_DEFAULT); /* close callbacks, requests still on the pool */
    if (x->srv)
        p9_server_destroy(x->srv);
    else if (x->kind == K_PCI_HOST)
        pci_bus_destroy(x->pci);
    else
        x->dev->ops->destroy(x->dev); /* a transport frees its device with it */
    if (is_virtio(x->kind)) {
        FZ_CHECK(vfx_active_ioevents(&x->kvm, 0) == 0);
        fzd_destroy(&x->fzd, true);
        if (x->pci)
            pci_bus_destroy(x->pci);
        irq_routing_destroy(x->irqs);
        pthread_mutex_destroy(&x->kvm.lock);
    }
    uv_run(&x->loop, UV_RUN_DEFAULT);
    FZ_CHECK(uv_loop_close(&x->loop) == 0); /* nothing of the device's left on the loop */
    for (unsigned i = 0; i < x->nhost; i++)
        close(x->host[i]);
}

static int save(const struct inst *x, struct device_state *st)
{
    *st = (struct device_state){0};
    int ret = x->srv ? p9_server_save(x->srv, st) : x->dev->ops->save(x->dev, st);
    if (ret == 0 && st->err)
        ret = -st->err;
    return ret;
}

/* Restore x from len bytes at buf as vm_snapshot.c does: the part must be consumed exactly. */
static int restore(struct inst *x, const uint8_t *buf, size_t len)
{
    struct device_state st = state_reader(buf, len);
    int ret = x->srv ? p9_server_restore(x->srv, &st) : x->dev->ops->restore(x->dev, &st);
    return ret < 0 ? ret : state_done(&st);
}

static bool same(const struct device_state *a, const struct device_state *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

/* ---- Guest accesses: the device's ranges, or a virtio-pci function's BARs. */

static unsigned nregions(struct inst *x, uint64_t size[PCI_NUM_BARS], unsigned which[PCI_NUM_BARS])
{
    unsigned n = 0;
    if (x->pci_fn) {
        const struct pci_device *fn = vp_function(x);
        for (unsigned i = 0; i < PCI_NUM_BARS; i++)
            if (fn->bars[i].size) {
                size[n] = fn->bars[i].size;
                which[n++] = i;
            }
    } else if (x->dev) {
        for (unsigned i = 0; i < x->dev->nranges && n < PCI_NUM_BARS; i++) {
            size[n] = x->dev->ranges[i].len;
            which[n++] = i;
        }
    }
    return n;
}

static void guest_access(struct inst *x, uint8_t r, uint8_t w, uint16_t o, uint32_t v)
{
    uint64_t size[PCI_NUM_BARS];
    unsigned which[PCI_NUM_BARS];
    unsigned n = nregions(x, size, which);
    if (n == 0)
        return;
    unsigned i = (r & 0x7f) % n;
    uint32_t len = 1u << (w & 3);
    if (len > size[i])
        len = (uint32_t)size[i];
    uint64_t off = o % (size[i] - len + 1);
    uint8_t data[8] = {0};
    le_put(data, len, v);
    if (r & 0x80)
        x->dev->ops->write(x->dev, which[i], off, data, len);
    else
        x->dev->ops->read(x->dev, which[i], off, data, len);
}

/* ---- Seeds: devices brought up the way a guest (or a 9P client) would, then saved. */

static void w32(struct inst *x, uint64_t off, uint32_t v)
{
    guest_access(x, 0x80, 2, (uint16_t)off, v);
}

static uint32_t r32(struct inst *x, uint64_t off)
{
    uint8_t data[4];
    x->dev->ops->read(x->dev, 0, off, data, 4);
    return (uint32_t)le_get(data, 4);
}

static void wn(struct inst *x, uint64_t off, uint32_t len, uint32_t v)
{
    uint8_t data[4];
    le_put(data, len, v);
    x->dev->ops->write(x->dev, 0, off, data, len);
}

/* A virtio driver's bring-up: every feature offered taken, every queue of 8 entries enabled. */
static void bring_up(struct inst *x)
{
    unsigned nq = x->vd->num_queues;
    if (!x->pci_fn) {
        w32(x, VIRTIO_MMIO_STATUS, 3);
        for (uint32_t sel = 0; sel < 2; sel++) {
            w32(x, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
            uint32_t f = r32(x, VIRTIO_MMIO_DEVICE_FEATURES);
            w32(x, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
            w32(x, VIRTIO_MMIO_DRIVER_FEATURES, f);
        }
        w32(x, VIRTIO_MMIO_STATUS, 0xb);
        for (unsigned q = 0; q < nq; q++) {
            w32(x, VIRTIO_MMIO_QUEUE_SEL, q);
            w32(x, VIRTIO_MMIO_QUEUE_NUM, 8);
            w32(x, VIRTIO_MMIO_QUEUE_DESC_LOW, QUEUE_GPA + 0x1000 * q);
            w32(x, VIRTIO_MMIO_QUEUE_DRIVER_LOW, QUEUE_GPA + 0x1000 * q + 0x400);
            w32(x, VIRTIO_MMIO_QUEUE_DEVICE_LOW, QUEUE_GPA + 0x1000 * q + 0x800);
            w32(x, VIRTIO_MMIO_QUEUE_READY, 1);
        }
        w32(x, VIRTIO_MMIO_STATUS, 0xf);
    } else { /* the common configuration structure at the start of BAR 0 */
        const uint64_t c = VIRTIO_PCI_COMMON_OFF;
        wn(x, c + 0x14, 1, 3);
        for (uint32_t sel = 0; sel < 2; sel++) {
            wn(x, c + 0x00, 4, sel);
            uint32_t f = r32(x, c + 0x04);
            wn(x, c + 0x08, 4, sel);
            wn(x, c + 0x0c, 4, f);
        }
        wn(x, c + 0x14, 1, 0xb);
        for (unsigned q = 0; q < nq; q++) {
            wn(x, c + 0x16, 2, q);
            wn(x, c + 0x18, 2, 8);
            wn(x, c + 0x20, 4, QUEUE_GPA + 0x1000 * q);
            wn(x, c + 0x28, 4, QUEUE_GPA + 0x1000 * q + 0x400);
            wn(x, c + 0x30, 4, QUEUE_GPA + 0x1000 * q + 0x800);
            wn(x, c + 0x1c, 2, 1);
        }
        wn(x, c + 0x14, 1, 0xf);
    }
    settle(x);
}

/* A 9P message: size, type, tag, then the body. */
static void p9_send(struct inst *x, uint8_t type, const void *body, size_t n)
{
    uint8_t req[128], rep[256];
    FZ_CHECK(n + P9_HEADER <= sizeof(req));
    le_put(req, 4, n + P9_HEADER);
    req[4] = type;
    le_put(req + 5, 2, 1);
    memcpy(req + P9_HEADER, body, n);
    FZ_CHECK(p9_handle(x->srv, req, n + P9_HEADER, rep, sizeof(rep)) >= P9_HEADER);
}

/* A 9P client's session: version, attach, a walked and opened file and directory. */
static void p9_session(struct inst *x)
{
    static const uint8_t version[] = {0, 0, 1, 0, 8, 0, '9', 'P', '2', '0', '0', '0', '.', 'L'};
    static const uint8_t attach[] = {0,   0,   0,   0, 0xff, 0xff, 0xff, 0xff, 4, 0, 'r',
                                     'o', 'o', 't', 0, 0,    0,    0,    0,    0, 0, 0};
    static const uint8_t walk_a[] = {0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 5, 0, 'a', '.', 't', 'x', 't'};
    static const uint8_t walk_d[] = {0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 1, 0, 'd'};
    static const uint8_t open_a[] = {1, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t open_d[] = {2, 0, 0, 0, 0, 0, 1, 0}; /* O_DIRECTORY */
    p9_send(x, P9_TVERSION, version, sizeof(version));
    p9_send(x, P9_TATTACH, attach, sizeof(attach));
    p9_send(x, P9_TWALK, walk_a, sizeof(walk_a));
    p9_send(x, P9_TWALK, walk_d, sizeof(walk_d));
    p9_send(x, P9_TLOPEN, open_a, sizeof(open_a));
    p9_send(x, P9_TLOPEN, open_d, sizeof(open_d));
}

/* Guest writes that leave a register device in a state other than power-on's. */
static void poke(struct inst *x)
{
    switch (x->kind) {
    case K_PCI_HOST:
        wn(x, 0, 4, 0x80000810); /* conf1 latch */
        break;
    case K_SERIAL:
        wn(x, 3, 1, 0x83); /* LCR with DLAB */
        wn(x, 0, 1, 0x0c);
        wn(x, 3, 1, 0x03);
        wn(x, 1, 1, 0x05);
        wn(x, 7, 1, 0x5a); /* scratch */
        break;
    case K_RTC:
        wn(x, 0, 1, 0x0b);
        wn(x, 1, 1, 0x06); /* binary, 24 hours */
        wn(x, 0, 1, 0x40);
        wn(x, 1, 1, 0x77); /* a CMOS cell */
        break;
    case K_FW_CFG: {
        wn(x, 0, 2, 0x0019); /* the file directory */
        uint8_t b;
        for (int i = 0; i < 10; i++)
            x->dev->ops->read(x->dev, 0, 1, &b, 1);
        break;
    }
    case K_I8042:
        wn(x, 4, 1, 0x60); /* write the command byte */
        wn(x, 0, 1, 0x45);
        break;
    case K_ACPI_PM:
        guest_access(x, 0x80, 1, 2, 0x0121); /* PM1 enable bits */
        break;
    default:
        break;
    }
}

static void write_seed(const char *dir, const char *name, enum kind k, uint8_t flags,
                       const struct device_state *st, const uint8_t *drive, uint8_t ndrive)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f);
    uint8_t hdr[3] = {(uint8_t)k, flags, ndrive};
    FZ_CHECK(fwrite(hdr, 1, 3, f) == 3);
    FZ_CHECK(fwrite(drive, 1, 8u * ndrive, f) == 8u * ndrive);
    FZ_CHECK(st->len == 0 || fwrite(st->buf, 1, st->len, f) == st->len);
    FZ_CHECK(fclose(f) == 0);
}

static void make_seeds(const char *dir)
{
    /* After the restore: a 4-byte read at 0x70 (virtio-mmio: Status), a 1-byte write of 0 at 0. */
    static const uint8_t drive[16] = {0, 2, 0x70, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0};
    static struct inst x;
    for (unsigned k = 0; k < NKINDS; k++)
        for (unsigned variant = 0; variant < (is_virtio(k) ? 2u : 1u); variant++) {
            uint8_t flags = variant ? 0x80 : 0;
            if (k == K_VIRTIO_CONSOLE)
                flags |= 1; /* two ports */
            if (k == K_VIRTIO_BLK)
                flags |= 1 << 3; /* 8 sectors */
            make(&x, k, flags);
            start(&x);
            if (is_virtio(k))
                bring_up(&x);
            else if (k == K_P9_SERVER)
                p9_session(&x);
            else
                poke(&x);
            struct device_state st;
            FZ_CHECK(save(&x, &st) == 0);
            char name[64];
            snprintf(name, sizeof(name), "%s%s", kind_names[k],
                     !is_virtio(k) ? ""
                     : variant     ? "_pci"
                                   : "_mmio");
            write_seed(dir, name, k, flags, &st, drive, 2);
            state_free(&st);
            destroy(&x);
            /* The same device fresh: the state of a VM snapshotted before its driver ran. */
            make(&x, k, flags);
            FZ_CHECK(save(&x, &st) == 0);
            snprintf(name + strlen(name), sizeof(name) - strlen(name), "_fresh");
            write_seed(dir, name, k, flags, &st, drive, 0);
            state_free(&st);
            destroy(&x);
        }
}

/* ---- The share the 9P kinds serve (never changed: a restore opens, never creates). */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void cleanup(void)
{
    nftw(tmp, remove_one, 8, FTW_PHYS | FTW_DEPTH);
}

static void make_share(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/kiln-fuzz-snapshot-XXXXXX");
    FZ_CHECK(mkdtemp(tmp));
    atexit(cleanup);
    snprintf(share, sizeof(share), "%s/share", tmp);
    snprintf(vsock_path, sizeof(vsock_path), "%s/v.sock", tmp);
    char p[160];
    FZ_CHECK(mkdir(share, 0755) == 0);
    snprintf(p, sizeof(p), "%s/d", share);
    FZ_CHECK(mkdir(p, 0755) == 0);
    const char *files[2] = {"a.txt", "d/b.txt"};
    for (unsigned i = 0; i < 2; i++) {
        snprintf(p, sizeof(p), "%s/%s", share, files[i]);
        FILE *f = fopen(p, "w");
        FZ_CHECK(f);
        fputs("hello", f);
        fclose(f);
    }
    snprintf(p, sizeof(p), "%s/ln", share);
    FZ_CHECK(symlink("a.txt", p) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fzd_init();
    signal(SIGPIPE, SIG_IGN);
    fz_ram_alloc(&ram, RAM_SIZE, 0);
    fz_ram_clear(&ram);
    make_share();
    const char *dir = getenv("KILN_FUZZ_SNAPSHOT_SEEDS");
    if (dir) {
        make_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct inst a, b;
    struct fz f = {data, size};
    enum kind kind = fz_u8(&f) % NKINDS;
    uint8_t flags = fz_u8(&f);
    unsigned ndrive = fz_u8(&f) % 17;
    struct fz drive = fz_sub(&f, 8u * ndrive);
    fz_ram_clear(&ram);
    make(&a, kind, flags);
    struct device_state fresh, s1, s2;
    FZ_CHECK(save(&a, &fresh) == 0);
    int ret = restore(&a, f.p, f.n);
    FZ_CHECK(ret == 0 || ret == -EINVAL);
    if (ret < 0) {
        /* Refused: the device is still one that takes a valid state. */
        FZ_CHECK(restore(&a, fresh.buf, fresh.len) == 0);
        FZ_CHECK(save(&a, &s1) == 0 && same(&s1, &fresh));
        state_free(&s1);
        state_free(&fresh);
        destroy(&a);
        return 0;
    }
    state_free(&fresh);
    /* Taken: it saves. */
    FZ_CHECK(save(&a, &s1) == 0);
    /* Then it runs as a restored VM's device does: started, the guest's accesses, its loop. */
    start(&a);
    while (fz_more(&drive)) {
        uint8_t r = fz_u8(&drive), w = fz_u8(&drive);
        uint16_t o = fz_u16(&drive);
        guest_access(&a, r, w, o, fz_u32(&drive));
    }
    if (is_virtio(kind))
        settle(&a);
    save(&a, &s2); /* -EBUSY, say, with work still in flight: only no crash is asked */
    state_free(&s2);
    /* Gone before the second one is made (a disk image is locked by the device that has it). */
    destroy(&a);
    /* What it saved restores into a fresh device, which saves the same bytes. */
    make(&b, kind, flags);
    FZ_CHECK(restore(&b, s1.buf, s1.len) == 0);
    FZ_CHECK(save(&b, &s2) == 0);
    FZ_CHECK(same(&s1, &s2));
    state_free(&s1);
    state_free(&s2);
    destroy(&b);
    return 0;
}
