/* test_virtio_vsock.c: virtio-vsock with hand-built packets, real unix sockets, a fake driver. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio_vsock.h"
#include "memory.h"
#include "state.h"
#include "util.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

#define RAM (16ULL << 20)
#define QSIZE 256
#define RING_GPA(q) (0x10000ULL + 0x4000ULL * (q)) /* desc, then avail +0x1000, used +0x2000 */
#define BUF_GPA 0x100000ULL                        /* buffers, bump-allocated, wrapping */
#define CID 42
#define RXBUF 4096 /* payload room of each receive buffer, as Linux posts them */

struct t {
    struct guest_mem gm;
    uv_loop_t loop;
    struct virtio_vsock *vs;
    struct virtio_device *vd;
    struct vqb q[VSOCK_NQ];
    struct kiln_log log;
    struct vfx_rec rec;
    char dir[32], path[64];
    uint64_t next_gpa;
    uint16_t rx_seen; /* receive buffers the device used that the test has read */
};

static uint64_t g_timeout_ms; /* setup's connect timeout; 0: the device's own */

static uint64_t new_buf(struct t *t, uint32_t len)
{
    if (t->next_gpa + len > RAM)
        t->next_gpa = BUF_GPA;
    uint64_t gpa = t->next_gpa;
    t->next_gpa += (len + 15) & ~15u;
    return gpa;
}

static void setup(struct t *t)
{
    memset(t, 0, sizeof(*t));
    t->next_gpa = BUF_GPA;
    t->log = (struct kiln_log){vfx_capture, &t->rec, KILN_LOG_DEBUG};
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    snprintf(t->dir, sizeof(t->dir), "/tmp/kiln-vsock-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/v.sock", t->dir);
    char err[KILN_ERRMSG_MAX] = "";
    int fd;
    ck_assert_msg(virtio_vsock_listen(t->path, &fd, err) == 0, "%s", err);
    ck_assert_msg(
        virtio_vsock_create(CID, t->path, fd, t->path, &t->loop, &t->gm, &t->log, &t->vs, err) == 0,
        "%s", err);
    t->vd = virtio_vsock_device(t->vs);
    vfx_attach_transport(t->vd, &t->rec, VSOCK_NQ);
    if (g_timeout_ms)
        virtio_vsock_set_connect_timeout(t->vs, g_timeout_ms);
    ck_assert_int_eq(virtio_vsock_start(t->vs), 0);
    struct vqb *rings[VSOCK_NQ];
    for (unsigned i = 0; i < VSOCK_NQ; i++) {
        vqb_init(&t->q[i], &t->gm, QSIZE, RING_GPA(i), RING_GPA(i) + 0x1000, RING_GPA(i) + 0x2000);
        rings[i] = &t->q[i];
    }
    vfx_drive_up(t->vd, rings, VSOCK_NQ, 0, false);
}

static void teardown(struct t *t)
{
    virtio_vsock_stop(t->vs);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    virtio_vsock_destroy(t->vs);
    struct stat st;
    ck_assert_int_ne(stat(t->path, &st), 0); /* the listening socket is gone */
    rmdir(t->dir);
    guest_mem_free(&t->gm);
}

static void spin(struct t *t)
{
    vfx_spin(&t->loop, 32);
}

/* Post n receive buffers (header + RXBUF each). */
static void post_rx(struct t *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vqb_seg s = {new_buf(t, VSOCK_HDR_LEN + RXBUF), VSOCK_HDR_LEN + RXBUF, true};
        vqb_add(&t->q[VSOCK_RXQ], &s, 1);
    }
    t->vd->ops->queue_notify(t->vd, VSOCK_RXQ);
    spin(t);
}

static struct vsock_hdr guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op)
{
    return (struct vsock_hdr){.src_cid = CID,
                              .dst_cid = VSOCK_HOST_CID,
                              .src_port = src_port,
                              .dst_port = dst_port,
                              .type = VSOCK_TYPE_STREAM,
                              .op = op,
                              .buf_alloc = 65536};
}

/* The driver sends a packet: header and payload in two readable buffers (as Linux does). */
static void send_raw(struct t *t, const struct vsock_hdr *h, const void *data, uint32_t len,
                     uint32_t hdr_len)
{
    uint8_t raw[VSOCK_HDR_LEN];
    vsock_hdr_encode(h, raw);
    struct vqb_seg s[2] = {{new_buf(t, VSOCK_HDR_LEN), hdr_len, false},
                           {new_buf(t, len ? len : 1), len, false}};
    ck_assert_int_eq(guest_write(&t->gm, s[0].gpa, raw, hdr_len), 0);
    if (len)
        ck_assert_int_eq(guest_write(&t->gm, s[1].gpa, data, len), 0);
    vqb_add(&t->q[VSOCK_TXQ], s, len ? 2 : 1);
    t->vd->ops->queue_notify(t->vd, VSOCK_TXQ);
    spin(t);
}

