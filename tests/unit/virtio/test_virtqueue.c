/* test_virtqueue.c: split virtqueue pop/push, notification suppression, and hostile drivers. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memory.h"
#include "util.h"
#include "virtq_builder.h"
#include "virtio/virtqueue.h"

#define RAM (16ULL << 20)
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define TABLE_GPA 0x40000ULL
#define BUF_GPA 0x100000ULL

/* One queue over fresh fake guest RAM, with the fake driver that feeds it. */
struct t {
    struct guest_mem gm;
    struct virtq q;
    struct vqb b;
    struct virtq_chain c;
};

static void setup(struct t *t, uint16_t size, bool event_idx)
{
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    virtq_init(&t->q, &t->gm);
    vqb_init(&t->b, &t->gm, size, DESC_GPA, AVAIL_GPA, USED_GPA);
    vqb_attach(&t->b, &t->q);
    t->q.event_idx = event_idx;
    ck_assert_int_eq(virtq_enable(&t->q), 0);
}

static void teardown(struct t *t)
{
    guest_mem_free(&t->gm);
}

/* Start both sides at free-running index idx, as if idx chains had already gone round. */
static void start_at(struct t *t, uint16_t idx)
{
    t->q.last_avail = t->q.used_idx = t->q.signalled_used = idx;
    vqb_set_avail_idx(&t->b, idx);
    vqb_w16(&t->gm, USED_GPA + 2, idx);
}

static void check_buf(const struct t *t, unsigned i, uint64_t gpa, uint32_t len, bool writable)
{
    ck_assert_ptr_eq(t->c.buf[i].host, gpa_to_host(&t->gm, gpa, len));
    ck_assert_uint_eq(t->c.buf[i].len, len);
    ck_assert_int_eq(t->c.buf[i].writable, writable);
}

START_TEST(test_enable_valid)
{
    struct t t;
    setup(&t, 256, false);
    ck_assert(t.q.ready);
    ck_assert(!t.q.broken);
    ck_assert_ptr_eq(t.q.desc, gpa_to_host(&t.gm, DESC_GPA, 0));
    ck_assert_ptr_eq(t.q.avail, gpa_to_host(&t.gm, AVAIL_GPA, 0));
    ck_assert_ptr_eq(t.q.used, gpa_to_host(&t.gm, USED_GPA, 0));
    /* Later writes to the configuration cannot disturb the running queue. */
    t.q.size = 3;
    ck_assert_uint_eq(t.q.ring_size, 256);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    teardown(&t);
}
END_TEST

static int enable_with(struct t *t, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
    virtq_init(&t->q, &t->gm);
    t->q.size = size;
    t->q.desc_gpa = desc;
    t->q.avail_gpa = avail;
    t->q.used_gpa = used;
    int r = virtq_enable(&t->q);
    ck_assert_int_eq(t->q.ready, r == 0);
    return r;
}

