/* qcow2_io.c: qcow2 reads, writes, discards and zeroes: guest ranges mapped onto host clusters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "block/io.h"
#include "block/qcow2.h"
#include "util.h"

/* What an L2 entry makes of its guest cluster. */
enum kind { K_UNALLOC, K_ZERO, K_DATA, K_COMPRESSED };

/* A run of guest bytes with one kind (and, for data, contiguous host bytes). */
struct extent {
    enum kind kind;
    uint64_t len;  /* guest bytes */
    uint64_t host; /* K_DATA: host offset of the first byte; K_COMPRESSED: of the data */
    uint64_t clen; /* K_COMPRESSED: bytes of compressed data */
    bool in_place; /* writes: the run's clusters are allocated and only this image's */
    uint64_t gc;   /* writes not in place: the one guest cluster */
};

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- L2 entries. */

/* A data cluster lies inside the file, clear of the header, L1 table and refcount table. */
static int check_data(const struct qcow2 *q, uint64_t off)
{
    uint64_t cs = q->cluster_size;
    if (off % cs || off < cs || off >= q->end || q->end - off < cs)
        return -EIO;
    if (off < q->l1_offset + q->l1_size * 8 && q->l1_offset < off + cs)
        return -EIO;
    if (off < q->rt_offset + q->rt_clusters * cs && q->rt_offset < off + cs)
        return -EIO;
    return 0;
}

/* A compressed descriptor: host offset (x bits) and additional 512-byte sectors (the rest). */
static int compressed_range(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *nsect)
{
    unsigned x = 62 - (q->cluster_bits - 8);
    *off = e & ((1ULL << x) - 1);
    *nsect = ((e & ~QCOW2_COPIED & ~QCOW2_COMPRESSED) >> x) + 1;
    if (e & QCOW2_COPIED || *off >= QCOW2_MAX_HOST_OFFSET || *off < q->cluster_size ||
        *off >= q->end)
        return -EIO;
    return 0;
}

/* Classify L2 entry e; -EIO for an entry no valid image holds. */
static int classify(const struct qcow2 *q, uint64_t e, enum kind *k)
{
    uint64_t off = e & QCOW2_OFFSET_MASK, nsect;
    if (e & QCOW2_COMPRESSED) {
        *k = K_COMPRESSED;
        return compressed_range(q, e, &off, &nsect);
    }
    if (e & QCOW2_L2_RESERVED)
        return -EIO;
    if (e & QCOW2_ZERO) {
        *k = K_ZERO;
        return q->version < 3 ? -EIO : off ? check_data(q, off) : 0;
    }
    *k = off ? K_DATA : K_UNALLOC;
    if (!off)
        return e & QCOW2_COPIED ? -EIO : 0;
    return check_data(q, off);
}

/* The host bytes an L2 entry holds one reference on, if any (a corrupt entry holds none). */
static bool entry_ref(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
    enum kind k;
    uint64_t nsect;
    if (classify(q, e, &k) < 0)
        return false;
    if (k == K_COMPRESSED) {
        compressed_range(q, e, off, &nsect);
        *off = align_down(*off, 512); /* the sectors it occupies, each counted */
        *len = nsect * 512;
        return true;
    }
    *off = e & QCOW2_OFFSET_MASK;
    *len = q->cluster_size;
    return *off != 0;
}

/* Guest offset g in cluster terms: L1 index, L2 index, offset in the cluster, and how many
 * bytes from g (at most len) the L2 table covers. */
struct where {
    uint64_t gc, l1i, l2i, in, max;
};

static struct where locate(const struct qcow2 *q, uint64_t g, uint64_t len)
{
    uint64_t l2e = 1ULL << q->l2_bits, gc = g >> q->cluster_bits;
    struct where w = {gc, gc >> q->l2_bits, gc & (l2e - 1), g & (q->cluster_size - 1), 0};
    w.max = min64(len, ((l2e - w.l2i) << q->cluster_bits) - w.in);
    return w;
}

