/* virtio_blk.c: virtio-blk: requests checked on the VM loop, file I/O on libuv's thread pool. */
#include "devices/virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Data buffers per request: the chain limit less the header and status buffers. */
#define SEG_MAX (VIRTQ_CHAIN_MAX - 2)
/* Discard / write-zeroes: segments per request, sectors per segment (1 GiB keeps one pool
 * thread from being tied up for long when writing zeros is the only way). */
#define DWZ_MAX_SEG 32u
#define DWZ_MAX_SECTORS (1u << 21)
/* Largest physical block size hinted to the guest through the topology fields. */
#define PHYS_BLOCK_MAX 4096u
#define ZERO_CHUNK 65536u
#define ZERO_IOV 16u

struct dwz_seg {
    uint64_t off, len; /* bytes */
    bool unmap;
};

/* One request handed to the thread pool. Workers touch only this, never the device. */
struct blk_req {
    uv_work_t work;
    struct virtio_blk *blk;
    struct blk_req *next_free;
    uint64_t gen; /* blk->gen when submitted: a reset in between drops the result */
    struct disk_image *img;
    uint32_t type;
    uint16_t head;
    uint8_t *status;
    uint32_t payload_w; /* writable bytes before the status byte */
    uint64_t off;       /* IN/OUT: byte offset in the image */
    bool sync;          /* write-through: the write is made stable before it completes */
    unsigned niov;
    struct iovec iov[VIRTQ_CHAIN_MAX];
    unsigned nseg;
    struct dwz_seg seg[DWZ_MAX_SEG];
    int err; /* worker result: 0 or -errno */
};

struct virtio_blk {
    struct virtio_device vd;
    uv_loop_t *loop;
    const struct sandbox *sandbox;
    struct disk_image *img;
    char *path;
    bool read_only;
    char id[VIRTIO_BLK_ID_BYTES];
    uint64_t capacity;                     /* 512-byte sectors */
    uint8_t config[VIRTIO_BLK_CONFIG_LEN]; /* immutable after creation: read without locks */
    /* Loop thread only. */
    bool running;   /* activated with queue 0 ready; no reset or driver error since */
    bool resetting; /* reset() returned 1: call virtio_reset_done when inflight drops to 0 */
    bool stalled;   /* stopped popping at the in-flight bound */
    bool writeback; /* FLUSH negotiated; otherwise writes are stable when they complete */
    bool discard_ok, wz_ok;
    uint64_t gen;
    unsigned inflight;
    struct blk_req *free_reqs;
    bool bad_logged, ro_logged, io_logged;
    struct virtq_chain chain; /* scratch for virtq_pop */
    struct blk_req reqs[VIRTIO_BLK_MAX_INFLIGHT];
};

/* What a chain holds, in the stream view the spec asks for (no reliance on framing). */
struct req_view {
    const struct virtq_buf *rd, *wr;
    unsigned nrd, nwr;
    uint32_t rd_payload; /* readable bytes after the 16-byte header */
    uint32_t wr_payload; /* writable bytes before the status byte */
    uint8_t *status;
    uint16_t head;
    bool hdr_ok; /* the readable part holds the whole 16-byte header */
    uint32_t type;
    uint64_t sector;
};

/* ---- Worker side (libuv thread pool): blocking file I/O on one request. ---- */

static int do_segments(struct blk_req *r)
{
    for (unsigned i = 0; i < r->nseg; i++) {
        const struct dwz_seg *g = &r->seg[i];
        if (g->len == 0)
            continue;
        int err = r->type == VIRTIO_BLK_T_DISCARD
                      ? disk_image_discard(r->img, g->off, g->len)
                      : disk_image_write_zeroes(r->img, g->off, g->len, g->unmap);
        if (err)
            return err;
    }
    return r->sync ? disk_image_flush(r->img) : 0;
}

