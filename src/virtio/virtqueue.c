/* virtqueue.c: split virtqueue processing on the device side, hardened against a hostile driver. */
#include "virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

/*
 * Guest-shared ring fields are accessed as relaxed atomics: each access happens exactly once
 * and is never torn, and the explicit fences below give the ordering the spec asks for.
 * Guest memory is little-endian whatever the host is.
 */
static uint16_t ld16(const uint8_t *p)
{
    return le16toh(
        atomic_load_explicit((const _Atomic uint16_t *)(const void *)p, memory_order_relaxed));
}

static void st16(uint8_t *p, uint16_t v)
{
    atomic_store_explicit((_Atomic uint16_t *)(void *)p, htole16(v), memory_order_relaxed);
}

static void st32(uint8_t *p, uint32_t v)
{
    atomic_store_explicit((_Atomic uint32_t *)(void *)p, htole32(v), memory_order_relaxed);
}

/* avail->idx, avail->ring[i] and avail->used_event; used->idx, ring[i], avail_event. */
static uint8_t *avail_idx_ptr(const struct virtq *q)
{
    return q->avail + 2;
}

static uint8_t *avail_ring_ptr(const struct virtq *q, uint16_t idx)
{
    return q->avail + 4 + 2 * (size_t)(idx & (q->ring_size - 1));
}

static uint8_t *used_event_ptr(const struct virtq *q)
{
    return q->avail + 4 + 2 * (size_t)q->ring_size;
}

static uint8_t *used_idx_ptr(const struct virtq *q)
{
    return q->used + 2;
}

static uint8_t *used_elem_ptr(const struct virtq *q, uint16_t idx)
{
    return q->used + 4 + 8 * (size_t)(idx & (q->ring_size - 1));
}

static uint8_t *avail_event_ptr(const struct virtq *q)
{
    return q->used + 4 + 8 * (size_t)q->ring_size;
}

/* A descriptor as copied out of guest memory: checks and uses only ever see this copy. */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static void read_desc(const uint8_t *table, uint32_t i, struct desc *d)
{
    uint8_t raw[16];
    memcpy(raw, table + 16 * (size_t)i, sizeof(raw));
    /*
     * The guest may rewrite the descriptor at any moment. The compiler barrier stops the
     * compiler from re-reading guest memory in place of raw, so there is no double fetch.
     * (memcpy also copes with indirect tables, which need no alignment.)
     */
    atomic_signal_fence(memory_order_seq_cst);
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    *d = (struct desc){le64toh(addr), le32toh(len), le16toh(flags), le16toh(next)};
}

void virtq_init(struct virtq *q, const struct guest_mem *mem)
{
    memset(q, 0, sizeof(*q));
    q->mem = mem;
    q->max_size = VIRTQ_MAX_SIZE;
    q->notify = true;
}

void virtq_reset(struct virtq *q)
{
    /* What the driver and the device configured stays; the run state starts over. */
    *q = (struct virtq){
        .mem = q->mem,
        .max_size = q->max_size,
        .size = q->size,
        .desc_gpa = q->desc_gpa,
        .avail_gpa = q->avail_gpa,
        .used_gpa = q->used_gpa,
        .event_idx = q->event_idx,
        .notify = true,
    };
}

/* Host pointer for a ring part, or NULL if it is misaligned or not entirely RAM. */
static uint8_t *map_ring(const struct guest_mem *mem, uint64_t gpa, uint32_t len, uint64_t align)
{
    if (gpa % align != 0)
        return NULL;
    return gpa_to_host(mem, gpa, len);
}

int virtq_enable(struct virtq *q)
{
    uint16_t n = q->size;
    if (!q->mem || n == 0 || (n & (n - 1)) != 0 || n > q->max_size || n > VIRTQ_MAX_SIZE)
        return -EINVAL;
    uint8_t *desc = map_ring(q->mem, q->desc_gpa, VIRTQ_DESC_BYTES(n), 16);
    uint8_t *avail = map_ring(q->mem, q->avail_gpa, VIRTQ_AVAIL_BYTES(n), 2);
    uint8_t *used = map_ring(q->mem, q->used_gpa, VIRTQ_USED_BYTES(n), 4);
    if (!desc || !avail || !used)
        return -EINVAL;
    virtq_reset(q);
    q->ring_size = n;
    q->desc = desc;
    q->avail = avail;
    q->used = used;
    q->ready = true;
    return 0;
}