static void send_pkt(struct t *t, const struct vsock_hdr *h, const void *data)
{
    send_raw(t, h, data, h->len, VSOCK_HDR_LEN);
}

/* The next packet the device put in a receive buffer (payload into data); false if none. */
static bool recv_pkt(struct t *t, struct vsock_hdr *h, void *data)
{
    const struct vqb *b = &t->q[VSOCK_RXQ];
    if (vqb_used_idx(b) == t->rx_seen)
        return false;
    uint32_t head, len;
    vqb_used_elem(b, t->rx_seen++, &head, &len);
    ck_assert_uint_ge(len, VSOCK_HDR_LEN);
    uint64_t gpa = vqb_r32(&t->gm, b->desc_gpa + 16 * head) |
                   (uint64_t)vqb_r32(&t->gm, b->desc_gpa + 16 * head + 4) << 32;
    const uint8_t *m = gpa_to_host(&t->gm, gpa, len);
    vsock_hdr_decode(m, h);
    ck_assert_uint_eq(h->len, len - VSOCK_HDR_LEN);
    ck_assert_uint_eq(h->src_cid, VSOCK_HOST_CID);
    ck_assert_uint_eq(h->dst_cid, CID);
    ck_assert_uint_eq(h->type, VSOCK_TYPE_STREAM);
    if (data)
        memcpy(data, m + VSOCK_HDR_LEN, h->len);
    return true;
}

static int host_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static int host_listen(struct t *t, uint32_t port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", t->path, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 256), 0);
    return fd;
}

static void host_unlisten(struct t *t, int fd, uint32_t port)
{
    char p[160];
    snprintf(p, sizeof(p), "%s_%u", t->path, port);
    unlink(p);
    close(fd);
}

/* What the host can read now (up to cap bytes); -1 at EOF with nothing read. */
static ssize_t host_read(int fd, void *buf, size_t cap)
{
    ssize_t r = read(fd, buf, cap);
    if (r < 0 && errno == EAGAIN)
        return 0;
    return r == 0 ? -1 : r;
}

