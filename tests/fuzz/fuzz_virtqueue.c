/* fuzz_virtqueue.c: split virtqueues (virtqueue.c) over guest RAM and rings the input describes. */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "virtio/virtqueue.h"

/*
 * Input:
 *   u8  flags: bit 0 EVENT_IDX, bit 1 a second RAM region at 4 GiB, bit 2 raw (unaligned,
 *       unchecked) ring addresses
 *   u8  log2 of the queue size (mod 9: 1 .. 256 entries)
 *   u32 x3 where the descriptor table, avail ring and used ring go (ring_gpa())
 *   u16 length of the operation program that follows
 *   ... the program (one opcode byte and its arguments per operation, see run_op)
 *   ... guest RAM contents: descriptor table, rings, indirect tables, buffers (the rest is 0)
 * The program plays both sides: the device pops, walks, pushes and asks about notifications;
 * the guest rewrites RAM under its feet at any point.
 */

#define LO_SIZE (64u << 10)
#define HI_SIZE (64u << 10)
#define MAX_OUT 512 /* popped and not yet pushed chains the harness keeps track of */

enum op {
    OP_POP,
    OP_PUSH,
    OP_PUSH_BATCH,
    OP_SIGNAL,
    OP_NOTIFY,
    OP_NOTIFY_CHECK,
    OP_UNPOP,
    OP_WAIT_MORE,
    OP_GUEST_W16,
    OP_GUEST_PUBLISH,
    OP_GUEST_BYTES,
    OP_RESET,
    OP_RECONFIG,
    OP_COUNT
};

struct st {
    struct fz_ram *ram;
    struct virtq q;
    bool raw_addrs;
    struct virtq_chain c;
    uint16_t out[MAX_OUT]; /* heads popped, oldest first */
    unsigned nout;
    uint8_t scratch[64u << 10];
    struct iovec iov[VIRTQ_CHAIN_MAX];
};

static struct fz_ram ram;
static struct st st;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_ram_alloc(&ram, LO_SIZE, HI_SIZE);
    return 0;
}

/* A ring part's address: inside RAM and aligned for a part of `align` unless raw was asked. */
static uint64_t ring_gpa(const struct st *s, uint32_t v, uint64_t align)
{
    if (s->raw_addrs)
        return (uint64_t)v << (v & 1 ? 16 : 0); /* sometimes far outside RAM */
    uint64_t base = (v >> 31) && ram.gm.nregions > 1 ? GUEST_MEM_HIGH_START : 0;
    return base + align_down(v % LO_SIZE, align);
}

/* The driver sets the queue up anew: as on a transport, only a queue that is not running. */
static void configure(struct st *s, struct fz *f, bool event_idx)
{
    virtq_reset(&s->q);
    unsigned log2 = fz_u8(f) % 9;
    s->q.size = (uint16_t)(1u << log2);
    s->q.desc_gpa = ring_gpa(s, fz_u32(f), 16);
    s->q.avail_gpa = ring_gpa(s, fz_u32(f), 2);
    s->q.used_gpa = ring_gpa(s, fz_u32(f), 4);
    s->q.event_idx = event_idx;
    s->nout = 0;
    int ret = virtq_enable(&s->q);
    FZ_CHECK(ret == 0 || ret == -EINVAL);
    FZ_CHECK(s->q.ready == (ret == 0));
}

/* What virtqueue.h promises about a chain virtq_pop returned. */
static void check_chain(const struct st *s)
{
    const struct virtq_chain *c = &s->c;
    FZ_CHECK(c->count >= 1 && c->count <= VIRTQ_CHAIN_MAX);
    FZ_CHECK(c->head < s->q.ring_size);
    uint64_t rd = 0, wr = 0;
    bool seen_writable = false;
    for (unsigned i = 0; i < c->count; i++) {
        const struct virtq_buf *b = &c->buf[i];
        FZ_CHECK(fz_ram_holds(&ram, b->host, b->len));
        FZ_CHECK(!seen_writable || b->writable); /* readable buffers come first */
        seen_writable |= b->writable;
        *(b->writable ? &wr : &rd) += b->len;
    }
    FZ_CHECK(rd == c->readable_len && wr == c->writable_len);
}

/* Walk the chain as a device would: a window of the stream out, bytes into the writable part. */
static void walk_chain(struct st *s, struct fz *f)
{
    const struct virtq_chain *c = &s->c;
    uint64_t off = fz_u16(f), len = fz_u16(f);
    virtq_bufs_read(c->buf, c->count, off, s->scratch, len);
    unsigned nrd = 0;
    while (nrd < c->count && !c->buf[nrd].writable)
        nrd++;
    memset(s->scratch, 0xa5, sizeof(s->scratch));
    virtq_bufs_write(c->buf + nrd, c->count - nrd, off, s->scratch, len);
    unsigned n = virtq_bufs_iov(c->buf, c->count, off, len, s->iov);
    uint64_t total = (uint64_t)c->readable_len + c->writable_len, sum = 0;
    FZ_CHECK(n <= c->count);
    for (unsigned i = 0; i < n; i++) {
        FZ_CHECK(s->iov[i].iov_len > 0);
        FZ_CHECK(fz_ram_holds(&ram, s->iov[i].iov_base, s->iov[i].iov_len));
        sum += s->iov[i].iov_len;
    }
    FZ_CHECK(sum == (off >= total ? 0 : (total - off < len ? total - off : len)));
}