/* ---- Reads. */

/* Lock held: the extent at g (at most len bytes, within one L2 table). */
static int map_read(struct qcow2 *q, uint64_t g, uint64_t len, struct extent *x)
{
    struct where w = locate(q, g, len);
    uint64_t cs = q->cluster_size, l2off = q->l1[w.l1i] & QCOW2_OFFSET_MASK;
    *x = (struct extent){.kind = K_UNALLOC, .len = w.max};
    if (!l2off)
        return 0;
    uint8_t *t;
    int32_t slot;
    int ret = qcow2_l2_get(q, l2off, true, &t, &slot);
    if (ret)
        return ret;
    uint64_t e = qcow2_l2_entry(t, w.l2i), nsect;
    ret = classify(q, e, &x->kind);
    x->len = min64(cs - w.in, w.max);
    if (!ret && x->kind == K_COMPRESSED) {
        compressed_range(q, e, &x->host, &nsect);
        x->clen = min64(nsect * 512 - (x->host & 511), q->end - x->host);
    } else if (!ret) {
        x->host = (e & QCOW2_OFFSET_MASK) + w.in;
        for (uint64_t i = w.l2i + 1; x->len < w.max && x->kind != K_COMPRESSED; i++) {
            uint64_t n = qcow2_l2_entry(t, i);
            enum kind k;
            if (classify(q, n, &k) < 0 || k != x->kind ||
                (k == K_DATA && (n & QCOW2_OFFSET_MASK) != x->host - w.in + (i - w.l2i) * cs))
                break; /* a bad entry fails when its own turn comes */
            x->len += min64(cs, w.max - x->len);
        }
    }
    qcow2_l2_put(q, slot, false);
    return ret;
}

/* Inflate a compressed cluster (raw deflate, as qcow2 writes it) into out, one cluster. */
static int inflate_cluster(uint8_t *in, uint64_t in_len, uint8_t *out, uint64_t cs)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        return -ENOMEM;
    z.next_in = in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)cs;
    int r = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    /* Decompression stops once the cluster is whole; the data may end in padding. */
    bool ok = (r == Z_STREAM_END || r == Z_OK || r == Z_BUF_ERROR) && z.avail_out == 0;
    return ok ? 0 : -EIO;
}

/* The whole compressed cluster at host (clen bytes) into out. */
static int read_compressed(struct qcow2 *q, uint64_t host, uint64_t clen, uint8_t *out)
{
    uint8_t *in = malloc(clen);
    if (!in)
        return -ENOMEM;
    struct iovec v = {in, clen};
    int ret = block_rw(q->img.fd, &v, 1, host, false, true);
    if (!ret)
        ret = inflate_cluster(in, clen, out, q->cluster_size);
    free(in);
    return ret;
}

/* [pos, pos + len) of the request's iovec from or to the image file at host. */
static int rw_host(struct qcow2 *q, const struct iovec *iov, unsigned niov, uint64_t pos,
                   uint64_t host, uint64_t len, bool write)
{
    struct iovec s[BLOCK_IOV_SLICE_MAX];
    int n = block_iov_slice(iov, niov, pos, len, s, BLOCK_IOV_SLICE_MAX);
    return n < 0 ? n : block_rw(q->img.fd, s, (unsigned)n, host, write, !write);
}

static int read_host(struct qcow2 *q, const struct iovec *iov, unsigned niov, uint64_t pos,
                     uint64_t host, uint64_t len)
{
    return rw_host(q, iov, niov, pos, host, len, false);
}

