/* qcow2.c: opening a qcow2 image: every header field, extension and table entry checked; close. */
#include "block/qcow2.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/io.h"
#include "util.h"

#define QCOW2_V2_HEADER 72u
#define QCOW2_V3_HEADER 104u
#define BACKING_NAME_MAX 1023u
#define SNAPSHOTS_MAX 65536u

/* Incompatible feature bits (v3). */
#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTENDED_L2 (1ULL << 4)
#define INCOMPAT_KNOWN 0x1fULL

/* Header extensions kiln reads. */
#define EXT_END 0x00000000u
#define EXT_BACKING_FORMAT 0xe2792acau
#define EXT_FEATURE_NAMES 0x6803f857u
#define FEATURE_NAME_ENTRY 48u

/* The header as read (host order), v3 fields zero in a v2 image. */
struct header {
    uint32_t version, backing_size, cluster_bits, crypt, l1_size, rt_clusters, nb_snapshots;
    uint32_t refcount_order, header_length;
    uint64_t backing_offset, size, l1_offset, rt_offset, snapshots_offset;
    uint64_t incompat, compat, autoclear;
    uint8_t compression_type;
};

/* What opening collects besides the header: the first cluster and what its extensions say. */
struct opening {
    const struct image_file *f;
    struct header h;
    uint8_t *head; /* the first cluster (zeros past the end of the file) */
    uint64_t cs;
    char backing_format[16];
    const uint8_t *names; /* feature name table, in head */
    uint32_t names_len;
    char *errmsg;
};

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)be_get(p, 4);
}

#define FAIL(o, err, ...) kiln_fail((o)->errmsg, err, "%s: " __VA_ARGS__)
#define OPATH(o) (o)->f->path

static void parse_header(const uint8_t *p, struct header *h)
{
    *h = (struct header){
        .version = be32_at(p + 4),
        .backing_offset = be_get(p + 8, 8),
        .backing_size = be32_at(p + 16),
        .cluster_bits = be32_at(p + 20),
        .size = be_get(p + 24, 8),
        .crypt = be32_at(p + 32),
        .l1_size = be32_at(p + 36),
        .l1_offset = be_get(p + 40, 8),
        .rt_offset = be_get(p + 48, 8),
        .rt_clusters = be32_at(p + 56),
        .nb_snapshots = be32_at(p + 60),
        .snapshots_offset = be_get(p + 64, 8),
        .refcount_order = 4,
        .header_length = QCOW2_V2_HEADER,
    };
    if (h->version < 3)
        return;
    h->incompat = be_get(p + 72, 8);
    h->compat = be_get(p + 80, 8);
    h->autoclear = be_get(p + 88, 8);
    h->refcount_order = be32_at(p + 96);
    h->header_length = be32_at(p + 100);
}

/* Read the header and the whole first cluster (its extensions and the backing file name). */
static int read_head(struct opening *o)
{
    const struct image_file *f = o->f;
    uint8_t p[QCOW2_V3_HEADER + 1] = {0};
    uint64_t n = f->size < sizeof(p) ? f->size : sizeof(p);
    if (n < QCOW2_V2_HEADER)
        return FAIL(o, EINVAL, "too small for a qcow2 image (%llu bytes)", OPATH(o),
                    (unsigned long long)f->size);
    int ret = block_pread(f->fd, p, n, 0);
    if (ret)
        return FAIL(o, -ret, "cannot read the header: %s", OPATH(o), strerror(-ret));
    if (be32_at(p) != 0x514649fbu)
        return FAIL(o, EINVAL, "not a qcow2 image (no QFI\\xfb magic)", OPATH(o));
    parse_header(p, &o->h);
    if (o->h.version != 2 && o->h.version != 3)
        return FAIL(o, ENOTSUP, "qcow2 version %u is not supported (only 2 and 3)", OPATH(o),
                    o->h.version);
    if (o->h.cluster_bits < 9 || o->h.cluster_bits > 21)
        return FAIL(o, EINVAL, "cluster_bits %u out of range (9 to 21)", OPATH(o),
                    o->h.cluster_bits);
    o->cs = 1ULL << o->h.cluster_bits;
    if (!(o->head = calloc(1, o->cs)))
        return FAIL(o, ENOMEM, "out of memory", OPATH(o));
    n = f->size < o->cs ? f->size : o->cs;
    ret = block_pread(f->fd, o->head, n, 0);
    if (ret)
        return FAIL(o, -ret, "cannot read the header: %s", OPATH(o), strerror(-ret));
    o->h.compression_type = o->h.header_length > QCOW2_V3_HEADER ? o->head[104] : 0;
    return 0;
}