static void work_cb(uv_work_t *w)
{
    struct blk_req *r = w->data;
    /* The VM confined every pool thread as it started; this covers a thread started later. */
    if ((r->err = sandbox_enter_once(r->blk->sandbox, SANDBOX_WORKER)) < 0)
        return;
    switch (r->type) {
    case VIRTIO_BLK_T_IN:
        r->err = disk_image_read(r->img, r->iov, r->niov, r->off);
        break;
    case VIRTIO_BLK_T_OUT:
        r->err = disk_image_write(r->img, r->iov, r->niov, r->off);
        if (!r->err && r->sync)
            r->err = disk_image_flush(r->img);
        break;
    case VIRTIO_BLK_T_FLUSH:
        r->err = disk_image_flush(r->img);
        break;
    default:
        r->err = do_segments(r);
        break;
    }
}

/* ---- Loop side: chains to requests, completions. ---- */

static void log_bad(struct virtio_blk *b, const char *what)
{
    if (b->bad_logged)
        return;
    b->bad_logged = true;
    klog(b->vd.log, KILN_LOG_WARN,
         "virtio-blk %s: bad request from the driver: %s (not logged again)", b->path, what);
}

/*
 * Split a chain into header, payloads and status byte (the last writable byte). Returns false
 * if there is no writable byte: the request cannot even be failed, so the driver is broken.
 * A header shorter than 16 bytes leaves hdr_ok false for the caller to refuse.
 */
static bool view_chain(const struct virtq_chain *c, struct req_view *v)
{
    unsigned nrd = 0;
    while (nrd < c->count && !c->buf[nrd].writable)
        nrd++;
    *v = (struct req_view){
        .rd = c->buf, .nrd = nrd, .wr = c->buf + nrd, .nwr = c->count - nrd, .head = c->head};
    if (c->writable_len == 0)
        return false;
    unsigned last = v->nwr;
    while (v->wr[last - 1].len == 0)
        last--; /* writable_len > 0, so some writable buffer is non-empty */
    v->status = (uint8_t *)v->wr[last - 1].host + v->wr[last - 1].len - 1;
    v->wr_payload = c->writable_len - 1;
    if (c->readable_len < VIRTIO_BLK_HDR_LEN)
        return true;
    uint8_t hdr[VIRTIO_BLK_HDR_LEN];
    virtq_bufs_read(v->rd, v->nrd, 0, hdr, sizeof(hdr));
    v->hdr_ok = true;
    v->type = (uint32_t)le_get(hdr, 4);
    v->sector = le_get(hdr + 8, 8);
    v->rd_payload = c->readable_len - VIRTIO_BLK_HDR_LEN;
    return true;
}

/* Bytes of the writable area the device wrote from its start: the used length to report.
 * done is the payload prefix written; the status byte counts once the payload is complete. */
static uint32_t used_len(uint32_t done, uint32_t payload)
{
    return done == payload ? payload + 1 : done;
}

static void complete(struct virtio_blk *b, uint16_t head, uint8_t *status, uint8_t st,
                     uint32_t written)
{
    *status = st;
    virtq_push(&b->vd.queues[0].vq, head, written);
}

/* Finish a request without the thread pool (refused, GET_ID, no-op flush). */
static void complete_now(struct virtio_blk *b, const struct req_view *v, uint8_t st, uint32_t done)
{
    complete(b, v->head, v->status, st, used_len(done, v->wr_payload));
}

/* Sectors [sector, sector + bytes / 512) lie inside the disk; bytes is a multiple of 512. */
static bool in_capacity(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
    return range_within(sector, bytes / VIRTIO_BLK_SECTOR, b->capacity);
}

/* IN/OUT checks. Returns VIRTIO_BLK_S_OK with r set up, or the status to fail with. */
static uint8_t prepare_rw(struct virtio_blk *b, const struct req_view *v, struct blk_req *r)
{
    bool in = v->type == VIRTIO_BLK_T_IN;
    uint32_t len = in ? v->wr_payload : v->rd_payload;
    if ((in && v->rd_payload != 0) || (!in && v->wr_payload != 0)) {
        log_bad(b, "data buffers in the wrong direction");
        return VIRTIO_BLK_S_IOERR;
    }
    if (!in && b->read_only) {
        if (!b->ro_logged)
            klog(b->vd.log, KILN_LOG_WARN, "virtio-blk %s: write to the read-only disk refused",
                 b->path);
        b->ro_logged = true;
        return VIRTIO_BLK_S_IOERR;
    }
    if (len % VIRTIO_BLK_SECTOR != 0 || !in_capacity(b, v->sector, len)) {
        log_bad(b, len % VIRTIO_BLK_SECTOR ? "length not a multiple of 512" : "beyond the end");
        return VIRTIO_BLK_S_IOERR;
    }
    r->off = v->sector * VIRTIO_BLK_SECTOR; /* < capacity * 512: no overflow */
    r->niov = in ? virtq_bufs_iov(v->wr, v->nwr, 0, len, r->iov)
                 : virtq_bufs_iov(v->rd, v->nrd, VIRTIO_BLK_HDR_LEN, len, r->iov);
    r->sync = !in && !b->writeback;
    return VIRTIO_BLK_S_OK;
}

