/* test_virtio_console.c: the multiport console over socketpair ports, fake guest RAM and transport.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_console.h"
#include "memory.h"
#include "state.h"
#include "util.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

#define RAM (16ULL << 20)
#define NPORTS 2
#define NQ (VIRTIO_CONSOLE_TXQ(NPORTS) + 1)
#define QSIZE 64
#define RING_GPA(q) (0x10000ULL + 0x4000ULL * (q)) /* desc, then avail +0x1000, used +0x2000 */
#define BUF_GPA 0x200000ULL                        /* buffers, STRIDE apart, handed out in turn */
#define STRIDE 0x1000ULL
#define CTRL_RX VIRTIO_CONSOLE_CTRL_RXQ
#define CTRL_TX VIRTIO_CONSOLE_CTRL_TXQ

struct t {
    struct guest_mem gm;
    uv_loop_t loop;
    struct virtio_console *con;
    struct virtio_device *vd;
    struct vqb q[NQ];
    struct kiln_log log;
    struct vfx_rec rec;
    int host[NPORTS]; /* the host's end of each port (a socketpair) */
    unsigned next_buf;
    uint16_t ctrl_seen; /* control messages from the device read so far */
};

static uint64_t new_buf(struct t *t)
{
    return BUF_GPA + STRIDE * (t->next_buf++ % 1024);
}

/* A console with NPORTS socketpair ports on t's RAM and loop, started, behind the fake transport.
 */
static void make_console(struct t *t)
{
    struct virtio_console_port_spec specs[NPORTS];
    const char *names[NPORTS] = {"results", "org.test.echo"};
    for (unsigned i = 0; i < NPORTS; i++) {
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        t->host[i] = sv[1];
        specs[i] = (struct virtio_console_port_spec){names[i], sv[0], true};
    }
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_msg(virtio_console_create(specs, NPORTS, &t->loop, &t->gm, &t->log, &t->con, err) ==
                      0,
                  "%s", err);
    t->vd = virtio_console_device(t->con);
    vfx_attach_transport(t->vd, &t->rec, NQ);
    ck_assert_int_eq(virtio_console_start(t->con), 0);
}

static void setup(struct t *t)
{
    memset(t, 0, sizeof(*t));
    t->log = (struct kiln_log){vfx_capture, &t->rec, KILN_LOG_DEBUG};
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    make_console(t);
    struct vqb *rings[NQ];
    for (unsigned i = 0; i < NQ; i++) {
        vqb_init(&t->q[i], &t->gm, QSIZE, RING_GPA(i), RING_GPA(i) + 0x1000, RING_GPA(i) + 0x2000);
        rings[i] = &t->q[i];
    }
    vfx_drive_up(t->vd, rings, NQ, VIRTIO_CONSOLE_F_MULTIPORT, false);
}

/* Stop and free the console and the host ends of its ports (RAM and loop stay). */
static void drop_console(struct t *t)
{
    virtio_console_stop(t->con);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    virtio_console_destroy(t->con);
    for (unsigned i = 0; i < NPORTS; i++)
        if (t->host[i] >= 0)
            close(t->host[i]);
}

static void teardown(struct t *t)
{
    drop_console(t);
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    guest_mem_free(&t->gm);
}

static void kick(struct t *t, unsigned q)
{
    t->vd->ops->queue_notify(t->vd, q);
    vfx_spin(&t->loop, 16);
}

/* Post n device-writable buffers of len bytes on queue q. */
static void post_rx(struct t *t, unsigned q, unsigned n, uint32_t len)
{
    for (unsigned i = 0; i < n; i++) {
        struct vqb_seg s = {new_buf(t), len, true};
        memset(gpa_to_host(&t->gm, s.gpa, len), 0xcc, len);
        vqb_add(&t->q[q], &s, 1);
    }
}

/* Send a message from the driver: id, event, value, as one readable buffer of len bytes. */
static void ctrl_out_len(struct t *t, uint32_t id, uint16_t event, uint16_t value, uint32_t len)
{
    uint64_t gpa = new_buf(t);
    uint8_t *m = gpa_to_host(&t->gm, gpa, 8);
    le_put(m, 4, id);
    le_put(m + 4, 2, event);
    le_put(m + 6, 2, value);
    struct vqb_seg s = {gpa, len, false};
    vqb_add(&t->q[CTRL_TX], &s, 1);
    kick(t, CTRL_TX);
}

static void ctrl_out(struct t *t, uint32_t id, uint16_t event, uint16_t value)
{
    ctrl_out_len(t, id, event, value, 8);
}

