/* fuzz_virtio_net.c: virtio-net TX, RX and config space (devices/virtio_net.c) over a fake port. */
#include <errno.h>
#include <string.h>

#include "devices/virtio_net.h"
#include "fuzz_common.h"
#include "fuzz_net_port.h"
#include "fuzz_virtio_dev.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

/*
 * The device as the VM makes it (virtio_net_create, virtio_net_start) over the fuzz port
 * (fuzz_net_port.h: a TAP with or without a vnet header and offloads), behind the unit tests'
 * fake transport and driven up by their fake driver. The program mixes the guest's TX frames
 * (any header flags, gso and checksum fields, split and indirect chains), its RX buffers
 * (mergeable or not), frames arriving from the network, a back end that fills up or refuses,
 * config space accesses, resets and hand-made descriptors. kiln offers no control virtqueue
 * (VIRTIO_NET_F_CTRL_VQ), so there is none to fuzz.
 *
 * Input:
 *   u8  port: bit 0 vnet header, bit 1 all offloads
 *   u32 features the driver accepts (of those offered: MRG_RXBUF, CSUM, GUEST_*, HOST_*, ...)
 *   u8  log2 of the queue sizes (mod 9: 1 .. 256 entries)
 *   ... the program (run_op)
 */

#define RAM_SIZE (1u << 20)
#define RX_DESC 0x0000u
#define RX_AVAIL 0x1000u
#define RX_USED 0x2000u
#define TX_DESC 0x3000u
#define TX_AVAIL 0x4000u
#define TX_USED 0x5000u
#define TABLE_GPA 0x8000u /* indirect tables, TABLE_SLOT apart */
#define TABLE_SLOT 0x1000u
#define TABLE_COUNT 8u
#define DATA_GPA 0x10000u /* buffers, handed out in turn (wrapping) */
#define MAX_PIECES FZD_MAX_PIECES
#define RXQ VIRTIO_NET_RXQ
#define TXQ VIRTIO_NET_TXQ

struct fn {
    struct fzd dev;
    struct virtio_device *vd;
    uv_loop_t loop;
    struct vfx_rec rec;
    struct vqb rx, tx;
    uint64_t features;
    bool event_idx;
    uint16_t qsize;
    struct fzd_bufs bufs;
    uint8_t frame[NET_HDR_LEN + NET_FRAME_MAX + 64];
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

static void drive_up(struct fn *t)
{
    vqb_init(&t->rx, &ram.gm, t->qsize, RX_DESC, RX_AVAIL, RX_USED);
    vqb_init(&t->tx, &ram.gm, t->qsize, TX_DESC, TX_AVAIL, TX_USED);
    vfx_drive_up(t->vd, (struct vqb *[]){[RXQ] = &t->rx, [TXQ] = &t->tx}, 2, t->features,
                 t->event_idx);
}

/* Frame length: mostly Ethernet-sized, sometimes up to the 64 KiB GSO limit and beyond. */
static uint32_t frame_len(struct fz *f)
{
    uint16_t v = fz_u16(f);
    return v & 0x8000 ? (v & 0x7fff) * 2u + 64u : v % 1600u;
}

/* The frame bytes: the first 64 from the input (headers worth crafting), then a pattern. */
static void frame_bytes(struct fz *f, uint8_t *p, uint32_t len)
{
    size_t k = fz_take(f, p, len < 64 ? len : 64);
    for (uint32_t i = (uint32_t)k; i < len; i++)
        p[i] = (uint8_t)(i * 13 + 5);
}

/*
 * A TX frame: u8 layout (bit 0 indirect, bit 1 a device-writable buffer too, bits 4-6 buffer
 * count), the 12-byte virtio-net header as the input has it, frame length and bytes, cuts (u32
 * each).
 */
static void op_tx(struct fn *t, struct fz *f)
{
    uint8_t layout = fz_u8(f);
    fz_take(f, t->frame, NET_HDR_LEN);
    uint32_t len = NET_HDR_LEN + frame_len(f);
    frame_bytes(f, t->frame + NET_HDR_LEN, len - NET_HDR_LEN);
    unsigned n = 1 + (layout >> 4 & 7);
    struct vqb_seg segs[MAX_PIECES + 1];
    fzd_split(&t->bufs, f, len, n, false, true, segs);
    uint32_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        FZ_CHECK(guest_write(&ram.gm, segs[i].gpa, t->frame + off, segs[i].len) == 0);
        off += segs[i].len;
    }
    if (layout & 2)
        segs[n++] = (struct vqb_seg){fzd_alloc(&t->bufs, 64), 64, true};
    fzd_offer(&t->bufs, &t->tx, segs, n, layout & 1);
}

/*
 * RX buffers: u8 count, then per chain u8 layout (bit 0 indirect, bit 1 device-readable, which
 * the device must refuse, bits 4-6 buffer count), u16 size, cuts (u32 each).
 */