static int check_header_length(struct opening *o)
{
    const struct header *h = &o->h;
    if (h->version < 3)
        return 0;
    if (h->header_length < QCOW2_V3_HEADER || h->header_length % 8 || h->header_length > o->cs ||
        h->header_length > o->f->size)
        return FAIL(o, EINVAL, "header_length %u is invalid", OPATH(o), h->header_length);
    if (h->refcount_order > 6)
        return FAIL(o, EINVAL, "refcount_order %u out of range (0 to 6)", OPATH(o),
                    h->refcount_order);
    return 0;
}

/* The name the feature name table gives an incompatible bit, or NULL. */
static const char *feature_name(const struct opening *o, unsigned bit, char *buf, size_t len)
{
    for (uint32_t i = 0; i + FEATURE_NAME_ENTRY <= o->names_len; i += FEATURE_NAME_ENTRY) {
        const uint8_t *e = o->names + i;
        if (e[0] != 0 || e[1] != bit)
            continue;
        size_t n = 0;
        while (n < FEATURE_NAME_ENTRY - 2 && n + 1 < len && e[2 + n] >= 0x20 && e[2 + n] < 0x7f)
            n++; /* printable only: the name ends up in a one-line message */
        memcpy(buf, e + 2, n);
        buf[n] = 0;
        return n ? buf : NULL;
    }
    return NULL;
}

static int check_unknown_features(struct opening *o)
{
    uint64_t unknown = o->h.incompat & ~INCOMPAT_KNOWN;
    if (!unknown)
        return 0;
    unsigned bit = (unsigned)__builtin_ctzll(unknown);
    char buf[FEATURE_NAME_ENTRY];
    const char *name = feature_name(o, bit, buf, sizeof(buf));
    if (name)
        return FAIL(o, ENOTSUP, "unsupported incompatible feature '%s' (bit %u)", OPATH(o), name,
                    bit);
    return FAIL(o, ENOTSUP, "unknown incompatible feature bit %u", OPATH(o), bit);
}

/* Encryption, the dirty and corrupt bits, and incompatible features kiln does not implement. */
static int check_features(struct opening *o)
{
    const struct header *h = &o->h;
    if (h->crypt)
        return FAIL(o, ENOTSUP, "encrypted qcow2 images are not supported (crypt_method %u)",
                    OPATH(o), h->crypt);
    if (h->incompat & INCOMPAT_DIRTY)
        return FAIL(o, EINVAL,
                    "image is marked dirty (its refcounts may be wrong); repair it with "
                    "'qemu-img check -r all'",
                    OPATH(o));
    if (h->incompat & INCOMPAT_CORRUPT)
        return FAIL(o, EINVAL, "image is marked corrupt; repair it with 'qemu-img check -r all'",
                    OPATH(o));
    if (h->incompat & INCOMPAT_DATA_FILE)
        return FAIL(o, ENOTSUP, "external data files are not supported", OPATH(o));
    if (h->incompat & INCOMPAT_EXTENDED_L2)
        return FAIL(o, ENOTSUP, "extended L2 entries (subclusters) are not supported", OPATH(o));
    bool typed = h->incompat & INCOMPAT_COMPRESSION;
    unsigned type = h->compression_type;
    if (typed && type == 1)
        return FAIL(o, ENOTSUP,
                    "zstd compression is not supported (qemu-img convert -O qcow2 makes a zlib "
                    "image)",
                    OPATH(o));
    if (typed && type == 0)
        return FAIL(o, EINVAL, "compression type feature bit set without a compression type",
                    OPATH(o));
    if (typed)
        return FAIL(o, ENOTSUP, "compression type %u is not supported", OPATH(o), type);
    if (type)
        return FAIL(o, EINVAL, "compression type %u set without its incompatible feature bit",
                    OPATH(o), type);
    return check_unknown_features(o);
}