/* Append one translated buffer to c, enforcing the chain-wide rules. */
static int add_buf(const struct virtq *q, struct virtq_chain *c, const struct desc *d)
{
    bool writable = d->flags & VIRTQ_DESC_F_WRITE;
    if (c->count == VIRTQ_CHAIN_MAX)
        return -ELOOP;
    /* The spec requires all device-readable buffers before any device-writable one. */
    if (!writable && c->count > 0 && c->buf[c->count - 1].writable)
        return -EINVAL;
    void *host = gpa_to_host(q->mem, d->addr, d->len);
    if (!host)
        return -EFAULT;
    uint32_t *total = writable ? &c->writable_len : &c->readable_len;
    if (d->len > UINT32_MAX - *total)
        return -EOVERFLOW;
    *total += d->len;
    c->buf[c->count++] = (struct virtq_buf){host, d->len, writable};
    return 0;
}

/* Walk the table an INDIRECT descriptor points at: it ends the chain. */
static int walk_indirect(const struct virtq *q, struct virtq_chain *c, const struct desc *ind)
{
    /* The WRITE flag of the descriptor pointing at the table is ignored, as the spec says. */
    if (ind->flags & VIRTQ_DESC_F_NEXT)
        return -EINVAL;
    if (ind->len == 0 || ind->len % 16 != 0 || ind->len / 16 > VIRTQ_CHAIN_MAX)
        return -EINVAL;
    const uint8_t *table = gpa_to_host(q->mem, ind->addr, ind->len);
    if (!table)
        return -EFAULT;
    uint32_t n = ind->len / 16;
    uint32_t i = 0;
    /* n distinct entries: a walk needing more steps than that is a loop. */
    for (uint32_t steps = 0;; steps++) {
        if (steps == n)
            return -ELOOP;
        struct desc d;
        read_desc(table, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT)
            return -EINVAL;
        int err = add_buf(q, c, &d);
        if (err)
            return err;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (d.next >= n)
            return -EINVAL;
        i = d.next;
    }
}

/* Walk the chain starting at head (already checked < ring_size) into c. */
static int walk_chain(const struct virtq *q, struct virtq_chain *c, uint16_t head)
{
    uint32_t limit = q->ring_size < VIRTQ_CHAIN_MAX ? q->ring_size : VIRTQ_CHAIN_MAX;
    uint32_t i = head;
    c->head = head;
    c->count = 0;
    c->readable_len = 0;
    c->writable_len = 0;
    for (uint32_t steps = 0;; steps++) {
        if (steps == limit)
            return -ELOOP;
        struct desc d;
        read_desc(q->desc, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT)
            return walk_indirect(q, c, &d);
        int err = add_buf(q, c, &d);
        if (err)
            return err;
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (d.next >= q->ring_size)
            return -EINVAL;
        i = d.next;
    }
}

static int fail(struct virtq *q, int err)
{
    q->broken = true;
    return err;
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
    if (q->broken)
        return -EIO;
    if (!q->ready)
        return 0;
    uint16_t pending = (uint16_t)(ld16(avail_idx_ptr(q)) - q->last_avail);
    if (pending == 0)
        return 0;
    /* The ring holds at most ring_size entries: anything more is a corrupt idx. */
    if (pending > q->ring_size)
        return fail(q, -EINVAL);
    /* Pairs with the driver's barrier before its idx update: the entries it covers are ready. */
    atomic_thread_fence(memory_order_acquire);
    uint16_t head = ld16(avail_ring_ptr(q, q->last_avail));
    if (head >= q->ring_size)
        return fail(q, -EINVAL);
    int err = walk_chain(q, c, head);
    if (err)
        return fail(q, err);
    q->last_avail++;
    /* With event_idx, notifications stay on only if avail_event follows what we consumed. */
    if (q->event_idx && q->notify)
        st16(avail_event_ptr(q), q->last_avail);
    return 1;
}

void virtq_fill(struct virtq *q, uint16_t i, uint16_t head, uint32_t written)
{
    if (!q->ready)
        return;
    uint8_t *elem = used_elem_ptr(q, (uint16_t)(q->used_idx + i));
    st32(elem, head);
    st32(elem + 4, written);
}

