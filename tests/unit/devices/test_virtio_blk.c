/* test_virtio_blk.c: virtio-blk against a temporary image, fake guest RAM and a fake transport. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio_blk.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

#define RAM (16ULL << 20)
#define DESC_GPA 0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA 0x30000ULL
#define TABLE_GPA 0x40000ULL /* indirect tables, 64 bytes each */
#define HDR_GPA 0x60000ULL   /* request headers, 32 bytes apart */
#define STATUS_GPA 0x70000ULL
#define DATA_GPA 0x100000ULL /* data buffers, DATA_STRIDE apart */
#define DATA_STRIDE 0x1000ULL
#define BIG_GPA 0x800000ULL /* 1 MiB scratch for whole-disk buffers */
#define QSIZE 256
#define IMG_SIZE (1ULL << 20)
#define IMG_SECTORS (IMG_SIZE / 512)

/* Everything a driver sees, plus what the fake transport and logger recorded. */
struct t {
    struct guest_mem gm;
    uv_loop_t loop;
    struct virtio_blk *blk;
    struct virtio_device *vd;
    struct vqb b;
    struct kiln_log log;
    char path[128];
    int fd;             /* the test's own view of the image */
    struct vfx_rec rec; /* signals, log lines, the last message */
    unsigned nbad;      /* "bad request" lines */
};

static void capture(void *ctx, enum kiln_log_level level, const char *msg)
{
    struct t *t = ctx;
    vfx_capture(&t->rec, level, msg);
    if (strstr(msg, "bad request"))
        t->nbad++;
}

/* Pattern byte for image offset off: distinguishes every sector. */
static uint8_t pat(uint64_t off)
{
    return (uint8_t)(off * 7 + off / 512 + 1);
}

/* A new image of size bytes under TMPDIR (mkstemp + ftruncate), filled with pat() if asked. */
static void make_image(struct t *t, uint64_t size, bool fill)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(t->path, sizeof(t->path), "%.80s/kiln-blk-XXXXXX", dir);
    t->fd = mkstemp(t->path);
    ck_assert_int_ge(t->fd, 0);
    ck_assert_int_eq(ftruncate(t->fd, (off_t)size), 0);
    if (!fill)
        return;
    uint8_t *buf = malloc(size);
    for (uint64_t i = 0; i < size; i++)
        buf[i] = pat(i);
    ck_assert_int_eq(pwrite(t->fd, buf, size, 0), (ssize_t)size);
    ck_assert_int_eq(fsync(t->fd), 0);
    free(buf);
}

static void base_setup(struct t *t)
{
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->log = (struct kiln_log){capture, t, KILN_LOG_DEBUG};
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
}

static int create(struct t *t, bool ro, const char *serial, struct virtio_blk **out, char *err)
{
    struct virtio_blk_config cfg = {.path = t->path, .read_only = ro, .serial = serial};
    return virtio_blk_create(&cfg, &t->loop, &t->gm, &t->log, out, err);
}

/* Negotiate as a driver would, with queue 0 laid out by the fake driver, and activate. */
static void drive_up(struct t *t, uint64_t features, bool event_idx)
{
    vfx_attach_transport(t->vd, &t->rec, 1);
    vqb_init(&t->b, &t->gm, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA);
    vfx_drive_up(t->vd, (struct vqb *[]){&t->b}, 1, features, event_idx);
}

#define ALL_RW                                                                                     \
    (VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |    \
     VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_F_INDIRECT_DESC)

/* Image of size bytes (filled), device created and driven up with features. */
static void setup_full(struct t *t, uint64_t size, bool ro, const char *serial, uint64_t features)
{
    char err[KILN_ERRMSG_MAX] = "";
    base_setup(t);
    make_image(t, size, true);
    ck_assert_msg(create(t, ro, serial, &t->blk, err) == 0, "%s", err);
    t->vd = virtio_blk_device(t->blk);
    drive_up(t, features, false);
}

static void setup(struct t *t)
{
    setup_full(t, IMG_SIZE, false, NULL, ALL_RW);
}

static void teardown(struct t *t)
{
    virtio_blk_destroy(t->blk);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    guest_mem_free(&t->gm);
    if (t->fd >= 0)
        close(t->fd);
    unlink(t->path);
}

/* Kick queue 0 and run the loop until the thread pool has nothing left for us. */
static void kick(struct t *t)
{
    t->vd->ops->queue_notify(t->vd, 0);
    uv_run(&t->loop, UV_RUN_DEFAULT);
}

static void put_hdr(struct t *t, uint64_t gpa, uint32_t type, uint64_t sector)
{
    uint8_t h[16] = {0};
    uint32_t ty = htole32(type);
    uint64_t se = htole64(sector);
    memcpy(h, &ty, 4);
    memcpy(h + 8, &se, 8);
    ck_assert_int_eq(guest_write(&t->gm, gpa, h, sizeof(h)), 0);
}

static void put_status(struct t *t, uint64_t gpa, uint8_t v)
{
    ck_assert_int_eq(guest_write(&t->gm, gpa, &v, 1), 0);
}

static uint8_t get_status(struct t *t, uint64_t gpa)
{
    uint8_t v = 0;
    ck_assert_int_eq(guest_read(&t->gm, gpa, &v, 1), 0);
    return v;
}

