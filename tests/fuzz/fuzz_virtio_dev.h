/* fuzz_virtio_dev.h: the virtio device behind a fuzzed transport, and the fake driver's helpers. */
#ifndef KILN_FUZZ_VIRTIO_DEV_H
#define KILN_FUZZ_VIRTIO_DEV_H

/*
 * The transport targets put one of three devices behind the transport: the unit tests' fake
 * device (virtio_fixture.h: two queues, 8 config bytes), the real virtio-net over the fuzz port
 * (fuzz_net_port.h), or the real virtio-blk over an in-memory image (a memfd reached through
 * /proc/self/fd, so nothing is left on disk). The real ones turn the guest's kicks into chain
 * processing; the blk image is also what fuzz_virtio_blk.c uses.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "bus.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "fuzz_common.h"
#include "fuzz_net_port.h"
#include "virtio_fixture.h"

enum fzd_kind { FZD_FAKE, FZD_NET, FZD_BLK, FZD_KINDS };

/*
 * From LLVMFuzzerInitialize, before any loop exists: one thread in libuv's pool, so disk
 * requests run and complete in the order they were made, every time.
 */
static inline void fzd_init(void)
{
    setenv("UV_THREADPOOL_SIZE", "1", 1);
}

struct fzd {
    enum fzd_kind kind;
    struct virtio_device *vd;
    struct vfx_dev fake;
    struct virtio_net *net;
    struct fzp *port;
    struct virtio_blk *blk;
};

/*
 * The disk image: one memfd for the process, emptied and resized for each input (every byte
 * reads as zero again), and the path the device opens it by.
 */
static int fzd_image_fd = -1;

static inline const char *fzd_image(uint64_t size)
{
    static char path[64];
    int fd = fzd_image_fd;
    if (fd < 0) {
        fd = memfd_create("kiln-fuzz-disk", MFD_CLOEXEC);
        if (fd < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        fzd_image_fd = fd;
    }
    if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0)
        abort();
    return path;
}

/* Someone on the host shrinks the image under the running device (or grows it back). */
static inline void fzd_image_resize(uint64_t size)
{
    if (ftruncate(fzd_image_fd, (off_t)size) < 0)
        abort();
}

/*
 * Make the device: flags bit 0 a vnet header on the port, bit 1 all its offloads, bit 2 a
 * read-only disk, bits 3-4 the disk size (1, 8, 64 or 1024 sectors, plus 100 odd bytes with
 * bit 5). Every one of these is a configuration kiln accepts.
 */
static inline void fzd_create(struct fzd *d, enum fzd_kind kind, uint8_t flags, uv_loop_t *loop,
                              const struct guest_mem *gm)
{
    static const struct virtio_device_ops fake_ops = VFX_DEV_OPS;
    char err[KILN_ERRMSG_MAX];
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    if (kind == FZD_FAKE) {
        vfx_dev_init(&d->fake, &fake_ops, (1ULL << 5) | VIRTIO_F_EVENT_IDX, gm, fz_log());
        d->vd = &d->fake.vd;
        return;
    }
    if (kind == FZD_NET) {
        unsigned all = NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN |
                       NET_OFFLOAD_UFO;
        d->port = fzp_create(flags & 1, flags & 2 ? all : 0);
        struct virtio_net_config cfg = {.port = &d->port->port, .mac = {2, 0, 0, 0, 0, 1}};
        int ret = virtio_net_create(&cfg, loop, gm, fz_log(), &d->net, err);
        FZ_CHECK(ret == 0);
        d->vd = virtio_net_device(d->net);
        return;
    }
    static const uint64_t sectors[4] = {1, 8, 64, 1024};
    uint64_t size = sectors[(flags >> 3) & 3] * 512 + (flags & 0x20 ? 100 : 0);
    struct virtio_blk_config cfg = {
        .path = fzd_image(size), .read_only = flags & 4, .serial = "fuzz-disk"};
    int ret = virtio_blk_create(&cfg, loop, gm, fz_log(), &d->blk, err);
    if (ret < 0)
        fprintf(stderr, "fuzz: %s\n", err);
    FZ_CHECK(ret == 0);
    d->vd = virtio_blk_device(d->blk);
}

/*
 * Free the device (its transport stopped, the loop run until it was idle). A transport's destroy
 * hook frees a real device itself (virtio_device_free); the fake one is always the harness's.
 */