/* The header extensions between the header and the backing file name (or the cluster's end). */
static int parse_extensions(struct opening *o)
{
    uint64_t pos = o->h.header_length;
    uint64_t limit = o->h.backing_offset ? o->h.backing_offset : o->cs;
    if (limit > o->cs)
        limit = o->cs;
    while (pos + 8 <= limit) {
        uint32_t type = be32_at(o->head + pos), len = be32_at(o->head + pos + 4);
        pos += 8;
        if (type == EXT_END)
            break;
        if (len > limit - pos)
            return FAIL(o, EINVAL, "header extension 0x%08x runs past the header", OPATH(o), type);
        if (type == EXT_BACKING_FORMAT) {
            if (len >= sizeof(o->backing_format) || memchr(o->head + pos, 0, len))
                return FAIL(o, EINVAL, "backing file format name is invalid", OPATH(o));
            memcpy(o->backing_format, o->head + pos, len);
            o->backing_format[len] = 0;
        } else if (type == EXT_FEATURE_NAMES) {
            o->names = o->head + pos;
            o->names_len = len;
        } /* anything else (bitmaps, unknown) has no bearing on reading and writing data */
        pos += align_up(len, 8);
    }
    return 0;
}

/* [off, off + len) is cluster-aligned, past the header cluster and inside the file. */
static bool table_fits(const struct opening *o, uint64_t off, uint64_t len)
{
    return off % o->cs == 0 && off >= o->cs && range_within(off, len, o->f->size);
}

static int check_l1_rt(struct opening *o)
{
    const struct header *h = &o->h;
    unsigned shift = 2 * h->cluster_bits - 3; /* bytes one L1 entry maps */
    uint64_t need = (h->size >> shift) + ((h->size & ((1ULL << shift) - 1)) != 0);
    if (h->l1_size < need)
        return FAIL(o, EINVAL, "L1 table of %u entries cannot map the virtual size (%llu bytes)",
                    OPATH(o), h->l1_size, (unsigned long long)h->size);
    if ((uint64_t)h->l1_size * 8 > QCOW2_L1_MAX_BYTES)
        return FAIL(o, EFBIG, "L1 table of %u entries is too large (at most %u MiB)", OPATH(o),
                    h->l1_size, QCOW2_L1_MAX_BYTES >> 20);
    if (h->l1_size && !table_fits(o, h->l1_offset, (uint64_t)h->l1_size * 8))
        return FAIL(o, EINVAL, "L1 table at 0x%llx is misaligned or past the end of the file",
                    OPATH(o), (unsigned long long)h->l1_offset);
    uint64_t rt_len = (uint64_t)h->rt_clusters * o->cs;
    if (h->rt_clusters == 0 || rt_len > QCOW2_RT_MAX_BYTES)
        return FAIL(o, EINVAL, "refcount table of %u clusters is invalid (1 to %u MiB)", OPATH(o),
                    h->rt_clusters, QCOW2_RT_MAX_BYTES >> 20);
    if (!table_fits(o, h->rt_offset, rt_len))
        return FAIL(o, EINVAL, "refcount table at 0x%llx is misaligned or past the end of the file",
                    OPATH(o), (unsigned long long)h->rt_offset);
    if (h->l1_size && h->l1_offset < h->rt_offset + rt_len &&
        h->rt_offset < h->l1_offset + (uint64_t)h->l1_size * 8)
        return FAIL(o, EINVAL, "L1 table and refcount table overlap", OPATH(o));
    return 0;
}