/* Offer a request: header (slot i), optional data [data, data + len), status byte (slot i). */
static uint16_t add_req(struct t *t, unsigned i, uint32_t type, uint64_t sector, uint64_t data,
                        uint32_t len, bool data_write)
{
    uint64_t hdr = HDR_GPA + 32 * (uint64_t)i, st = STATUS_GPA + i;
    put_hdr(t, hdr, type, sector);
    put_status(t, st, 0xee);
    struct vqb_seg segs[3] = {{hdr, 16, false}, {data, len, data_write}, {st, 1, true}};
    if (len == 0) {
        segs[1] = segs[2];
        return vqb_add(&t->b, segs, 2);
    }
    return vqb_add(&t->b, segs, 3);
}

/* The used element at idx: chain head and length, checked. */
static void expect_used(struct t *t, uint16_t idx, uint16_t head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    vqb_used_elem(&t->b, idx, &id, &l);
    ck_assert_uint_eq(id, head);
    ck_assert_uint_eq(l, len);
}

/* One request through the device; returns its status byte and checks the used length. */
static uint8_t one(struct t *t, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                   bool data_write, uint32_t used)
{
    uint16_t before = vqb_used_idx(&t->b);
    uint16_t head = add_req(t, 0, type, sector, data, len, data_write);
    kick(t);
    ck_assert_uint_eq(vqb_used_idx(&t->b), (uint16_t)(before + 1));
    expect_used(t, before, head, used);
    return get_status(t, STATUS_GPA);
}

static void fill_guest(struct t *t, uint64_t gpa, uint64_t len, uint8_t seed)
{
    uint8_t *p = gpa_to_host(&t->gm, gpa, len);
    ck_assert_ptr_nonnull(p);
    for (uint64_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 13);
}

/* Image bytes [off, off + len) equal guest bytes at gpa. */
static void expect_disk_eq_guest(struct t *t, uint64_t off, uint64_t gpa, uint64_t len)
{
    uint8_t *buf = malloc(len);
    ck_assert_int_eq(pread(t->fd, buf, len, (off_t)off), (ssize_t)len);
    ck_assert_int_eq(memcmp(buf, gpa_to_host(&t->gm, gpa, len), len), 0);
    free(buf);
}

/* First offset in [0, len) where p differs from the image pattern starting at off, or len. */
static uint64_t pattern_mismatch(const uint8_t *p, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != pat(off + i))
            return i;
    return len;
}

static uint64_t zero_mismatch(const uint8_t *p, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != 0)
            return i;
    return len;
}

/* Guest bytes at gpa hold the original image pattern from off. */
static void expect_guest_pattern(struct t *t, uint64_t gpa, uint64_t off, uint64_t len)
{
    ck_assert_uint_eq(pattern_mismatch(gpa_to_host(&t->gm, gpa, len), off, len), len);
}

static void expect_disk_zero(struct t *t, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);
    ck_assert_int_eq(pread(t->fd, buf, len, (off_t)off), (ssize_t)len);
    ck_assert_uint_eq(zero_mismatch(buf, len), len);
    free(buf);
}

static uint32_t cfg32(struct t *t, uint32_t off)
{
    uint32_t v = 0;
    t->vd->ops->dev.read(&t->vd->dev, 0, off, (uint8_t *)&v, 4);
    return le32toh(v);
}

/* ---- creation, locking, config space ---- */

