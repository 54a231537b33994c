/* fuzz_virtio_vsock.c: virtio-vsock (devices/virtio_vsock.c) with host programs on unix sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio_vsock.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

/*
 * The device as the VM makes it, listening on a unix socket in a private temporary folder, with
 * a host program listening on PATH_5000 (guest connections to host port 5000 succeed, to any
 * other port they are refused), behind the unit tests' fake transport and driver. The program
 * mixes guest packets (any op, flags, ports, lengths, credit fields, and with a mutation byte
 * any cid or type or a short header), receive buffers (any size, writable or not), kicks on any
 * queue, host programs that connect and send a CONNECT line (good or bad), write, drain,
 * half-close or hang up, connections the PATH_5000 program accepts, config reads, resets and
 * hand-made descriptors.
 *
 * Input:
 *   u32 features the driver accepts (of those offered)
 *   u8  log2 of the queue sizes (mod 8: 1 .. 128 entries)
 *   ... the program (run_op)
 */

#define RAM_SIZE (1u << 20)
#define CID 3
#define TABLE_GPA 0x40000u /* indirect tables, 0x1000 apart (rings below: FZD_RING_GPA) */
#define DATA_GPA 0x50000u  /* buffers, handed out in turn (wrapping) */
#define MAX_HOST 8         /* host program sockets at once (clients and accepted) */

struct fv {
    struct virtio_vsock *vs;
    struct virtio_device *vd;
    uv_loop_t loop;
    struct vfx_rec rec;
    struct vqb q[VSOCK_NQ];
    uint64_t features;
    uint16_t qsize;
    struct fzd_bufs bufs;
    int host[MAX_HOST]; /* host program ends: clients of PATH, or accepted from PATH_5000 */
};

static struct fz_ram ram;
static char dir[64], path[96];
static int listener = -1; /* the host program on PATH_5000 */

/* The private folder goes when the fuzzer exits. */
static void cleanup(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s_5000", path);
    unlink(p);
    unlink(path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_ram_alloc(&ram, RAM_SIZE, 0);
    signal(SIGPIPE, SIG_IGN); /* the harness's own writes to host programs kiln hung up on */
    snprintf(dir, sizeof(dir), "/tmp/kiln-fuzz-vsock-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/v.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_5000", path);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(listener, 256) < 0)
        abort();
    atexit(cleanup);
    return 0;
}

static void drive_up(struct fv *t)
{
    fzd_drive_up(t->vd, t->q, VSOCK_NQ, &ram.gm, t->qsize, t->features);
}

static void spin(struct fv *t)
{
    vfx_spin(&t->loop, 8);
}

static void kick(struct fv *t, unsigned q)
{
    t->vd->ops->queue_notify(t->vd, q);
    spin(t);
}

static void offer(struct fv *t, unsigned q, const struct vqb_seg *segs, unsigned n, bool ind)
{
    fzd_offer(&t->bufs, &t->q[q], segs, n, ind);
    vqb_publish(&t->q[q]);
}

/* A port the guest names: sel 0-3 the first host ports kiln hands out, 4-5 ports 5000 and 5001
 * on the host, else a u32 from the input. */
static uint32_t pick_port(struct fz *f)
{
    uint8_t sel = fz_u8(f);
    if (sel % 8 < 4)
        return VSOCK_HOST_PORT_FIRST + sel % 8;
    if (sel % 8 < 6)
        return 5000 + sel % 8 - 4;
    return fz_u32(f);
}

/*
 * A guest packet: u8 op (mod 8), u8 flags, u8 mutation (bit 0 src_cid, bit 1 dst_cid, bit 2
 * type, bit 3 header cut short, bit 4 len past the payload, bit 5 indirect, bits 6-7 payload
 * segments), u16 src_port (guest ports are small), host port (pick_port), u32 buf_alloc, u32
 * fwd_cnt, u16 payload length (mod 2048; its first 32 bytes from the input).
 */
static void op_packet(struct fv *t, struct fz *f)
{
    struct vsock_hdr h = {.src_cid = CID, .dst_cid = VSOCK_HOST_CID, .type = VSOCK_TYPE_STREAM};
    h.op = fz_u8(f) % 8;
    h.flags = fz_u8(f);
    uint8_t mut = fz_u8(f);
    h.src_port = fz_u16(f);
    h.dst_port = pick_port(f);
    h.buf_alloc = fz_u32(f);
    h.fwd_cnt = fz_u32(f);
    uint32_t plen = fz_u16(f) % 2048u;
    h.len = mut & 0x10 ? plen + 1 + fz_u8(f) : plen;
    if (mut & 1)
        h.src_cid = fz_u64(f);
    if (mut & 2)
        h.dst_cid = fz_u64(f);
    if (mut & 4)
        h.type = fz_u16(f);
    uint8_t raw[VSOCK_HDR_LEN];
    vsock_hdr_encode(&h, raw);
    uint32_t hlen = mut & 8 ? fz_u8(f) % VSOCK_HDR_LEN : VSOCK_HDR_LEN;
    struct vqb_seg segs[5];
    segs[0] = (struct vqb_seg){fzd_alloc(&t->bufs, VSOCK_HDR_LEN), hlen, false};
    FZ_CHECK(guest_write(&ram.gm, segs[0].gpa, raw, sizeof(raw)) == 0);
    unsigned n = 1 + (plen ? 1 + (mut >> 6) : 0);
    fzd_spread(&t->bufs, f, plen, n - 1, 32, 0x3c, segs + 1);
    offer(t, VSOCK_TXQ, segs, n, mut & 0x20);
    kick(t, VSOCK_TXQ);
}