static inline void fzd_destroy(struct fzd *d, bool freed_by_transport)
{
    if (d->kind == FZD_FAKE)
        virtio_device_destroy(&d->fake.vd);
    else if (freed_by_transport)
        return;
    else if (d->kind == FZD_NET)
        virtio_net_destroy(d->net);
    else
        virtio_blk_destroy(d->blk);
}

/* The transport's stats hook reaches the device's: what a network port saw adds up. */
static inline void fzd_check_stats(const struct fzd *d, const struct device *transport)
{
    struct kiln_stats st;
    memset(&st, 0, sizeof(st));
    transport->ops->stats(transport, &st);
    if (d->kind != FZD_NET)
        return;
    FZ_CHECK(st.net_tx_frames == d->port->sent);
    FZ_CHECK(st.net_tx_dropped >= d->port->refused);
}

/*
 * Let the loop do what is due: status work, kicks, TX bursts cut by the budget, and for the
 * disk every request on the thread pool until it is done (so the outcome does not depend on
 * how fast the pool is).
 */
static inline void fzd_settle(struct fzd *d, uv_loop_t *loop)
{
    vfx_spin(loop, 4);
    while (d->blk && virtio_blk_busy(d->blk))
        uv_run(loop, UV_RUN_ONCE);
    vfx_spin(loop, 2);
}

/*
 * The network's side of virtio-net: op bits 0-1 pick a frame for the guest (its length and
 * bytes from the input), the back end turning full or refusing frames, or draining.
 */
static inline void fzd_backend(struct fzd *d, struct fz *f)
{
    if (d->kind != FZD_NET)
        return;
    uint8_t op = fz_u8(f);
    switch (op & 3) {
    case 0: {
        static uint8_t frame[NET_HDR_LEN + 2048];
        size_t len = fz_u16(f) % sizeof(frame);
        fz_take(f, frame, len);
        fzp_deliver(d->port, frame, len);
        break;
    }
    case 1:
        d->port->send_ret = -EAGAIN;
        break;
    case 2:
        d->port->send_ret = -EIO;
        break;
    default:
        fzp_drain(d->port);
        break;
    }
}

/*
 * A config space access as a transport makes it: u8 select (bits 0-1 size 1, 2, 4 or 8; bits
 * 2-6 offset, folded into range; bit 7 write), the bytes to write. Under the device lock.
 */
static inline void fzd_config(struct fz *f, struct virtio_device *vd)
{
    uint8_t sel = fz_u8(f);
    uint32_t len = 1u << (sel & 3);
    uint32_t cfg_len = vd->ops->config_len;
    if (len > cfg_len)
        return;
    uint64_t off = (sel >> 2 & 0x1f) % (cfg_len - len + 1);
    uint8_t data[8];
    fz_take(f, data, len);
    pthread_mutex_lock(&vd->lock);
    if (sel & 0x80)
        vd->dev.ops->write(&vd->dev, 0, off, data, len);
    else
        vd->dev.ops->read(&vd->dev, 0, off, data, len);
    pthread_mutex_unlock(&vd->lock);
}

/*
 * A hand-made descriptor on ring b (sel: bit 1 any 64-bit address, else near data_gpa; bit 2 a
 * 32-bit length; bit 3 offered and published): slot, address, length, flags, next.
 */
static inline void fzd_raw_desc(struct fz *f, uint8_t sel, struct vqb *b, uint16_t qsize,
                                uint64_t data_gpa)
{
    uint16_t slot = fz_u16(f) % qsize;
    uint64_t addr = sel & 2 ? fz_u64(f) : data_gpa + fz_u16(f);
    uint32_t len = sel & 4 ? fz_u32(f) : fz_u16(f);
    uint16_t flags = fz_u8(f) & 7, next = fz_u16(f);
    vqb_desc(b, slot, addr, len, flags, next);
    if (sel & 8) {
        vqb_offer(b, slot);
        vqb_publish(b);
    }
}

/* ---- The fake driver's buffers (the device targets): guest RAM handed out, chains offered. */

/*
 * Where a target's driver puts its buffers and indirect tables: buffers one after another from
 * data_gpa (again from data_gpa when one would reach ram_size), tables in table_count slots
 * table_slot bytes apart from table_gpa, taken in turn.
 */
struct fzd_bufs {
    const struct guest_mem *gm;
    uint64_t ram_size, data_gpa, next_gpa;
    uint64_t table_gpa, table_slot;
    unsigned table_count, next_table;
};

