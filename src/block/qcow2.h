/* qcow2.h: qcow2 images: the state the open, metadata and I/O parts share (private to block/). */
#ifndef KILN_BLOCK_QCOW2_H
#define KILN_BLOCK_QCOW2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/image.h"

/* L1 and L2 entries (big-endian on disk, host order in memory). */
#define QCOW2_COPIED (1ULL << 63)               /* the cluster's refcount is exactly one */
#define QCOW2_COMPRESSED (1ULL << 62)           /* L2: a compressed cluster descriptor */
#define QCOW2_ZERO 1ULL                         /* L2, v3: the cluster reads as zeros */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ULL /* bits 9-55 */
#define QCOW2_L1_RESERVED 0x7f000000000001ffULL /* bits 0-8 and 56-62 */
#define QCOW2_L2_RESERVED 0x3f000000000001feULL /* bits 1-8 and 56-61 */
#define QCOW2_RT_RESERVED 0x1ffULL              /* refcount table: bits 0-8 */
#define QCOW2_MAX_HOST_OFFSET (1ULL << 56)      /* L2 entries hold offsets below 64 PiB */

/* Limits on what an image may make kiln hold in memory. */
#define QCOW2_L1_MAX_BYTES (32u << 20)
#define QCOW2_RT_MAX_BYTES (8u << 20)
#define QCOW2_L2_CACHE_BYTES (4u << 20)
#define QCOW2_RB_CACHE_BYTES (1u << 20)
#define QCOW2_CACHE_MIN 4u
/* Freed clusters waiting for the unmapping to be durable before they can be reused. */
#define QCOW2_PENDING_SOFT 4096u

/*
 * A bounded cache of one kind of cluster-sized table (L2 tables or refcount blocks), kept as
 * on disk (big-endian). Lock held for every use. An entry is pinned while a caller holds its
 * data pointer: eviction skips pinned entries.
 */
struct qcow2_cache_entry {
    uint64_t off; /* the table's offset in the file; 0: a free slot */
    uint64_t lru; /* tick of the last use */
    uint8_t *data;
    int32_t next; /* hash chain, -1 at the end */
    uint32_t pins;
    bool dirty;
};

struct qcow2_cache {
    struct qcow2_cache_entry *e;
    int32_t *buckets; /* nbuckets heads, -1 if empty */
    uint32_t n, max, nbuckets;
    uint64_t tick;
    uint32_t ndirty;
    bool l2; /* L2 tables: writing one back must follow data and refcounts (see meta_flush) */
};

/* A range of host bytes whose clusters lose one reference once the unmapping is durable. */
struct qcow2_free {
    uint64_t off, len;
};

/* A guest cluster some request is allocating: others wait for it instead of allocating twice. */
struct qcow2_alloc {
    uint64_t gc;
    struct qcow2_alloc *next;
};

struct qcow2 {
    struct disk_image img; /* first: freeing the image frees this */
    /* Immutable after open. */
    unsigned version, cluster_bits, l2_bits, refcount_order, rb_shift;
    uint64_t cluster_size;
    uint64_t l1_offset, l1_size; /* entries */
    uint64_t max_clusters;       /* host clusters addressable by an L2 entry */
    /* Everything below: lock held. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* an allocation or a drain ended */
    uint64_t *l1;
    uint64_t l1_dirty_lo, l1_dirty_hi; /* entries [lo, hi) not yet written back */
    uint64_t *rt;                      /* refcount table; NULL when read-only */
    uint64_t rt_offset, rt_clusters, rt_size;
    uint64_t rt_dirty_lo, rt_dirty_hi;
    uint64_t end;       /* bytes: the file's size at open or the end of the last allocation */
    uint64_t free_hint; /* no free cluster below this index */
    struct qcow2_cache l2c, rbc;
    struct qcow2_alloc *allocs;
    struct qcow2_free *pend;
    size_t npend, pend_cap;
    /* In-flight file I/O, counted by epoch parity, so that freeing can wait for old I/O. */
    uint64_t epoch;
    atomic_uint io[2];
    atomic_bool drain_waiting;
    bool draining;
};

/* ---- qcow2_meta.c: caches, refcounts, allocation, write-back ordering. */

int qcow2_cache_init(struct qcow2_cache *c, uint64_t cluster_size, uint32_t budget, bool l2);
void qcow2_cache_free(struct qcow2_cache *c);

/*
 * The L2 table at off, pinned. load: read it from the file on a miss (-EIO if it cannot be);
 * otherwise it is a new table: zeroed (and dirty). Release with qcow2_l2_put.
 */
int qcow2_l2_get(struct qcow2 *q, uint64_t off, bool load, uint8_t **data, int32_t *slot);
void qcow2_l2_put(struct qcow2 *q, int32_t slot, bool dirty);

/* Entry i of an L2 table (cluster-sized, big-endian). */
uint64_t qcow2_l2_entry(const uint8_t *table, uint64_t i);
void qcow2_l2_set(uint8_t *table, uint64_t i, uint64_t entry);

/* Refcount of host cluster c (0 when its refcount block is not allocated). */
int qcow2_refcount(struct qcow2 *q, uint64_t c, uint64_t *rc);

/* Allocate one host cluster (refcount 1). fresh: past everything the file held, so it reads
 * as zeros without being written. */
int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off, bool *fresh);

/* Drop one reference from every cluster in [off, off + len) now (nothing may point at them). */
int qcow2_unref(struct qcow2 *q, uint64_t off, uint64_t len);

/* Room for n more pending frees, so that unmapping cannot fail half-way. -ENOMEM. */
int qcow2_pend_reserve(struct qcow2 *q, size_t n);
/* Unref [off, off + len) once the unmapping that freed it is durable (room reserved). */
void qcow2_pend_free(struct qcow2 *q, uint64_t off, uint64_t len);

/*
 * Write back dirty metadata in the order a crash needs: refcount blocks, then (after data and
 * refcounts are durable) L2 tables, then (after those) L1 entries. Leaves it un-synced.
 */
int qcow2_meta_flush(struct qcow2 *q);

/* qcow2_meta_flush, fdatasync, then the pending frees. Lock held (dropped while waiting). */
int qcow2_flush_locked(struct qcow2 *q);

/* The flush operation: as above, with the final fdatasync outside the lock. */
int qcow2_flush(struct disk_image *img);

/* In-flight I/O: begin under the lock (returns the parity), end without it. */
unsigned qcow2_io_begin(struct qcow2 *q);
void qcow2_io_end(struct qcow2 *q, unsigned parity);

/* Free what the metadata side allocated. */
void qcow2_meta_free(struct qcow2 *q);

/* ---- qcow2_io.c: the operations. */

extern const struct disk_image_ops qcow2_ops;

/* qcow2.c: the close operation. */
int qcow2_close(struct disk_image *img);

#endif