/* A host program connects to guest port gport and the guest accepts; returns the host fd. */
static int open_from_host(struct t *t, uint32_t gport, uint32_t *hport, uint32_t guest_buf)
{
    int fd = host_connect(t->path);
    char cmd[32];
    int n = snprintf(cmd, sizeof(cmd), "CONNECT %u\n", gport);
    ck_assert_int_eq(write(fd, cmd, (size_t)n), n);
    spin(t);
    struct vsock_hdr h;
    ck_assert(recv_pkt(t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_REQUEST);
    ck_assert_uint_eq(h.dst_port, gport);
    ck_assert_uint_ge(h.src_port, VSOCK_HOST_PORT_FIRST);
    ck_assert_uint_eq(h.buf_alloc, VSOCK_CONN_BUF);
    *hport = h.src_port;
    struct vsock_hdr r = guest_hdr(gport, h.src_port, VSOCK_OP_RESPONSE);
    r.buf_alloc = guest_buf;
    send_pkt(t, &r, NULL);
    char ok[32] = "";
    ck_assert_int_gt(host_read(fd, ok, sizeof(ok) - 1), 0);
    char want[32];
    snprintf(want, sizeof(want), "OK %u\n", h.src_port);
    ck_assert_str_eq(ok, want);
    return fd;
}

START_TEST(test_config_and_features)
{
    struct t t;
    setup(&t);
    uint8_t cfg[8];
    t.vd->ops->dev.read(&t.vd->dev, 0, 0, cfg, 8);
    ck_assert_uint_eq(le_get(cfg, 8), CID);
    ck_assert(t.vd->device_features & VIRTIO_F_VERSION_1);
    ck_assert_uint_eq(t.vd->ops->device_id, 19);
    teardown(&t);
}
END_TEST

START_TEST(test_host_initiated_relay)
{
    struct t t;
    setup(&t);
    post_rx(&t, 64);
    uint32_t hport;
    int fd = open_from_host(&t, 1234, &hport, 65536);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 1);
    /* host -> guest */
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    spin(&t);
    struct vsock_hdr h;
    char data[RXBUF + 1];
    ck_assert(recv_pkt(&t, &h, data));
    ck_assert_uint_eq(h.op, VSOCK_OP_RW);
    ck_assert_uint_eq(h.len, 5);
    ck_assert_uint_eq(h.src_port, hport);
    ck_assert_uint_eq(h.dst_port, 1234);
    ck_assert(memcmp(data, "hello", 5) == 0);
    /* guest -> host */
    struct vsock_hdr w = guest_hdr(1234, hport, VSOCK_OP_RW);
    w.len = 5;
    send_pkt(&t, &w, "world");
    char buf[16] = "";
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 5);
    ck_assert(memcmp(buf, "world", 5) == 0);
    /* The guest half-closes its sending side: the host reads EOF, and may still send. */
    struct vsock_hdr s = guest_hdr(1234, hport, VSOCK_OP_SHUTDOWN);
    s.flags = VSOCK_SHUTDOWN_SEND;
    send_pkt(&t, &s, NULL);
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1);
    ck_assert_int_eq(write(fd, "more", 4), 4);
    spin(&t);
    ck_assert(recv_pkt(&t, &h, data));
    ck_assert_uint_eq(h.op, VSOCK_OP_RW);
    ck_assert_uint_eq(h.len, 4);
    /* The host closes: both ways are done, the guest gets a RST. */
    close(fd);
    spin(&t);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    ck_assert(!recv_pkt(&t, &h, NULL));
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_host_connect_refused_and_bad_command)
{
    struct t t;
    setup(&t);
    post_rx(&t, 8);
    /* The guest has no listener: it answers RST and kiln closes the host connection. */
    int fd = host_connect(t.path);
    ck_assert_int_eq(write(fd, "CONNECT 77\n", 11), 11);
    spin(&t);
    struct vsock_hdr h;
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_REQUEST);
    struct vsock_hdr r = guest_hdr(77, h.src_port, VSOCK_OP_RST);
    send_pkt(&t, &r, NULL);
    char buf[16];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1);
    close(fd);
    /* Not a CONNECT line: closed, nothing sent to the guest. */
    const char *bad[] = {
        "HELLO\n",       "CONNECT \n",           "CONNECT 99999999999\n",
        "CONNECT 12x\n", "CONNECT 4294967295\n", "CONNECT 1234567890123456789012345678901\n"};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fd = host_connect(t.path);
        ck_assert_int_eq(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
        spin(&t);
        ck_assert_msg(host_read(fd, buf, sizeof(buf)) == -1, "%s", bad[i]);
        close(fd);
    }
    ck_assert(!recv_pkt(&t, &h, NULL));
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_guest_initiated)
{
    struct t t;
    setup(&t);
    post_rx(&t, 16);
    int lfd = host_listen(&t, 5000);
    struct vsock_hdr req = guest_hdr(1025, 5000, VSOCK_OP_REQUEST);
    send_pkt(&t, &req, NULL);
    struct vsock_hdr h;
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RESPONSE);
    ck_assert_uint_eq(h.src_port, 5000);
    ck_assert_uint_eq(h.dst_port, 1025);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    ck_assert_int_ge(fd, 0);
    struct vsock_hdr w = guest_hdr(1025, 5000, VSOCK_OP_RW);
    w.len = 4;
    send_pkt(&t, &w, "ping");
    char buf[16];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 4);
    ck_assert(memcmp(buf, "ping", 4) == 0);
    ck_assert_int_eq(write(fd, "pong", 4), 4);
    spin(&t);
    ck_assert(recv_pkt(&t, &h, buf));
    ck_assert_uint_eq(h.op, VSOCK_OP_RW);
    ck_assert(memcmp(buf, "pong", 4) == 0);
    /* The host half-closes: the guest gets SHUTDOWN (no more sends) and may still send. */
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    spin(&t);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_SHUTDOWN);
    ck_assert_uint_eq(h.flags, VSOCK_SHUTDOWN_SEND);
    send_pkt(&t, &w, "late");
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 4);
    ck_assert(memcmp(buf, "late", 4) == 0);
    /* The guest closes both ways: the host sees EOF, the guest gets its RST. */
    struct vsock_hdr s = guest_hdr(1025, 5000, VSOCK_OP_SHUTDOWN);
    s.flags = VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV;
    send_pkt(&t, &s, NULL);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1);
    close(fd);
    /* Nobody listens on host port 5001: RST. */
    req = guest_hdr(1026, 5001, VSOCK_OP_REQUEST);
    send_pkt(&t, &req, NULL);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    ck_assert_uint_eq(h.dst_port, 1026);
    host_unlisten(&t, lfd, 5000);
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    teardown(&t);
}
END_TEST