START_TEST(test_enable_bad_size)
{
    struct t t;
    ck_assert_int_eq(guest_mem_init(&t.gm, RAM), 0);
    const uint16_t bad[] = {0, 3, 100, 255, 32769, 49152, 65535};
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
        ck_assert_int_eq(enable_with(&t, bad[i], DESC_GPA, AVAIL_GPA, USED_GPA), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 1, DESC_GPA, AVAIL_GPA, USED_GPA), 0);
    /* The largest queue: 512 KiB of descriptors, 64 KiB avail ring, 256 KiB used ring. */
    ck_assert_int_eq(enable_with(&t, 32768, 0x100000, 0x200000, 0x300000), 0);
    /* A device may lower the limit. */
    virtq_init(&t.q, &t.gm);
    t.q.max_size = 128;
    t.q.size = 256;
    t.q.desc_gpa = DESC_GPA;
    t.q.avail_gpa = AVAIL_GPA;
    t.q.used_gpa = USED_GPA;
    ck_assert_int_eq(virtq_enable(&t.q), -EINVAL);
    t.q.size = 128;
    ck_assert_int_eq(virtq_enable(&t.q), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_enable_bad_rings)
{
    struct t t;
    ck_assert_int_eq(guest_mem_init(&t.gm, RAM), 0);
    /* Misaligned: the descriptor table needs 16, the avail ring 2, the used ring 4. */
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA + 8, AVAIL_GPA, USED_GPA), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA, AVAIL_GPA + 1, USED_GPA), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA, AVAIL_GPA, USED_GPA + 2), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA + 16, AVAIL_GPA + 2, USED_GPA + 4), 0);
    /* Outside RAM, straddling its end, or wrapping the address space. */
    ck_assert_int_eq(enable_with(&t, 16, RAM, AVAIL_GPA, USED_GPA), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA, RAM + 0x1000, USED_GPA), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA, AVAIL_GPA, RAM - 64), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3), -EINVAL);
    ck_assert_int_eq(enable_with(&t, 16, 0xfffffffffffffff0ULL, AVAIL_GPA, USED_GPA), -EINVAL);
    /* A table ending exactly at the end of RAM is fine; a used ring 2 bytes past it is not. */
    ck_assert_int_eq(enable_with(&t, 16, RAM - 256, AVAIL_GPA, RAM - 136), 0);
    ck_assert_int_eq(enable_with(&t, 16, RAM - 256, AVAIL_GPA, RAM - 132), -EINVAL);
    /* No guest memory at all. */
    virtq_init(&t.q, NULL);
    t.q.size = 16;
    ck_assert_int_eq(virtq_enable(&t.q), -EINVAL);
    teardown(&t);
}
END_TEST

START_TEST(test_not_ready_and_reset)
{
    struct t t;
    ck_assert_int_eq(guest_mem_init(&t.gm, RAM), 0);
    virtq_init(&t.q, &t.gm);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    ck_assert(!virtq_enable_notify_and_check(&t.q));
    teardown(&t);

    setup(&t, 16, true);
    struct vqb_seg s = {BUF_GPA, 64, false};
    vqb_add(&t.b, &s, 1);
    virtq_reset(&t.q);
    ck_assert(!t.q.ready);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    /* Reset keeps what the driver configured; enabling again starts from index 0. */
    ck_assert_uint_eq(t.q.size, 16);
    ck_assert(t.q.event_idx);
    ck_assert_int_eq(virtq_enable(&t.q), 0);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    teardown(&t);
}
END_TEST

START_TEST(test_direct_chain)
{
    struct t t;
    setup(&t, 16, false);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    memcpy(gpa_to_host(&t.gm, BUF_GPA, 5), "hello", 5);
    const struct vqb_seg segs[] = {
        {BUF_GPA, 5, false}, {BUF_GPA + 0x1000, 100, false}, {BUF_GPA + 0x2000, 512, true}};
    uint16_t head = vqb_add(&t.b, segs, 3);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.head, head);
    ck_assert_uint_eq(t.c.count, 3);
    ck_assert_uint_eq(t.c.readable_len, 105);
    ck_assert_uint_eq(t.c.writable_len, 512);
    for (unsigned i = 0; i < 3; i++)
        check_buf(&t, i, segs[i].gpa, segs[i].len, segs[i].write);
    ck_assert_mem_eq(t.c.buf[0].host, "hello", 5);
    ck_assert_uint_eq(t.q.last_avail, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    ck_assert(!t.q.broken);
    teardown(&t);
}
END_TEST

START_TEST(test_zero_length_and_write_only_chain)
{
    struct t t;
    setup(&t, 16, false);
    /* A zero-length buffer at a RAM address, and a chain with no readable part. */
    const struct vqb_seg segs[] = {{BUF_GPA, 0, true}, {RAM - 16, 16, true}};
    vqb_add(&t.b, segs, 2);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.count, 2);
    ck_assert_uint_eq(t.c.readable_len, 0);
    ck_assert_uint_eq(t.c.writable_len, 16);
    check_buf(&t, 1, RAM - 16, 16, true);
    teardown(&t);
}
END_TEST