/* The next message the device put on the control receive queue; false if none. */
static bool ctrl_in(struct t *t, uint32_t *id, uint16_t *event, uint16_t *value, char *name)
{
    const struct vqb *b = &t->q[CTRL_RX];
    if (vqb_used_idx(b) == t->ctrl_seen)
        return false;
    uint32_t head, len;
    vqb_used_elem(b, t->ctrl_seen++, &head, &len);
    ck_assert_uint_ge(len, 8);
    uint64_t gpa = vqb_r32(&t->gm, b->desc_gpa + 16 * head) |
                   (uint64_t)vqb_r32(&t->gm, b->desc_gpa + 16 * head + 4) << 32;
    const uint8_t *m = gpa_to_host(&t->gm, gpa, len);
    *id = (uint32_t)le_get(m, 4);
    *event = (uint16_t)le_get(m + 4, 2);
    *value = (uint16_t)le_get(m + 6, 2);
    if (name) {
        memcpy(name, m + 8, len - 8);
        name[len - 8] = '\0';
    }
    return true;
}

static void expect_ctrl(struct t *t, uint32_t id, uint16_t event, uint16_t value, const char *name)
{
    uint32_t i;
    uint16_t e, v;
    char n[128];
    ck_assert_msg(ctrl_in(t, &i, &e, &v, n), "no control message (want event %u)", event);
    ck_assert_uint_eq(e, event);
    ck_assert_uint_eq(i, id);
    ck_assert_uint_eq(v, value);
    if (name)
        ck_assert_str_eq(n, name);
}

/* The handshake Linux's driver makes: DEVICE_READY, then PORT_READY and open for each port. */
static void handshake(struct t *t, bool open)
{
    post_rx(t, CTRL_RX, 16, 256);
    ctrl_out(t, 0xffffffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    for (unsigned id = 1; id <= NPORTS; id++)
        expect_ctrl(t, id, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
    const char *names[NPORTS] = {"results", "org.test.echo"};
    for (unsigned id = 1; id <= NPORTS; id++) {
        ctrl_out(t, id, VIRTIO_CONSOLE_PORT_READY, 1);
        expect_ctrl(t, id, VIRTIO_CONSOLE_PORT_NAME, 1, names[id - 1]);
        expect_ctrl(t, id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
        if (open)
            ctrl_out(t, id, VIRTIO_CONSOLE_PORT_OPEN, 1);
    }
}

static bool needs_reset(struct t *t)
{
    return virtio_read_status(t->vd) & VIRTIO_STATUS_NEEDS_RESET;
}

START_TEST(test_config)
{
    struct t t;
    setup(&t);
    uint8_t cfg[VIRTIO_CONSOLE_CONFIG_LEN];
    t.vd->ops->dev.read(&t.vd->dev, 0, 0, cfg, sizeof(cfg));
    ck_assert_uint_eq(le_get(cfg + 4, 4), NPORTS + 1); /* max_nr_ports: port 0 and ours */
    ck_assert(t.vd->device_features & VIRTIO_CONSOLE_F_MULTIPORT);
    ck_assert_uint_eq(t.vd->num_queues, NQ);
    teardown(&t);
}
END_TEST

START_TEST(test_handshake_and_guest_to_host)
{
    struct t t;
    setup(&t);
    handshake(&t, true);
    /* Port 1: "hello " and "world" in two readable buffers of one chain. */
    uint64_t a = new_buf(&t), b = new_buf(&t);
    memcpy(gpa_to_host(&t.gm, a, 6), "hello ", 6);
    memcpy(gpa_to_host(&t.gm, b, 5), "world", 5);
    struct vqb_seg segs[2] = {{a, 6, false}, {b, 5, false}};
    vqb_add(&t.q[VIRTIO_CONSOLE_TXQ(1)], segs, 2);
    kick(&t, VIRTIO_CONSOLE_TXQ(1));
    char got[32] = "";
    ck_assert_int_eq(read(t.host[0], got, sizeof(got)), 11);
    ck_assert(memcmp(got, "hello world", 11) == 0);
    ck_assert_uint_eq(vqb_used_idx(&t.q[VIRTIO_CONSOLE_TXQ(1)]), 1);
    ck_assert_uint_ge(t.rec.sig[VIRTIO_CONSOLE_TXQ(1)], 1);
    /* Nothing went to the other port. */
    ck_assert_int_eq(read(t.host[1], got, sizeof(got)), -1);
    teardown(&t);
}
END_TEST

START_TEST(test_host_to_guest_only_while_open)
{
    struct t t;
    setup(&t);
    handshake(&t, false);
    unsigned rxq = VIRTIO_CONSOLE_RXQ(2);
    post_rx(&t, rxq, 4, 64);
    ck_assert_int_eq(write(t.host[1], "ping\n", 5), 5);
    vfx_spin(&t.loop, 16);
    /* The guest has not opened the port: Linux would drop the input, so kiln does not read. */
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 0);
    ctrl_out(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
    vfx_spin(&t.loop, 16);
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 1);
    uint32_t head, len;
    vqb_used_elem(&t.q[rxq], 0, &head, &len);
    ck_assert_uint_eq(len, 5);
    /* Closed again: input waits in the socket. */
    ctrl_out(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 0);
    ck_assert_int_eq(write(t.host[1], "more\n", 5), 5);
    vfx_spin(&t.loop, 16);
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 1);
    teardown(&t);
}
END_TEST

START_TEST(test_host_to_guest_backpressure)
{
    struct t t;
    setup(&t);
    handshake(&t, true);
    unsigned rxq = VIRTIO_CONSOLE_RXQ(1);
    post_rx(&t, rxq, 2, 100);
    static uint8_t data[1000];
    for (unsigned i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    ck_assert_int_eq(write(t.host[0], data, sizeof(data)), (ssize_t)sizeof(data));
    vfx_spin(&t.loop, 16);
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 2); /* two buffers: 200 bytes, the rest waits */
    post_rx(&t, rxq, 8, 100);
    kick(&t, rxq);
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 10);
    uint32_t total = 0;
    for (uint16_t i = 0; i < 10; i++) {
        uint32_t head, len;
        vqb_used_elem(&t.q[rxq], i, &head, &len);
        total += len;
    }
    ck_assert_uint_eq(total, sizeof(data));
    teardown(&t);
}
END_TEST

