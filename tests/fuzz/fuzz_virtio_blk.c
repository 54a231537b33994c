/* fuzz_virtio_blk.c: virtio-blk requests (devices/virtio_blk.c) against an in-memory image. */
#include <errno.h>
#include <string.h>

#include "devices/virtio_blk.h"
#include "fuzz_common.h"
#include "fuzz_virtio_dev.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

/*
 * The device as the VM makes it (virtio_blk_create on an image, its libuv loop and thread
 * pool), behind the unit tests' fake transport, driven up by the unit tests' fake driver
 * (virtio_fixture.h, virtq_builder.h). The input is a list of requests, each laid out as the
 * input says: any type and sector, the header and payload split over any number of readable
 * buffers, the writable part (data and status byte) likewise, direct or indirect; and the
 * guest's other moves: kicks, resets with requests in flight, hand-made descriptors.
 *
 * Input:
 *   u8  device flags (fzd_create: read-only, image size)
 *   u32 features the driver accepts (of those offered; EVENT_IDX and INDIRECT_DESC included)
 *   u8  log2 of the queue size (mod 9: 1 .. 256 entries)
 *   ... the program (run_op)
 */

#define RAM_SIZE (1u << 20)
#define DESC_GPA 0x0000u
#define AVAIL_GPA 0x1000u
#define USED_GPA 0x2000u
#define TABLE_GPA 0x4000u /* indirect tables, TABLE_SLOT apart */
#define TABLE_SLOT 0x1000u
#define TABLE_COUNT 12u
#define DATA_GPA 0x10000u         /* buffers, handed out in turn (wrapping) */
#define MAX_PIECES FZD_MAX_PIECES /* buffers per part (readable, writable) of a request */
#define MAX_PAYLOAD 4096u

struct fb {
    struct fzd dev;
    struct virtio_device *vd;
    uv_loop_t loop;
    struct vfx_rec rec;
    struct vqb b;
    uint64_t features;
    bool event_idx;
    uint16_t qsize;
    struct fzd_bufs bufs;
    uint8_t stream[VIRTIO_BLK_HDR_LEN + MAX_PAYLOAD];
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

/* The fake driver negotiates (features checked against the offer) and lays out fresh rings. */
static void drive_up(struct fb *t)
{
    vqb_init(&t->b, &ram.gm, t->qsize, DESC_GPA, AVAIL_GPA, USED_GPA);
    vfx_drive_up(t->vd, (struct vqb *[]){&t->b}, 1, t->features, t->event_idx);
}

/* The header and payload a request carries (its readable stream). */
static uint32_t build_stream(struct fb *t, struct fz *f, uint8_t layout)
{
    static const uint32_t types[] = {VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,
                                     VIRTIO_BLK_T_FLUSH,   VIRTIO_BLK_T_GET_ID,
                                     VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES};
    uint8_t sel = fz_u8(f);
    uint32_t type = sel < 0xf0 ? types[sel % ARRAY_SIZE(types)] : fz_u32(f);
    uint64_t sector = layout & 2 ? fz_u64(f) : fz_u16(f);
    uint32_t payload = fz_u16(f) % (MAX_PAYLOAD + 1);
    uint32_t len = layout & 4 ? fz_u8(f) % VIRTIO_BLK_HDR_LEN : VIRTIO_BLK_HDR_LEN + payload;
    memset(t->stream, 0, sizeof(t->stream));
    le_put(t->stream, 4, type);
    le_put(t->stream + 8, 8, sector);
    /* Discard / write-zeroes segments come from the input; data is a recognisable pattern. */
    bool segments = type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES;
    if (len > VIRTIO_BLK_HDR_LEN && segments)
        fz_take(f, t->stream + VIRTIO_BLK_HDR_LEN, len - VIRTIO_BLK_HDR_LEN);
    else
        for (uint32_t i = VIRTIO_BLK_HDR_LEN; i < len; i++)
            t->stream[i] = (uint8_t)(i * 7 + sector);
    return len;
}

/* Copy the stream into the readable buffers, in order. */
static void fill_readable(const struct vqb_seg *segs, unsigned n, const uint8_t *stream)
{
    uint32_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        FZ_CHECK(guest_write(&ram.gm, segs[i].gpa, stream + off, segs[i].len) == 0);
        off += segs[i].len;
    }
}

/*
 * One request: u8 layout (bit 0 indirect, bit 1 a 64-bit sector, bit 2 a short header, bit 3
 * no status byte), the stream (build_stream), u16 writable payload bytes, u8 buffer counts,
 * cut points (u16 each). Offered, not yet published.
 */