/* kiln never sends beyond the guest's credit, and resumes on CREDIT_UPDATE. */
START_TEST(test_credit_exhaustion)
{
    struct t t;
    setup(&t);
    post_rx(&t, 64);
    uint32_t hport;
    int fd = open_from_host(&t, 80, &hport, 1000);
    char big[3000];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
    spin(&t);
    struct vsock_hdr h;
    uint32_t got = 0;
    while (recv_pkt(&t, &h, NULL)) {
        ck_assert_uint_eq(h.op, VSOCK_OP_RW);
        got += h.len;
    }
    ck_assert_uint_eq(got, 1000);
    /* The guest read 600 of them. */
    struct vsock_hdr cu = guest_hdr(80, hport, VSOCK_OP_CREDIT_UPDATE);
    cu.buf_alloc = 1000;
    cu.fwd_cnt = 600;
    send_pkt(&t, &cu, NULL);
    spin(&t);
    got = 0;
    while (recv_pkt(&t, &h, NULL))
        got += h.len;
    ck_assert_uint_eq(got, 600);
    /* A credit request is answered with kiln's own credit. */
    struct vsock_hdr cr = guest_hdr(80, hport, VSOCK_OP_CREDIT_REQUEST);
    cr.buf_alloc = 1000;
    cr.fwd_cnt = 600;
    send_pkt(&t, &cr, NULL);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_CREDIT_UPDATE);
    ck_assert_uint_eq(h.buf_alloc, VSOCK_CONN_BUF);
    ck_assert_uint_eq(h.fwd_cnt, 0);
    close(fd);
    teardown(&t);
}
END_TEST

/* A host program that does not read: kiln buffers up to its buf_alloc, then resets a guest that
 * sends beyond it; a fair guest gets a credit update as the host drains. */
START_TEST(test_guest_to_host_backpressure)
{
    struct t t;
    setup(&t);
    post_rx(&t, 64);
    uint32_t hport;
    int fd = open_from_host(&t, 81, &hport, 65536);
    int sz = 4096;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    static uint8_t chunk[32768];
    for (unsigned i = 0; i < sizeof(chunk); i++)
        chunk[i] = (uint8_t)(i * 7);
    uint32_t sent = 0;
    struct vsock_hdr w = guest_hdr(81, hport, VSOCK_OP_RW);
    w.len = sizeof(chunk);
    /* The socket takes some, kiln's buffer the rest, up to the credit it gave. */
    while (sent + sizeof(chunk) <= VSOCK_CONN_BUF) {
        send_pkt(&t, &w, chunk);
        sent += sizeof(chunk);
    }
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 1);
    /* Drain on the host: every byte arrives in order, and the guest hears of the room. */
    static uint8_t in[VSOCK_CONN_BUF];
    uint32_t got = 0;
    for (int i = 0; i < 2000 && got < sent; i++) {
        ssize_t r = host_read(fd, in + got, sizeof(in) - got);
        ck_assert_int_ge(r, 0);
        got += (uint32_t)r;
        spin(&t);
    }
    ck_assert_uint_eq(got, sent);
    for (uint32_t i = 0; i < got; i++)
        ck_assert_uint_eq(in[i], (uint8_t)((i % sizeof(chunk)) * 7));
    struct vsock_hdr h;
    uint32_t fwd = 0;
    while (recv_pkt(&t, &h, NULL)) {
        ck_assert_uint_eq(h.op, VSOCK_OP_CREDIT_UPDATE);
        fwd = h.fwd_cnt;
    }
    ck_assert_uint_ge(fwd, sent - VSOCK_CONN_BUF / 4);
    /* A guest that ignores the credit: once the buffer is full, the connection is reset. */
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)), 0);
    for (unsigned i = 0; i < 2 * VSOCK_CONN_BUF / sizeof(chunk) + 8; i++)
        send_pkt(&t, &w, chunk);
    bool rst = false;
    while (recv_pkt(&t, &h, NULL))
        rst |= h.op == VSOCK_OP_RST;
    ck_assert(rst);
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    close(fd);
    teardown(&t);
}
END_TEST