/* Guest bytes [g, g + len) that no cluster of this image holds: the backing file's, or zeros. */
static int read_backing(struct qcow2 *q, const struct iovec *iov, unsigned niov, uint64_t pos,
                        uint64_t g, uint64_t len)
{
    struct disk_image *b = q->img.backing;
    uint64_t in = b && g < b->size ? min64(len, b->size - g) : 0;
    if (in) {
        struct iovec s[BLOCK_IOV_SLICE_MAX];
        int n = block_iov_slice(iov, niov, pos, in, s, BLOCK_IOV_SLICE_MAX);
        int ret = n < 0 ? n : disk_image_read(b, s, (unsigned)n, g);
        if (ret)
            return ret;
    }
    block_iov_zero(iov, niov, pos + in, len - in);
    return 0;
}

static int read_extent(struct qcow2 *q, const struct extent *x, const struct iovec *iov,
                       unsigned niov, uint64_t pos, uint64_t g)
{
    if (x->kind == K_ZERO) {
        block_iov_zero(iov, niov, pos, x->len);
        return 0;
    }
    if (x->kind == K_UNALLOC)
        return read_backing(q, iov, niov, pos, g, x->len);
    if (x->kind == K_DATA)
        return read_host(q, iov, niov, pos, x->host, x->len);
    uint8_t *buf = malloc(q->cluster_size);
    int ret = buf ? read_compressed(q, x->host, x->clen, buf) : -ENOMEM;
    if (!ret)
        block_iov_from_buf(iov, niov, pos, buf + (g & (q->cluster_size - 1)), x->len);
    free(buf);
    return ret;
}

static int q2_read(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                   uint64_t len)
{
    struct qcow2 *q = (struct qcow2 *)img;
    for (uint64_t pos = 0; pos < len;) {
        struct extent x;
        unsigned parity = 0;
        pthread_mutex_lock(&q->lock);
        int ret = map_read(q, off + pos, len - pos, &x);
        bool io = !ret && (x.kind == K_DATA || x.kind == K_COMPRESSED);
        if (io) /* the clusters cannot be reused until this read is done */
            parity = qcow2_io_begin(q);
        pthread_mutex_unlock(&q->lock);
        if (!ret)
            ret = read_extent(q, &x, iov, niov, pos, off + pos);
        if (io)
            qcow2_io_end(q, parity);
        if (ret)
            return ret;
        pos += x.len;
    }
    return 0;
}

/* ---- Writes. */

/* Lock held: this data cluster's refcount is 1, so it can be written in place. */
static bool own_cluster(struct qcow2 *q, uint64_t e)
{
    uint64_t rc;
    return qcow2_refcount(q, (e & QCOW2_OFFSET_MASK) >> q->cluster_bits, &rc) == 0 && rc == 1;
}

/*
 * Lock held: the extent at g for a write. In place: a run of allocated clusters that only this
 * image's active table uses. Otherwise the one cluster, which needs a new host cluster.
 */
static int map_write(struct qcow2 *q, uint64_t g, uint64_t len, struct extent *x)
{
    struct where w = locate(q, g, len);
    uint64_t cs = q->cluster_size, l1e = q->l1[w.l1i];
    *x = (struct extent){.kind = K_UNALLOC, .len = min64(cs - w.in, w.max), .gc = w.gc};
    if (!(l1e & QCOW2_OFFSET_MASK))
        return 0;
    uint8_t *t;
    int32_t slot;
    int ret = qcow2_l2_get(q, l1e & QCOW2_OFFSET_MASK, true, &t, &slot);
    if (ret)
        return ret;
    uint64_t e = qcow2_l2_entry(t, w.l2i), nsect;
    bool dirty = false;
    ret = classify(q, e, &x->kind);
    if (!ret && x->kind == K_COMPRESSED) {
        compressed_range(q, e, &x->host, &nsect);
        x->clen = min64(nsect * 512 - (x->host & 511), q->end - x->host);
    } else if (!ret && x->kind == K_DATA) {
        x->host = e & QCOW2_OFFSET_MASK;
        bool owned = l1e & QCOW2_COPIED;
        if (owned && !(e & QCOW2_COPIED) && own_cluster(q, e)) {
            qcow2_l2_set(t, w.l2i, e | QCOW2_COPIED); /* what the flag should have said */
            dirty = true;
            e |= QCOW2_COPIED;
        }
        x->in_place = owned && (e & QCOW2_COPIED);
        if (x->in_place)
            x->host += w.in;
        for (uint64_t i = w.l2i + 1; x->in_place && x->len < w.max; i++) {
            uint64_t n = qcow2_l2_entry(t, i);
            enum kind k;
            if (classify(q, n, &k) < 0 || k != K_DATA || !(n & QCOW2_COPIED) ||
                (n & QCOW2_OFFSET_MASK) != x->host - w.in + (i - w.l2i) * cs)
                break;
            x->len += min64(cs, w.max - x->len);
        }
    }
    qcow2_l2_put(q, slot, dirty);
    return ret;
}