START_TEST(test_indirect_chain)
{
    struct t t;
    setup(&t, 16, false);
    /* Table entries linked 0 -> 2 -> 1, not in table order. */
    vqb_put_desc(&t.gm, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
    vqb_put_desc(&t.gm, TABLE_GPA, 2, BUF_GPA + 0x100, 32, VIRTQ_DESC_F_NEXT, 1);
    vqb_put_desc(&t.gm, TABLE_GPA, 1, BUF_GPA + 0x200, 64, VIRTQ_DESC_F_WRITE, 0);
    /* The WRITE flag on the descriptor pointing at the table must be ignored. */
    vqb_desc(&t.b, 5, TABLE_GPA, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    vqb_add_head(&t.b, 5);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.head, 5);
    ck_assert_uint_eq(t.c.count, 3);
    check_buf(&t, 0, BUF_GPA, 16, false);
    check_buf(&t, 1, BUF_GPA + 0x100, 32, false);
    check_buf(&t, 2, BUF_GPA + 0x200, 64, true);
    ck_assert_uint_eq(t.c.readable_len, 48);
    ck_assert_uint_eq(t.c.writable_len, 64);
    teardown(&t);
}
END_TEST

START_TEST(test_mixed_direct_indirect)
{
    struct t t;
    setup(&t, 16, false);
    const struct vqb_seg direct[] = {{BUF_GPA, 16, false}, {BUF_GPA + 0x10, 8, false}};
    const struct vqb_seg ind[] = {
        {BUF_GPA + 0x20, 100, false}, {BUF_GPA + 0x1000, 200, true}, {BUF_GPA + 0x2000, 1, true}};
    uint16_t head = vqb_chain_ind(&t.b, direct, 2, TABLE_GPA, ind, 3);
    vqb_add_head(&t.b, head);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.head, head);
    ck_assert_uint_eq(t.c.count, 5);
    check_buf(&t, 0, BUF_GPA, 16, false);
    check_buf(&t, 1, BUF_GPA + 0x10, 8, false);
    for (unsigned i = 0; i < 3; i++)
        check_buf(&t, 2 + i, ind[i].gpa, ind[i].len, ind[i].write);
    ck_assert_uint_eq(t.c.readable_len, 124);
    ck_assert_uint_eq(t.c.writable_len, 201);
    teardown(&t);
}
END_TEST

START_TEST(test_multiple_chains_one_loop)
{
    struct t t;
    setup(&t, 16, false);
    const struct vqb_seg r = {BUF_GPA, 10, false}, w = {BUF_GPA + 0x1000, 20, true};
    const struct vqb_seg rw[] = {r, w};
    uint16_t heads[4];
    heads[0] = vqb_chain(&t.b, rw, 2);
    heads[1] = vqb_chain_ind(&t.b, NULL, 0, TABLE_GPA, rw, 2);
    heads[2] = vqb_chain_ind(&t.b, &r, 1, TABLE_GPA + 0x100, &w, 1);
    heads[3] = vqb_chain(&t.b, &w, 1);
    for (unsigned i = 0; i < 4; i++)
        vqb_offer(&t.b, heads[i]);
    vqb_publish(&t.b);
    unsigned n = 0;
    int ret;
    while ((ret = virtq_pop(&t.q, &t.c)) == 1) {
        ck_assert_uint_lt(n, 4);
        ck_assert_uint_eq(t.c.head, heads[n]);
        ck_assert_uint_eq(t.c.writable_len, 20);
        ck_assert_uint_eq(t.c.readable_len, n == 3 ? 0 : 10);
        n++;
    }
    ck_assert_int_eq(ret, 0);
    ck_assert_uint_eq(n, 4);
    teardown(&t);
}
END_TEST

