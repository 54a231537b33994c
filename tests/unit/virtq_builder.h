/* virtq_builder.h: test helper: a fake virtio driver laying out split rings in guest RAM. */
#ifndef KILN_TEST_VIRTQ_BUILDER_H
#define KILN_TEST_VIRTQ_BUILDER_H

/*
 * Header-only (static inline) because each unit test links only its own file and fixtures.c.
 * Everything goes through guest_write/guest_read, i.e. the way a driver sees memory: by gpa.
 */
#include <check.h>
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "memory.h"
#include "virtio/virtqueue.h"

/* One buffer of a chain as the driver describes it. */
struct vqb_seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

struct vqb {
    const struct guest_mem *gm;
    uint16_t size;
    uint64_t desc_gpa, avail_gpa, used_gpa;
    uint16_t next_desc; /* next free descriptor slot (wraps around the table) */
    uint16_t avail_idx; /* driver's avail idx: entries offered, made visible by vqb_publish */
};

static inline void vqb_w16(const struct guest_mem *gm, uint64_t gpa, uint16_t v)
{
    uint16_t le = htole16(v);
    ck_assert_int_eq(guest_write(gm, gpa, &le, sizeof(le)), 0);
}

static inline uint16_t vqb_r16(const struct guest_mem *gm, uint64_t gpa)
{
    uint16_t le = 0;
    ck_assert_int_eq(guest_read(gm, gpa, &le, sizeof(le)), 0);
    return le16toh(le);
}

static inline uint32_t vqb_r32(const struct guest_mem *gm, uint64_t gpa)
{
    uint32_t le = 0;
    ck_assert_int_eq(guest_read(gm, gpa, &le, sizeof(le)), 0);
    return le32toh(le);
}

/* Write descriptor idx of the table at table_gpa (the ring's table or an indirect one). */
static inline void vqb_put_desc(const struct guest_mem *gm, uint64_t table_gpa, uint32_t idx,
                                uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t raw[16];
    uint64_t a = htole64(addr);
    uint32_t l = htole32(len);
    uint16_t f = htole16(flags), n = htole16(next);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &l, 4);
    memcpy(raw + 12, &f, 2);
    memcpy(raw + 14, &n, 2);
    ck_assert_int_eq(guest_write(gm, table_gpa + 16 * (uint64_t)idx, raw, sizeof(raw)), 0);
}

/* Lay out (and zero, as a driver allocating them would) the three ring parts. */
static inline void vqb_init(struct vqb *b, const struct guest_mem *gm, uint16_t size,
                            uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa)
{
    *b = (struct vqb){gm, size, desc_gpa, avail_gpa, used_gpa, 0, 0};
    ck_assert_ptr_nonnull(gpa_to_host(gm, desc_gpa, VIRTQ_DESC_BYTES(size)));
    ck_assert_ptr_nonnull(gpa_to_host(gm, avail_gpa, VIRTQ_AVAIL_BYTES(size)));
    ck_assert_ptr_nonnull(gpa_to_host(gm, used_gpa, VIRTQ_USED_BYTES(size)));
    memset(gpa_to_host(gm, desc_gpa, 0), 0, VIRTQ_DESC_BYTES(size));
    memset(gpa_to_host(gm, avail_gpa, 0), 0, VIRTQ_AVAIL_BYTES(size));
    memset(gpa_to_host(gm, used_gpa, 0), 0, VIRTQ_USED_BYTES(size));
}

/* What the transport does: hand the driver's queue configuration to the device's virtq. */
static inline void vqb_attach(const struct vqb *b, struct virtq *q)
{
    q->size = b->size;
    q->desc_gpa = b->desc_gpa;
    q->avail_gpa = b->avail_gpa;
    q->used_gpa = b->used_gpa;
}

/* Raw write into the ring's descriptor table (for hand-made, possibly hostile, chains). */
static inline void vqb_desc(const struct vqb *b, uint16_t idx, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next)
{
    vqb_put_desc(b->gm, b->desc_gpa, idx, addr, len, flags, next);
}

/* Write segs as an indirect table at table_gpa, entries linked 0 -> 1 -> ... in order. */
static inline void vqb_table(const struct guest_mem *gm, uint64_t table_gpa,
                             const struct vqb_seg *segs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags =
            (segs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        vqb_put_desc(gm, table_gpa, i, segs[i].gpa, segs[i].len, flags, (uint16_t)(i + 1));
    }
}