static int check_snapshots_backing(struct opening *o)
{
    const struct header *h = &o->h;
    if (h->nb_snapshots > SNAPSHOTS_MAX)
        return FAIL(o, EINVAL, "%u snapshots is too many (at most %u)", OPATH(o), h->nb_snapshots,
                    SNAPSHOTS_MAX);
    if (h->nb_snapshots && !table_fits(o, h->snapshots_offset, 1))
        return FAIL(o, EINVAL, "snapshot table at 0x%llx is misaligned or past the end of the file",
                    OPATH(o), (unsigned long long)h->snapshots_offset);
    if (!h->backing_offset)
        return 0;
    if (h->backing_size == 0 || h->backing_size > BACKING_NAME_MAX)
        return FAIL(o, EINVAL, "backing file name length %u is invalid (1 to %u)", OPATH(o),
                    h->backing_size, BACKING_NAME_MAX);
    uint64_t in = o->cs < o->f->size ? o->cs : o->f->size;
    if (h->backing_offset < h->header_length ||
        !range_within(h->backing_offset, h->backing_size, in))
        return FAIL(o, EINVAL, "backing file name at %llu is outside the header cluster", OPATH(o),
                    (unsigned long long)h->backing_offset);
    if (memchr(o->head + h->backing_offset, 0, h->backing_size))
        return FAIL(o, EINVAL, "backing file name holds a NUL byte", OPATH(o));
    return 0;
}

/* The header and its extensions: everything checked before any table is read. */
static int check_header(struct opening *o)
{
    int ret = read_head(o);
    if (!ret)
        ret = check_header_length(o);
    if (!ret) /* bounded by the cluster whatever the fields say; the names are for messages */
        ret = parse_extensions(o);
    if (!ret)
        ret = check_features(o); /* before the layout: a clearer reason for a newer image */
    if (!ret)
        ret = check_l1_rt(o);
    if (!ret)
        ret = check_snapshots_backing(o);
    return ret;
}

/* ---- Tables. */

/* A table entry's offset is a cluster in the file, clear of the header, L1 and refcount table. */
static const char *bad_table_offset(const struct qcow2 *q, uint64_t off, uint64_t file_size)
{
    uint64_t cs = q->cluster_size, rt_len = q->rt_clusters * cs;
    if (off % cs)
        return "is misaligned";
    if (!range_within(off, cs, file_size))
        return "is past the end of the file";
    if (off < cs || (off < q->l1_offset + q->l1_size * 8 && q->l1_offset < off + cs) ||
        (off < q->rt_offset + rt_len && q->rt_offset < off + cs))
        return "points into the header, the L1 table or the refcount table";
    return NULL;
}

/* Read n big-endian entries at off into a new host-order array. */
static int read_table(int fd, uint64_t off, uint64_t n, uint64_t **out)
{
    uint64_t *t = malloc(n ? n * 8 : 8);
    if (!t)
        return -ENOMEM;
    int ret = n ? block_pread(fd, t, n * 8, off) : 0;
    for (uint64_t i = 0; i < n; i++)
        t[i] = be64toh(t[i]);
    if (ret)
        free(t);
    else
        *out = t;
    return ret;
}

static int load_l1(struct qcow2 *q, struct opening *o)
{
    int ret = read_table(q->img.fd, q->l1_offset, q->l1_size, &q->l1);
    if (ret)
        return FAIL(o, -ret, "cannot read the L1 table: %s", OPATH(o), strerror(-ret));
    for (uint64_t i = 0; i < q->l1_size; i++) {
        uint64_t e = q->l1[i], off = e & QCOW2_OFFSET_MASK;
        const char *why = e & QCOW2_L1_RESERVED ? "has reserved bits set"
                          : off == 0            ? (e ? "has no offset" : NULL)
                                                : bad_table_offset(q, off, o->f->size);
        if (why)
            return FAIL(o, EINVAL, "L1 entry %llu (0x%016llx) %s", OPATH(o), (unsigned long long)i,
                        (unsigned long long)e, why);
    }
    return 0;
}

static int load_rt(struct qcow2 *q, struct opening *o)
{
    int ret = read_table(q->img.fd, q->rt_offset, q->rt_size, &q->rt);
    if (ret)
        return FAIL(o, -ret, "cannot read the refcount table: %s", OPATH(o), strerror(-ret));
    for (uint64_t i = 0; i < q->rt_size; i++) {
        uint64_t e = q->rt[i];
        const char *why = e & QCOW2_RT_RESERVED ? "has reserved bits set"
                          : e == 0              ? NULL
                                                : bad_table_offset(q, e, o->f->size);
        if (why)
            return FAIL(o, EINVAL, "refcount table entry %llu (0x%016llx) %s", OPATH(o),
                        (unsigned long long)i, (unsigned long long)e, why);
    }
    return 0;
}

