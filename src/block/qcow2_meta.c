/* qcow2_meta.c: qcow2 metadata: table caches, refcounts, cluster allocation, crash-safe flushes. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/io.h"
#include "block/qcow2.h"

/* ---- Table caches. */

static uint32_t bucket_of(const struct qcow2_cache *c, uint64_t off)
{
    return (uint32_t)((off * 0x9e3779b97f4a7c15ULL) >> 40) & (c->nbuckets - 1);
}

int qcow2_cache_init(struct qcow2_cache *c, uint64_t cluster_size, uint32_t budget, bool l2)
{
    memset(c, 0, sizeof(*c));
    c->l2 = l2;
    c->max = (uint32_t)(budget / cluster_size);
    if (c->max < QCOW2_CACHE_MIN)
        c->max = QCOW2_CACHE_MIN;
    c->nbuckets = 1;
    while (c->nbuckets < 2 * c->max)
        c->nbuckets <<= 1;
    c->e = calloc(c->max, sizeof(*c->e));
    c->buckets = malloc(c->nbuckets * sizeof(*c->buckets));
    if (!c->e || !c->buckets)
        return -ENOMEM;
    memset(c->buckets, 0xff, c->nbuckets * sizeof(*c->buckets)); /* all -1 */
    return 0;
}

void qcow2_cache_free(struct qcow2_cache *c)
{
    for (uint32_t i = 0; c->e && i < c->n; i++)
        free(c->e[i].data);
    free(c->e);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static int32_t cache_find(const struct qcow2_cache *c, uint64_t off)
{
    for (int32_t s = c->buckets[bucket_of(c, off)]; s >= 0; s = c->e[s].next)
        if (c->e[s].off == off)
            return s;
    return -1;
}

static void cache_unlink(struct qcow2_cache *c, int32_t slot)
{
    int32_t *p = &c->buckets[bucket_of(c, c->e[slot].off)];
    while (*p != slot)
        p = &c->e[*p].next;
    *p = c->e[slot].next;
}

static void set_dirty(struct qcow2_cache *c, struct qcow2_cache_entry *e, bool dirty)
{
    if (e->dirty != dirty)
        c->ndirty += dirty ? 1 : (uint32_t)-1;
    e->dirty = dirty;
}

/* Forget the entry at off (its cluster was freed): never written back. */
static void cache_drop(struct qcow2_cache *c, uint64_t off)
{
    int32_t s = cache_find(c, off);
    if (s < 0 || c->e[s].pins)
        return;
    cache_unlink(c, s);
    set_dirty(c, &c->e[s], false);
    c->e[s].off = 0;
    c->e[s].lru = 0;
}

static int write_entry(struct qcow2 *q, struct qcow2_cache *c, struct qcow2_cache_entry *e)
{
    int ret = block_pwrite(q->img.fd, e->data, q->cluster_size, e->off);
    if (!ret)
        set_dirty(c, e, false);
    return ret;
}

static int cache_write_dirty(struct qcow2 *q, struct qcow2_cache *c)
{
    for (uint32_t i = 0; i < c->n && c->ndirty; i++) {
        if (!c->e[i].dirty)
            continue;
        int ret = write_entry(q, c, &c->e[i]);
        if (ret)
            return ret;
    }
    return 0;
}

/* The least recently used unpinned entry, clean ones first when clean_only. */
static int32_t cache_victim(const struct qcow2_cache *c, bool clean_only)
{
    int32_t best = -1;
    for (uint32_t i = 0; i < c->n; i++) {
        const struct qcow2_cache_entry *e = &c->e[i];
        if (e->pins || (clean_only && e->dirty))
            continue;
        if (best < 0 || e->lru < c->e[best].lru)
            best = (int32_t)i;
    }
    return best;
}

/*
 * A slot to put a table in: a new one while under the budget, else the LRU victim. A dirty
 * L2 table may only be written after data and refcounts are durable: evicting one writes every
 * dirty table back in order (qcow2_meta_flush); a refcount block can be written at any time.
 */
static int cache_slot(struct qcow2 *q, struct qcow2_cache *c, int32_t *slot)
{
    if (c->n < c->max) {
        struct qcow2_cache_entry *e = &c->e[c->n];
        if (!(e->data = malloc(q->cluster_size)))
            return -ENOMEM;
        e->next = -1;
        *slot = (int32_t)c->n++;
        return 0;
    }
    int32_t s = cache_victim(c, c->l2);
    if (s < 0 && c->l2) {
        int ret = qcow2_meta_flush(q);
        if (ret)
            return ret;
        s = cache_victim(c, true);
    }
    if (s < 0)
        return -EIO; /* every entry pinned: cannot happen with the minimum size */
    struct qcow2_cache_entry *e = &c->e[s];
    if (e->dirty) {
        int ret = write_entry(q, c, e);
        if (ret)
            return ret;
    }
    if (e->off)
        cache_unlink(c, s);
    e->off = 0;
    *slot = s;
    return 0;
}

/* The table at off, pinned; loaded on a miss, or (load false) zeroed and dirty. */
static int cache_get(struct qcow2 *q, struct qcow2_cache *c, uint64_t off, bool load, int32_t *slot)
{
    int32_t s = cache_find(c, off);
    if (s < 0) {
        int ret = cache_slot(q, c, &s);
        if (ret)
            return ret;
        struct qcow2_cache_entry *e = &c->e[s];
        if (load && block_pread(q->img.fd, e->data, q->cluster_size, off) < 0) {
            e->lru = 0;
            return -EIO; /* the slot stays free */
        }
        e->off = off;
        uint32_t b = bucket_of(c, off);
        e->next = c->buckets[b];
        c->buckets[b] = s;
    }
    struct qcow2_cache_entry *e = &c->e[s];
    if (!load) {
        memset(e->data, 0, q->cluster_size);
        set_dirty(c, e, true);
    }
    e->lru = ++c->tick;
    e->pins++;
    *slot = s;
    return 0;
}

static void cache_put(struct qcow2_cache *c, int32_t slot, bool dirty)
{
    struct qcow2_cache_entry *e = &c->e[slot];
    e->pins--;
    if (dirty)
        set_dirty(c, e, true);
}

int qcow2_l2_get(struct qcow2 *q, uint64_t off, bool load, uint8_t **data, int32_t *slot)
{
    int ret = cache_get(q, &q->l2c, off, load, slot);
    if (!ret)
        *data = q->l2c.e[*slot].data;
    return ret;
}

void qcow2_l2_put(struct qcow2 *q, int32_t slot, bool dirty)
{
    cache_put(&q->l2c, slot, dirty);
}

uint64_t qcow2_l2_entry(const uint8_t *table, uint64_t i)
{
    uint64_t v;
    memcpy(&v, table + i * 8, sizeof(v));
    return be64toh(v);
}

void qcow2_l2_set(uint8_t *table, uint64_t i, uint64_t entry)
{
    uint64_t v = htobe64(entry);
    memcpy(table + i * 8, &v, sizeof(v));
}

/* ---- Refcounts: entries of 1 << refcount_order bits; below a byte, bit 0 is the low bit. */

static uint64_t rb_read(const uint8_t *b, unsigned order, uint64_t i)
{
    if (order < 3) {
        unsigned bits = 1u << order, per = 8u >> order;
        return (b[i / per] >> ((i % per) * bits)) & ((1u << bits) - 1);
    }
    unsigned width = 1u << (order - 3);
    uint64_t v = 0;
    for (unsigned k = 0; k < width; k++)
        v = v << 8 | b[i * width + k];
    return v;
}

static void rb_write(uint8_t *b, unsigned order, uint64_t i, uint64_t v)
{
    if (order < 3) {
        unsigned bits = 1u << order, per = 8u >> order, shift = (unsigned)(i % per) * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
        b[i / per] = (uint8_t)((b[i / per] & ~mask) | ((v << shift) & mask));
        return;
    }
    unsigned width = 1u << (order - 3);
    for (unsigned k = width; k-- > 0; v >>= 8)
        b[i * width + k] = (uint8_t)v;
}

static uint64_t rc_max(const struct qcow2 *q)
{
    return q->refcount_order == 6 ? UINT64_MAX : (1ULL << (1u << q->refcount_order)) - 1;
}

int qcow2_refcount(struct qcow2 *q, uint64_t c, uint64_t *rc)
{
    uint64_t bi = c >> q->rb_shift;
    *rc = 0;
    if (bi >= q->rt_size || q->rt[bi] == 0)
        return 0;
    int32_t s;
    int ret = cache_get(q, &q->rbc, q->rt[bi], true, &s);
    if (ret)
        return ret;
    *rc = rb_read(q->rbc.e[s].data, q->refcount_order, c & ((1ULL << q->rb_shift) - 1));
    cache_put(&q->rbc, s, false);
    return 0;
}

/* Set the refcount of cluster c, whose refcount block exists. */
static int refcount_set(struct qcow2 *q, uint64_t c, uint64_t rc)
{
    uint64_t bi = c >> q->rb_shift;
    if (bi >= q->rt_size || q->rt[bi] == 0 || rc > rc_max(q))
        return -EIO;
    int32_t s;
    int ret = cache_get(q, &q->rbc, q->rt[bi], true, &s);
    if (ret)
        return ret;
    rb_write(q->rbc.e[s].data, q->refcount_order, c & ((1ULL << q->rb_shift) - 1), rc);
    cache_put(&q->rbc, s, true);
    return 0;
}

/* ---- Allocation. */

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Header, L1 table and refcount table: never handed out, whatever their refcounts say. */
static bool reserved(const struct qcow2 *q, uint64_t c)
{
    uint64_t off = c << q->cluster_bits, cs = q->cluster_size;
    return c == 0 || overlaps(off, cs, q->l1_offset, q->l1_size * 8) ||
           overlaps(off, cs, q->rt_offset, q->rt_clusters * cs);
}

static void note_end(struct qcow2 *q, uint64_t end)
{
    if (end > q->end)
        q->end = end;
}

static void rt_dirty(struct qcow2 *q, uint64_t i)
{
    if (q->rt_dirty_hi <= q->rt_dirty_lo) {
        q->rt_dirty_lo = i;
        q->rt_dirty_hi = i + 1;
        return;
    }
    if (i < q->rt_dirty_lo)
        q->rt_dirty_lo = i;
    if (i + 1 > q->rt_dirty_hi)
        q->rt_dirty_hi = i + 1;
}

/*
 * Refcount block bi is missing and cluster c (in its range, so free) needs a refcount: the new
 * block goes into c itself and counts itself. Its table entry is written back after the block.
 */
static int new_refblock(struct qcow2 *q, uint64_t bi, uint64_t c)
{
    uint64_t off = c << q->cluster_bits;
    int32_t s;
    int ret = cache_get(q, &q->rbc, off, false, &s);
    if (ret)
        return ret;
    rb_write(q->rbc.e[s].data, q->refcount_order, c & ((1ULL << q->rb_shift) - 1), 1);
    cache_put(&q->rbc, s, true);
    q->rt[bi] = off;
    rt_dirty(q, bi);
    note_end(q, off + q->cluster_size);
    return 0;
}

/* Look for a free cluster from *c to the end of its refcount block; *c ends past what it saw. */
static int scan_block(struct qcow2 *q, uint64_t bi, uint64_t *c, bool *found)
{
    int32_t s;
    int ret = cache_get(q, &q->rbc, q->rt[bi], true, &s);
    if (ret)
        return ret;
    const uint8_t *b = q->rbc.e[s].data;
    uint64_t epb = 1ULL << q->rb_shift;
    *found = false;
    for (uint64_t i = *c & (epb - 1); i < epb && *c < q->max_clusters; i++, (*c)++) {
        if (!reserved(q, *c) && rb_read(b, q->refcount_order, i) == 0) {
            *found = true;
            break;
        }
    }
    cache_put(&q->rbc, s, false);
    return 0;
}

/* Write table entries [lo, hi) (host order in memory) at off, big-endian. */
static int write_table(struct qcow2 *q, const uint64_t *t, uint64_t off, uint64_t lo, uint64_t hi)
{
    uint64_t buf[512];
    while (lo < hi) {
        uint64_t n = hi - lo < 512 ? hi - lo : 512;
        for (uint64_t i = 0; i < n; i++)
            buf[i] = htobe64(t[lo + i]);
        int ret = block_pwrite(q->img.fd, buf, n * 8, off + lo * 8);
        if (ret)
            return ret;
        lo += n;
    }
    return 0;
}

/* The new refcount table's layout: nb blocks from cluster base, then nt table clusters. */
struct rt_layout {
    uint64_t base, nb, nt, first, entries;
};

/* Blocks and table big enough that the new blocks count them all, and the table lists them. */
static int rt_plan(const struct qcow2 *q, struct rt_layout *l)
{
    uint64_t eps = q->cluster_size / 8, cover = q->rt_size << q->rb_shift;
    uint64_t base = q->end >> q->cluster_bits > cover ? q->end >> q->cluster_bits : cover;
    uint64_t n = q->rt_size + q->rt_size / 2 + 1, nb = 1;
    for (unsigned i = 0; i < 64; i++) {
        uint64_t nt = (n + eps - 1) / eps;
        uint64_t first = base >> q->rb_shift, last = (base + nb + nt - 1) >> q->rb_shift;
        if (last - first + 1 == nb && last < n) {
            *l = (struct rt_layout){base, nb, nt, first, nt * eps};
            bool fits =
                nt * q->cluster_size <= QCOW2_RT_MAX_BYTES && base + nb + nt < q->max_clusters;
            return fits ? 0 : -ENOSPC;
        }
        nb = last - first + 1 > nb ? last - first + 1 : nb;
        n = last + 1 > n ? last + 1 : n;
    }
    return -ENOSPC;
}

/* Write the new blocks: each counts the clusters of [base, base + nb + nt) in its range. */
static int rt_write_blocks(struct qcow2 *q, const struct rt_layout *l, uint8_t *buf)
{
    uint64_t epb = 1ULL << q->rb_shift, end = l->base + l->nb + l->nt;
    for (uint64_t k = 0; k < l->nb; k++) {
        uint64_t lo = (l->first + k) << q->rb_shift;
        memset(buf, 0, q->cluster_size);
        for (uint64_t c = lo > l->base ? lo : l->base; c < end && c < lo + epb; c++)
            rb_write(buf, q->refcount_order, c - lo, 1);
        int ret = block_pwrite(q->img.fd, buf, q->cluster_size, (l->base + k) << q->cluster_bits);
        if (ret)
            return ret;
    }
    return 0;
}

/* Write the new table and switch the header to it; the old table is unused from then on. */
static int rt_switch(struct qcow2 *q, const struct rt_layout *l, const uint64_t *nrt)
{
    uint64_t toff = (l->base + l->nb) << q->cluster_bits;
    int ret = write_table(q, nrt, toff, 0, l->entries);
    if (!ret)
        ret = block_sync(q->img.fd);
    if (ret)
        return ret;
    uint8_t h[12];
    uint64_t off_be = htobe64(toff);
    uint32_t n_be = htobe32((uint32_t)l->nt);
    memcpy(h, &off_be, 8);
    memcpy(h + 8, &n_be, 4);
    ret = block_pwrite(q->img.fd, h, sizeof(h), 48); /* refcount_table_offset, _clusters */
    return ret ? ret : block_sync(q->img.fd);
}

/*
 * The refcount table is full: a larger one goes after the end of the file, with new refcount
 * blocks in front of it that count both. The old table's clusters are freed once the header
 * points at the new one (durably).
 */
static int grow_rt(struct qcow2 *q)
{
    struct rt_layout l;
    int ret = rt_plan(q, &l);
    /* The new table copies the entries in memory: the blocks they name must be on disk. */
    if (!ret)
        ret = cache_write_dirty(q, &q->rbc);
    if (ret)
        return ret;
    uint64_t *nrt = calloc(l.entries, sizeof(*nrt));
    uint8_t *buf = malloc(q->cluster_size);
    ret = nrt && buf ? 0 : -ENOMEM;
    if (!ret) {
        memcpy(nrt, q->rt, q->rt_size * sizeof(*nrt));
        for (uint64_t k = 0; k < l.nb; k++)
            nrt[l.first + k] = (l.base + k) << q->cluster_bits;
        ret = rt_write_blocks(q, &l, buf);
    }
    if (!ret)
        ret = rt_switch(q, &l, nrt);
    free(buf);
    if (ret) {
        free(nrt);
        return ret;
    }
    uint64_t old_off = q->rt_offset, old_len = q->rt_clusters * q->cluster_size;
    free(q->rt);
    q->rt = nrt;
    q->rt_size = l.entries;
    q->rt_offset = (l.base + l.nb) << q->cluster_bits;
    q->rt_clusters = l.nt;
    q->rt_dirty_lo = q->rt_dirty_hi = 0;
    note_end(q, (l.base + l.nb + l.nt) << q->cluster_bits);
    return qcow2_unref(q, old_off, old_len);
}

int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *off, bool *fresh)
{
    uint64_t c = q->free_hint;
    bool found = false;
    while (!found) {
        if (c >= q->max_clusters)
            return -ENOSPC;
        uint64_t bi = c >> q->rb_shift;
        int ret = 0;
        if (bi >= q->rt_size)
            ret = grow_rt(q);
        else if (q->rt[bi] == 0 && reserved(q, c))
            c++;
        else if (q->rt[bi] == 0)
            ret = new_refblock(q, bi, c++);
        else
            ret = scan_block(q, bi, &c, &found);
        if (ret)
            return ret;
    }
    int ret = refcount_set(q, c, 1);
    if (ret)
        return ret;
    q->free_hint = c + 1;
    *off = c << q->cluster_bits;
    *fresh = *off >= q->end;
    note_end(q, *off + q->cluster_size);
    return 0;
}