START_TEST(test_hostile_headers)
{
    struct t t;
    setup(&t);
    post_rx(&t, 64);
    uint32_t hport;
    int fd = open_from_host(&t, 90, &hport, 65536);
    struct vsock_hdr h;
    /* Wrong addresses: dropped without an answer (no one to send it to), logged once. */
    struct vsock_hdr p = guest_hdr(90, hport, VSOCK_OP_RW);
    p.len = 3;
    p.src_cid = CID + 1;
    send_pkt(&t, &p, "abc");
    p.src_cid = CID;
    p.dst_cid = 3;
    send_pkt(&t, &p, "abc");
    ck_assert(!recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(t.rec.nlog, 1);
    ck_assert(strstr(t.rec.msg, "src_cid"));
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 1);
    /* Short header, zero-length chain parts: dropped. */
    p.dst_cid = VSOCK_HOST_CID;
    send_raw(&t, &p, NULL, 0, 20);
    ck_assert(!recv_pkt(&t, &h, NULL));
    /* Unknown connection: RST. Bad type, unknown op, len past the buffers: RST. */
    struct vsock_hdr u = guest_hdr(91, 12345, VSOCK_OP_RW);
    u.len = 1;
    send_pkt(&t, &u, "z");
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    ck_assert_uint_eq(h.dst_port, 91);
    struct vsock_hdr bad[4];
    for (unsigned i = 0; i < 4; i++)
        bad[i] = guest_hdr(200 + i, 7000, VSOCK_OP_REQUEST);
    bad[0].type = 2;
    bad[1].op = 99;
    bad[2].op = VSOCK_OP_INVALID;
    bad[3].len = 100; /* a request carries no payload */
    for (unsigned i = 0; i < 4; i++) {
        send_raw(&t, &bad[i], "0123456789", i == 3 ? 10 : 0, VSOCK_HDR_LEN);
        ck_assert_msg(recv_pkt(&t, &h, NULL), "bad header %u", i);
        ck_assert_uint_eq(h.op, VSOCK_OP_RST);
        ck_assert_uint_eq(h.dst_port, 200 + i);
    }
    /* len beyond the descriptors on the open connection: it is reset, the host sees EOF. */
    p = guest_hdr(90, hport, VSOCK_OP_RW);
    p.len = 0xffffffff;
    send_raw(&t, &p, "abc", 3, VSOCK_HDR_LEN);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    spin(&t);
    char buf[8];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1);
    close(fd);
    /* A RESPONSE nobody asked for, a RST for nothing: RST, nothing. */
    struct vsock_hdr r = guest_hdr(300, 1, VSOCK_OP_RESPONSE);
    send_pkt(&t, &r, NULL);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    r.op = VSOCK_OP_RST;
    send_pkt(&t, &r, NULL);
    ck_assert(!recv_pkt(&t, &h, NULL));
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    teardown(&t);
}
END_TEST

/* Many connections at once, each relaying; beyond VSOCK_MAX_CONNS the guest gets RST. */
START_TEST(test_connection_limit)
{
    struct t t;
    setup(&t);
    post_rx(&t, 200);
    int lfd = host_listen(&t, 6000);
    int fds[VSOCK_MAX_CONNS];
    struct vsock_hdr h;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_hdr req = guest_hdr(2000 + i, 6000, VSOCK_OP_REQUEST);
        send_pkt(&t, &req, NULL);
        ck_assert(recv_pkt(&t, &h, NULL));
        ck_assert_uint_eq(h.op, VSOCK_OP_RESPONSE);
        fds[i] = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        ck_assert_int_ge(fds[i], 0);
    }
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), VSOCK_MAX_CONNS);
    struct vsock_hdr req = guest_hdr(9999, 6000, VSOCK_OP_REQUEST);
    send_pkt(&t, &req, NULL);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    /* A host program connecting now is closed at once. */
    int extra = host_connect(t.path);
    spin(&t);
    char buf[64];
    ck_assert_int_eq(host_read(extra, buf, sizeof(buf)), -1);
    close(extra);
    /* Every connection still relays its own bytes. */
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vsock_hdr w = guest_hdr(2000 + i, 6000, VSOCK_OP_RW);
        int n = snprintf(buf, sizeof(buf), "conn %u", i);
        w.len = (uint32_t)n;
        send_pkt(&t, &w, buf);
        char in[64] = "";
        ck_assert_int_eq(host_read(fds[i], in, sizeof(in)), n);
        ck_assert_str_eq(in, buf);
        close(fds[i]);
    }
    spin(&t);
    host_unlisten(&t, lfd, 6000);
    teardown(&t);
}
END_TEST