static int write_host(struct qcow2 *q, const struct iovec *iov, unsigned niov, uint64_t pos,
                      uint64_t host, uint64_t len)
{
    return rw_host(q, iov, niov, pos, host, len, true);
}

/* The guest cluster at gstart reads as zeros before this write (no data of its own or below). */
static bool reads_zero(const struct qcow2 *q, const struct extent *x, uint64_t gstart)
{
    if (x->kind == K_ZERO)
        return true;
    return x->kind == K_UNALLOC && (!q->img.backing || gstart >= q->img.backing->size);
}

/* What guest cluster x held before this write, into buf (one cluster). */
static int old_content(struct qcow2 *q, const struct extent *x, uint64_t gstart, uint8_t *buf)
{
    uint64_t cs = q->cluster_size;
    if (x->kind == K_COMPRESSED)
        return read_compressed(q, x->host, x->clen, buf);
    if (x->kind == K_DATA) {
        struct iovec v = {buf, cs};
        return block_rw(q->img.fd, &v, 1, x->host, false, true);
    }
    if (x->kind == K_ZERO) {
        memset(buf, 0, cs); /* not the backing file's data: the zero flag hides it */
        return 0;
    }
    struct iovec v = {buf, cs};
    return read_backing(q, &v, 1, 0, gstart, cs); /* zeros where there is no backing data */
}

/*
 * Write the new cluster at target: this request's bytes, and around them what the cluster held
 * (a copy on write). A fresh cluster past the old end of the file already reads as zeros.
 */
static int fill_cluster(struct qcow2 *q, const struct extent *x, const struct iovec *iov,
                        unsigned niov, uint64_t pos, uint64_t g, uint64_t target, bool fresh)
{
    uint64_t cs = q->cluster_size, in = g & (cs - 1), gstart = g - in;
    struct iovec s[BLOCK_IOV_SLICE_MAX];
    if ((in == 0 && x->len == cs) || (fresh && reads_zero(q, x, gstart)))
        return write_host(q, iov, niov, pos, target + in, x->len);
    uint8_t *buf = malloc(cs);
    int ret = buf ? old_content(q, x, gstart, buf) : -ENOMEM;
    int n = ret ? 0 : block_iov_slice(iov, niov, pos, x->len, s + 1, BLOCK_IOV_SLICE_MAX - 2);
    if (!ret && n < 0)
        ret = n;
    if (!ret) {
        s[0] = (struct iovec){buf, in};
        s[n + 1] = (struct iovec){buf + in + x->len, cs - in - x->len};
        ret = block_rw(q->img.fd, s, (unsigned)n + 2, target, true, false);
    }
    free(buf);
    return ret;
}

/*
 * Lock held: the L2 table for L1 entry l1i, pinned and writable: a new one if there is none, a
 * copy if a snapshot shares it (its entries then count as shared too). The old table's
 * reference goes once the new L1 entry is durable. Room for one pending free reserved.
 */