int qcow2_unref(struct qcow2 *q, uint64_t off, uint64_t len)
{
    int err = 0;
    if (len == 0)
        return 0;
    for (uint64_t c = off >> q->cluster_bits; c <= (off + len - 1) >> q->cluster_bits; c++) {
        uint64_t rc;
        int ret = qcow2_refcount(q, c, &rc);
        if (!ret && rc == 0)
            ret = -EIO; /* a reference the refcounts never counted: the image is corrupt */
        if (!ret)
            ret = refcount_set(q, c, rc - 1);
        if (ret) {
            err = ret;
            continue;
        }
        if (rc - 1 == 0) {
            if (c < q->free_hint)
                q->free_hint = c;
            cache_drop(&q->l2c, c << q->cluster_bits);
        }
    }
    return err;
}

/* ---- Pending frees, in-flight I/O, flushes. */

int qcow2_pend_reserve(struct qcow2 *q, size_t n)
{
    if (q->npend + n <= q->pend_cap)
        return 0;
    size_t cap = q->pend_cap ? q->pend_cap * 2 : 64;
    while (cap < q->npend + n)
        cap *= 2;
    struct qcow2_free *p = realloc(q->pend, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    q->pend = p;
    q->pend_cap = cap;
    return 0;
}

void qcow2_pend_free(struct qcow2 *q, uint64_t off, uint64_t len)
{
    q->pend[q->npend++] = (struct qcow2_free){off, len};
}

unsigned qcow2_io_begin(struct qcow2 *q)
{
    unsigned p = (unsigned)(q->epoch & 1);
    atomic_fetch_add(&q->io[p], 1);
    return p;
}

void qcow2_io_end(struct qcow2 *q, unsigned parity)
{
    /* Seq-cst on both sides: either the drainer sees the count drop, or this sees it waiting. */
    if (atomic_fetch_sub(&q->io[parity], 1) == 1 && atomic_load(&q->drain_waiting)) {
        pthread_mutex_lock(&q->lock);
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
    }
}

/*
 * Wait until every file I/O begun before now has ended (lock held, dropped while waiting). I/O
 * begun later counts in the other parity; one drain at a time, so that parity stays drained.
 */
static void drain(struct qcow2 *q)
{
    while (q->draining)
        pthread_cond_wait(&q->cond, &q->lock);
    q->draining = true;
    unsigned old = (unsigned)(q->epoch & 1);
    q->epoch++;
    atomic_store(&q->drain_waiting, true);
    while (atomic_load(&q->io[old]) != 0)
        pthread_cond_wait(&q->cond, &q->lock);
    atomic_store(&q->drain_waiting, false);
    q->draining = false;
    pthread_cond_broadcast(&q->cond);
}

/* The pending frees so far, handed to the caller (who frees the array). */
static struct qcow2_free *take_pending(struct qcow2 *q, size_t *n)
{
    struct qcow2_free *p = q->pend;
    *n = q->npend;
    q->pend = NULL;
    q->npend = q->pend_cap = 0;
    return p;
}

/*
 * Free clusters whose unmapping is durable. I/O that looked them up before the unmapping may
 * still be running: wait for it, or a reused cluster could take its late write.
 */
static int apply_pending(struct qcow2 *q, struct qcow2_free *p, size_t n)
{
    int err = 0;
    if (n)
        drain(q);
    for (size_t i = 0; i < n; i++) {
        int ret = qcow2_unref(q, p[i].off, p[i].len);
        if (ret)
            err = ret;
    }
    free(p);
    return err;
}

int qcow2_meta_flush(struct qcow2 *q)
{
    int fd = q->img.fd;
    int ret = cache_write_dirty(q, &q->rbc);
    if (!ret && q->rt_dirty_hi > q->rt_dirty_lo) {
        ret = block_sync(fd); /* new refcount blocks before the entries naming them */
        if (!ret)
            ret = write_table(q, q->rt, q->rt_offset, q->rt_dirty_lo, q->rt_dirty_hi);
        if (!ret)
            q->rt_dirty_lo = q->rt_dirty_hi = 0;
    }
    bool l1 = q->l1_dirty_hi > q->l1_dirty_lo;
    if (ret || (!q->l2c.ndirty && !l1))
        return ret;
    ret = block_sync(fd); /* data and refcounts before the L2 entries that use them */
    if (!ret)
        ret = cache_write_dirty(q, &q->l2c);
    if (!ret && l1) {
        ret = block_sync(fd); /* new L2 tables before the L1 entries naming them */
        if (!ret)
            ret = write_table(q, q->l1, q->l1_offset, q->l1_dirty_lo, q->l1_dirty_hi);
        if (!ret)
            q->l1_dirty_lo = q->l1_dirty_hi = 0;
    }
    return ret;
}

int qcow2_flush_locked(struct qcow2 *q)
{
    int ret = qcow2_meta_flush(q);
    if (!ret)
        ret = block_sync(q->img.fd);
    if (ret)
        return ret;
    size_t n;
    struct qcow2_free *p = take_pending(q, &n);
    return apply_pending(q, p, n);
}

int qcow2_flush(struct disk_image *img)
{
    struct qcow2 *q = (struct qcow2 *)img;
    size_t n = 0;
    struct qcow2_free *p = NULL;
    pthread_mutex_lock(&q->lock);
    int ret = qcow2_meta_flush(q);
    if (!ret) /* these unmappings are now written; durable after the sync */
        p = take_pending(q, &n);
    pthread_mutex_unlock(&q->lock);
    if (ret)
        return ret;
    ret = block_sync(img->fd); /* outside the lock: reads and writes go on meanwhile */
    pthread_mutex_lock(&q->lock);
    if (ret && qcow2_pend_reserve(q, n) == 0) {
        for (size_t i = 0; i < n; i++)
            qcow2_pend_free(q, p[i].off, p[i].len);
        n = 0; /* back in the list: freed after a later flush */
    }
    int aret = apply_pending(q, p, ret ? 0 : n);
    pthread_mutex_unlock(&q->lock);
    return ret ? ret : aret;
}

void qcow2_meta_free(struct qcow2 *q)
{
    qcow2_cache_free(&q->l2c);
    qcow2_cache_free(&q->rbc);
    free(q->l1);
    free(q->rt);
    free(q->pend);
    q->l1 = q->rt = NULL;
    q->pend = NULL;
}