START_TEST(test_create_errors)
{
    struct t t;
    struct virtio_blk *blk = NULL;
    char err[KILN_ERRMSG_MAX];
    base_setup(&t);
    snprintf(t.path, sizeof(t.path), "/nonexistent/kiln-disk.img");
    ck_assert_int_eq(create(&t, false, NULL, &blk, err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/kiln-disk.img"));
    snprintf(t.path, sizeof(t.path), "/tmp");
    ck_assert_int_eq(create(&t, false, NULL, &blk, err), -EISDIR);
    ck_assert_int_eq(create(&t, true, NULL, &blk, err), -EISDIR);
    ck_assert_ptr_nonnull(strstr(err, "directory"));
    make_image(&t, 0, false);
    ck_assert_int_eq(create(&t, false, NULL, &blk, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, t.path));
    ck_assert_int_eq(ftruncate(t.fd, 511), 0);
    ck_assert_int_eq(create(&t, false, NULL, &blk, err), -EINVAL);
    ck_assert_int_eq(ftruncate(t.fd, 512), 0);
    ck_assert_int_eq(create(&t, false, "123456789012345678901", &blk, err), -EINVAL);
    ck_assert_int_eq(create(&t, false, "bad\nserial", &blk, err), -EINVAL);
    ck_assert_int_eq(create(&t, false, "12345678901234567890", &blk, err), 0);
    ck_assert_uint_eq(virtio_blk_capacity(blk), 1);
    virtio_blk_destroy(blk);
    struct virtio_blk_config none = {0};
    ck_assert_int_eq(virtio_blk_create(&none, &t.loop, &t.gm, &t.log, &blk, err), -EINVAL);
    teardown(&t);
}
END_TEST

START_TEST(test_create_fifo)
{
    struct t t;
    struct virtio_blk *blk = NULL;
    char err[KILN_ERRMSG_MAX];
    base_setup(&t);
    make_image(&t, 0, false);
    unlink(t.path);
    ck_assert_int_eq(mkfifo(t.path, 0600), 0);
    /* Must neither block waiting for a writer nor accept it. */
    ck_assert_int_eq(create(&t, true, NULL, &blk, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "regular file"));
    ck_assert_int_eq(create(&t, false, NULL, &blk, err), -EINVAL);
    teardown(&t);
}
END_TEST

START_TEST(test_lock_conflicts)
{
    struct t t;
    struct virtio_blk *a = NULL, *b = NULL;
    char err[KILN_ERRMSG_MAX] = "";
    base_setup(&t);
    make_image(&t, IMG_SIZE, false);
    /* OFD locks belong to open file descriptions: they conflict inside one process too. */
    ck_assert_int_eq(create(&t, false, NULL, &a, err), 0);
    ck_assert_int_eq(create(&t, false, NULL, &b, err), -EBUSY);
    ck_assert_ptr_nonnull(strstr(err, t.path));
    ck_assert_ptr_nonnull(strstr(err, "locked by another process or disk"));
    ck_assert_int_eq(create(&t, true, NULL, &b, err), -EBUSY);
    virtio_blk_destroy(a);
    /* Closing the fd released the lock. */
    ck_assert_int_eq(create(&t, true, NULL, &a, err), 0);
    ck_assert_int_eq(create(&t, true, NULL, &b, err), 0); /* shared: read-only + read-only */
    struct virtio_blk *c = NULL;
    ck_assert_int_eq(create(&t, false, NULL, &c, err), -EBUSY);
    virtio_blk_destroy(a);
    virtio_blk_destroy(b);
    ck_assert_int_eq(create(&t, false, NULL, &c, err), 0);
    virtio_blk_destroy(c);
    teardown(&t);
}
END_TEST

START_TEST(test_config_space)
{
    struct t t;
    setup_full(&t, IMG_SIZE + 100, false, NULL, ALL_RW);
    /* A partial last sector is not exposed, and the user is told. */
    ck_assert_uint_eq(virtio_blk_capacity(t.blk), IMG_SECTORS);
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "not visible"));
    uint64_t cap = 0;
    t.vd->ops->dev.read(&t.vd->dev, 0, VIRTIO_BLK_CFG_CAPACITY, (uint8_t *)&cap, 8);
    ck_assert_uint_eq(le64toh(cap), IMG_SECTORS);
    ck_assert_uint_eq(cfg32(&t, VIRTIO_BLK_CFG_SEG_MAX), VIRTQ_CHAIN_MAX - 2);
    ck_assert_uint_eq(cfg32(&t, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    ck_assert_uint_gt(cfg32(&t, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), 0);
    ck_assert_uint_gt(cfg32(&t, VIRTIO_BLK_CFG_MAX_DISCARD_SEG), 0);
    ck_assert_uint_gt(cfg32(&t, VIRTIO_BLK_CFG_DISCARD_ALIGN), 0);
    ck_assert_uint_gt(cfg32(&t, VIRTIO_BLK_CFG_MAX_WZ_SECTORS), 0);
    ck_assert_uint_gt(cfg32(&t, VIRTIO_BLK_CFG_MAX_WZ_SEG), 0);
    uint8_t b = 0;
    t.vd->ops->dev.read(&t.vd->dev, 0, VIRTIO_BLK_CFG_WZ_MAY_UNMAP, &b, 1);
    ck_assert_uint_eq(b, 1);
    /* Unaligned and past-the-end reads: bytes beyond the layout read as zero. */
    uint8_t raw[8];
    memset(raw, 0xaa, sizeof(raw));
    t.vd->ops->dev.read(&t.vd->dev, 0, VIRTIO_BLK_CONFIG_LEN - 2, raw, 8);
    ck_assert_uint_eq(zero_mismatch(raw, sizeof(raw)), sizeof(raw));
    memset(raw, 0xaa, sizeof(raw));
    t.vd->ops->dev.read(&t.vd->dev, 0, 0xfffffff0u, raw, 4);
    ck_assert_uint_eq(raw[0] | raw[3], 0);
    t.vd->ops->dev.read(&t.vd->dev, 0, 1, raw, 2);
    ck_assert_uint_eq(raw[0], (IMG_SECTORS >> 8) & 0xff);
    /* Writes are ignored. */
    t.vd->ops->dev.write(&t.vd->dev, 0, 0, raw, 4);
    ck_assert_uint_eq(cfg32(&t, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    uint64_t f = t.vd->device_features;
    ck_assert(f & VIRTIO_BLK_F_FLUSH && f & VIRTIO_BLK_F_DISCARD && f & VIRTIO_BLK_F_WRITE_ZEROES);
    ck_assert(f & VIRTIO_F_INDIRECT_DESC && f & VIRTIO_F_EVENT_IDX && f & VIRTIO_F_VERSION_1);
    ck_assert(!(f & VIRTIO_BLK_F_RO) && !(f & VIRTIO_BLK_F_MQ));
    ck_assert_uint_eq(t.vd->queue_max_size, VIRTIO_BLK_QUEUE_SIZE);
    ck_assert_uint_eq(t.vd->num_queues, 1);
    ck_assert_uint_eq(t.vd->ops->device_id, VIRTIO_ID_BLOCK);
    ck_assert_uint_eq(t.vd->ops->config_len, VIRTIO_BLK_CONFIG_LEN);
    teardown(&t);
}
END_TEST

START_TEST(test_config_read_only)
{
    struct t t;
    setup_full(&t, IMG_SIZE, true, NULL, VIRTIO_BLK_F_FLUSH);
    uint64_t f = t.vd->device_features;
    ck_assert(f & VIRTIO_BLK_F_RO);
    ck_assert(!(f & VIRTIO_BLK_F_DISCARD) && !(f & VIRTIO_BLK_F_WRITE_ZEROES));
    ck_assert_uint_eq(cfg32(&t, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS), 0);
    ck_assert_uint_eq(cfg32(&t, VIRTIO_BLK_CFG_MAX_WZ_SECTORS), 0);
    teardown(&t);
}
END_TEST

/* ---- data path ---- */

START_TEST(test_write_read_round_trip)
{
    struct t t;
    setup(&t);
    fill_guest(&t, DATA_GPA, 4096, 3);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 8, DATA_GPA, 4096, false, 1), VIRTIO_BLK_S_OK);
    expect_disk_eq_guest(&t, 8 * 512, DATA_GPA, 4096);
    /* Neighbours untouched. */
    uint8_t b = 0;
    ck_assert_int_eq(pread(t.fd, &b, 1, 8 * 512 - 1), 1);
    ck_assert_uint_eq(b, pat(8 * 512 - 1));
    uint64_t back = DATA_GPA + 2 * DATA_STRIDE;
    memset(gpa_to_host(&t.gm, back, 4096), 0, 4096);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 8, back, 4096, true, 4097), VIRTIO_BLK_S_OK);
    ck_assert_int_eq(
        memcmp(gpa_to_host(&t.gm, back, 4096), gpa_to_host(&t.gm, DATA_GPA, 4096), 4096), 0);
    /* The last sector of the disk, and an original-pattern read. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, back, 512, true, 513),
                      VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, back, IMG_SIZE - 512, 512);
    ck_assert_uint_ge(t.rec.sig[0], 3);
    ck_assert_uint_eq(t.nbad, 0);
    teardown(&t);
}
END_TEST

/* A qcow2 image (made by qemu-img from a patterned raw one): read, written, then checked clean. */
START_TEST(test_qcow2_image)
{
    struct t t;
    char err[KILN_ERRMSG_MAX] = "", qcow[160], cmd[512];
    base_setup(&t);
    make_image(&t, IMG_SIZE, true);
    snprintf(qcow, sizeof(qcow), "%s.qcow2", t.path);
    snprintf(cmd, sizeof(cmd), "qemu-img convert -f raw -O qcow2 -o cluster_size=4096 %s %s",
             t.path, qcow);
    ck_assert_msg(system(cmd) == 0, "%s failed (qemu-utils installed?)", cmd);
    const struct virtio_blk_config cfg = {.path = qcow}; /* the format found from the file */
    ck_assert_msg(virtio_blk_create(&cfg, &t.loop, &t.gm, &t.log, &t.blk, err) == 0, "%s", err);
    ck_assert_uint_eq(virtio_blk_capacity(t.blk), IMG_SECTORS);
    t.vd = virtio_blk_device(t.blk);
    drive_up(&t, ALL_RW, false);
    uint64_t back = DATA_GPA + 2 * DATA_STRIDE;
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 3, back, 4096, true, 4097), VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, back, 3 * 512, 4096);
    fill_guest(&t, DATA_GPA, 6144, 9); /* across a cluster boundary */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 7, DATA_GPA, 6144, false, 1), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 7, back, 6144, true, 6145), VIRTIO_BLK_S_OK);
    ck_assert_int_eq(
        memcmp(gpa_to_host(&t.gm, back, 6144), gpa_to_host(&t.gm, DATA_GPA, 6144), 6144), 0);
    virtio_blk_destroy(t.blk);
    t.blk = NULL;
    snprintf(cmd, sizeof(cmd), "qemu-img check -q %s", qcow);
    ck_assert_msg(system(cmd) == 0, "qemu-img check found problems in %s", qcow);
    /* The raw conversion: the guest's write in place, the pattern around it. */
    snprintf(cmd, sizeof(cmd), "qemu-img convert -f qcow2 -O raw %s %s", qcow, t.path);
    ck_assert_int_eq(system(cmd), 0);
    expect_disk_eq_guest(&t, 7 * 512, DATA_GPA, 6144);
    uint8_t b;
    ck_assert_int_eq(pread(t.fd, &b, 1, 7 * 512 - 1), 1);
    ck_assert_uint_eq(b, pat(7 * 512 - 1));
    unlink(qcow);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t.loop), 0);
    guest_mem_free(&t.gm);
    close(t.fd);
    unlink(t.path);
}
END_TEST