/* 64 host programs at once, each with its own host port, bytes relayed both ways by port. */
START_TEST(test_many_host_connections)
{
    struct t t;
    setup(&t);
    post_rx(&t, 200);
    enum { N = 64 };
    int fds[N];
    uint32_t hports[N];
    for (unsigned i = 0; i < N; i++) {
        fds[i] = open_from_host(&t, 1234, &hports[i], 65536);
        for (unsigned j = 0; j < i; j++)
            ck_assert_uint_ne(hports[i], hports[j]);
    }
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), N);
    char msg[32], data[RXBUF];
    for (unsigned i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof(msg), "host %u", i);
        ck_assert_int_eq(write(fds[i], msg, (size_t)n), n);
    }
    spin(&t);
    struct vsock_hdr h;
    unsigned seen = 0;
    while (recv_pkt(&t, &h, data)) {
        ck_assert_uint_eq(h.op, VSOCK_OP_RW);
        unsigned i = 0;
        while (i < N && hports[i] != h.src_port)
            i++;
        ck_assert_uint_lt(i, N);
        int n = snprintf(msg, sizeof(msg), "host %u", i);
        ck_assert_uint_eq(h.len, (uint32_t)n);
        ck_assert(memcmp(data, msg, (size_t)n) == 0);
        seen++;
    }
    ck_assert_uint_eq(seen, N);
    for (unsigned i = 0; i < N; i++) {
        struct vsock_hdr w = guest_hdr(1234, hports[i], VSOCK_OP_RW);
        int n = snprintf(msg, sizeof(msg), "guest %u", i);
        w.len = (uint32_t)n;
        send_pkt(&t, &w, msg);
    }
    for (unsigned i = 0; i < N; i++) {
        char in[32] = "";
        int n = snprintf(msg, sizeof(msg), "guest %u", i);
        ck_assert_int_eq(host_read(fds[i], in, sizeof(in)), n);
        ck_assert_str_eq(in, msg);
        close(fds[i]);
    }
    spin(&t);
    teardown(&t);
}
END_TEST

/* A host program that sends no line, or whose guest never answers, is closed after the timeout;
 * the guest gets a RST for the REQUEST it ignored. */
START_TEST(test_connect_timeout)
{
    struct t t;
    g_timeout_ms = 50;
    setup(&t);
    g_timeout_ms = 0;
    post_rx(&t, 8);
    int quiet = host_connect(t.path);
    int ignored = host_connect(t.path);
    ck_assert_int_eq(write(ignored, "CONNECT 9\n", 10), 10);
    spin(&t);
    struct vsock_hdr h;
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_REQUEST);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 2);
    char buf[8];
    ck_assert_int_eq(host_read(quiet, buf, sizeof(buf)), 0); /* still waiting */
    for (int i = 0; i < 40 && virtio_vsock_conns(t.vs); i++) {
        usleep(10000);
        uv_run(&t.loop, UV_RUN_NOWAIT);
    }
    spin(&t);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    ck_assert_int_eq(host_read(quiet, buf, sizeof(buf)), -1);
    ck_assert_int_eq(host_read(ignored, buf, sizeof(buf)), -1);
    ck_assert(recv_pkt(&t, &h, NULL));
    ck_assert_uint_eq(h.op, VSOCK_OP_RST);
    ck_assert_uint_eq(h.dst_port, 9);
    close(quiet);
    close(ignored);
    teardown(&t);
}
END_TEST