/*
 * Build a chain in free descriptor slots: n direct buffers, then (if ni > 0) one INDIRECT
 * descriptor for a table of ni buffers written at table_gpa. Returns the head index. The chain
 * is neither offered nor published.
 */
static inline uint16_t vqb_chain_ind(struct vqb *b, const struct vqb_seg *segs, unsigned n,
                                     uint64_t table_gpa, const struct vqb_seg *isegs, unsigned ni)
{
    unsigned total = n + (ni > 0);
    ck_assert_uint_gt(total, 0);
    ck_assert_uint_le(total, b->size);
    uint16_t mask = (uint16_t)(b->size - 1);
    uint16_t head = b->next_desc & mask;
    for (unsigned i = 0; i < total; i++) {
        uint16_t slot = (uint16_t)(head + i) & mask;
        uint16_t next = (uint16_t)(slot + 1) & mask;
        uint16_t more = i + 1 < total ? VIRTQ_DESC_F_NEXT : 0;
        if (i < n) {
            uint16_t w = segs[i].write ? VIRTQ_DESC_F_WRITE : 0;
            vqb_desc(b, slot, segs[i].gpa, segs[i].len, w | more, next);
        } else {
            vqb_table(b->gm, table_gpa, isegs, ni);
            vqb_desc(b, slot, table_gpa, 16 * ni, VIRTQ_DESC_F_INDIRECT, 0);
        }
    }
    b->next_desc = (uint16_t)(head + total) & mask;
    return head;
}

static inline uint16_t vqb_chain(struct vqb *b, const struct vqb_seg *segs, unsigned n)
{
    return vqb_chain_ind(b, segs, n, 0, NULL, 0);
}

/* Put head in the next avail ring entry (not yet visible to the device). */
static inline void vqb_offer(struct vqb *b, uint16_t head)
{
    uint64_t slot = b->avail_idx & (b->size - 1);
    vqb_w16(b->gm, b->avail_gpa + 4 + 2 * slot, head);
    b->avail_idx++;
}

/* Make offered entries visible: write avail->idx. */
static inline void vqb_publish(struct vqb *b)
{
    vqb_w16(b->gm, b->avail_gpa + 2, b->avail_idx);
}

/* Build, offer and publish a direct chain; returns its head. */
static inline uint16_t vqb_add(struct vqb *b, const struct vqb_seg *segs, unsigned n)
{
    uint16_t head = vqb_chain(b, segs, n);
    vqb_offer(b, head);
    vqb_publish(b);
    return head;
}

/* Offer and publish a hand-made chain starting at head. */
static inline void vqb_add_head(struct vqb *b, uint16_t head)
{
    vqb_offer(b, head);
    vqb_publish(b);
}

static inline void vqb_set_avail_idx(struct vqb *b, uint16_t idx)
{
    b->avail_idx = idx;
    vqb_publish(b);
}

static inline void vqb_set_avail_flags(const struct vqb *b, uint16_t flags)
{
    vqb_w16(b->gm, b->avail_gpa, flags);
}

static inline void vqb_set_used_event(const struct vqb *b, uint16_t v)
{
    vqb_w16(b->gm, b->avail_gpa + 4 + 2 * (uint64_t)b->size, v);
}

static inline uint16_t vqb_used_flags(const struct vqb *b)
{
    return vqb_r16(b->gm, b->used_gpa);
}

static inline uint16_t vqb_used_idx(const struct vqb *b)
{
    return vqb_r16(b->gm, b->used_gpa + 2);
}

static inline uint16_t vqb_avail_event(const struct vqb *b)
{
    return vqb_r16(b->gm, b->used_gpa + 4 + 8 * (uint64_t)b->size);
}

/* The used ring element for free-running used index idx. */
static inline void vqb_used_elem(const struct vqb *b, uint16_t idx, uint32_t *id, uint32_t *len)
{
    uint64_t elem = b->used_gpa + 4 + 8 * (uint64_t)(idx & (b->size - 1));
    *id = vqb_r32(b->gm, elem);
    *len = vqb_r32(b->gm, elem + 4);
}

#endif