static int writable_table(struct qcow2 *q, uint64_t l1i, uint8_t **t, int32_t *slot)
{
    uint64_t l1e = q->l1[l1i], old = l1e & QCOW2_OFFSET_MASK, noff;
    if (old && (l1e & QCOW2_COPIED))
        return qcow2_l2_get(q, old, true, t, slot);
    bool fresh;
    int ret = qcow2_alloc_cluster(q, &noff, &fresh);
    if (ret)
        return ret;
    uint8_t *ot = NULL;
    int32_t oslot = -1;
    if (old && (ret = qcow2_l2_get(q, old, true, &ot, &oslot)) == 0)
        ret = qcow2_l2_get(q, noff, false, t, slot);
    else if (!old)
        ret = qcow2_l2_get(q, noff, false, t, slot);
    if (ret) {
        if (oslot >= 0)
            qcow2_l2_put(q, oslot, false);
        qcow2_unref(q, noff, q->cluster_size);
        return ret;
    }
    for (uint64_t i = 0; ot && i < (1ULL << q->l2_bits); i++) {
        uint64_t e = qcow2_l2_entry(ot, i);
        qcow2_l2_set(*t, i, e & QCOW2_COMPRESSED ? e : e & ~QCOW2_COPIED);
    }
    if (ot) {
        qcow2_l2_put(q, oslot, false);
        qcow2_pend_free(q, old, q->cluster_size);
    }
    q->l1[l1i] = noff | QCOW2_COPIED;
    if (q->l1_dirty_hi <= q->l1_dirty_lo)
        q->l1_dirty_lo = q->l1_dirty_hi = l1i;
    q->l1_dirty_lo = l1i < q->l1_dirty_lo ? l1i : q->l1_dirty_lo;
    q->l1_dirty_hi = l1i + 1 > q->l1_dirty_hi ? l1i + 1 : q->l1_dirty_hi;
    return 0;
}

/* Lock held: point guest cluster gc at target; what it pointed at is freed later. */
static int link_cluster(struct qcow2 *q, uint64_t gc, uint64_t target)
{
    uint8_t *t;
    int32_t slot;
    int ret = qcow2_pend_reserve(q, 2);
    if (!ret)
        ret = writable_table(q, gc >> q->l2_bits, &t, &slot);
    if (ret)
        return ret;
    uint64_t i = gc & ((1ULL << q->l2_bits) - 1), cur = qcow2_l2_entry(t, i), off, len;
    qcow2_l2_set(t, i, target | QCOW2_COPIED);
    qcow2_l2_put(q, slot, true);
    /* Whatever is there now, not what the write saw: a discard may have come in between. */
    if (entry_ref(q, cur, &off, &len))
        qcow2_pend_free(q, off, len);
    return 0;
}

static bool alloc_busy(const struct qcow2 *q, uint64_t gc)
{
    for (const struct qcow2_alloc *a = q->allocs; a; a = a->next)
        if (a->gc == gc)
            return true;
    return false;
}

static void alloc_done(struct qcow2 *q, struct qcow2_alloc *a)
{
    struct qcow2_alloc **p = &q->allocs;
    while (*p != a)
        p = &(*p)->next;
    *p = a->next;
    pthread_cond_broadcast(&q->cond);
}

/*
 * Entered with the lock held (and an I/O parity begun), returns without either: give guest
 * cluster x->gc a new host cluster holding its old content and this request's bytes. Data goes
 * to the file before the L2 entry points at it; the new refcount is in place before both.
 */
static int write_new_cluster(struct qcow2 *q, const struct extent *x, const struct iovec *iov,
                             unsigned niov, uint64_t pos, uint64_t g, unsigned parity)
{
    struct qcow2_alloc a = {x->gc, q->allocs};
    q->allocs = &a;
    uint64_t target = 0;
    bool fresh = false;
    int ret = qcow2_alloc_cluster(q, &target, &fresh);
    bool allocated = ret == 0;
    pthread_mutex_unlock(&q->lock);
    if (!ret)
        ret = fill_cluster(q, x, iov, niov, pos, g, target, fresh);
    pthread_mutex_lock(&q->lock);
    if (!ret)
        ret = link_cluster(q, x->gc, target);
    if (ret && allocated)
        qcow2_unref(q, target, q->cluster_size); /* nothing points at it */
    alloc_done(q, &a);
    pthread_mutex_unlock(&q->lock);
    qcow2_io_end(q, parity);
    return ret;
}