/* A driver reset drops every connection; the device works again after it. */
START_TEST(test_reset)
{
    struct t t;
    setup(&t);
    post_rx(&t, 8);
    uint32_t hport;
    int fd = open_from_host(&t, 55, &hport, 65536);
    vfx_reset(t.vd);
    spin(&t);
    char buf[8];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1);
    close(fd);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_listen_refusals)
{
    char dir[] = "/tmp/kiln-vsock-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128], err[KILN_ERRMSG_MAX];
    snprintf(path, sizeof(path), "%s/file", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    ck_assert_int_eq(virtio_vsock_listen(path, &fd, err), -EEXIST);
    ck_assert(strstr(err, "not a socket"));
    unlink(path);
    /* A stale socket is replaced; a live one is refused. */
    ck_assert_int_eq(virtio_vsock_listen(path, &fd, err), 0);
    int fd2;
    ck_assert_int_eq(virtio_vsock_listen(path, &fd2, err), -EADDRINUSE);
    close(fd);
    ck_assert_int_eq(virtio_vsock_listen(path, &fd, err), 0);
    close(fd);
    unlink(path);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    ck_assert_int_eq(virtio_vsock_listen(longp, &fd, err), -ENAMETOOLONG);
    rmdir(dir);
}
END_TEST

/* ---- Snapshot and restore. */

/* Post one event buffer (4 bytes, as Linux posts them) on the event queue and kick it. */
static void post_event_buf(struct t *t)
{
    struct vqb_seg s = {new_buf(t, VSOCK_EVENT_LEN), VSOCK_EVENT_LEN, true};
    vqb_add(&t->q[VSOCK_EVQ], &s, 1);
    t->vd->ops->queue_notify(t->vd, VSOCK_EVQ);
    spin(t);
}

/* Events the device put in the event queue so far; the id of the last one in *id. */
static uint16_t events(struct t *t, uint32_t *id)
{
    const struct vqb *b = &t->q[VSOCK_EVQ];
    uint16_t n = vqb_used_idx(b);
    if (n && id) {
        uint32_t head, len;
        vqb_used_elem(b, (uint16_t)(n - 1), &head, &len);
        ck_assert_uint_eq(len, VSOCK_EVENT_LEN);
        *id = vqb_r32(&t->gm, vqb_r32(&t->gm, b->desc_gpa + 16 * head));
    }
    return n;
}

/* The driver resets the device (unless it is reset already) and brings it up again on fresh
 * (empty) rings. */
static void redrive(struct t *t)
{
    if (t->vd->status)
        vfx_reset(t->vd);
    struct vqb *rings[VSOCK_NQ];
    for (unsigned i = 0; i < VSOCK_NQ; i++) {
        vqb_init(&t->q[i], &t->gm, QSIZE, RING_GPA(i), RING_GPA(i) + 0x1000, RING_GPA(i) + 0x2000);
        rings[i] = &t->q[i];
    }
    t->rx_seen = 0;
    vfx_drive_up(t->vd, rings, VSOCK_NQ, 0, false);
}

/* The device's whole state (core and its own), as a snapshot takes it. */
static void save(struct t *t, struct device_state *st)
{
    *st = (struct device_state){0};
    ck_assert_int_eq(virtio_save(t->vd, st), 0);
}

/*
 * As kiln run --restore does in a new process: the old device is gone (its sockets with it), a
 * new one made from the same configuration (cid) takes st before it starts, and its transport's
 * start activates it. Returns what the restore returned (the device is made and started anyway).
 */
static int restore_into(struct t *t, const struct device_state *st, uint64_t cid)
{
    virtio_vsock_stop(t->vs);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    virtio_vsock_destroy(t->vs);
    char err[KILN_ERRMSG_MAX] = "";
    int fd;
    ck_assert_msg(virtio_vsock_listen(t->path, &fd, err) == 0, "%s", err);
    ck_assert_msg(
        virtio_vsock_create(cid, t->path, fd, t->path, &t->loop, &t->gm, &t->log, &t->vs, err) == 0,
        "%s", err);
    t->vd = virtio_vsock_device(t->vs);
    vfx_attach_transport(t->vd, &t->rec, VSOCK_NQ);
    struct device_state r = state_reader(st->buf, st->len);
    int ret = virtio_restore(t->vd, &r);
    if (ret == 0)
        ret = state_done(&r);
    ck_assert_int_eq(virtio_vsock_start(t->vs), 0);
    if (ret == 0)
        virtio_loop_work(t->vd);
    spin(t);
    return ret;
}

/*
 * A connection open at the snapshot is not carried over; the restored device tells the guest
 * with a transport reset (id 0) in the buffer it had posted, and an interrupt, at once; the
 * guest's listener takes new connections, from host ports after the ones used before.
 */
START_TEST(test_restore_resets_transport)
{
    struct t t;
    setup(&t);
    post_rx(&t, 16);
    post_event_buf(&t);
    ck_assert_uint_eq(events(&t, NULL), 0); /* a running device sends no event */
    uint32_t hport;
    int fd = open_from_host(&t, 1234, &hport, 65536);
    struct device_state st;
    save(&t, &st);
    unsigned sig = t.rec.sig[VSOCK_EVQ];
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    ck_assert(t.vd->active);
    ck_assert_uint_eq(virtio_vsock_conns(t.vs), 0);
    uint32_t id = 99;
    ck_assert_uint_eq(events(&t, &id), 1);
    ck_assert_uint_eq(id, VSOCK_EVENT_TRANSPORT_RESET);
    ck_assert_uint_eq(t.rec.sig[VSOCK_EVQ], sig + 1);
    char buf[8];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), -1); /* gone with the old process */
    close(fd);
    uint32_t hport2;
    fd = open_from_host(&t, 1234, &hport2, 65536);
    ck_assert_uint_gt(hport2, hport);
    ck_assert_int_eq(write(fd, "hi", 2), 2);
    spin(&t);
    struct vsock_hdr h;
    ck_assert(recv_pkt(&t, &h, buf));
    ck_assert_uint_eq(h.op, VSOCK_OP_RW);
    ck_assert_uint_eq(h.len, 2);
    post_event_buf(&t);
    ck_assert_uint_eq(events(&t, NULL), 1); /* one reset, not one per buffer */
    close(fd);
    state_free(&st);
    teardown(&t);
}
END_TEST