START_TEST(test_multi_segment)
{
    struct t t;
    setup(&t);
    uint64_t hdr = HDR_GPA, st = STATUS_GPA, d = DATA_GPA;
    fill_guest(&t, d, 3 * DATA_STRIDE, 9);
    /* Segments need not be sector-sized, only their total. */
    put_hdr(&t, hdr, VIRTIO_BLK_T_OUT, 10);
    struct vqb_seg w[5] = {{hdr, 16, false},
                           {d, 100, false},
                           {d + DATA_STRIDE, 412, false},
                           {d + 2 * DATA_STRIDE, 1024, false},
                           {st, 1, true}};
    uint16_t head = vqb_add(&t.b, w, 5);
    kick(&t);
    expect_used(&t, 0, head, 1);
    ck_assert_uint_eq(get_status(&t, st), VIRTIO_BLK_S_OK);
    expect_disk_eq_guest(&t, 10 * 512, d, 100);
    expect_disk_eq_guest(&t, 10 * 512 + 100, d + DATA_STRIDE, 412);
    expect_disk_eq_guest(&t, 10 * 512 + 512, d + 2 * DATA_STRIDE, 1024);
    /* Read it back into two writable buffers, the second one also carrying the status byte. */
    uint64_t r = BIG_GPA;
    put_hdr(&t, hdr, VIRTIO_BLK_T_IN, 10);
    struct vqb_seg rd[3] = {{hdr, 16, false}, {r, 1000, true}, {r + 4096, 537, true}};
    head = vqb_add(&t.b, rd, 3);
    kick(&t);
    expect_used(&t, 1, head, 1537);
    ck_assert_uint_eq(get_status(&t, r + 4096 + 536), VIRTIO_BLK_S_OK);
    expect_disk_eq_guest(&t, 10 * 512, r, 1000);
    expect_disk_eq_guest(&t, 10 * 512 + 1000, r + 4096, 536);
    teardown(&t);
}
END_TEST