/* A metadata cluster's refcount must not be 0, or allocation would hand it out again. */
static int check_ref(struct qcow2 *q, struct opening *o, uint64_t off, const char *what,
                     uint64_t *rc)
{
    int ret = qcow2_refcount(q, off >> q->cluster_bits, rc);
    if (ret)
        return FAIL(o, -ret, "cannot read a refcount block: %s", OPATH(o), strerror(-ret));
    if (*rc == 0)
        return FAIL(o, EINVAL,
                    "%s at 0x%llx has refcount 0 (the image is corrupt; repair it with "
                    "'qemu-img check -r all')",
                    OPATH(o), what, (unsigned long long)off);
    return 0;
}

static int check_ref_range(struct qcow2 *q, struct opening *o, uint64_t off, uint64_t len,
                           const char *what)
{
    uint64_t rc;
    for (uint64_t c = off; c < off + len; c += q->cluster_size) {
        int ret = check_ref(q, o, c, what, &rc);
        if (ret)
            return ret;
    }
    return 0;
}

/*
 * Every metadata cluster is counted. An L2 table with refcount 1 may be changed in place; a
 * shared one (a snapshot's) is copied first: the L1 entries' COPIED bits in memory say which.
 */
static int check_metadata_refs(struct qcow2 *q, struct opening *o)
{
    int ret = check_ref_range(q, o, 0, q->cluster_size, "the header");
    if (!ret && q->l1_size)
        ret = check_ref_range(q, o, q->l1_offset, q->l1_size * 8, "the L1 table");
    if (!ret)
        ret = check_ref_range(q, o, q->rt_offset, q->rt_clusters * q->cluster_size,
                              "the refcount table");
    for (uint64_t i = 0; !ret && i < q->rt_size; i++)
        if (q->rt[i])
            ret = check_ref_range(q, o, q->rt[i], q->cluster_size, "a refcount block");
    for (uint64_t i = 0; !ret && i < q->l1_size; i++) {
        uint64_t off = q->l1[i] & QCOW2_OFFSET_MASK, rc;
        if (!off)
            continue;
        ret = check_ref(q, o, off, "an L2 table", &rc);
        q->l1[i] = rc == 1 ? off | QCOW2_COPIED : off;
    }
    return ret;
}

/* ---- The image. */

static int init_state(struct qcow2 *q, const struct opening *o)
{
    const struct header *h = &o->h;
    q->version = h->version;
    q->cluster_bits = h->cluster_bits;
    q->cluster_size = o->cs;
    q->l2_bits = h->cluster_bits - 3;
    q->refcount_order = h->refcount_order;
    q->rb_shift = h->cluster_bits + 3 - h->refcount_order;
    q->l1_offset = h->l1_offset;
    q->l1_size = h->l1_size;
    q->rt_offset = h->rt_offset;
    q->rt_clusters = h->rt_clusters;
    q->rt_size = h->rt_clusters * o->cs / 8;
    q->max_clusters = QCOW2_MAX_HOST_OFFSET >> h->cluster_bits;
    q->end = align_up(o->f->size, o->cs);
    q->free_hint = 1;
    q->img.size = h->size;
    q->img.discard_granularity = (uint32_t)o->cs;
    if (pthread_mutex_init(&q->lock, NULL) || pthread_cond_init(&q->cond, NULL))
        return -ENOMEM;
    int ret = qcow2_cache_init(&q->l2c, o->cs, QCOW2_L2_CACHE_BYTES, true);
    return ret ? ret : qcow2_cache_init(&q->rbc, o->cs, QCOW2_RB_CACHE_BYTES, false);
}