START_TEST(test_push_used_ring)
{
    struct t t;
    setup(&t, 8, false);
    const struct vqb_seg w = {BUF_GPA, 4096, true};
    uint16_t heads[3];
    for (unsigned i = 0; i < 3; i++)
        heads[i] = vqb_add(&t.b, &w, 1);
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    /* Completion order is the device's choice. */
    const unsigned order[] = {2, 0, 1};
    for (unsigned i = 0; i < 3; i++) {
        virtq_push(&t.q, heads[order[i]], 100 + i);
        ck_assert_uint_eq(vqb_used_idx(&t.b), i + 1);
    }
    for (unsigned i = 0; i < 3; i++) {
        uint32_t id, len;
        vqb_used_elem(&t.b, (uint16_t)i, &id, &len);
        ck_assert_uint_eq(id, heads[order[i]]);
        ck_assert_uint_eq(len, 100 + i);
    }
    ck_assert_uint_eq(t.q.used_idx, 3);
    teardown(&t);
}
END_TEST

START_TEST(test_index_wraparound)
{
    struct t t;
    setup(&t, 8, true);
    start_at(&t, 65533);
    uint16_t heads[6];
    for (unsigned i = 0; i < 6; i++) {
        const struct vqb_seg s = {BUF_GPA + 0x100 * i, 16 + i, false};
        heads[i] = vqb_chain(&t.b, &s, 1);
        vqb_offer(&t.b, heads[i]);
    }
    vqb_publish(&t.b);
    ck_assert_uint_eq(t.b.avail_idx, 3);
    for (unsigned i = 0; i < 6; i++) {
        ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
        ck_assert_uint_eq(t.c.head, heads[i]);
        ck_assert_uint_eq(t.c.readable_len, 16 + i);
    }
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    ck_assert_uint_eq(t.q.last_avail, 3);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 3);
    for (unsigned i = 0; i < 6; i++)
        virtq_push(&t.q, heads[i], i);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 3);
    for (unsigned i = 0; i < 6; i++) {
        uint32_t id, len;
        vqb_used_elem(&t.b, (uint16_t)(65533 + i), &id, &len);
        ck_assert_uint_eq(id, heads[i]);
        ck_assert_uint_eq(len, i);
    }
    teardown(&t);
}
END_TEST

START_TEST(test_full_ring)
{
    struct t t;
    setup(&t, 4, false);
    start_at(&t, 65534);
    const struct vqb_seg s = {BUF_GPA, 1, false};
    for (unsigned i = 0; i < 4; i++)
        vqb_offer(&t.b, vqb_chain(&t.b, &s, 1));
    vqb_publish(&t.b);
    /* Exactly size entries pending is legal. */
    for (unsigned i = 0; i < 4; i++)
        ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_longest_chains)
{
    struct t t;
    setup(&t, 512, false);
    /* VIRTQ_CHAIN_MAX direct descriptors. */
    struct vqb_seg segs[VIRTQ_CHAIN_MAX];
    for (unsigned i = 0; i < VIRTQ_CHAIN_MAX; i++)
        segs[i] = (struct vqb_seg){BUF_GPA + i, 1, i >= 200};
    vqb_add(&t.b, segs, VIRTQ_CHAIN_MAX);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.count, VIRTQ_CHAIN_MAX);
    ck_assert_uint_eq(t.c.readable_len, 200);
    ck_assert_uint_eq(t.c.writable_len, 56);
    /* A full indirect table whose lengths add up to exactly UINT32_MAX. */
    for (unsigned i = 0; i < VIRTQ_CHAIN_MAX; i++)
        segs[i] = (struct vqb_seg){0, (uint32_t)RAM - (i == VIRTQ_CHAIN_MAX - 1), false};
    uint16_t head = vqb_chain_ind(&t.b, NULL, 0, TABLE_GPA, segs, VIRTQ_CHAIN_MAX);
    vqb_add_head(&t.b, head);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.count, VIRTQ_CHAIN_MAX);
    ck_assert_uint_eq(t.c.readable_len, UINT32_MAX);
    teardown(&t);
}
END_TEST

/* ---- Hostile drivers: each case builds one broken chain (or ring) and publishes it. ---- */

static const struct vqb_seg good = {BUF_GPA, 64, false};

static void bad_head(struct vqb *b)
{
    vqb_add_head(b, b->size);
}

static void bad_head_max(struct vqb *b)
{
    vqb_add_head(b, 0xffff);
}

static void bad_next(struct vqb *b)
{
    vqb_desc(b, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, b->size);
    vqb_add_head(b, 0);
}

