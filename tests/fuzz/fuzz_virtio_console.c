/* fuzz_virtio_console.c: the multiport virtio-console (devices/virtio_console.c) over socketpairs.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_console.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

/*
 * The device as the VM makes it, with 1-3 ports whose host ends are stream socketpairs (small
 * buffers, so backpressure is reachable), behind the unit tests' fake transport and driver. The
 * program mixes the driver's control messages (any id, event, value and length), buffers posted
 * on any queue (writable or not, direct or indirect), kicks on any queue index, data the host
 * sends, drains or hangs up on, data the guest sends on a port, config reads, resets and
 * hand-made descriptors.
 *
 * Input:
 *   u8  ports (mod 3, plus 1)
 *   u32 features the driver accepts (of those offered)
 *   u8  log2 of the queue sizes (mod 8: 1 .. 128 entries)
 *   ... the program (run_op)
 */

#define RAM_SIZE (1u << 20)
#define MAX_PORTS 3
#define NQ (VIRTIO_CONSOLE_TXQ(MAX_PORTS) + 1)
#define TABLE_GPA 0x40000u /* indirect tables, 0x1000 apart (rings below: FZD_RING_GPA) */
#define DATA_GPA 0x50000u  /* buffers, handed out in turn (wrapping) */
#define MAX_SEGS 8u

struct fc {
    struct virtio_console *con;
    struct virtio_device *vd;
    uv_loop_t loop;
    struct vfx_rec rec;
    struct vqb q[NQ];
    unsigned nports, nq;
    int host[MAX_PORTS];
    uint64_t features;
    uint16_t qsize;
    struct fzd_bufs bufs;
};

static struct fz_ram ram;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_ram_alloc(&ram, RAM_SIZE, 0);
    return 0;
}

static void drive_up(struct fc *t)
{
    fzd_drive_up(t->vd, t->q, t->nq, &ram.gm, t->qsize, t->features);
}

static void spin(struct fc *t)
{
    vfx_spin(&t->loop, 8);
}

static void kick(struct fc *t, unsigned q)
{
    t->vd->ops->queue_notify(t->vd, q);
    spin(t);
}

/* Offer a chain of n segments on queue q (indirect if asked or if it would not fit). */
static void offer(struct fc *t, unsigned q, const struct vqb_seg *segs, unsigned n, bool ind)
{
    fzd_offer(&t->bufs, &t->q[q], segs, n, ind);
    vqb_publish(&t->q[q]);
}

/* A control message from the driver: u32 id, u16 event, u16 value, u8 length (mod 16). */
static void op_ctrl(struct fc *t, struct fz *f)
{
    uint8_t msg[16] = {0};
    fz_take(f, msg, 8);
    uint32_t len = fz_u8(f) % 16;
    uint64_t gpa = fzd_alloc(&t->bufs, 16);
    FZ_CHECK(guest_write(&ram.gm, gpa, msg, sizeof(msg)) == 0);
    struct vqb_seg s = {gpa, len, false};
    offer(t, VIRTIO_CONSOLE_CTRL_TXQ, &s, 1, false);
    kick(t, VIRTIO_CONSOLE_CTRL_TXQ);
}

/* Buffers on a queue: u8 queue, u8 layout (bit 0 writable, bit 1 indirect, bits 4-6 count), u16
 * size (mod 512) per segment. */
static void op_buffers(struct fc *t, struct fz *f)
{
    unsigned q = fz_u8(f) % t->nq;
    uint8_t layout = fz_u8(f);
    unsigned n = 1 + (layout >> 4 & 7);
    struct vqb_seg segs[MAX_SEGS];
    for (unsigned i = 0; i < n; i++) {
        uint32_t len = fz_u16(f) % 512u;
        segs[i] = (struct vqb_seg){fzd_alloc(&t->bufs, len), len, layout & 1};
    }
    offer(t, q, segs, n, layout & 2);
}

/*
 * Guest data on a port: u8 port, u16 length (mod 4096), u8 segments, then each segment's first
 * 64 bytes (fzd_spread; the rest 0x5a).
 */