START_TEST(test_header_split_and_merged)
{
    struct t t;
    setup(&t);
    /* Header split 5 + 11 bytes over two descriptors. */
    uint64_t hdr = HDR_GPA, st = STATUS_GPA, d = DATA_GPA;
    put_hdr(&t, hdr, VIRTIO_BLK_T_IN, 3);
    struct vqb_seg s1[4] = {{hdr, 5, false}, {hdr + 5, 11, false}, {d, 512, true}, {st, 1, true}};
    uint16_t head = vqb_add(&t.b, s1, 4);
    kick(&t);
    expect_used(&t, 0, head, 513);
    ck_assert_uint_eq(get_status(&t, st), VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, d, 3 * 512, 512);
    /* Header and data in one readable buffer, status after zero-length writable buffers. */
    uint64_t m = BIG_GPA;
    put_hdr(&t, m, VIRTIO_BLK_T_OUT, 5);
    fill_guest(&t, m + 16, 512, 77);
    struct vqb_seg s2[4] = {{m, 16 + 512, false}, {st, 0, true}, {st, 1, true}, {st + 8, 0, true}};
    head = vqb_add(&t.b, s2, 4);
    kick(&t);
    expect_used(&t, 1, head, 1);
    ck_assert_uint_eq(get_status(&t, st), VIRTIO_BLK_S_OK);
    expect_disk_eq_guest(&t, 5 * 512, m + 16, 512);
    /* Through an indirect table. */
    put_hdr(&t, hdr, VIRTIO_BLK_T_IN, 5);
    struct vqb_seg s3[3] = {{hdr, 16, false}, {d, 512, true}, {st, 1, true}};
    head = vqb_chain_ind(&t.b, NULL, 0, TABLE_GPA, s3, 3);
    vqb_add_head(&t.b, head);
    kick(&t);
    expect_used(&t, 2, head, 513);
    ck_assert_int_eq(memcmp(gpa_to_host(&t.gm, d, 512), gpa_to_host(&t.gm, m + 16, 512), 512), 0);
    teardown(&t);
}
END_TEST

static void get_id_case(const char *serial, const char *want, unsigned want_len)
{
    struct t t;
    setup_full(&t, IMG_SIZE, false, serial, ALL_RW);
    memset(gpa_to_host(&t.gm, DATA_GPA, 64), 0xcc, 64);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 20, true, 21), VIRTIO_BLK_S_OK);
    const uint8_t *id = gpa_to_host(&t.gm, DATA_GPA, 21);
    ck_assert_int_eq(memcmp(id, want, want_len), 0);
    ck_assert_uint_eq(zero_mismatch(id + want_len, 20 - want_len), 20 - want_len);
    ck_assert_uint_eq(id[20], 0xcc); /* nothing past the 20 bytes */
    /* Too small a buffer: IOERR, nothing of the data area reported written. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_GET_ID, 0, DATA_GPA, 10, true, 0), VIRTIO_BLK_S_IOERR);
    teardown(&t);
}

START_TEST(test_get_id)
{
    get_id_case("kiln-serial-1", "kiln-serial-1", 13);
    get_id_case("ABCDEFGHIJKLMNOPQRST", "ABCDEFGHIJKLMNOPQRST", 20);
    get_id_case(NULL, "", 0);
    get_id_case("", "", 0);
}
END_TEST

START_TEST(test_flush_and_write_through)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, 1), VIRTIO_BLK_S_OK);
    /* FLUSH carries no data. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_FLUSH, 0, DATA_GPA, 512, false, 1), VIRTIO_BLK_S_IOERR);
    teardown(&t);
    /* Without FLUSH negotiated the disk is write-through; requests still work. */
    setup_full(&t, IMG_SIZE, false, NULL, VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_WRITE_ZEROES);
    fill_guest(&t, DATA_GPA, 1024, 5);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 2, DATA_GPA, 1024, false, 1), VIRTIO_BLK_S_OK);
    expect_disk_eq_guest(&t, 1024, DATA_GPA, 1024);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, 1), VIRTIO_BLK_S_OK);
    teardown(&t);
}
END_TEST

/* Offer a discard / write-zeroes request with n segments {sector, num, flags}. */
static uint16_t add_dwz(struct t *t, uint32_t type, const uint64_t (*segs)[3], unsigned n)
{
    uint64_t list = BIG_GPA;
    for (unsigned i = 0; i < n; i++) {
        uint8_t raw[16];
        uint64_t se = htole64(segs[i][0]);
        uint32_t num = htole32((uint32_t)segs[i][1]), fl = htole32((uint32_t)segs[i][2]);
        memcpy(raw, &se, 8);
        memcpy(raw + 8, &num, 4);
        memcpy(raw + 12, &fl, 4);
        ck_assert_int_eq(guest_write(&t->gm, list + 16 * i, raw, 16), 0);
    }
    return add_req(t, 0, type, 0, list, 16 * n, false);
}

static uint8_t dwz(struct t *t, uint32_t type, const uint64_t (*segs)[3], unsigned n)
{
    uint16_t before = vqb_used_idx(&t->b);
    uint16_t head = add_dwz(t, type, segs, n);
    kick(t);
    expect_used(t, before, head, 1);
    return get_status(t, STATUS_GPA);
}

static blkcnt_t blocks(struct t *t)
{
    struct stat st;
    ck_assert_int_eq(fstat(t->fd, &st), 0);
    return st.st_blocks;
}