void virtq_flush(struct virtq *q, uint16_t n)
{
    if (!q->ready)
        return;
    q->used_idx = (uint16_t)(q->used_idx + n);
    /* The driver reads the elements once it sees idx move: they must be visible first. */
    atomic_thread_fence(memory_order_release);
    st16(used_idx_ptr(q), q->used_idx);
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
    virtq_fill(q, 0, head, written);
    virtq_flush(q, 1);
}

bool virtq_should_signal(struct virtq *q)
{
    if (!q->ready)
        return false;
    uint16_t old = q->signalled_used, cur = q->used_idx;
    q->signalled_used = cur;
    if (old == cur)
        return false;
    /*
     * Store-load ordering: used->idx must be visible before we read the driver's suppression
     * state, or a driver re-enabling interrupts after an old idx check would never get one.
     */
    atomic_thread_fence(memory_order_seq_cst);
    if (q->event_idx) {
        /* Signal iff used_event lies in [old, cur): the entry it names was just written. */
        uint16_t ev = ld16(used_event_ptr(q));
        return (uint16_t)(cur - ev - 1) < (uint16_t)(cur - old);
    }
    return !(ld16(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

void virtq_set_notify(struct virtq *q, bool on)
{
    q->notify = on;
    if (!q->ready)
        return;
    if (q->event_idx) {
        /* flags must stay 0 with event_idx; "off" is just avail_event no longer following. */
        if (on)
            st16(avail_event_ptr(q), q->last_avail);
        return;
    }
    st16(q->used, on ? 0 : VIRTQ_USED_F_NO_NOTIFY);
}

bool virtq_enable_notify_and_check(struct virtq *q)
{
    if (!q->ready || q->broken)
        return false;
    virtq_set_notify(q, true);
    /*
     * The driver stores avail->idx then reads our flag/avail_event; we store the flag then read
     * avail->idx. With a full fence on both sides at least one of us sees the other's store.
     */
    atomic_thread_fence(memory_order_seq_cst);
    return ld16(avail_idx_ptr(q)) != q->last_avail;
}

void virtq_unpop(struct virtq *q, uint16_t n)
{
    q->last_avail = (uint16_t)(q->last_avail - n);
}

bool virtq_wait_for_more(struct virtq *q, uint16_t seen)
{
    if (!q->ready || q->broken)
        return false;
    q->notify = true;
    /* With event_idx the kick comes once the driver's idx passes seen, not our rewound index. */
    if (q->event_idx)
        st16(avail_event_ptr(q), seen);
    else
        st16(q->used, 0);
    atomic_thread_fence(memory_order_seq_cst); /* pairs as in virtq_enable_notify_and_check */
    return ld16(avail_idx_ptr(q)) != seen;
}

/* Copy len bytes at byte off of the buffer stream into dst; the guest cannot change the copy. */
void virtq_bufs_read(const struct virtq_buf *buf, unsigned n, uint64_t off, void *dst, uint64_t len)
{
    uint8_t *out = dst;
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (off >= buf[i].len) {
            off -= buf[i].len;
            continue;
        }
        uint64_t take = buf[i].len - off < len ? buf[i].len - off : len;
        memcpy(out, (const uint8_t *)buf[i].host + off, take);
        out += take;
        len -= take;
        off = 0;
    }
}

/* Copy len bytes from src to byte offset off of the buffer stream. */
void virtq_bufs_write(const struct virtq_buf *buf, unsigned n, uint64_t off, const void *src,
                      uint64_t len)
{
    const uint8_t *in = src;
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (off >= buf[i].len) {
            off -= buf[i].len;
            continue;
        }
        uint64_t take = buf[i].len - off < len ? buf[i].len - off : len;
        memcpy((uint8_t *)buf[i].host + off, in, take);
        in += take;
        len -= take;
        off = 0;
    }
}

/* iovecs for bytes [off, off + len) of the buffer stream (at most n of them, none empty). */
unsigned virtq_bufs_iov(const struct virtq_buf *buf, unsigned n, uint64_t off, uint64_t len,
                        struct iovec *iov)
{
    unsigned cnt = 0;
    for (unsigned i = 0; i < n && len > 0; i++) {
        if (off >= buf[i].len) {
            off -= buf[i].len;
            continue;
        }
        uint64_t take = buf[i].len - off < len ? buf[i].len - off : len;
        iov[cnt++] = (struct iovec){(uint8_t *)buf[i].host + off, (size_t)take};
        len -= take;
        off = 0;
    }
    return cnt;
}