/* One 16-byte discard / write-zeroes segment into s. */
static uint8_t check_segment(struct virtio_blk *b, uint32_t type, const uint8_t *raw,
                             struct dwz_seg *s)
{
    uint64_t sector = le_get(raw, 8);
    uint32_t num = (uint32_t)le_get(raw + 8, 4), flags = (uint32_t)le_get(raw + 12, 4);
    /* The spec: unknown flags, and unmap on a discard, are UNSUPP. */
    if ((flags & ~VIRTIO_BLK_WZ_F_UNMAP) ||
        (type == VIRTIO_BLK_T_DISCARD && (flags & VIRTIO_BLK_WZ_F_UNMAP))) {
        log_bad(b, "unsupported segment flags");
        return VIRTIO_BLK_S_UNSUPP;
    }
    uint64_t bytes = (uint64_t)num * VIRTIO_BLK_SECTOR;
    if (num > DWZ_MAX_SECTORS || !in_capacity(b, sector, bytes)) {
        log_bad(b, "discard/write-zeroes segment too long or beyond the end");
        return VIRTIO_BLK_S_IOERR;
    }
    *s = (struct dwz_seg){sector * VIRTIO_BLK_SECTOR, bytes, flags & VIRTIO_BLK_WZ_F_UNMAP};
    return VIRTIO_BLK_S_OK;
}

static uint8_t prepare_dwz(struct virtio_blk *b, const struct req_view *v, struct blk_req *r)
{
    bool discard = v->type == VIRTIO_BLK_T_DISCARD;
    if (discard ? !b->discard_ok : !b->wz_ok) {
        log_bad(b, "discard/write-zeroes not negotiated");
        return VIRTIO_BLK_S_UNSUPP;
    }
    uint32_t n = v->rd_payload / VIRTIO_BLK_SEG_LEN;
    if (v->wr_payload != 0 || v->rd_payload % VIRTIO_BLK_SEG_LEN != 0 || n == 0 ||
        n > DWZ_MAX_SEG) {
        log_bad(b, "malformed discard/write-zeroes segment list");
        return VIRTIO_BLK_S_IOERR;
    }
    uint8_t raw[DWZ_MAX_SEG * VIRTIO_BLK_SEG_LEN];
    virtq_bufs_read(v->rd, v->nrd, VIRTIO_BLK_HDR_LEN, raw, v->rd_payload);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t st = check_segment(b, v->type, raw + i * VIRTIO_BLK_SEG_LEN, &r->seg[i]);
        if (st != VIRTIO_BLK_S_OK)
            return st;
    }
    r->nseg = n;
    r->sync = !b->writeback;
    return VIRTIO_BLK_S_OK;
}

static void get_id(struct virtio_blk *b, const struct req_view *v)
{
    if (v->rd_payload != 0 || v->wr_payload < VIRTIO_BLK_ID_BYTES) {
        log_bad(b, "GET_ID without a 20-byte writable buffer");
        complete_now(b, v, VIRTIO_BLK_S_IOERR, 0);
        return;
    }
    virtq_bufs_write(v->wr, v->nwr, 0, b->id, VIRTIO_BLK_ID_BYTES);
    complete_now(b, v, VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES);
}

static void after_work_cb(uv_work_t *w, int status);