START_TEST(test_discard_punches_holes)
{
    struct t t;
    setup(&t);
    blkcnt_t before = blocks(&t);
    ck_assert_int_gt(before, 1024); /* 512 KiB at least allocated */
    const uint64_t segs[2][3] = {{0, IMG_SECTORS / 2, 0}, {IMG_SECTORS / 2, 256, 0}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, segs, 2), VIRTIO_BLK_S_OK);
    ck_assert_int_lt(blocks(&t), before - 1024);
    expect_disk_zero(&t, 0, (IMG_SECTORS / 2 + 256) * 512);
    /* The rest untouched, and the file size kept. */
    uint8_t b = 0;
    uint64_t off = (IMG_SECTORS / 2 + 256) * 512;
    ck_assert_int_eq(pread(t.fd, &b, 1, (off_t)off), 1);
    ck_assert_uint_eq(b, pat(off));
    struct stat st;
    ck_assert_int_eq(fstat(t.fd, &st), 0);
    ck_assert_int_eq(st.st_size, IMG_SIZE);
    teardown(&t);
}
END_TEST

START_TEST(test_write_zeroes)
{
    struct t t;
    setup(&t);
    const uint64_t keep[1][3] = {{16, 64, 0}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_WRITE_ZEROES, keep, 1), VIRTIO_BLK_S_OK);
    expect_disk_zero(&t, 16 * 512, 64 * 512);
    uint8_t b = 0;
    ck_assert_int_eq(pread(t.fd, &b, 1, 80 * 512), 1);
    ck_assert_uint_eq(b, pat(80 * 512));
    blkcnt_t before = blocks(&t);
    const uint64_t unmap[1][3] = {{1024, 1024, VIRTIO_BLK_WZ_F_UNMAP}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_WRITE_ZEROES, unmap, 1), VIRTIO_BLK_S_OK);
    expect_disk_zero(&t, 1024 * 512, 1024 * 512);
    ck_assert_int_lt(blocks(&t), before);
    /* Reading it through the device gives zeros too. */
    memset(gpa_to_host(&t.gm, DATA_GPA, 512), 0x55, 512);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 2047, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(zero_mismatch(gpa_to_host(&t.gm, DATA_GPA, 512), 512), 512);
    teardown(&t);
}
END_TEST

START_TEST(test_discard_bad_segments)
{
    struct t t;
    setup(&t);
    const uint64_t unmap[1][3] = {{0, 8, VIRTIO_BLK_WZ_F_UNMAP}};
    const uint64_t reserved[1][3] = {{0, 8, 2}};
    const uint64_t beyond[1][3] = {{IMG_SECTORS - 4, 8, 0}};
    const uint64_t wrap[1][3] = {{UINT64_MAX - 2, 8, 0}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, unmap, 1), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, reserved, 1), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_WRITE_ZEROES, reserved, 1), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, beyond, 1), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_WRITE_ZEROES, wrap, 1), VIRTIO_BLK_S_IOERR);
    uint64_t many[40][3];
    for (unsigned i = 0; i < 40; i++) {
        many[i][0] = i;
        many[i][1] = 1;
        many[i][2] = 0;
    }
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, (const uint64_t(*)[3])many, 40),
                      VIRTIO_BLK_S_IOERR);
    /* Not a whole number of segments, and no segment at all. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_DISCARD, 0, BIG_GPA, 20, false, 1), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_DISCARD, 0, 0, 0, false, 1), VIRTIO_BLK_S_IOERR);
    /* None of it touched the image. */
    uint8_t b = 0;
    ck_assert_int_eq(pread(t.fd, &b, 1, 0), 1);
    ck_assert_uint_eq(b, pat(0));
    ck_assert_uint_eq(t.nbad, 1); /* logged once only */
    teardown(&t);
}
END_TEST

START_TEST(test_discard_not_negotiated)
{
    struct t t;
    setup_full(&t, IMG_SIZE, false, NULL, VIRTIO_BLK_F_FLUSH);
    const uint64_t seg[1][3] = {{0, 8, 0}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, seg, 1), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_WRITE_ZEROES, seg, 1), VIRTIO_BLK_S_UNSUPP);
    uint8_t b = 0;
    ck_assert_int_eq(pread(t.fd, &b, 1, 0), 1);
    ck_assert_uint_eq(b, pat(0));
    teardown(&t);
}
END_TEST

START_TEST(test_read_only_refuses_writes)
{
    struct t t;
    setup_full(&t, IMG_SIZE, true, NULL, VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
    fill_guest(&t, DATA_GPA, 4096, 1);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 0, DATA_GPA, 4096, false, 1), VIRTIO_BLK_S_IOERR);
    unsigned logged = t.rec.nlog;
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "read-only"));
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 8, DATA_GPA, 512, false, 1), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(t.rec.nlog, logged); /* once */
    const uint64_t seg[1][3] = {{0, 8, 0}};
    ck_assert_uint_eq(dwz(&t, VIRTIO_BLK_T_DISCARD, seg, 1), VIRTIO_BLK_S_UNSUPP);
    /* The image is unchanged; reads and flushes work. */
    uint8_t *buf = malloc(IMG_SIZE);
    ck_assert_int_eq(pread(t.fd, buf, IMG_SIZE, 0), (ssize_t)IMG_SIZE);
    ck_assert_uint_eq(pattern_mismatch(buf, 0, IMG_SIZE), IMG_SIZE);
    free(buf);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 1, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, DATA_GPA, 512, 512);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, 1), VIRTIO_BLK_S_OK);
    teardown(&t);
}
END_TEST

/* ---- checks on hostile requests ---- */