static void op_request(struct fb *t, struct fz *f)
{
    uint8_t layout = fz_u8(f);
    uint32_t rd_len = build_stream(t, f, layout);
    uint32_t wr_len = fz_u16(f) % (MAX_PAYLOAD + 1) + (layout & 8 ? 0 : 1);
    uint8_t counts = fz_u8(f);
    unsigned nrd = 1 + (counts & 7), nwr = counts >> 4 & 7;
    nwr += nwr == 0 && wr_len > 0;
    struct vqb_seg segs[2 * MAX_PIECES];
    fzd_split(&t->bufs, f, rd_len, nrd, false, false, segs);
    fzd_split(&t->bufs, f, wr_len, nwr, true, false, segs + nrd);
    fill_readable(segs, nrd, t->stream);
    fzd_offer(&t->bufs, &t->b, segs, nrd + nwr, layout & 1);
}

/* A hand-made descriptor: any address, length, flags and next, then offered as a head. */
static void op_raw_desc(struct fb *t, struct fz *f)
{
    uint16_t slot = fz_u16(f) % t->qsize;
    uint64_t addr = fz_u8(f) & 1 ? fz_u64(f) : DATA_GPA + fz_u16(f);
    uint32_t len = fz_u16(f);
    uint16_t flags = fz_u8(f) & 7, next = fz_u16(f);
    vqb_desc(&t->b, slot, addr, len, flags, next);
    if (fz_u8(f) & 1)
        vqb_offer(&t->b, slot);
}

/* Everything made available has been used, unless the device gave up on the driver. */
static void check_drained(struct fb *t)
{
    if (virtio_read_status(t->vd) & VIRTIO_STATUS_NEEDS_RESET)
        return;
    FZ_CHECK(vqb_used_idx(&t->b) == t->b.avail_idx);
    FZ_CHECK(!virtio_blk_busy(t->dev.blk));
}

/* Publish, kick; with wait, run the loop until every request has completed. */
static void op_kick(struct fb *t, bool wait)
{
    vqb_publish(&t->b);
    t->vd->ops->queue_notify(t->vd, 0);
    if (!wait)
        return;
    uv_run(&t->loop, UV_RUN_DEFAULT);
    check_drained(t);
}

/* The driver resets the device (maybe with requests in flight) and brings it up again. */
static void op_reset(struct fb *t)
{
    vfx_reset(t->vd);
    uv_run(&t->loop, UV_RUN_DEFAULT); /* the requests in flight finish; the reset with them */
    FZ_CHECK(virtio_read_status(t->vd) == 0);
    drive_up(t);
}

static void run_op(struct fb *t, struct fz *f)
{
    switch (fz_u8(f) % 9) {
    case 0:
    case 1:
    case 2:
        op_request(t, f);
        break;
    case 3:
        op_kick(t, true);
        break;
    case 4:
        op_kick(t, false);
        break;
    case 5:
        op_reset(t);
        break;
    case 6:
        op_raw_desc(t, f);
        break;
    case 7:
        /* The driver moves avail->idx anywhere (even past what it offered). */
        vqb_set_avail_idx(&t->b, (uint16_t)(t->b.avail_idx + fz_u8(f) - 128));
        break;
    default:
        /*
         * The image shrinks (or grows) on the host: reads past its end must fail, not hang.
         * Requests in flight finish first, so the outcome never depends on the pool's timing.
         */
        uv_run(&t->loop, UV_RUN_DEFAULT);
        fzd_image_resize(fz_u16(f) * 64ULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fb t;
    struct fz f = {data, size};
    memset(&t, 0, sizeof(t));
    fz_ram_clear(&ram);
    uint8_t flags = fz_u8(&f);
    uint32_t features = fz_u32(&f);
    t.qsize = (uint16_t)(1u << fz_u8(&f) % 9);
    fzd_bufs_init(&t.bufs, &ram.gm, RAM_SIZE, DATA_GPA, TABLE_GPA, TABLE_SLOT, TABLE_COUNT);
    FZ_CHECK(uv_loop_init(&t.loop) == 0);
    fzd_create(&t.dev, FZD_BLK, flags, &t.loop, &ram.gm);
    t.vd = t.dev.vd;
    t.features = features & t.vd->device_features;
    t.event_idx = t.features & VIRTIO_F_EVENT_IDX;
    vfx_attach_transport(t.vd, &t.rec, 1);
    drive_up(&t);
    while (fz_more(&f))
        run_op(&t, &f);
    op_kick(&t, true); /* whatever is still offered */
    fzd_destroy(&t.dev, false);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    FZ_CHECK(uv_loop_close(&t.loop) == 0);
    return 0;
}