/* Hand r (set up for v) to the thread pool. */
static void submit(struct virtio_blk *b, const struct req_view *v, struct blk_req *r)
{
    r->type = v->type;
    r->head = v->head;
    r->status = v->status;
    r->payload_w = v->wr_payload;
    r->gen = b->gen;
    r->img = b->img;
    r->err = 0;
    b->free_reqs = r->next_free;
    b->inflight++;
    int ret = uv_queue_work(b->loop, &r->work, work_cb, after_work_cb);
    if (ret < 0) {
        r->err = -EIO;
        after_work_cb(&r->work, ret);
    }
}

/*
 * FLUSH needs no ordering against other requests: fdatasync covers every write whose pwritev
 * has returned, and a write completes to the guest only after that, so every write completed
 * before the driver made the FLUSH available is covered (the spec's rule: a write is stable once
 * a FLUSH sent after its completion completes). Writes still in flight are not, as allowed.
 */
static uint8_t prepare_flush(struct virtio_blk *b, const struct req_view *v)
{
    if (v->rd_payload != 0 || v->wr_payload != 0) {
        log_bad(b, "FLUSH with data buffers");
        return VIRTIO_BLK_S_IOERR;
    }
    return VIRTIO_BLK_S_OK;
}

/* Check one request and start it, or complete it at once. */
static void dispatch(struct virtio_blk *b, const struct req_view *v)
{
    struct blk_req *r = b->free_reqs;
    uint8_t st;
    if (!v->hdr_ok) {
        log_bad(b, "header shorter than 16 bytes");
        complete_now(b, v, VIRTIO_BLK_S_IOERR, 0);
        return;
    }
    switch (v->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        st = prepare_rw(b, v, r);
        break;
    case VIRTIO_BLK_T_FLUSH:
        st = prepare_flush(b, v);
        if (st == VIRTIO_BLK_S_OK && b->read_only) {
            complete_now(b, v, st, 0); /* nothing can be dirty */
            return;
        }
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        st = prepare_dwz(b, v, r);
        break;
    case VIRTIO_BLK_T_GET_ID:
        get_id(b, v);
        return;
    default:
        log_bad(b, "unknown request type");
        st = VIRTIO_BLK_S_UNSUPP;
        break;
    }
    if (st != VIRTIO_BLK_S_OK)
        complete_now(b, v, st, 0);
    else
        submit(b, v, r);
}

/* Stop the queue because the driver broke the rules: NEEDS_RESET until it resets us. */
static void driver_error(struct virtio_blk *b, int err)
{
    b->running = false;
    b->vd.queues[0].vq.broken = true;
    virtio_device_error(&b->vd, 0, err);
}

/* Take available chains while a request slot is free. */
static void pump(struct virtio_blk *b)
{
    struct virtq *q = &b->vd.queues[0].vq;
    b->stalled = false;
    while (b->running) {
        if (!b->free_reqs) {
            /* Resumed by a completion: kicks meanwhile would only wake us for nothing. */
            b->stalled = true;
            virtq_set_notify(q, false);
            break;
        }
        int ret = virtq_pop(q, &b->chain);
        if (ret < 0) {
            driver_error(b, ret);
            break;
        }
        if (ret == 0 && !virtq_enable_notify_and_check(q))
            break;
        if (ret == 0)
            continue;
        struct req_view v;
        if (!view_chain(&b->chain, &v)) {
            log_bad(b, "no writable status byte");
            driver_error(b, -EINVAL);
            break;
        }
        dispatch(b, &v);
    }
    virtio_queue_signal(&b->vd, 0);
}

static void log_io_error(struct virtio_blk *b, const struct blk_req *r, int err)
{
    if (b->io_logged)
        return;
    b->io_logged = true;
    klog(b->vd.log, KILN_LOG_WARN, "virtio-blk %s: request type %u failed: %s (not logged again)",
         b->path, r->type, strerror(-err));
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct blk_req *r = w->data;
    struct virtio_blk *b = r->blk;
    /* After a reset the queues belong to the next driver: the result is dropped. */
    if (r->gen == b->gen) {
        int err = status < 0 ? -EIO : r->err;
        if (err)
            log_io_error(b, r, err);
        uint32_t done = !err && r->type == VIRTIO_BLK_T_IN ? r->payload_w : 0;
        complete(b, r->head, r->status, err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
                 used_len(done, r->payload_w));
        virtio_queue_signal(&b->vd, 0);
    }
    r->next_free = b->free_reqs;
    b->free_reqs = r;
    b->inflight--;
    if (b->resetting && b->inflight == 0) {
        b->resetting = false;
        virtio_reset_done(&b->vd);
    } else if (b->stalled && b->running) {
        pump(b);
    }
}