START_TEST(test_guest_to_host_backpressure)
{
    struct t t;
    setup(&t);
    handshake(&t, true);
    int small = 4096;
    setsockopt(t.host[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    unsigned txq = VIRTIO_CONSOLE_TXQ(1);
    /* 64 chains of 4 KiB: more than the socket holds. */
    for (unsigned i = 0; i < 64; i++) {
        struct vqb_seg s = {new_buf(&t), 4096, false};
        memset(gpa_to_host(&t.gm, s.gpa, 4096), 'a' + (int)(i % 26), 4096);
        vqb_add(&t.q[txq], &s, 1);
    }
    kick(&t, txq);
    uint16_t done = vqb_used_idx(&t.q[txq]);
    ck_assert_uint_lt(done, 64); /* held: the socket is full */
    struct device_state st = {0};
    ck_assert_int_eq(virtio_save(t.vd, &st), -EBUSY); /* a chain half written: not yet */
    state_free(&st);
    static char buf[64 * 4096];
    size_t got = 0;
    for (int round = 0; round < 1000 && got < sizeof(buf); round++) {
        ssize_t r = read(t.host[0], buf + got, sizeof(buf) - got);
        if (r > 0)
            got += (size_t)r;
        vfx_spin(&t.loop, 2);
    }
    ck_assert_uint_eq(got, sizeof(buf));
    ck_assert_uint_eq(vqb_used_idx(&t.q[txq]), 64);
    for (unsigned i = 0; i < 64; i++)
        ck_assert_int_eq(buf[i * 4096 + 17], 'a' + (int)(i % 26));
    teardown(&t);
}
END_TEST

START_TEST(test_host_hangup)
{
    struct t t;
    setup(&t);
    handshake(&t, true);
    post_rx(&t, VIRTIO_CONSOLE_RXQ(1), 2, 64);
    close(t.host[0]);
    t.host[0] = -1;
    vfx_spin(&t.loop, 16);
    expect_ctrl(&t, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    /* What the guest still sends is taken and dropped, never a crash. */
    struct vqb_seg s = {new_buf(&t), 32, false};
    vqb_add(&t.q[VIRTIO_CONSOLE_TXQ(1)], &s, 1);
    kick(&t, VIRTIO_CONSOLE_TXQ(1));
    ck_assert_uint_eq(vqb_used_idx(&t.q[VIRTIO_CONSOLE_TXQ(1)]), 1);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

START_TEST(test_hostile_control)
{
    struct t t;
    setup(&t);
    post_rx(&t, CTRL_RX, 4, 256);
    /* Unknown ports, a short message, events only the device sends: nothing happens. */
    ctrl_out(&t, 0, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_out(&t, 99, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_out(&t, 0xffffffff, VIRTIO_CONSOLE_PORT_OPEN, 1);
    ctrl_out_len(&t, 1, VIRTIO_CONSOLE_PORT_READY, 1, 7);
    ctrl_out(&t, 1, VIRTIO_CONSOLE_PORT_NAME, 1);
    ctrl_out(&t, 1, 0x7777, 0x7777);
    uint32_t id;
    uint16_t e, v;
    ck_assert(!ctrl_in(&t, &id, &e, &v, NULL));
    /* Kicks for queues without a port, or beyond the last queue. */
    kick(&t, 0);
    kick(&t, 1);
    kick(&t, VIRTIO_CONSOLE_TXQ(1)); /* port 1 not ready yet */
    kick(&t, NQ + 3);
    /* A flood of DEVICE_READY with no buffers to answer in: bounded, logged once. */
    for (unsigned i = 0; i < 200; i++)
        ctrl_out(&t, 0xffffffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    ck_assert_ptr_nonnull(strstr(t.rec.msg, "floods"));
    ck_assert(!needs_reset(&t));
    /* A descriptor outside guest RAM: the device stops and asks for a reset. */
    struct vqb_seg bad = {RAM - 4, 8, false};
    vqb_add(&t.q[CTRL_TX], &bad, 1);
    kick(&t, CTRL_TX);
    ck_assert(needs_reset(&t));
    /* A reset brings it back: the handshake works again. */
    vfx_reset(t.vd);
    struct vqb *rings[NQ];
    for (unsigned i = 0; i < NQ; i++) {
        vqb_init(&t.q[i], &t.gm, QSIZE, RING_GPA(i), RING_GPA(i) + 0x1000, RING_GPA(i) + 0x2000);
        rings[i] = &t.q[i];
    }
    vfx_drive_up(t.vd, rings, NQ, VIRTIO_CONSOLE_F_MULTIPORT, false);
    t.ctrl_seen = 0;
    handshake(&t, true);
    teardown(&t);
}
END_TEST

START_TEST(test_tiny_control_buffers)
{
    struct t t;
    setup(&t);
    /* Receive buffers of 4 bytes: the device writes what fits and goes on. */
    post_rx(&t, CTRL_RX, 2, 4);
    ctrl_out(&t, 0xffffffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.q[CTRL_RX]), 2);
    uint32_t head, len;
    vqb_used_elem(&t.q[CTRL_RX], 0, &head, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* ---- Snapshot. */

/*
 * The console is saved, freed with its host ends, and made again on the same RAM with new
 * host ends; the state restored and the device activated as a restored VM's start does.
 */
static void save_and_remake(struct t *t, struct device_state *st)
{
    *st = (struct device_state){0};
    ck_assert_int_eq(virtio_save(t->vd, st), 0);
    drop_console(t);
    make_console(t);
    struct device_state rd = state_reader(st->buf, st->len);
    ck_assert_int_eq(virtio_restore(t->vd, &rd), 0);
    ck_assert_int_eq(state_done(&rd), 0);
    virtio_loop_work(t->vd);
    ck_assert(t->vd->active);
}

/* Ports ready and open, control messages the driver had no buffers for, output not kicked. */
START_TEST(test_snapshot_restore)
{
    struct t t;
    setup(&t);
    post_rx(&t, CTRL_RX, 4, 256);
    ctrl_out(&t, 0xffffffff, VIRTIO_CONSOLE_DEVICE_READY, 1);
    ctrl_out(&t, 2, VIRTIO_CONSOLE_PORT_READY, 1);
    for (unsigned id = 1; id <= NPORTS; id++)
        expect_ctrl(&t, id, VIRTIO_CONSOLE_DEVICE_ADD, 0, NULL);
    expect_ctrl(&t, 2, VIRTIO_CONSOLE_PORT_NAME, 1, "org.test.echo");
    expect_ctrl(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    /* Port 2's host end hangs up; port 1 gets ready: three messages wait for buffers. */
    ctrl_out(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
    post_rx(&t, VIRTIO_CONSOLE_RXQ(2), 1, 64);
    close(t.host[1]);
    t.host[1] = -1;
    vfx_spin(&t.loop, 16);
    ctrl_out(&t, 1, VIRTIO_CONSOLE_PORT_READY, 1);
    ctrl_out(&t, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
    /* Port 1's output, queued but never kicked. */
    struct vqb_seg out = {new_buf(&t), 5, false};
    memcpy(gpa_to_host(&t.gm, out.gpa, 5), "early", 5);
    vqb_add(&t.q[VIRTIO_CONSOLE_TXQ(1)], &out, 1);
    struct device_state st;
    save_and_remake(&t, &st);
    /* The output the driver had queued reaches the new host end at activation. */
    char got[32] = "";
    ck_assert_int_eq(read(t.host[0], got, sizeof(got)), 5);
    ck_assert(memcmp(got, "early", 5) == 0);
    /* The waiting messages, in order, then port 2's host end is back. */
    post_rx(&t, CTRL_RX, 8, 256);
    kick(&t, CTRL_RX);
    expect_ctrl(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL);
    expect_ctrl(&t, 1, VIRTIO_CONSOLE_PORT_NAME, 1, "results");
    expect_ctrl(&t, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    expect_ctrl(&t, 2, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL);
    uint32_t id;
    uint16_t e, v;
    ck_assert(!ctrl_in(&t, &id, &e, &v, NULL));
    /* Port 1 is open in the guest: host input flows without a new handshake. */
    unsigned rxq = VIRTIO_CONSOLE_RXQ(1);
    post_rx(&t, rxq, 2, 64);
    ck_assert_int_eq(write(t.host[0], "ping\n", 5), 5);
    vfx_spin(&t.loop, 16);
    ck_assert_uint_eq(vqb_used_idx(&t.q[rxq]), 1);
    ck_assert(!needs_reset(&t));
    teardown(&t);
    state_free(&st);
}
END_TEST

/* Where the console's own part starts: after the core's (features, status, NQ queues). */
#define CON_OFF (24 + NQ * 40)
#define PORT_BYTES (KILN_PORT_NAME_MAX + 1 + 4)

/* A restore of good with one u32 at off replaced by v: refused. */
static void expect_refused(struct t *t, const struct device_state *good, size_t off, uint32_t v)
{
    struct device_state bad = {0};
    state_put(&bad, good->buf, good->len);
    ck_assert_uint_le(off + 4, bad.len);
    memcpy(bad.buf + off, &v, sizeof(v));
    drop_console(t);
    make_console(t);
    struct device_state rd = state_reader(bad.buf, bad.len);
    ck_assert_msg(virtio_restore(t->vd, &rd) == -EINVAL, "0x%x at %zu taken", v, off);
    state_free(&bad);
}

START_TEST(test_snapshot_refusals)
{
    struct t t;
    setup(&t);
    post_rx(&t, CTRL_RX, 1, 256);
    ctrl_out(&t, 0xffffffff, VIRTIO_CONSOLE_DEVICE_READY, 1); /* one ADD sent, one waits */
    struct device_state st = {0};
    ck_assert_int_eq(virtio_save(t.vd, &st), 0);
    size_t msgs = CON_OFF + 4 + NPORTS * PORT_BYTES;
    ck_assert_uint_eq(st.len, msgs + 4 + 8);
    expect_refused(&t, &st, CON_OFF, NPORTS + 1);                 /* other ports */
    expect_refused(&t, &st, CON_OFF + 4, 0x73657270);             /* another name */
    expect_refused(&t, &st, CON_OFF + 4 + PORT_BYTES - 4, 8);     /* unknown port flags */
    expect_refused(&t, &st, msgs, 2);                             /* past the end */
    expect_refused(&t, &st, msgs, (4 * KILN_MAX_PORTS + 8) + 1);  /* more than the outbox */
    expect_refused(&t, &st, msgs + 4, NPORTS + 1);                /* a port that is not */
    expect_refused(&t, &st, msgs + 4, 0);                         /* port 0 */
    expect_refused(&t, &st, msgs + 8, VIRTIO_CONSOLE_PORT_READY); /* the driver's event */
    expect_refused(&t, &st, msgs + 8, VIRTIO_CONSOLE_DEVICE_ADD | 2u << 16); /* value 2 */
    teardown(&t);
    state_free(&st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_console");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_config);
    tcase_add_test(tc, test_handshake_and_guest_to_host);
    tcase_add_test(tc, test_host_to_guest_only_while_open);
    tcase_add_test(tc, test_host_to_guest_backpressure);
    tcase_add_test(tc, test_guest_to_host_backpressure);
    tcase_add_test(tc, test_host_hangup);
    tcase_add_test(tc, test_hostile_control);
    tcase_add_test(tc, test_tiny_control_buffers);
    tcase_add_test(tc, test_snapshot_restore);
    tcase_add_test(tc, test_snapshot_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