static void op_pop(struct st *s, struct fz *f)
{
    bool broken = s->q.broken;
    int ret = virtq_pop(&s->q, &s->c);
    if (ret < 0) {
        FZ_CHECK(s->q.broken);
        FZ_CHECK(!broken || ret == -EIO);
        FZ_CHECK(virtq_pop(&s->q, &s->c) == -EIO); /* stays broken until a reset */
        return;
    }
    FZ_CHECK(ret == 0 || ret == 1);
    if (ret == 0)
        return;
    check_chain(s);
    walk_chain(s, f);
    if (s->nout < MAX_OUT)
        s->out[s->nout++] = s->c.head;
}

/* Give back the oldest popped chain (or a made-up head once none is outstanding). */
static void op_push(struct st *s, struct fz *f)
{
    uint32_t written = fz_u32(f);
    uint16_t head = s->nout ? s->out[0] : fz_u16(f);
    if (s->nout)
        memmove(s->out, s->out + 1, --s->nout * sizeof(s->out[0]));
    virtq_push(&s->q, head, written);
}

/* Give back up to n chains with one used->idx update, as virtio-net's mergeable RX does. */
static void op_push_batch(struct st *s, struct fz *f)
{
    unsigned n = fz_u8(f);
    if (n > s->nout)
        n = s->nout;
    for (unsigned i = 0; i < n; i++)
        virtq_fill(&s->q, (uint16_t)i, s->out[i], fz_u16(f));
    virtq_flush(&s->q, (uint16_t)n);
    s->nout -= n;
    memmove(s->out, s->out + n, s->nout * sizeof(s->out[0]));
}

/* The last n popped, unpushed chains go back to the ring (virtio-net's frame that did not fit). */
static void op_unpop(struct st *s, struct fz *f)
{
    unsigned n = fz_u8(f) % (s->nout + 1);
    virtq_unpop(&s->q, (uint16_t)n);
    s->nout -= n;
}

static void guest_w16(struct st *s, uint64_t gpa, uint16_t v)
{
    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    guest_write(&s->ram->gm, gpa, le, 2); /* a guest may aim anywhere; outside RAM is a no-op */
}

/* The guest stores a 16-bit value anywhere (an index, a flag, a ring entry). */
static void op_guest_w16(struct st *s, struct fz *f)
{
    uint64_t gpa = ring_gpa(s, fz_u32(f), 2);
    guest_w16(s, gpa, fz_u16(f));
}

/* The guest makes n more entries available: avail->idx += n. */
static void op_publish(struct st *s, struct fz *f)
{
    uint8_t le[2] = {0, 0};
    uint64_t gpa = s->q.avail_gpa + 2;
    if (guest_read(&s->ram->gm, gpa, le, 2) == 0)
        guest_w16(s, gpa, (uint16_t)(le[0] + (le[1] << 8) + fz_u8(f)));
}

/* The guest rewrites up to 32 bytes of RAM anywhere (descriptors, rings, tables). */
static void op_guest_bytes(struct st *s, struct fz *f)
{
    uint64_t gpa = ring_gpa(s, fz_u32(f), 1);
    uint8_t buf[32];
    size_t n = fz_u8(f) % sizeof(buf);
    fz_take(f, buf, n);
    guest_write(&s->ram->gm, gpa, buf, n);
}

static void run_op(struct st *s, struct fz *f, bool event_idx)
{
    switch (fz_u8(f) % OP_COUNT) {
    case OP_POP:
        op_pop(s, f);
        break;
    case OP_PUSH:
        op_push(s, f);
        break;
    case OP_PUSH_BATCH:
        op_push_batch(s, f);
        break;
    case OP_SIGNAL:
        virtq_should_signal(&s->q);
        break;
    case OP_NOTIFY:
        virtq_set_notify(&s->q, fz_u8(f) & 1);
        break;
    case OP_NOTIFY_CHECK:
        virtq_enable_notify_and_check(&s->q);
        break;
    case OP_UNPOP:
        op_unpop(s, f);
        break;
    case OP_WAIT_MORE:
        /* seen: where virtq_pop last found nothing, as virtqueue.h asks. */
        virtq_wait_for_more(&s->q, s->q.last_avail);
        break;
    case OP_GUEST_W16:
        op_guest_w16(s, f);
        break;
    case OP_GUEST_PUBLISH:
        op_publish(s, f);
        break;
    case OP_GUEST_BYTES:
        op_guest_bytes(s, f);
        break;
    case OP_RESET:
        /* A device reset and the driver bringing the same rings up again. */
        virtq_reset(&s->q);
        s->nout = 0;
        FZ_CHECK(!s->q.ready && !s->q.broken);
        virtq_enable(&s->q);
        break;
    default:
        configure(s, f, event_idx);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    struct st *s = &st;
    uint8_t flags = fz_u8(&f);
    bool event_idx = flags & 1;
    ram.gm.nregions = flags & 2 ? 2 : 1;
    s->ram = &ram;
    s->raw_addrs = flags & 4;
    virtq_init(&s->q, &ram.gm);
    struct fz cfg = fz_sub(&f, 13);
    uint16_t prog_len = fz_u16(&f);
    struct fz prog = fz_sub(&f, prog_len);
    fz_ram_clear(&ram);
    fz_ram_load(&ram, &f);
    configure(s, &cfg, event_idx);
    while (fz_more(&prog))
        run_op(s, &prog, event_idx);
    return 0;
}