/* Fresh for each input: the first buffer at data_gpa, the first table in slot 0. */
static inline void fzd_bufs_init(struct fzd_bufs *a, const struct guest_mem *gm, uint64_t ram_size,
                                 uint64_t data_gpa, uint64_t table_gpa, uint64_t table_slot,
                                 unsigned table_count)
{
    *a = (struct fzd_bufs){gm, ram_size, data_gpa, data_gpa, table_gpa, table_slot, table_count, 0};
}

/* len bytes of guest RAM for a buffer, in turn through the data area. */
static inline uint64_t fzd_alloc(struct fzd_bufs *a, uint32_t len)
{
    if (a->next_gpa + len >= a->ram_size) /* a buffer, even an empty one, starts in RAM */
        a->next_gpa = a->data_gpa;
    uint64_t gpa = a->next_gpa;
    a->next_gpa += len;
    return gpa;
}

#define FZD_MAX_PIECES 8u /* buffers fzd_split makes at the most */

/*
 * Split [0, len) at n - 1 cut points from the input (each a u16, or a u32 with wide_cuts, taken
 * modulo len + 1) into n buffers (some may be empty), n at most FZD_MAX_PIECES.
 */
static inline void fzd_split(struct fzd_bufs *a, struct fz *f, uint32_t len, unsigned n, bool write,
                             bool wide_cuts, struct vqb_seg *segs)
{
    uint32_t cut[FZD_MAX_PIECES + 1] = {0};
    if (n > FZD_MAX_PIECES)
        abort(); /* the target's own mistake, not kiln's */
    for (unsigned i = 1; i < n; i++) {
        uint32_t c = (wide_cuts ? fz_u32(f) : fz_u16(f)) % (len + 1);
        unsigned j = i;
        for (; j > 1 && cut[j - 1] > c; j--)
            cut[j] = cut[j - 1];
        cut[j] = c;
    }
    cut[n] = len;
    for (unsigned i = 0; i < n; i++) {
        uint32_t l = cut[i + 1] - cut[i];
        segs[i] = (struct vqb_seg){fzd_alloc(a, l), l, write};
    }
}

#define FZD_DATA_MAX 4096u /* bytes fzd_spread writes at the most */

/*
 * len bytes of guest data in n readable buffers: each len / n of what is left, the last the
 * rest. Each starts with up to prefix bytes from the input; fill makes up the rest.
 */
static inline void fzd_spread(struct fzd_bufs *a, struct fz *f, uint32_t len, unsigned n,
                              size_t prefix, uint8_t fill, struct vqb_seg *segs)
{
    uint8_t tmp[FZD_DATA_MAX];
    if (len > sizeof(tmp))
        abort(); /* the target's own mistake, not kiln's */
    for (unsigned i = 0; i < n; i++) {
        uint32_t l = i + 1 == n ? len : len / n;
        len -= l;
        segs[i] = (struct vqb_seg){fzd_alloc(a, l), l, false};
        size_t k = fz_take(f, tmp, l < prefix ? l : prefix);
        memset(tmp + k, fill, l - k);
        FZ_CHECK(guest_write(a->gm, segs[i].gpa, tmp, l) == 0);
    }
}

/* Offer a chain of n buffers on b: direct, or indirect if asked or if it would not fit. */
static inline void fzd_offer(struct fzd_bufs *a, struct vqb *b, const struct vqb_seg *segs,
                             unsigned n, bool ind)
{
    uint16_t head;
    if (ind || n > b->size) {
        uint64_t table = a->table_gpa + a->table_slot * (a->next_table++ % a->table_count);
        head = vqb_chain_ind(b, NULL, 0, table, segs, n);
    } else {
        head = vqb_chain(b, segs, n);
    }
    vqb_offer(b, head);
}

#define FZD_RING_GPA(q)                                                                            \
    (0x4000u * (q)) /* fzd_drive_up's rings: desc, avail +0x1000, used +0x2000 */
#define FZD_MAX_RINGS 16u