static void op_guest_data(struct fc *t, struct fz *f)
{
    unsigned p = fz_u8(f) % t->nports;
    uint32_t len = fz_u16(f) % 4096u;
    unsigned n = 1 + fz_u8(f) % MAX_SEGS;
    struct vqb_seg segs[MAX_SEGS];
    fzd_spread(&t->bufs, f, len, n, 64, 0x5a, segs);
    offer(t, VIRTIO_CONSOLE_TXQ(p + 1), segs, n, false);
    kick(t, VIRTIO_CONSOLE_TXQ(p + 1));
}

/* The host's end of a port: u8 op (bits 0-1: send u16 bytes, drain, hang up; bits 2-3 port). */
static void op_host(struct fc *t, struct fz *f)
{
    uint8_t op = fz_u8(f);
    unsigned p = (op >> 2 & 3) % t->nports;
    if (t->host[p] < 0)
        return;
    if ((op & 3) == 0) {
        fzd_host_write(f, t->host[p], 8192, 64);
    } else if ((op & 3) == 1) {
        fzd_host_drain(t->host[p]);
    } else if ((op & 3) == 2) {
        close(t->host[p]);
        t->host[p] = -1;
    }
    spin(t);
}

/* A hand-made descriptor on any queue. */
static void op_raw_desc(struct fc *t, struct fz *f)
{
    uint8_t sel = fz_u8(f);
    fzd_raw_desc(f, sel, &t->q[fz_u8(f) % t->nq], t->qsize, DATA_GPA);
}

static void op_reset(struct fc *t)
{
    vfx_reset(t->vd);
    FZ_CHECK(virtio_read_status(t->vd) == 0); /* nothing in flight: the reset is immediate */
    drive_up(t);
    spin(t);
}

static void run_op(struct fc *t, struct fz *f)
{
    switch (fz_u8(f) % 9) {
    case 0:
        op_ctrl(t, f);
        break;
    case 1:
        op_buffers(t, f);
        break;
    case 2:
        kick(t, fz_u8(f) % (NQ + 4)); /* past the last queue too */
        break;
    case 3:
        op_guest_data(t, f);
        break;
    case 4:
        op_host(t, f);
        break;
    case 5:
        fzd_config(f, t->vd);
        break;
    case 6:
        op_reset(t);
        break;
    case 7:
        op_raw_desc(t, f);
        break;
    default:
        spin(t);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fc t;
    struct fz f = {data, size};
    memset(&t, 0, sizeof(t));
    fz_ram_clear(&ram);
    t.nports = 1 + fz_u8(&f) % MAX_PORTS;
    t.nq = VIRTIO_CONSOLE_TXQ(t.nports) + 1;
    uint32_t features = fz_u32(&f);
    t.qsize = (uint16_t)(1u << fz_u8(&f) % 8);
    fzd_bufs_init(&t.bufs, &ram.gm, RAM_SIZE, DATA_GPA, TABLE_GPA, 0x1000, 8);
    FZ_CHECK(uv_loop_init(&t.loop) == 0);
    struct virtio_console_port_spec specs[MAX_PORTS];
    static const char *const names[MAX_PORTS] = {"results", "echo", "org.fuzz.c"};
    for (unsigned i = 0; i < t.nports; i++) {
        int sv[2];
        FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
        int small = 4096;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        t.host[i] = sv[1];
        specs[i] = (struct virtio_console_port_spec){names[i], sv[0], true};
    }
    char err[KILN_ERRMSG_MAX];
    FZ_CHECK(virtio_console_create(specs, t.nports, &t.loop, &ram.gm, fz_log(), &t.con, err) == 0);
    t.vd = virtio_console_device(t.con);
    t.features = (features & t.vd->device_features) | VIRTIO_CONSOLE_F_MULTIPORT;
    vfx_attach_transport(t.vd, &t.rec, t.nq);
    FZ_CHECK(virtio_console_start(t.con) == 0);
    drive_up(&t);
    while (fz_more(&f))
        run_op(&t, &f);
    /* The device never gives back more than the driver made available (used <= avail). */
    for (unsigned i = 0; i < t.nq; i++)
        FZ_CHECK((uint16_t)(t.q[i].avail_idx - vqb_used_idx(&t.q[i])) < 0x8000);
    virtio_console_stop(t.con);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    FZ_CHECK(uv_loop_close(&t.loop) == 0);
    virtio_console_destroy(t.con);
    for (unsigned i = 0; i < t.nports; i++)
        if (t.host[i] >= 0)
            close(t.host[i]);
    return 0;
}