START_TEST(test_bounds_and_alignment)
{
    struct t t;
    setup(&t);
    uint64_t d = BIG_GPA;
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, d, 1024, true, 0),
                      VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, IMG_SECTORS, d, 512, true, 0), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, UINT64_MAX, d, 512, false, 1), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, d, 512, false, 1),
                      VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, d, 513, true, 0), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 0, d, 100, false, 1), VIRTIO_BLK_S_IOERR);
    /* The whole disk in one request is fine; so is an empty request at the end. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, d, IMG_SIZE, true, IMG_SIZE + 1),
                      VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, d, 0, IMG_SIZE);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, IMG_SECTORS, 0, 0, true, 1), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(t.nbad, 1);
    ck_assert_uint_eq(t.rec.csig, 0);
    teardown(&t);
}
END_TEST

START_TEST(test_wrong_direction_and_type)
{
    struct t t;
    setup(&t);
    uint64_t d = DATA_GPA;
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, d, 512, false, 1), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_OUT, 0, d, 512, true, 0), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, 99, 0, 0, 0, false, 1), VIRTIO_BLK_S_UNSUPP);
    ck_assert_uint_eq(one(&t, UINT32_MAX, 0, d, 512, true, 0), VIRTIO_BLK_S_UNSUPP);
    /* A header shorter than 16 bytes, with a status byte: IOERR. */
    put_hdr(&t, HDR_GPA, VIRTIO_BLK_T_IN, 0);
    put_status(&t, STATUS_GPA, 0xee);
    struct vqb_seg s[2] = {{HDR_GPA, 8, false}, {STATUS_GPA, 1, true}};
    uint16_t head = vqb_add(&t.b, s, 2);
    kick(&t);
    expect_used(&t, 4, head, 1);
    ck_assert_uint_eq(get_status(&t, STATUS_GPA), VIRTIO_BLK_S_IOERR);
    /* A write-only chain (no header at all). */
    struct vqb_seg w[1] = {{STATUS_GPA, 1, true}};
    head = vqb_add(&t.b, w, 1);
    kick(&t);
    expect_used(&t, 5, head, 1);
    ck_assert_uint_eq(get_status(&t, STATUS_GPA), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(t.rec.csig, 0);
    ck_assert(!(virtio_read_status(t.vd) & VIRTIO_STATUS_NEEDS_RESET));
    teardown(&t);
}
END_TEST

/* The driver is broken when the device cannot even report a status: NEEDS_RESET. */
START_TEST(test_no_status_byte)
{
    struct t t;
    setup(&t);
    put_hdr(&t, HDR_GPA, VIRTIO_BLK_T_OUT, 0);
    struct vqb_seg s[2] = {{HDR_GPA, 16, false}, {DATA_GPA, 512, false}};
    vqb_add(&t.b, s, 2);
    add_req(&t, 1, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true);
    kick(&t);
    ck_assert(virtio_read_status(t.vd) & VIRTIO_STATUS_NEEDS_RESET);
    ck_assert_uint_eq(t.rec.csig, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0); /* nothing after it is processed either */
    ck_assert_uint_eq(get_status(&t, STATUS_GPA + 1), 0xee);
    kick(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    uint8_t b = 0;
    ck_assert_int_eq(pread(t.fd, &b, 1, 0), 1);
    ck_assert_uint_eq(b, pat(0));
    teardown(&t);
}
END_TEST

START_TEST(test_hostile_chain)
{
    struct t t;
    setup(&t);
    put_hdr(&t, HDR_GPA, VIRTIO_BLK_T_IN, 0);
    struct vqb_seg s[3] = {{HDR_GPA, 16, false}, {RAM - 256, 512, true}, {STATUS_GPA, 1, true}};
    vqb_add(&t.b, s, 3);
    kick(&t);
    ck_assert(virtio_read_status(t.vd) & VIRTIO_STATUS_NEEDS_RESET);
    ck_assert_uint_eq(t.rec.csig, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    /* Later kicks do nothing until the driver resets the device. */
    add_req(&t, 1, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true);
    kick(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    ck_assert_uint_eq(t.rec.csig, 1);
    teardown(&t);
}
END_TEST

START_TEST(test_image_shrank)
{
    struct t t;
    setup(&t);
    ck_assert_int_eq(ftruncate(t.fd, 4096), 0);
    /* Reads running into, or starting past, the new end of file: IOERR, not made-up zeros. */
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 7, DATA_GPA, 1024, true, 0), VIRTIO_BLK_S_IOERR);
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "failed"));
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 10, DATA_GPA, 1024, true, 0), VIRTIO_BLK_S_IOERR);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, DATA_GPA, 1024, true, 1025), VIRTIO_BLK_S_OK);
    teardown(&t);
}
END_TEST

/* ---- concurrency: the in-flight bound, reset and destroy with requests on the pool ---- */

/* Offer n one-sector reads through indirect tables (one ring descriptor each). */
static void add_reads(struct t *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t hdr = HDR_GPA + 32 * (uint64_t)i, st = STATUS_GPA + i;
        put_hdr(t, hdr, VIRTIO_BLK_T_IN, i);
        put_status(t, st, 0xee);
        struct vqb_seg s[3] = {
            {hdr, 16, false}, {BIG_GPA + 512 * (uint64_t)i, 512, true}, {st, 1, true}};
        uint16_t head = vqb_chain_ind(&t->b, NULL, 0, TABLE_GPA + 64 * (uint64_t)i, s, 3);
        vqb_offer(&t->b, head);
    }
    vqb_publish(&t->b);
}