/* ---- virtio_device_ops ---- */

static int blk_activate(struct virtio_device *vd)
{
    struct virtio_blk *b = vd->priv;
    pthread_mutex_lock(&vd->lock);
    b->writeback = virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
    b->discard_ok = virtio_has_feature(vd, VIRTIO_BLK_F_DISCARD);
    b->wz_ok = virtio_has_feature(vd, VIRTIO_BLK_F_WRITE_ZEROES);
    bool ready = vd->queues[0].enabled && vd->queues[0].vq.ready;
    pthread_mutex_unlock(&vd->lock);
    b->running = ready;
    if (ready)
        pump(b); /* buffers made available before DRIVER_OK get no kick of their own */
    return 0;
}

static int blk_reset(struct device *d)
{
    struct virtio_blk *b = virtio_device_of(d)->priv;
    b->running = false;
    b->stalled = false;
    b->gen++;
    if (b->inflight == 0)
        return 0;
    b->resetting = true;
    return 1;
}

static void blk_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct virtio_blk *b = vd->priv;
    if (q == 0 && b->running && !b->stalled)
        pump(b);
}

static void blk_destroy(struct device *d)
{
    virtio_blk_destroy(virtio_device_of(d)->priv);
}

/*
 * Snapshot (loop thread): nothing of its own beyond the core's queues, once no request is in
 * flight (-EBUSY until then: a request half done has no state a new process could finish).
 * The image is re-opened by path on restore; what the guest wrote is in it already.
 */
static int blk_save(const struct device *d, struct device_state *st)
{
    (void)st;
    const struct virtio_blk *b = virtio_device_of((struct device *)d)->priv;
    return b->inflight ? -EBUSY : 0;
}

static const struct virtio_device_ops blk_ops = {
    .dev =
        {
            .read = virtio_config_read_bytes,
            .write = virtio_config_write_ignored, /* CONFIG_WCE is not offered */
            .reset = blk_reset,
            .save = blk_save,
            .restore = device_restore_none,
            .destroy = blk_destroy,
        },
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .config_len = VIRTIO_BLK_CONFIG_LEN,
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
};

/* ---- Creation ---- */

static int check_serial(const struct virtio_blk_config *cfg, char *id, char *errmsg)
{
    const char *s = cfg->serial ? cfg->serial : "";
    size_t n = strlen(s);
    if (n > VIRTIO_BLK_ID_BYTES)
        return kiln_fail(errmsg, EINVAL, "disk %s: serial is %zu bytes long (at most %u)",
                         cfg->path, n, VIRTIO_BLK_ID_BYTES);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return kiln_fail(errmsg, EINVAL, "disk %s: serial must be printable ASCII", cfg->path);
    memset(id, 0, VIRTIO_BLK_ID_BYTES); /* NUL-padded; no terminator when 20 long */
    memcpy(id, s, n);
    return 0;
}

/*
 * An image locks its file (and shares its backing files): a conflict is a second VM or a second
 * disk of this one on the same file. A file system that cannot lock leaves the image usable.
 */
static int lock_image(struct virtio_blk *b, char *errmsg)
{
    char why[KILN_ERRMSG_MAX];
    int ret = disk_image_lock(b->img, why);
    if (ret == -EBUSY)
        return kiln_fail(errmsg, EBUSY,
                         "disk %s: locked by another process or disk (in use by another VM?)",
                         b->path);
    if (ret < 0)
        klog(b->vd.log, KILN_LOG_WARN, "%s: other users are not kept out", why);
    return 0;
}