/* Lock held, no I/O begun: too many frees wait for a flush, so make one now. */
static int pending_check(struct qcow2 *q)
{
    return q->npend >= QCOW2_PENDING_SOFT ? qcow2_flush_locked(q) : 0;
}

static int q2_write(struct disk_image *img, const struct iovec *iov, unsigned niov, uint64_t off,
                    uint64_t len)
{
    struct qcow2 *q = (struct qcow2 *)img;
    for (uint64_t pos = 0; pos < len;) {
        struct extent x;
        pthread_mutex_lock(&q->lock);
        int ret = pending_check(q);
        if (!ret)
            ret = map_write(q, off + pos, len - pos, &x);
        if (!ret && !x.in_place && alloc_busy(q, x.gc)) {
            pthread_cond_wait(&q->cond, &q->lock); /* then look again */
            pthread_mutex_unlock(&q->lock);
            continue;
        }
        if (ret) {
            pthread_mutex_unlock(&q->lock);
            return ret;
        }
        unsigned parity = qcow2_io_begin(q);
        if (x.in_place) {
            pthread_mutex_unlock(&q->lock);
            ret = write_host(q, iov, niov, pos, x.host, x.len);
            qcow2_io_end(q, parity);
        } else {
            ret = write_new_cluster(q, &x, iov, niov, pos, off + pos, parity);
        }
        if (ret)
            return ret;
        pos += x.len;
    }
    return 0;
}

/* ---- Discard and write zeroes. */

/*
 * What a whole cluster becomes. v3 marks it zero where the backing file would show through,
 * so that discarded data reads as zeros there too; v2 has no zero flag, and unmapping lets the
 * backing file's data (or zeros, without one) show.
 */
enum zmode {
    Z_DISCARD, /* unmapped: zero flag (v3 with a backing file) or unallocated */
    Z_UNMAP,   /* v3 zero flag, the cluster freed */
    Z_KEEP,    /* v3 zero flag, an allocated cluster of this image kept */
};

/* The entry a cluster gets, or e itself when nothing changes. */
static uint64_t zeroed_entry(const struct qcow2 *q, uint64_t e, enum zmode m)
{
    if (m == Z_DISCARD)
        return q->version >= 3 && q->img.backing ? QCOW2_ZERO : 0;
    enum kind k;
    bool data = classify(q, e, &k) == 0 && (k == K_DATA || k == K_ZERO);
    if (m == Z_KEEP && data && (e & QCOW2_COPIED))
        return e | QCOW2_ZERO;
    return QCOW2_ZERO;
}

/* Lock held: clusters [gc, gc + n) of one L2 table to mode m; freed ones pending. */
static int zero_in_table(struct qcow2 *q, uint64_t gc, uint64_t n, enum zmode m)
{
    uint64_t l1e = q->l1[gc >> q->l2_bits];
    bool unmapped_ok = !q->img.backing || (m == Z_DISCARD && q->version < 3);
    if (!(l1e & QCOW2_OFFSET_MASK) && unmapped_ok)
        return 0; /* unallocated already reads as it should */
    uint8_t *t;
    int32_t slot;
    int ret = qcow2_pend_reserve(q, n + 1);
    if (!ret)
        ret = writable_table(q, gc >> q->l2_bits, &t, &slot);
    if (ret)
        return ret;
    uint64_t i0 = gc & ((1ULL << q->l2_bits) - 1), off, len;
    for (uint64_t i = i0; i < i0 + n; i++) {
        uint64_t e = qcow2_l2_entry(t, i), ne = zeroed_entry(q, e, m);
        if (ne == e)
            continue;
        qcow2_l2_set(t, i, ne);
        bool kept = !(e & QCOW2_COMPRESSED) && (ne & QCOW2_OFFSET_MASK) == (e & QCOW2_OFFSET_MASK);
        if (!kept && entry_ref(q, e, &off, &len))
            qcow2_pend_free(q, off, len);
    }
    qcow2_l2_put(q, slot, true);
    return 0;
}