static void op_rx_buffers(struct fn *t, struct fz *f)
{
    unsigned chains = 1 + fz_u8(f) % 16;
    for (unsigned c = 0; c < chains; c++) {
        uint8_t layout = fz_u8(f);
        uint32_t len = fz_u16(f) % 4096u;
        unsigned n = 1 + (layout >> 4 & 7);
        struct vqb_seg segs[MAX_PIECES];
        fzd_split(&t->bufs, f, len, n, !(layout & 2), true, segs);
        fzd_offer(&t->bufs, &t->rx, segs, n, layout & 1);
    }
    vqb_publish(&t->rx);
}

/* Everything made available on TX has been sent or dropped, unless sending has to wait. */
static void check_tx_drained(struct fn *t)
{
    if ((virtio_read_status(t->vd) & VIRTIO_STATUS_NEEDS_RESET) || t->dev.port->tx_full)
        return;
    FZ_CHECK(vqb_used_idx(&t->tx) == t->tx.avail_idx);
}

static void spin(struct fn *t)
{
    vfx_spin(&t->loop, 16); /* TX bursts past the budget continue on the idle handle */
}

static void kick(struct fn *t, unsigned q)
{
    vqb_publish(q == TXQ ? &t->tx : &t->rx);
    t->vd->ops->queue_notify(t->vd, q);
    spin(t);
    if (q == TXQ)
        check_tx_drained(t);
}

/* A frame from the network: u16 length (any, runts and giants too), its bytes. */
static void op_deliver(struct fn *t, struct fz *f)
{
    uint32_t len = frame_len(f);
    len += fz_u8(f) & 1 ? NET_HDR_LEN : 0;
    frame_bytes(f, t->frame, len);
    fzp_deliver(t->dev.port, t->frame, len);
}

/* A hand-made descriptor on RX (select bit 0 clear) or TX. */
static void op_raw_desc(struct fn *t, struct fz *f)
{
    uint8_t sel = fz_u8(f);
    fzd_raw_desc(f, sel, sel & 1 ? &t->tx : &t->rx, t->qsize, DATA_GPA);
}

/* The driver resets the device and brings it up again with fresh rings. */
static void op_reset(struct fn *t)
{
    vfx_reset(t->vd);
    FZ_CHECK(virtio_read_status(t->vd) == 0); /* nothing in flight: the reset is immediate */
    drive_up(t);
    spin(t);
}

static void op_port(struct fn *t, struct fz *f)
{
    uint8_t v = fz_u8(f) % 3;
    if (v == 2)
        fzp_drain(t->dev.port);
    else
        t->dev.port->send_ret = v ? -EIO : -EAGAIN;
    spin(t);
}

static void run_op(struct fn *t, struct fz *f)
{
    switch (fz_u8(f) % 10) {
    case 0:
        op_tx(t, f);
        break;
    case 1:
        kick(t, TXQ);
        break;
    case 2:
        op_rx_buffers(t, f);
        break;
    case 3:
        kick(t, RXQ);
        break;
    case 4:
        op_deliver(t, f);
        break;
    case 5:
        op_port(t, f);
        break;
    case 6:
        fzd_config(f, t->vd);
        break;
    case 7:
        op_reset(t);
        break;
    case 8:
        op_raw_desc(t, f);
        break;
    default:
        spin(t);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fn t;
    struct fz f = {data, size};
    memset(&t, 0, sizeof(t));
    fz_ram_clear(&ram);
    uint8_t port = fz_u8(&f);
    uint32_t features = fz_u32(&f);
    t.qsize = (uint16_t)(1u << fz_u8(&f) % 9);
    fzd_bufs_init(&t.bufs, &ram.gm, RAM_SIZE, DATA_GPA, TABLE_GPA, TABLE_SLOT, TABLE_COUNT);
    FZ_CHECK(uv_loop_init(&t.loop) == 0);
    fzd_create(&t.dev, FZD_NET, port & 3, &t.loop, &ram.gm);
    t.vd = t.dev.vd;
    t.features = features & t.vd->device_features;
    t.event_idx = t.features & VIRTIO_F_EVENT_IDX;
    vfx_attach_transport(t.vd, &t.rec, 2);
    FZ_CHECK(virtio_net_start(t.dev.net) == 0);
    drive_up(&t);
    while (fz_more(&f))
        run_op(&t, &f);
    struct virtio_net_stats st;
    virtio_net_get_stats(t.dev.net, &st);
    FZ_CHECK(st.tx_frames == t.dev.port->sent);     /* every frame counted is one the port took */
    FZ_CHECK(st.tx_dropped >= t.dev.port->refused); /* and every one it refused is a drop */
    virtio_net_stop(t.dev.net);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    FZ_CHECK(uv_loop_close(&t.loop) == 0);
    fzd_destroy(&t.dev, false);
    return 0;
}