/* Receive buffers: u8 count (mod 8, plus 1), u16 size (mod 8192), u8 bit 0 read-only. */
static void op_rx_buffers(struct fv *t, struct fz *f)
{
    unsigned n = 1 + fz_u8(f) % 8;
    uint32_t len = fz_u16(f) % 8192u;
    bool ro = fz_u8(f) & 1;
    for (unsigned i = 0; i < n; i++) {
        struct vqb_seg s = {fzd_alloc(&t->bufs, len), len, !ro};
        offer(t, VSOCK_RXQ, &s, 1, false);
    }
    kick(t, VSOCK_RXQ);
}

static int free_host_slot(struct fv *t)
{
    for (int i = 0; i < MAX_HOST; i++)
        if (t->host[i] < 0)
            return i;
    return -1;
}

/* A host program connects to PATH and sends a CONNECT line: u8 kind (0 good, else odd), port. */
static void op_host_connect(struct fv *t, struct fz *f)
{
    int slot = free_host_slot(t);
    uint8_t kind = fz_u8(f);
    uint32_t port = fz_u8(f) % 4 + 1000;
    if (slot < 0)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd); /* the backlog is full: a refused program */
        return;
    }
    char line[64];
    static const char *const odd[] = {"CONNECT\n",  "CONNECT 99999999999\n",
                                      "HELLO 1\n",  "CONNECT 1\r\n",
                                      "CONNECT 12", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
    if (kind % 8 < 2)
        snprintf(line, sizeof(line), "CONNECT %u\n", port);
    else
        snprintf(line, sizeof(line), "%s", odd[kind % 8 - 2]);
    ssize_t w = write(fd, line, strlen(line));
    (void)w;
    t->host[slot] = fd;
    spin(t);
}

/* The PATH_5000 program accepts a connection the guest made. */
static void op_host_accept(struct fv *t)
{
    int slot = free_host_slot(t);
    if (slot < 0)
        return;
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        t->host[slot] = fd;
}

/* A host program's end: u8 op (bits 0-1: write u16 bytes, drain, half-close, hang up; bits 2-4
 * which one). */
static void op_host(struct fv *t, struct fz *f)
{
    uint8_t op = fz_u8(f);
    int i = (op >> 2) % MAX_HOST;
    if (t->host[i] < 0)
        return;
    if ((op & 3) == 0) {
        fzd_host_write(f, t->host[i], 16384, 32);
    } else if ((op & 3) == 1) {
        fzd_host_drain(t->host[i]);
    } else if ((op & 3) == 2) {
        shutdown(t->host[i], SHUT_WR);
    } else {
        close(t->host[i]);
        t->host[i] = -1;
    }
    spin(t);
}

static void op_reset(struct fv *t)
{
    vfx_reset(t->vd);
    FZ_CHECK(virtio_read_status(t->vd) == 0); /* nothing in flight: the reset is immediate */
    drive_up(t);
    spin(t);
}

static void run_op(struct fv *t, struct fz *f)
{
    switch (fz_u8(f) % 11) {
    case 0:
        op_packet(t, f);
        break;
    case 1:
        op_rx_buffers(t, f);
        break;
    case 2:
        kick(t, fz_u8(f) % (VSOCK_NQ + 2)); /* past the last queue too */
        break;
    case 3:
        op_host_connect(t, f);
        break;
    case 4:
        op_host_accept(t);
        break;
    case 5:
        op_host(t, f);
        break;
    case 6:
        fzd_config(f, t->vd);
        break;
    case 7:
        op_reset(t);
        break;
    case 8: {
        uint8_t sel = fz_u8(f);
        fzd_raw_desc(f, sel, &t->q[fz_u8(f) % VSOCK_NQ], t->qsize, DATA_GPA);
        break;
    }
    default:
        spin(t);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fv t;
    struct fz f = {data, size};
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < MAX_HOST; i++)
        t.host[i] = -1;
    fz_ram_clear(&ram);
    uint32_t features = fz_u32(&f);
    t.qsize = (uint16_t)(1u << fz_u8(&f) % 8);
    fzd_bufs_init(&t.bufs, &ram.gm, RAM_SIZE, DATA_GPA, TABLE_GPA, 0x1000, 8);
    FZ_CHECK(uv_loop_init(&t.loop) == 0);
    char err[KILN_ERRMSG_MAX];
    int lfd;
    FZ_CHECK(virtio_vsock_listen(path, &lfd, err) == 0);
    FZ_CHECK(virtio_vsock_create(CID, path, lfd, path, &t.loop, &ram.gm, fz_log(), &t.vs, err) ==
             0);
    t.vd = virtio_vsock_device(t.vs);
    t.features = features & t.vd->device_features;
    vfx_attach_transport(t.vd, &t.rec, VSOCK_NQ);
    FZ_CHECK(virtio_vsock_start(t.vs) == 0);
    drive_up(&t);
    while (fz_more(&f))
        run_op(&t, &f);
    /* The device never gives back more than the driver made available (used <= avail), and
     * never holds more connections than its limit. */
    for (unsigned i = 0; i < VSOCK_NQ; i++)
        FZ_CHECK((uint16_t)(t.q[i].avail_idx - vqb_used_idx(&t.q[i])) < 0x8000);
    FZ_CHECK(virtio_vsock_conns(t.vs) <= VSOCK_MAX_CONNS);
    virtio_vsock_stop(t.vs);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    FZ_CHECK(uv_loop_close(&t.loop) == 0);
    virtio_vsock_destroy(t.vs);
    for (int i = 0; i < MAX_HOST; i++)
        if (t.host[i] >= 0)
            close(t.host[i]);
    /* Connections the guest made that the PATH_5000 program never took. */
    for (int fd; (fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
        close(fd);
    return 0;
}