static int zero_clusters(struct qcow2 *q, uint64_t gc, uint64_t count, enum zmode m)
{
    uint64_t l2e = 1ULL << q->l2_bits;
    for (uint64_t done = 0; done < count;) {
        uint64_t n = min64(count - done, l2e - ((gc + done) & (l2e - 1)));
        pthread_mutex_lock(&q->lock);
        int ret = pending_check(q);
        if (!ret)
            ret = zero_in_table(q, gc + done, n, m);
        pthread_mutex_unlock(&q->lock);
        if (ret)
            return ret;
        done += n;
    }
    return 0;
}

/* Whole clusters of [off, off + len): the last one counts whole when it ends the disk. */
static void whole_clusters(const struct qcow2 *q, uint64_t off, uint64_t len, uint64_t *a,
                           uint64_t *b)
{
    uint64_t cs = q->cluster_size, end = off + len;
    *a = align_up(off, cs);
    *b = end == q->img.size ? align_up(end, cs) : align_down(end, cs);
}

static int q2_discard(struct disk_image *img, uint64_t off, uint64_t len)
{
    struct qcow2 *q = (struct qcow2 *)img;
    uint64_t a, b;
    whole_clusters(q, off, len, &a, &b);
    if (a >= b)
        return 0; /* parts of clusters: a hint that cannot be taken */
    return zero_clusters(q, a >> q->cluster_bits, (b - a) >> q->cluster_bits, Z_DISCARD);
}

/* Zeros through the write path, at most 1 MiB at a time. */
static int write_zero_data(struct qcow2 *q, uint64_t off, uint64_t len)
{
    struct iovec iov[16];
    while (len > 0) {
        unsigned n = 0;
        uint64_t chunk = 0;
        for (; n < 16 && chunk < len; n++) {
            uint64_t take = min64(len - chunk, BLOCK_ZEROS_LEN);
            iov[n] = (struct iovec){(void *)block_zeros, take};
            chunk += take;
        }
        int ret = q2_write(&q->img, iov, n, off, chunk);
        if (ret)
            return ret;
        off += chunk;
        len -= chunk;
    }
    return 0;
}

/*
 * Whole clusters get the zero flag (v3), or are unmapped (v2 without a backing file, when
 * unmapping is allowed); anything else is written as zeros.
 */
static int q2_write_zeroes(struct disk_image *img, uint64_t off, uint64_t len, bool may_unmap)
{
    struct qcow2 *q = (struct qcow2 *)img;
    uint64_t a, b, end = off + len;
    whole_clusters(q, off, len, &a, &b);
    bool flag = q->version >= 3 || (may_unmap && !img->backing);
    if (!flag || a >= b)
        return write_zero_data(q, off, len);
    enum zmode m = q->version < 3 ? Z_DISCARD : may_unmap ? Z_UNMAP : Z_KEEP;
    int ret = write_zero_data(q, off, a - off);
    if (!ret)
        ret = zero_clusters(q, a >> q->cluster_bits, (b - a) >> q->cluster_bits, m);
    if (!ret && b < end)
        ret = write_zero_data(q, b, end - b);
    return ret;
}

const struct disk_image_ops qcow2_ops = {
    .name = "qcow2",
    .read = q2_read,
    .write = q2_write,
    .flush = qcow2_flush,
    .discard = q2_discard,
    .write_zeroes = q2_write_zeroes,
    .close = qcow2_close,
};