static void loop_two(struct vqb *b)
{
    vqb_desc(b, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_desc(b, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    vqb_add_head(b, 0);
}

static void loop_self(struct vqb *b)
{
    vqb_desc(b, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    vqb_add_head(b, 0);
}

/* Longer than VIRTQ_CHAIN_MAX, without a loop (needs a queue larger than that). */
static void too_long(struct vqb *b)
{
    for (uint16_t i = 0; i <= VIRTQ_CHAIN_MAX; i++)
        vqb_desc(b, i, BUF_GPA, 1, i < VIRTQ_CHAIN_MAX ? VIRTQ_DESC_F_NEXT : 0, i + 1);
    vqb_add_head(b, 0);
}

/* Direct descriptors plus an indirect table, more than VIRTQ_CHAIN_MAX buffers in all. */
static void too_long_mixed(struct vqb *b)
{
    static struct vqb_seg segs[200];
    for (unsigned i = 0; i < 200; i++)
        segs[i] = (struct vqb_seg){BUF_GPA, 1, false};
    vqb_add_head(b, vqb_chain_ind(b, segs, 200, TABLE_GPA, segs, 100));
}

static void avail_too_far(struct vqb *b)
{
    vqb_chain(b, &good, 1);
    vqb_set_avail_idx(b, b->size + 1);
}

/* The driver "decrements" avail idx: 65535 entries would be pending. */
static void avail_backwards(struct vqb *b)
{
    vqb_set_avail_idx(b, 0xffff);
}

static void indirect_table(struct vqb *b, uint64_t addr, uint32_t len, uint16_t flags)
{
    vqb_table(b->gm, TABLE_GPA, &good, 1);
    vqb_desc(b, 0, addr, len, VIRTQ_DESC_F_INDIRECT | flags, 1);
    vqb_desc(b, 1, BUF_GPA, 16, 0, 0);
    vqb_add_head(b, 0);
}

static void ind_with_next(struct vqb *b)
{
    indirect_table(b, TABLE_GPA, 16, VIRTQ_DESC_F_NEXT);
}

static void ind_len_zero(struct vqb *b)
{
    indirect_table(b, TABLE_GPA, 0, 0);
}

static void ind_len_odd(struct vqb *b)
{
    indirect_table(b, TABLE_GPA, 24, 0);
}

static void ind_outside_ram(struct vqb *b)
{
    indirect_table(b, RAM, 16, 0);
}

static void ind_straddles_ram(struct vqb *b)
{
    indirect_table(b, RAM - 16, 32, 0);
}

static void ind_wraps(struct vqb *b)
{
    indirect_table(b, UINT64_MAX - 15, 32, 0);
}

static void ind_too_big(struct vqb *b)
{
    indirect_table(b, TABLE_GPA, 16 * (VIRTQ_CHAIN_MAX + 1), 0);
}

static void ind_nested(struct vqb *b)
{
    vqb_put_desc(b->gm, TABLE_GPA + 0x100, 0, BUF_GPA, 16, 0, 0);
    vqb_put_desc(b->gm, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_put_desc(b->gm, TABLE_GPA, 1, TABLE_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_desc(b, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_add_head(b, 0);
}

static void ind_loop(struct vqb *b)
{
    vqb_put_desc(b->gm, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_put_desc(b->gm, TABLE_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
    vqb_desc(b, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_add_head(b, 0);
}

static void ind_bad_next(struct vqb *b)
{
    vqb_put_desc(b->gm, TABLE_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    vqb_put_desc(b->gm, TABLE_GPA, 1, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 2);
    vqb_desc(b, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_add_head(b, 0);
}

static const struct vqb_seg w_then_r[] = {{BUF_GPA, 16, true}, {BUF_GPA + 16, 16, false}};

static void order_direct(struct vqb *b)
{
    vqb_add(b, w_then_r, 2);
}

static void order_indirect(struct vqb *b)
{
    vqb_add_head(b, vqb_chain_ind(b, NULL, 0, TABLE_GPA, w_then_r, 2));
}

static void order_across(struct vqb *b)
{
    vqb_add_head(b, vqb_chain_ind(b, &w_then_r[0], 1, TABLE_GPA, &w_then_r[1], 1));
}

/* VIRTQ_CHAIN_MAX buffers of 16 MiB each: 2^32 bytes, one more than a u32 holds. */
static void overflow(struct vqb *b, bool write)
{
    static struct vqb_seg segs[VIRTQ_CHAIN_MAX];
    for (unsigned i = 0; i < VIRTQ_CHAIN_MAX; i++)
        segs[i] = (struct vqb_seg){0, (uint32_t)RAM, write};
    vqb_add_head(b, vqb_chain_ind(b, NULL, 0, TABLE_GPA, segs, VIRTQ_CHAIN_MAX));
}

static void overflow_readable(struct vqb *b)
{
    overflow(b, false);
}

static void overflow_writable(struct vqb *b)
{
    overflow(b, true);
}

static void one_buf(struct vqb *b, uint64_t gpa, uint32_t len)
{
    const struct vqb_seg segs[] = {good, {gpa, len, true}};
    vqb_add(b, segs, 2);
}

static void buf_outside_ram(struct vqb *b)
{
    one_buf(b, RAM, 1);
}

static void buf_straddles_ram(struct vqb *b)
{
    one_buf(b, RAM - 4, 8);
}

static void buf_wraps(struct vqb *b)
{
    one_buf(b, UINT64_MAX - 3, 16);
}

static void buf_empty_outside_ram(struct vqb *b)
{
    one_buf(b, 1ULL << 40, 0);
}

static void buf_ind_outside_ram(struct vqb *b)
{
    const struct vqb_seg bad = {RAM + 0x1000, 16, true};
    vqb_add_head(b, vqb_chain_ind(b, &good, 1, TABLE_GPA, &bad, 1));
}

static const struct hostile {
    const char *name;
    uint16_t size;
    void (*build)(struct vqb *b);
    int err;
} hostile[] = {
    {"head >= size", 16, bad_head, -EINVAL},
    {"head 0xffff", 16, bad_head_max, -EINVAL},
    {"next >= size", 16, bad_next, -EINVAL},
    {"loop of two", 16, loop_two, -ELOOP},
    {"self loop, size 1", 1, loop_self, -ELOOP},
    {"self loop, size 512", 512, loop_self, -ELOOP},
    {"chain > VIRTQ_CHAIN_MAX", 512, too_long, -ELOOP},
    {"direct + indirect > VIRTQ_CHAIN_MAX", 512, too_long_mixed, -ELOOP},
    {"avail idx > size ahead", 16, avail_too_far, -EINVAL},
    {"avail idx backwards", 16, avail_backwards, -EINVAL},
    {"indirect with NEXT", 16, ind_with_next, -EINVAL},
    {"indirect len 0", 16, ind_len_zero, -EINVAL},
    {"indirect len % 16", 16, ind_len_odd, -EINVAL},
    {"indirect table outside RAM", 16, ind_outside_ram, -EFAULT},
    {"indirect table straddles RAM end", 16, ind_straddles_ram, -EFAULT},
    {"indirect table wraps", 16, ind_wraps, -EFAULT},
    {"indirect > VIRTQ_CHAIN_MAX", 16, ind_too_big, -EINVAL},
    {"nested indirect", 16, ind_nested, -EINVAL},
    {"indirect loop", 16, ind_loop, -ELOOP},
    {"indirect next out of table", 16, ind_bad_next, -EINVAL},
    {"readable after writable", 16, order_direct, -EINVAL},
    {"readable after writable, indirect", 16, order_indirect, -EINVAL},
    {"readable after writable, across", 16, order_across, -EINVAL},
    {"readable total overflows", 16, overflow_readable, -EOVERFLOW},
    {"writable total overflows", 16, overflow_writable, -EOVERFLOW},
    {"buffer outside RAM", 16, buf_outside_ram, -EFAULT},
    {"buffer straddles RAM end", 16, buf_straddles_ram, -EFAULT},
    {"buffer addr + len wraps", 16, buf_wraps, -EFAULT},
    {"empty buffer outside RAM", 16, buf_empty_outside_ram, -EFAULT},
    {"indirect buffer outside RAM", 16, buf_ind_outside_ram, -EFAULT},
};

START_TEST(test_hostile)
{
    const struct hostile *h = &hostile[_i];
    struct t t;
    setup(&t, h->size, true);
    h->build(&t.b);
    int r = virtq_pop(&t.q, &t.c);
    ck_assert_msg(r == h->err, "%s: got %d, want %d", h->name, r, h->err);
    ck_assert(t.q.broken);
    ck_assert_uint_eq(t.q.last_avail, 0);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 0);
    /* A broken queue must not even look at guest memory: revoke all access to prove it. */
    ck_assert_int_eq(mprotect(t.gm.base, t.gm.size, PROT_NONE), 0);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), -EIO);
    ck_assert(!virtq_enable_notify_and_check(&t.q));
    ck_assert_int_eq(mprotect(t.gm.base, t.gm.size, PROT_READ | PROT_WRITE), 0);
    /* Device reset: the driver sets the queue up afresh and everything works again. */
    virtq_reset(&t.q);
    ck_assert(!t.q.broken);
    vqb_init(&t.b, &t.gm, h->size, DESC_GPA, AVAIL_GPA, USED_GPA);
    ck_assert_int_eq(virtq_enable(&t.q), 0);
    uint16_t head = vqb_add(&t.b, &good, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(t.c.head, head);
    teardown(&t);
}
END_TEST

/* ---- Notification suppression. ---- */

START_TEST(test_event_idx_signal)
{
    struct t t;
    setup(&t, 16, true);
    ck_assert(!virtq_should_signal(&t.q)); /* nothing pushed */
    /* used_event 0: signal once the entry at index 0 is written, then not again. */
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    /* used_event ahead: nothing until the entry it names is written. */
    vqb_set_used_event(&t.b, 5);
    for (unsigned i = 0; i < 3; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert_uint_eq(t.q.used_idx, 5);
    ck_assert(!virtq_should_signal(&t.q));
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    /* Several pushes at once that pass used_event: one signal. */
    vqb_set_used_event(&t.b, 7);
    for (unsigned i = 0; i < 4; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    ck_assert(!virtq_should_signal(&t.q));
    /* used_event already behind (the driver has not caught up): no signal. */
    vqb_set_used_event(&t.b, 3);
    virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    /* The avail flags are ignored with event_idx. */
    vqb_set_avail_flags(&t.b, VIRTQ_AVAIL_F_NO_INTERRUPT);
    vqb_set_used_event(&t.b, t.q.used_idx);
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    teardown(&t);
}
END_TEST

START_TEST(test_event_idx_wrap)
{
    struct t t;
    setup(&t, 16, true);
    start_at(&t, 65534);
    /* Pushes 65534, 65535, 0: used_event 0 lies in [65534, 1). */
    vqb_set_used_event(&t.b, 0);
    for (unsigned i = 0; i < 3; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 1);
    ck_assert(virtq_should_signal(&t.q));
    start_at(&t, 65534);
    vqb_set_used_event(&t.b, 65535);
    for (unsigned i = 0; i < 3; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    /* used_event 1 is the entry written next, and 65533 lies behind: neither signals yet. */
    start_at(&t, 65534);
    vqb_set_used_event(&t.b, 1);
    for (unsigned i = 0; i < 3; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    start_at(&t, 65534);
    vqb_set_used_event(&t.b, 65533);
    for (unsigned i = 0; i < 3; i++)
        virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    teardown(&t);
}
END_TEST

START_TEST(test_no_interrupt_flag)
{
    struct t t;
    setup(&t, 16, false);
    ck_assert(!virtq_should_signal(&t.q));
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    ck_assert(!virtq_should_signal(&t.q)); /* already signalled for that push */
    vqb_set_avail_flags(&t.b, VIRTQ_AVAIL_F_NO_INTERRUPT);
    virtq_push(&t.q, 0, 0);
    virtq_push(&t.q, 0, 0);
    ck_assert(!virtq_should_signal(&t.q));
    /* used_event means nothing without event_idx. */
    vqb_set_avail_flags(&t.b, 0);
    vqb_set_used_event(&t.b, 1000);
    virtq_push(&t.q, 0, 0);
    ck_assert(virtq_should_signal(&t.q));
    teardown(&t);
}
END_TEST

START_TEST(test_set_notify_flags)
{
    struct t t;
    setup(&t, 16, false);
    vqb_w16(&t.gm, USED_GPA + 4 + 8 * 16, 0xabcd); /* avail_event: must stay untouched */
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0);
    virtq_set_notify(&t.q, false);
    ck_assert_uint_eq(vqb_used_flags(&t.b), VIRTQ_USED_F_NO_NOTIFY);
    vqb_add(&t.b, &good, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(vqb_used_flags(&t.b), VIRTQ_USED_F_NO_NOTIFY);
    virtq_set_notify(&t.q, true);
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 0xabcd);
    teardown(&t);
}
END_TEST

START_TEST(test_set_notify_event_idx)
{
    struct t t;
    setup(&t, 16, true);
    /* Notifications on (the default): avail_event follows every pop. */
    vqb_add(&t.b, &good, 1);
    vqb_add(&t.b, &good, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 2);
    /* Off: avail_event stays behind, and flags stay 0 as the spec requires. */
    virtq_set_notify(&t.q, false);
    vqb_add(&t.b, &good, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 2);
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0);
    virtq_set_notify(&t.q, true);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 3);
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0);
    teardown(&t);
}
END_TEST

/* The device drains the queue with notifications off, then turns them back on. */
static void notify_race(bool event_idx)
{
    struct t t;
    setup(&t, 16, event_idx);
    virtq_set_notify(&t.q, false);
    vqb_add(&t.b, &good, 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 0);
    ck_assert(!virtq_enable_notify_and_check(&t.q)); /* drained: safe to sleep */
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0);
    if (event_idx)
        ck_assert_uint_eq(vqb_avail_event(&t.b), 1);
    /* A buffer published after the last pop but before notifications came back on. */
    virtq_set_notify(&t.q, false);
    vqb_add(&t.b, &good, 1);
    ck_assert(virtq_enable_notify_and_check(&t.q));
    ck_assert(t.q.notify);
    ck_assert_int_eq(virtq_pop(&t.q, &t.c), 1);
    ck_assert(!virtq_enable_notify_and_check(&t.q));
    if (event_idx)
        ck_assert_uint_eq(vqb_avail_event(&t.b), 2);
    teardown(&t);
}

START_TEST(test_notify_race_flags)
{
    notify_race(false);
}
END_TEST

START_TEST(test_notify_race_event_idx)
{
    notify_race(true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtqueue");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_enable_valid);
    tcase_add_test(tc, test_enable_bad_size);
    tcase_add_test(tc, test_enable_bad_rings);
    tcase_add_test(tc, test_not_ready_and_reset);
    tcase_add_test(tc, test_direct_chain);
    tcase_add_test(tc, test_zero_length_and_write_only_chain);
    tcase_add_test(tc, test_indirect_chain);
    tcase_add_test(tc, test_mixed_direct_indirect);
    tcase_add_test(tc, test_multiple_chains_one_loop);
    tcase_add_test(tc, test_push_used_ring);
    tcase_add_test(tc, test_index_wraparound);
    tcase_add_test(tc, test_full_ring);
    tcase_add_test(tc, test_longest_chains);
    tcase_add_loop_test(tc, test_hostile, 0, (int)ARRAY_SIZE(hostile));
    tcase_add_test(tc, test_event_idx_signal);
    tcase_add_test(tc, test_event_idx_wrap);
    tcase_add_test(tc, test_no_interrupt_flag);
    tcase_add_test(tc, test_set_notify_flags);
    tcase_add_test(tc, test_set_notify_event_idx);
    tcase_add_test(tc, test_notify_race_flags);
    tcase_add_test(tc, test_notify_race_event_idx);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