/* log2(phys / 512) for a sane power-of-two phys, capped at PHYS_BLOCK_MAX; 0 otherwise. */
static uint8_t phys_exp(uint32_t phys)
{
    if (phys < VIRTIO_BLK_SECTOR || (phys & (phys - 1)) != 0)
        return 0;
    uint8_t exp = 0;
    while ((VIRTIO_BLK_SECTOR << exp) < phys && (VIRTIO_BLK_SECTOR << exp) < PHYS_BLOCK_MAX)
        exp++;
    return exp;
}

/*
 * blk_size stays 512 whatever the host block size: it is the guest's logical sector size, and
 * changing it would move on-disk structures such as the GPT (at LBA 1) of an existing image.
 * The host block size is only a performance hint, through the topology and discard alignment.
 */
static void build_config(struct virtio_blk *b, uint32_t phys, uint32_t discard_granularity)
{
    uint8_t *c = b->config;
    uint8_t exp = phys_exp(phys);
    uint32_t discard_align = discard_granularity / VIRTIO_BLK_SECTOR;
    le_put(c + VIRTIO_BLK_CFG_CAPACITY, 8, b->capacity);
    le_put(c + VIRTIO_BLK_CFG_SEG_MAX, 4, SEG_MAX);
    le_put(c + VIRTIO_BLK_CFG_BLK_SIZE, 4, VIRTIO_BLK_SECTOR);
    c[VIRTIO_BLK_CFG_PHYS_EXP] = exp;
    le_put(c + VIRTIO_BLK_CFG_MIN_IO, 2, (uint16_t)(1u << exp));
    le_put(c + VIRTIO_BLK_CFG_NUM_QUEUES, 2, 1);
    if (b->read_only)
        return;
    le_put(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4, DWZ_MAX_SECTORS);
    le_put(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4, DWZ_MAX_SEG);
    /* What one discard can free: the host block, or a qcow2 cluster. */
    le_put(c + VIRTIO_BLK_CFG_DISCARD_ALIGN, 4,
           discard_align > (1u << exp) ? discard_align : 1u << exp);
    le_put(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, 4, DWZ_MAX_SECTORS);
    le_put(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, 4, DWZ_MAX_SEG);
    c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1; /* unmap write-zeroes punch holes */
}

static int setup_image(struct virtio_blk *b, enum disk_format format, char *errmsg)
{
    const struct disk_image_config ic = {
        .path = b->path, .read_only = b->read_only, .format = format};
    int err = disk_image_open(&ic, &b->img, errmsg);
    if (!err)
        err = lock_image(b, errmsg);
    if (err)
        return err;
    uint64_t size = disk_image_size(b->img);
    if (size < VIRTIO_BLK_SECTOR)
        return kiln_fail(errmsg, EINVAL,
                         "disk %s: image is smaller than one 512-byte sector (%llu bytes)", b->path,
                         (unsigned long long)size);
    if (size % VIRTIO_BLK_SECTOR)
        klog(b->vd.log, KILN_LOG_WARN,
             "disk %s: size is not a multiple of 512; the last %u bytes are not visible", b->path,
             (unsigned)(size % VIRTIO_BLK_SECTOR));
    b->capacity = size / VIRTIO_BLK_SECTOR;
    build_config(b, disk_image_block_size(b->img), disk_image_discard_granularity(b->img));
    return 0;
}

static uint64_t offered_features(const struct virtio_blk *b)
{
    uint64_t f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH |
                 VIRTIO_BLK_F_TOPOLOGY | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;
    if (b->read_only)
        return f | VIRTIO_BLK_F_RO;
    return f | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
}

static void free_blk(struct virtio_blk *b)
{
    if (b->img) {
        int ret = disk_image_close(b->img);
        if (ret < 0)
            klog(b->vd.log, KILN_LOG_ERROR, "disk %s: writing back its metadata: %s", b->path,
                 strerror(-ret));
    }
    free(b->path);
    free(b);
}