/* The fake driver lays out nq fresh rings of qsize at FZD_RING_GPA and brings the device up. */
static inline void fzd_drive_up(struct virtio_device *vd, struct vqb *q, unsigned nq,
                                const struct guest_mem *gm, uint16_t qsize, uint64_t features)
{
    struct vqb *rings[FZD_MAX_RINGS];
    if (nq > FZD_MAX_RINGS)
        abort(); /* the target's own mistake, not kiln's */
    for (unsigned i = 0; i < nq; i++) {
        vqb_init(&q[i], gm, qsize, FZD_RING_GPA(i), FZD_RING_GPA(i) + 0x1000,
                 FZD_RING_GPA(i) + 0x2000);
        rings[i] = &q[i];
    }
    vfx_drive_up(vd, rings, nq, features, features & VIRTIO_F_EVENT_IDX);
}

/* ---- A host program's end of a socket (the console's ports, vsock's connections). */

/* Write u16 bytes (mod max, at most 16 KiB): the first prefix from the input, the rest 0xa5. */
static inline void fzd_host_write(struct fz *f, int fd, size_t max, size_t prefix)
{
    static uint8_t buf[16384];
    if (max > sizeof(buf))
        abort(); /* the target's own mistake, not kiln's */
    size_t len = fz_u16(f) % max;
    memset(buf, 0xa5, len);
    fz_take(f, buf, len < prefix ? len : prefix);
    ssize_t w = write(fd, buf, len);
    (void)w; /* a full socket takes less: that is the point */
}

/* Read all there is (a non-blocking socket). */
static inline void fzd_host_drain(int fd)
{
    static uint8_t sink[65536];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

/* ---- The VM's side of a transport target (virtio-mmio, virtio-pci): a fake KVM and buses. */

/* One guest access on bus at addr; a write's value comes from the input. */
static inline void fzd_access(const struct bus *bus, uint64_t addr, uint32_t len, bool is_write,
                              struct fz *f)
{
    uint8_t data[8];
    if (is_write)
        fz_take(f, data, len);
    int ret = bus_access(bus, addr, data, len, is_write);
    FZ_CHECK(ret == 0 || ret == -ENOENT);
}

/* What KVM does at the guest's EOI of a level line: lower it and signal the resamplefd. */
static inline void fzd_eoi(struct fzd *d, const struct vfx_kvm *kvm, uv_loop_t *loop)
{
    for (unsigned i = 0; i < kvm->nirqfd; i++) {
        const struct vfx_irqfd *q = &kvm->irqfd[i];
        bool level = q->flags & KVM_IRQFD_FLAG_RESAMPLE; /* MSI irqfds have no resampler */
        if (vfx_fired(q->fd) && level)
            vfx_poke(q->resample_fd);
    }
    fzd_settle(d, loop);
}

/* The guest notifies queue u8 (one past the last too) and KVM's ioeventfd catches it. */
static inline void fzd_ioevent_kick(struct fzd *d, const struct vfx_kvm *kvm, uv_loop_t *loop,
                                    struct fz *f)
{
    int fd = vfx_ioevent_fd(kvm, fz_u8(f) % (d->vd->num_queues + 1));
    if (fd >= 0)
        vfx_poke(fd);
    fzd_settle(d, loop);
}

/*
 * A transport target's input: u8 device kind (mod FZD_KINDS), u8 device flags, u16 length of
 * the operation program, the program (returned), then guest RAM's contents (loaded into ram).
 */
static inline struct fz fzd_transport_input(struct fz *f, struct fz_ram *ram, enum fzd_kind *kind,
                                            uint8_t *flags)
{
    *kind = fz_u8(f) % FZD_KINDS;
    *flags = fz_u8(f);
    uint16_t prog_len = fz_u16(f);
    struct fz prog = fz_sub(f, prog_len);
    fz_ram_clear(ram);
    fz_ram_load(ram, f);
    return prog;
}

/*
 * Stop and destroy transport tr (and a real device with it) as the VM does, checking what is
 * left: its stats reach the device's, no doorbell stays up, nothing stays on the loop.
 */
static inline void fzd_transport_end(struct fzd *d, struct device *tr, const struct vfx_kvm *kvm,
                                     uv_loop_t *loop)
{
    fzd_check_stats(d, tr);
    tr->ops->stop(tr);
    uv_run(loop, UV_RUN_DEFAULT);               /* close callbacks, requests still on the pool */
    tr->ops->destroy(tr);                       /* the transport, and a real device with it */
    FZ_CHECK(vfx_active_ioevents(kvm, 0) == 0); /* destroy took every doorbell down */
    fzd_destroy(d, true);
    FZ_CHECK(uv_loop_close(loop) == 0); /* nothing of the device's left on the loop */
}

#endif