/*
 * No event buffer when the restored device starts: the reset waits for the driver's next one.
 * A driver that resets the device first has nothing to drop: no event then.
 */
START_TEST(test_restore_reset_waits_for_buffer)
{
    struct t t;
    setup(&t);
    post_rx(&t, 4);
    struct device_state st;
    save(&t, &st);
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    ck_assert_uint_eq(events(&t, NULL), 0);
    ck_assert_uint_eq(t.rec.sig[VSOCK_EVQ], 0);
    post_event_buf(&t);
    uint32_t id = 99;
    ck_assert_uint_eq(events(&t, &id), 1);
    ck_assert_uint_eq(id, VSOCK_EVENT_TRANSPORT_RESET);
    ck_assert_uint_eq(t.rec.sig[VSOCK_EVQ], 1);
    /* Again, but the driver resets the device and starts over before it posts a buffer. */
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    redrive(&t);
    post_event_buf(&t);
    ck_assert_uint_eq(events(&t, NULL), 0);
    state_free(&st);
    teardown(&t);
}
END_TEST

/* A device the driver had not started owes no reset; a bad event buffer is skipped. */
START_TEST(test_restore_idle_and_short_event_buffer)
{
    struct t t;
    setup(&t);
    vfx_reset(t.vd);
    struct device_state st;
    save(&t, &st);
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    ck_assert(!t.vd->active);
    redrive(&t);
    post_event_buf(&t);
    ck_assert_uint_eq(events(&t, NULL), 0);
    state_free(&st);
    /* Running at the snapshot with a 2-byte event buffer posted: used empty and logged; the
     * reset goes in the next one. */
    redrive(&t);
    struct vqb_seg s = {new_buf(&t, 2), 2, true};
    vqb_add(&t.q[VSOCK_EVQ], &s, 1);
    save(&t, &st);
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    ck_assert_uint_eq(events(&t, NULL), 1);
    post_event_buf(&t);
    uint32_t head, len, id = 99;
    ck_assert_uint_eq(events(&t, &id), 2);
    vqb_used_elem(&t.q[VSOCK_EVQ], 0, &head, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_uint_eq(id, VSOCK_EVENT_TRANSPORT_RESET);
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "event buffer"));
    state_free(&st);
    teardown(&t);
}
END_TEST

/* What a restore reads back is checked: another CID, a host port out of range, a short state. */
START_TEST(test_restore_refusals)
{
    struct t t;
    setup(&t);
    struct device_state st;
    save(&t, &st);
    ck_assert_uint_ge(st.len, 12);
    ck_assert_int_eq(restore_into(&t, &st, CID + 1), -EINVAL);
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "CID is 42, not 43"));
    uint32_t port;
    const uint32_t bad_ports[] = {0, 1234, VSOCK_HOST_PORT_FIRST - 1, UINT32_MAX};
    for (unsigned i = 0; i < sizeof(bad_ports) / sizeof(bad_ports[0]); i++) {
        memcpy(&port, st.buf + st.len - 4, 4);
        memcpy(st.buf + st.len - 4, &bad_ports[i], 4);
        ck_assert_int_eq(restore_into(&t, &st, CID), -EINVAL);
        memcpy(st.buf + st.len - 4, &port, 4);
    }
    st.len--;
    ck_assert_int_eq(restore_into(&t, &st, CID), -EINVAL);
    st.len++;
    ck_assert_int_eq(restore_into(&t, &st, CID), 0);
    state_free(&st);
    teardown(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_vsock");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config_and_features);
    tcase_add_test(tc, test_host_initiated_relay);
    tcase_add_test(tc, test_host_connect_refused_and_bad_command);
    tcase_add_test(tc, test_guest_initiated);
    tcase_add_test(tc, test_credit_exhaustion);
    tcase_add_test(tc, test_guest_to_host_backpressure);
    tcase_add_test(tc, test_hostile_headers);
    tcase_add_test(tc, test_connection_limit);
    tcase_add_test(tc, test_many_host_connections);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_listen_refusals);
    tcase_add_test(tc, test_restore_resets_transport);
    tcase_add_test(tc, test_restore_reset_waits_for_buffer);
    tcase_add_test(tc, test_restore_idle_and_short_event_buffer);
    tcase_add_test(tc, test_restore_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