int virtio_blk_create(const struct virtio_blk_config *cfg, uv_loop_t *loop,
                      const struct guest_mem *mem, const struct kiln_log *log,
                      struct virtio_blk **out, char *errmsg)
{
    if (!cfg || !cfg->path || !cfg->path[0])
        return kiln_fail(errmsg, EINVAL, "disk: no image path");
    struct virtio_blk *b = calloc(1, sizeof(*b));
    if (!b || !(b->path = strdup(cfg->path))) {
        free(b);
        return kiln_fail(errmsg, ENOMEM, "disk %s: out of memory", cfg->path);
    }
    b->loop = loop;
    b->sandbox = cfg->sandbox;
    b->read_only = cfg->read_only;
    b->vd.log = log; /* for messages before virtio_device_init */
    int err = check_serial(cfg, b->id, errmsg);
    if (!err)
        err = setup_image(b, cfg->format, errmsg);
    if (err) {
        free_blk(b);
        return err;
    }
    virtio_device_init(&b->vd, &blk_ops, b, offered_features(b), 1, VIRTIO_BLK_QUEUE_SIZE, mem,
                       log);
    b->vd.config = b->config;
    for (unsigned i = VIRTIO_BLK_MAX_INFLIGHT; i-- > 0;) {
        b->reqs[i] = (struct blk_req){.blk = b, .next_free = b->free_reqs};
        b->reqs[i].work.data = &b->reqs[i];
        b->free_reqs = &b->reqs[i];
    }
    *out = b;
    return 0;
}

struct virtio_device *virtio_blk_device(struct virtio_blk *blk)
{
    return &blk->vd;
}

uint64_t virtio_blk_capacity(const struct virtio_blk *blk)
{
    return blk->capacity;
}

bool virtio_blk_busy(const struct virtio_blk *blk)
{
    return blk->inflight > 0;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
    if (!blk)
        return;
    /* Like a reset: completions still to come are dropped without touching the queues. */
    blk->running = false;
    blk->resetting = false;
    blk->gen++;
    while (blk->inflight > 0)
        uv_run(blk->loop, UV_RUN_ONCE);
    virtio_device_destroy(&blk->vd);
    free_blk(blk);
}

/* ---- The device class: one virtio-blk per --disk, in order (vda first). */

static unsigned blk_count(const struct kiln_config *cfg)
{
    return cfg->ndisks;
}

static int blk_check(const struct kiln_config *cfg, char *errmsg)
{
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        const struct kiln_disk *d = &cfg->disks[i];
        if (d->format != KILN_DISK_AUTO && d->format != KILN_DISK_RAW &&
            d->format != KILN_DISK_QCOW2)
            return kiln_fail(errmsg, EINVAL, "disk %s: format %d is not auto, raw or qcow2",
                             d->path ? d->path : "(no path)", (int)d->format);
    }
    return 0;
}

/* The image is opened and locked here, before /dev/kvm: a bad or busy disk is the user's error. */
static int blk_prepare(const struct device_env *env, unsigned index, void **prepared, char *errmsg)
{
    const struct kiln_disk *d = &env->cfg->disks[index];
    const struct virtio_blk_config bc = {.path = d->path,
                                         .read_only = d->read_only,
                                         .serial = d->serial,
                                         .format = d->format == KILN_DISK_RAW ? DISK_FORMAT_RAW
                                                   : d->format == KILN_DISK_QCOW2
                                                       ? DISK_FORMAT_QCOW2
                                                       : DISK_FORMAT_AUTO,
                                         .sandbox = env->sandbox};
    struct virtio_blk *blk;
    int ret = virtio_blk_create(&bc, env->loop, env->mem, env->log, &blk, errmsg);
    if (ret == 0)
        *prepared = blk;
    return ret;
}

static void blk_discard(void *prepared)
{
    virtio_blk_destroy(prepared);
}

static int blk_attach(const struct device_env *env, unsigned index, void *prepared,
                      struct device **out, char *errmsg)
{
    struct virtio_blk *blk = prepared;
    int ret = virtio_attach(env->virtio, &blk->vd, out);
    if (ret < 0)
        kiln_fail(errmsg, -ret, "disk %s: %s: %s", env->cfg->disks[index].path,
                  virtio_transport_name(env->virtio), strerror(-ret));
    return ret;
}

const struct device_class virtio_blk_class = {.name = "virtio-blk",
                                              .count = blk_count,
                                              .check = blk_check,
                                              .prepare = blk_prepare,
                                              .discard = blk_discard,
                                              .create = blk_attach,
                                              .virtio = true};