START_TEST(test_inflight_bound)
{
    struct t t;
    setup(&t);
    add_reads(&t, 200);
    t.vd->ops->queue_notify(t.vd, 0);
    /* Only the bound was taken; no kicks wanted while the device is saturated. */
    ck_assert_uint_eq(t.vd->queues[0].vq.last_avail, VIRTIO_BLK_MAX_INFLIGHT);
    ck_assert(virtio_blk_busy(t.blk));
    ck_assert_uint_eq(vqb_used_flags(&t.b), VIRTQ_USED_F_NO_NOTIFY);
    t.vd->ops->queue_notify(t.vd, 0); /* a kick meanwhile changes nothing */
    ck_assert_uint_eq(t.vd->queues[0].vq.last_avail, VIRTIO_BLK_MAX_INFLIGHT);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert(!virtio_blk_busy(t.blk));
    ck_assert_uint_eq(vqb_used_idx(&t.b), 200);
    for (unsigned i = 0; i < 200; i++)
        ck_assert_uint_eq(get_status(&t, STATUS_GPA + i), VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, BIG_GPA, 0, 200 * 512);
    ck_assert_uint_eq(vqb_used_flags(&t.b), 0); /* notifications back on once idle */
    teardown(&t);
}
END_TEST

START_TEST(test_event_idx)
{
    struct t t;
    base_setup(&t);
    make_image(&t, IMG_SIZE, true);
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(create(&t, false, NULL, &t.blk, err), 0);
    t.vd = virtio_blk_device(t.blk);
    drive_up(&t, ALL_RW, true);
    vqb_set_used_event(&t.b, 3); /* interrupt only once the 4th request is used */
    for (unsigned i = 0; i < 3; i++)
        ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, i, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(t.rec.sig[0], 0);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    ck_assert_uint_eq(t.rec.sig[0], 1);
    ck_assert_uint_eq(vqb_avail_event(&t.b), 4); /* kicks wanted for the next one */
    teardown(&t);
}
END_TEST

START_TEST(test_reset_with_inflight)
{
    struct t t;
    setup(&t);
    add_reads(&t, 100);
    t.vd->ops->queue_notify(t.vd, 0);
    ck_assert(virtio_blk_busy(t.blk));
    vfx_reset(t.vd);
    /* Still draining: the driver keeps reading a non-zero status. */
    ck_assert(t.vd->reset_pending);
    ck_assert_uint_ne(virtio_read_status(t.vd), 0);
    unsigned qsig = t.rec.sig[0];
    uv_run(&t.loop, UV_RUN_DEFAULT);
    ck_assert(!virtio_blk_busy(t.blk));
    ck_assert(!t.vd->reset_pending);
    ck_assert_uint_eq(virtio_read_status(t.vd), 0);
    /* The dropped completions never touched the old rings or status bytes. */
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    ck_assert_uint_eq(t.rec.sig[0], qsig);
    for (unsigned i = 0; i < 100; i++)
        ck_assert_uint_eq(get_status(&t, STATUS_GPA + i), 0xee);
    /* The device comes back up for the next driver. */
    drive_up(&t, ALL_RW, false);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 9, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    expect_guest_pattern(&t, DATA_GPA, 9 * 512, 512);
    teardown(&t);
}
END_TEST

START_TEST(test_reset_idle)
{
    struct t t;
    setup(&t);
    ck_assert_uint_eq(one(&t, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true, 513), VIRTIO_BLK_S_OK);
    vfx_reset(t.vd);
    ck_assert(!t.vd->reset_pending);
    ck_assert_uint_eq(virtio_read_status(t.vd), 0);
    /* Kicks after a reset are ignored. */
    add_req(&t, 1, VIRTIO_BLK_T_IN, 0, DATA_GPA, 512, true);
    kick(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.b), 1);
    teardown(&t);
}
END_TEST

START_TEST(test_destroy_with_inflight)
{
    struct t t;
    setup(&t);
    add_reads(&t, 100);
    t.vd->ops->queue_notify(t.vd, 0);
    ck_assert(virtio_blk_busy(t.blk));
    virtio_blk_destroy(t.blk); /* waits for the pool, drops the results */
    t.blk = NULL;
    ck_assert_uint_eq(vqb_used_idx(&t.b), 0);
    teardown(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_blk");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_create_fifo);
    tcase_add_test(tc, test_lock_conflicts);
    tcase_add_test(tc, test_config_space);
    tcase_add_test(tc, test_config_read_only);
    tcase_add_test(tc, test_write_read_round_trip);
    tcase_add_test(tc, test_qcow2_image);
    tcase_add_test(tc, test_multi_segment);
    tcase_add_test(tc, test_header_split_and_merged);
    tcase_add_test(tc, test_get_id);
    tcase_add_test(tc, test_flush_and_write_through);
    tcase_add_test(tc, test_discard_punches_holes);
    tcase_add_test(tc, test_write_zeroes);
    tcase_add_test(tc, test_discard_bad_segments);
    tcase_add_test(tc, test_discard_not_negotiated);
    tcase_add_test(tc, test_read_only_refuses_writes);
    tcase_add_test(tc, test_bounds_and_alignment);
    tcase_add_test(tc, test_wrong_direction_and_type);
    tcase_add_test(tc, test_no_status_byte);
    tcase_add_test(tc, test_hostile_chain);
    tcase_add_test(tc, test_image_shrank);
    tcase_add_test(tc, test_inflight_bound);
    tcase_add_test(tc, test_event_idx);
    tcase_add_test(tc, test_reset_with_inflight);
    tcase_add_test(tc, test_reset_idle);
    tcase_add_test(tc, test_destroy_with_inflight);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