/* The backing file's path: absolute as given, else relative to the image's directory. */
static char *backing_path(const struct opening *o)
{
    const char *name = (const char *)o->head + o->h.backing_offset;
    size_t n = o->h.backing_size, dir = 0;
    const char *slash = strrchr(o->f->path, '/');
    if (name[0] != '/' && slash)
        dir = (size_t)(slash - o->f->path) + 1;
    char *p = malloc(dir + n + 1);
    if (p) {
        memcpy(p, o->f->path, dir);
        memcpy(p + dir, name, n);
        p[dir + n] = 0;
    }
    return p;
}

static int open_backing(struct qcow2 *q, struct opening *o, const struct image_chain *chain)
{
    if (!o->h.backing_offset)
        return 0;
    enum disk_format fmt = DISK_FORMAT_AUTO;
    if (!strcmp(o->backing_format, "raw"))
        fmt = DISK_FORMAT_RAW;
    else if (!strcmp(o->backing_format, "qcow2"))
        fmt = DISK_FORMAT_QCOW2;
    else if (o->backing_format[0])
        return FAIL(o, ENOTSUP, "backing file format '%s' is not supported (raw or qcow2)",
                    OPATH(o), o->backing_format);
    char *path = backing_path(o);
    if (!path)
        return FAIL(o, ENOMEM, "out of memory", OPATH(o));
    /* The message names the file that failed; disk_image_open adds the user's image. */
    int ret = disk_image_open_backing(path, fmt, chain, &q->img.backing, o->errmsg);
    free(path);
    return ret;
}

/*
 * Auto-clear bits name extensions (bitmaps) whose data kiln does not keep up to date: the spec
 * has a writer clear them first, so that their readers know.
 */
static int clear_autoclear(struct qcow2 *q, struct opening *o)
{
    if (q->img.read_only || !o->h.autoclear)
        return 0;
    uint64_t zero = 0;
    int ret = block_pwrite(q->img.fd, &zero, sizeof(zero), 88);
    if (!ret)
        ret = block_sync(q->img.fd);
    return ret ? FAIL(o, -ret, "cannot update the header: %s", OPATH(o), strerror(-ret)) : 0;
}

static int open_tables(struct qcow2 *q, struct opening *o, const struct image_chain *chain)
{
    int ret = init_state(q, o);
    if (ret)
        return FAIL(o, -ret, "out of memory", OPATH(o));
    ret = load_l1(q, o);
    if (!ret && !q->img.read_only) /* refcounts matter only to a writer */
        ret = load_rt(q, o);
    if (!ret && !q->img.read_only)
        ret = check_metadata_refs(q, o);
    if (!ret)
        ret = open_backing(q, o, chain);
    if (!ret)
        ret = clear_autoclear(q, o);
    return ret;
}

static void free_qcow2(struct qcow2 *q, bool inited)
{
    qcow2_meta_free(q);
    if (inited) {
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
    }
}

int qcow2_open(const struct image_file *f, const struct image_chain *chain, struct disk_image **out,
               char *errmsg)
{
    struct opening o = {.f = f, .errmsg = errmsg};
    struct qcow2 *q = calloc(1, sizeof(*q));
    if (!q || disk_image_init(&q->img, &qcow2_ops, f) < 0) {
        free(q);
        return kiln_fail(errmsg, ENOMEM, "%s: out of memory", f->path);
    }
    int ret = check_header(&o);
    if (!ret)
        ret = open_tables(q, &o, chain);
    free(o.head);
    if (ret) {
        free_qcow2(q, q->cluster_size != 0);
        disk_image_close(q->img.backing);
        free(q->img.path);
        free(q);
        return ret;
    }
    *out = &q->img;
    return 0;
}

/* Called by disk_image_close: write everything back, then free the format's state. */
int qcow2_close(struct disk_image *img)
{
    struct qcow2 *q = (struct qcow2 *)img;
    int ret = 0;
    if (!img->read_only) {
        pthread_mutex_lock(&q->lock);
        ret = qcow2_flush_locked(q);
        if (!ret) /* the refcounts the pending frees just dropped */
            ret = qcow2_meta_flush(q);
        if (!ret)
            ret = block_sync(img->fd);
        pthread_mutex_unlock(&q->lock);
    }
    free_qcow2(q, true);
    return ret;
}
