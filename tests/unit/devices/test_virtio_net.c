/* test_virtio_net.c: virtio-net over a SOCK_DGRAM socketpair port, fake guest RAM and transport. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio_net.h"
#include "memory.h"
#include "net/net_tap.h"
#include "util.h"
#include "virtio/virtio.h"
#include "virtio_fixture.h"
#include "virtq_builder.h"

#define RAM (16ULL << 20)
#define RX_DESC 0x10000ULL
#define RX_AVAIL 0x20000ULL
#define RX_USED 0x30000ULL
#define TX_DESC 0x40000ULL
#define TX_AVAIL 0x50000ULL
#define TX_USED 0x60000ULL
#define TABLE_GPA 0x70000ULL  /* indirect tables */
#define RXBUF_GPA 0x100000ULL /* RX buffers, STRIDE apart (one per descriptor slot) */
#define TXBUF_GPA 0x200000ULL /* TX frames, STRIDE apart */
#define STRIDE 0x800ULL
#define BIG_GPA 0x800000ULL /* 128 KiB scratch for maximal frames */
#define QSIZE 256
#define RXQ VIRTIO_NET_RXQ
#define TXQ VIRTIO_NET_TXQ
#define DG_MAX (NET_HDR_LEN + NET_FRAME_MAX + 16)

/* Everything a driver sees, the test's end of the "network", what the fakes recorded. */
struct t {
    struct guest_mem gm;
    uv_loop_t loop;
    struct virtio_net *net;
    struct virtio_device *vd;
    struct net_port *port;
    struct vqb rx, tx;
    struct kiln_log log;
    int sock;           /* the network side: each datagram is [header][frame] (or a bare frame) */
    struct vfx_rec rec; /* signals, log lines, the last message */
    uint64_t rx_gpa[QSIZE]; /* where the single-buffer RX chain with head i points */
    unsigned tx_slot;       /* next TX buffer slot */
};

static void set_sndbuf(int fd, int bytes)
{
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)), 0);
}

/*
 * Device over one end of a nonblocking SOCK_DGRAM socketpair (the test keeps the other), started
 * on the loop. dev_sndbuf > 0 shrinks the device end's send buffer (for TX backpressure).
 */
static void setup_port(struct t *t, bool vnet_hdr, unsigned offloads, int dev_sndbuf)
{
    memset(t, 0, sizeof(*t));
    t->log = (struct kiln_log){vfx_capture, &t->rec, KILN_LOG_DEBUG};
    ck_assert_int_eq(guest_mem_init(&t->gm, RAM), 0);
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    if (dev_sndbuf > 0)
        set_sndbuf(sv[0], dev_sndbuf);
    t->sock = sv[1];
    ck_assert_int_eq(net_fd_port_create(sv[0], vnet_hdr, offloads, "test", &t->log, &t->port), 0);
    struct virtio_net_config cfg = {.port = t->port, .mac = {0x52, 0x54, 0, 0x12, 0x34, 0x56}};
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_msg(virtio_net_create(&cfg, &t->loop, &t->gm, &t->log, &t->net, err) == 0, "%s", err);
    t->vd = virtio_net_device(t->net);
    vfx_attach_transport(t->vd, &t->rec, 2);
    ck_assert_int_eq(virtio_net_start(t->net), 0);
}

/* Negotiate as a driver would with both rings laid out (and zeroed), and activate. */
static void drive_up(struct t *t, uint64_t features, bool event_idx)
{
    vqb_init(&t->rx, &t->gm, QSIZE, RX_DESC, RX_AVAIL, RX_USED);
    vqb_init(&t->tx, &t->gm, QSIZE, TX_DESC, TX_AVAIL, TX_USED);
    t->tx_slot = 0;
    vfx_drive_up(t->vd, (struct vqb *[]){[RXQ] = &t->rx, [TXQ] = &t->tx}, 2, features, event_idx);
}

static void setup(struct t *t, uint64_t features)
{
    setup_port(t, true, 0, 0);
    drive_up(t, features, false);
}

static void teardown(struct t *t)
{
    virtio_net_stop(t->net);
    uv_run(&t->loop, UV_RUN_DEFAULT); /* closes the port's poll and the idle handle */
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    virtio_net_destroy(t->net);
    close(t->sock);
    guest_mem_free(&t->gm);
}

static void reset_device(struct t *t)
{
    vfx_reset(t->vd);
    ck_assert_uint_eq(virtio_read_status(t->vd), 0);
}

/* Turn the loop (never blocking: the port's poll handle keeps it alive) until nothing is left. */
static void spin(struct t *t)
{
    vfx_spin(&t->loop, 16);
}

static void kick(struct t *t, unsigned q)
{
    t->vd->ops->queue_notify(t->vd, q);
    spin(t);
}

static struct virtio_net_stats stats(struct t *t)
{
    struct virtio_net_stats st;
    virtio_net_get_stats(t->net, &st);
    return st;
}

static bool needs_reset(struct t *t)
{
    return virtio_read_status(t->vd) & VIRTIO_STATUS_NEEDS_RESET;
}

/* ---- frames and datagrams ---- */

/* A virtio-net header. */
static void mkhdr(uint8_t *h, uint8_t flags, uint8_t gso, uint16_t csum_start, uint16_t csum_off)
{
    memset(h, 0, NET_HDR_LEN);
    h[0] = flags;
    h[1] = gso;
    uint16_t v = htole16(csum_start);
    memcpy(h + VIRTIO_NET_HDR_OFF_CSUM_START, &v, 2);
    v = htole16(csum_off);
    memcpy(h + VIRTIO_NET_HDR_OFF_CSUM_OFFSET, &v, 2);
}

static uint16_t hdr_num_buffers(const uint8_t *h)
{
    uint16_t v;
    memcpy(&v, h + VIRTIO_NET_HDR_OFF_NUM_BUFFERS, 2);
    return le16toh(v);
}

/* An Ethernet frame of len bytes whose content depends on seq (also stored in bytes 14..17). */
static void mkframe(uint8_t *f, uint32_t len, uint32_t seq)
{
    for (uint32_t i = 0; i < len; i++)
        f[i] = (uint8_t)(seq * 31 + i * 7 + i / 251);
    if (len >= 18) {
        uint32_t s = htole32(seq);
        memcpy(f + 14, &s, 4);
    }
}

/* A datagram: header (plain, flags 0) then an mkframe frame; returns its length. */
static uint32_t mkdgram(uint8_t *d, uint32_t flen, uint32_t seq)
{
    mkhdr(d, 0, 0, 0, 0);
    mkframe(d + NET_HDR_LEN, flen, seq);
    return NET_HDR_LEN + flen;
}

static uint32_t frame_seq(const uint8_t *f)
{
    uint32_t s;
    memcpy(&s, f + 14, 4);
    return le32toh(s);
}

static void net_write(struct t *t, const void *d, size_t len)
{
    ck_assert_int_eq(send(t->sock, d, len, MSG_DONTWAIT), (ssize_t)len);
}

/* One datagram from the device, or -1 if none is waiting. */
static ssize_t net_read(struct t *t, void *buf, size_t cap)
{
    ssize_t n = recv(t->sock, buf, cap, MSG_DONTWAIT);
    if (n < 0)
        ck_assert_int_eq(errno, EAGAIN);
    return n;
}

static void expect_no_dgram(struct t *t)
{
    uint8_t b[64];
    ck_assert_int_eq(net_read(t, b, sizeof(b)), -1);
}

/* The next datagram equals d[0, len). */
static void expect_dgram(struct t *t, const uint8_t *d, uint32_t len)
{
    uint8_t *b = malloc(DG_MAX);
    ssize_t n = net_read(t, b, DG_MAX);
    ck_assert_int_eq(n, (ssize_t)len);
    ck_assert_int_eq(memcmp(b, d, len), 0);
    free(b);
}

/* ---- the fake driver's buffers ---- */

/* Offer one device-writable buffer of len bytes (slot = its descriptor index) as an RX chain. */
static uint16_t rx_post(struct t *t, uint32_t len)
{
    uint16_t slot = t->rx.next_desc;
    uint64_t gpa = RXBUF_GPA + STRIDE * slot;
    memset(gpa_to_host(&t->gm, gpa, len), 0xcc, len);
    struct vqb_seg s = {gpa, len, true};
    uint16_t head = vqb_add(&t->rx, &s, 1);
    t->rx_gpa[head] = gpa;
    return head;
}

static void rx_post_n(struct t *t, unsigned n, uint32_t len)
{
    for (unsigned i = 0; i < n; i++)
        rx_post(t, len);
}

/* Used RX element idx: its head, length, and the host address of its (single) buffer. */
static uint8_t *rx_used(struct t *t, uint16_t idx, uint32_t *len)
{
    uint32_t id = 0;
    vqb_used_elem(&t->rx, idx, &id, len);
    ck_assert_uint_lt(id, QSIZE);
    return gpa_to_host(&t->gm, t->rx_gpa[id], *len);
}

/*
 * Copy d[0, len) into the next TX slot and offer it cut into buffers of the given lengths (the
 * last takes the rest); nseg 0 means one buffer. Returns the head.
 */
static uint16_t tx_post_cut(struct t *t, const uint8_t *d, uint32_t len, const uint32_t *cuts,
                            unsigned ncuts)
{
    uint64_t gpa = TXBUF_GPA + STRIDE * t->tx_slot++;
    if (len > STRIDE)
        gpa = BIG_GPA;
    ck_assert_int_eq(guest_write(&t->gm, gpa, d, len), 0);
    struct vqb_seg segs[8];
    unsigned n = 0;
    uint32_t off = 0;
    for (; n < ncuts; n++) {
        segs[n] = (struct vqb_seg){gpa + off, cuts[n], false};
        off += cuts[n];
    }
    segs[n++] = (struct vqb_seg){gpa + off, len - off, false};
    return vqb_add(&t->tx, segs, n);
}

static uint16_t tx_post(struct t *t, const uint8_t *d, uint32_t len)
{
    return tx_post_cut(t, d, len, NULL, 0);
}

static void expect_used(const struct vqb *b, uint16_t idx, uint16_t head, uint32_t len)
{
    uint32_t id = 0, l = 0;
    vqb_used_elem(b, idx, &id, &l);
    ck_assert_uint_eq(id, head);
    ck_assert_uint_eq(l, len);
}

/* ---- config space and features ---- */

START_TEST(test_config_and_features)
{
    struct t t;
    setup_port(&t, true, 0, 0);
    uint8_t cfg[VIRTIO_NET_CONFIG_LEN];
    t.vd->ops->dev.read(&t.vd->dev, 0, 0, cfg, sizeof(cfg));
    const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    ck_assert_int_eq(memcmp(cfg + VIRTIO_NET_CFG_MAC, mac, 6), 0);
    ck_assert_uint_eq(cfg[VIRTIO_NET_CFG_STATUS] | cfg[VIRTIO_NET_CFG_STATUS + 1] << 8,
                      VIRTIO_NET_S_LINK_UP);
    ck_assert_uint_eq(cfg[VIRTIO_NET_CFG_MAX_PAIRS] | cfg[VIRTIO_NET_CFG_MAX_PAIRS + 1] << 8, 1);
    uint8_t raw[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    t.vd->ops->dev.read(&t.vd->dev, 0, VIRTIO_NET_CONFIG_LEN - 1, raw, 4);
    ck_assert_uint_eq(raw[1] | raw[2] | raw[3], 0);
    t.vd->ops->dev.write(&t.vd->dev, 0, 0, raw, 4); /* ignored */
    t.vd->ops->dev.read(&t.vd->dev, 0, 0, cfg, 6);
    ck_assert_int_eq(memcmp(cfg, mac, 6), 0);
    uint64_t f = t.vd->device_features;
    ck_assert(f & VIRTIO_NET_F_MAC && f & VIRTIO_NET_F_STATUS && f & VIRTIO_NET_F_MRG_RXBUF);
    ck_assert(f & VIRTIO_F_EVENT_IDX && f & VIRTIO_F_INDIRECT_DESC && f & VIRTIO_F_VERSION_1);
    /* A vnet port without checksum offload: no offloads offered at all. */
    ck_assert(!(f & (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_HOST_TSO4)));
    ck_assert(!(f & (VIRTIO_NET_F_CTRL_VQ | VIRTIO_NET_F_MQ)));
    ck_assert_uint_eq(t.vd->num_queues, 2);
    ck_assert_uint_eq(t.vd->ops->device_id, VIRTIO_ID_NET);
    teardown(&t);

    setup_port(&t, true, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4, 0);
    f = t.vd->device_features;
    ck_assert(f & VIRTIO_NET_F_CSUM && f & VIRTIO_NET_F_GUEST_CSUM);
    ck_assert(f & VIRTIO_NET_F_HOST_TSO4 && f & VIRTIO_NET_F_GUEST_TSO4);
    ck_assert(!(f & (VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_HOST_UFO | VIRTIO_NET_F_HOST_ECN)));
    teardown(&t);

    /* A bare-frame port: the device finishes checksums itself. */
    setup_port(&t, false, NET_OFFLOAD_TSO4, 0);
    f = t.vd->device_features;
    ck_assert(f & VIRTIO_NET_F_CSUM && f & VIRTIO_NET_F_GUEST_CSUM);
    ck_assert(!(f & (VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_GUEST_TSO4)));
    teardown(&t);
}
END_TEST

/* ---- transmit ---- */

START_TEST(test_tx_single)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 100, 1);
    uint16_t head = tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    expect_no_dgram(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 1);
    expect_used(&t.tx, 0, head, 0);
    ck_assert_uint_eq(t.rec.sig[TXQ], 1);
    ck_assert_uint_eq(t.rec.sig[RXQ], 0);
    /* The ring is empty: kicks wanted again. */
    ck_assert_uint_eq(vqb_used_flags(&t.tx), 0);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.tx_frames, 1);
    ck_assert_uint_eq(st.tx_dropped, 0);
    /* The num_buffers field of what the driver sent is not passed on. */
    d[VIRTIO_NET_HDR_OFF_NUM_BUFFERS] = 0x77;
    head = tx_post(&t, d, len);
    kick(&t, TXQ);
    d[VIRTIO_NET_HDR_OFF_NUM_BUFFERS] = 0;
    expect_dgram(&t, d, len);
    expect_used(&t.tx, 1, head, 0);
    /* The smallest frame passes. */
    len = mkdgram(d, NET_FRAME_MIN, 2);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    ck_assert_uint_eq(stats(&t).tx_frames, 3);
    /* A kick with nothing new: no interrupt. */
    unsigned sig = t.rec.sig[TXQ];
    kick(&t, TXQ);
    ck_assert_uint_eq(t.rec.sig[TXQ], sig);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

START_TEST(test_tx_split_and_indirect)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC | VIRTIO_F_INDIRECT_DESC);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 300, 5);
    /* Header alone, then the frame in three pieces. */
    const uint32_t cuts1[] = {NET_HDR_LEN, 40, 1};
    uint16_t h1 = tx_post_cut(&t, d, len, cuts1, 3);
    /* Header split 5 + 7 across two buffers, frame in a third. */
    const uint32_t cuts2[] = {5, 7};
    uint16_t h2 = tx_post_cut(&t, d, len, cuts2, 2);
    /* Header split 5 + (7 + the whole frame). */
    const uint32_t cuts3[] = {5};
    uint16_t h3 = tx_post_cut(&t, d, len, cuts3, 1);
    /* Header and frame start in one buffer, the rest in another. */
    const uint32_t cuts4[] = {NET_HDR_LEN + 20};
    uint16_t h4 = tx_post_cut(&t, d, len, cuts4, 1);
    /* An indirect table: [hdr 5][hdr 7 + 100][rest], after one direct buffer of nothing. */
    uint64_t gpa = TXBUF_GPA + STRIDE * 100;
    ck_assert_int_eq(guest_write(&t.gm, gpa, d, len), 0);
    struct vqb_seg ind[3] = {{gpa, 5, false}, {gpa + 5, 107, false}, {gpa + 112, len - 112, false}};
    uint16_t h5 = vqb_chain_ind(&t.tx, NULL, 0, TABLE_GPA, ind, 3);
    vqb_add_head(&t.tx, h5);
    /* Direct buffer (the header) then an indirect table with the frame. */
    struct vqb_seg dir = {gpa, NET_HDR_LEN, false};
    struct vqb_seg ind2[2] = {{gpa + NET_HDR_LEN, 10, false}, {gpa + 22, len - 22, false}};
    uint16_t h6 = vqb_chain_ind(&t.tx, &dir, 1, TABLE_GPA + 0x100, ind2, 2);
    vqb_add_head(&t.tx, h6);
    kick(&t, TXQ);
    const uint16_t heads[] = {h1, h2, h3, h4, h5, h6};
    for (unsigned i = 0; i < 6; i++) {
        expect_dgram(&t, d, len);
        expect_used(&t.tx, (uint16_t)i, heads[i], 0);
    }
    expect_no_dgram(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 6);
    ck_assert_uint_eq(t.rec.sig[TXQ], 1); /* one interrupt for the burst */
    ck_assert_uint_eq(stats(&t).tx_frames, 6);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* Interrupt suppression: avail flags NO_INTERRUPT, and event_idx's used_event. */
START_TEST(test_tx_signal_rules)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint8_t d[256];
    uint32_t len = mkdgram(d, 60, 0);
    vqb_set_avail_flags(&t.tx, VIRTQ_AVAIL_F_NO_INTERRUPT);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 1);
    ck_assert_uint_eq(t.rec.sig[TXQ], 0);
    vqb_set_avail_flags(&t.tx, 0);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    ck_assert_uint_eq(t.rec.sig[TXQ], 1);
    teardown(&t);

    setup_port(&t, true, 0, 0);
    drive_up(&t, VIRTIO_NET_F_MAC, true);
    vqb_set_used_event(&t.tx, 2); /* interrupt once the third frame is used */
    for (uint32_t i = 0; i < 2; i++) {
        tx_post(&t, d, len);
        kick(&t, TXQ);
    }
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 2);
    ck_assert_uint_eq(t.rec.sig[TXQ], 0);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    ck_assert_uint_eq(t.rec.sig[TXQ], 1);
    ck_assert_uint_eq(vqb_avail_event(&t.tx), 3); /* kicks wanted for the next one */
    for (int i = 0; i < 3; i++)
        expect_dgram(&t, d, len);
    teardown(&t);
}
END_TEST

/* More frames than one turn's budget: the rest go on the next turn of the loop, in order. */
START_TEST(test_tx_budget)
{
    struct t t;
    setup_port(&t, true, 0, 1 << 20);
    drive_up(&t, VIRTIO_NET_F_MAC, false);
    uint8_t d[256];
    const unsigned n = VIRTIO_NET_TX_BUDGET + 60;
    for (unsigned i = 0; i < n; i++)
        tx_post(&t, d, mkdgram(d, 46, i));
    t.vd->ops->queue_notify(t.vd, TXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), VIRTIO_NET_TX_BUDGET);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), n);
    for (unsigned i = 0; i < n; i++) {
        uint8_t b[256];
        ck_assert_int_eq(net_read(&t, b, sizeof(b)), NET_HDR_LEN + 46);
        ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), i);
    }
    expect_no_dgram(&t);
    teardown(&t);
}
END_TEST

/* ---- receive ---- */

/* Without MRG_RXBUF: one frame per chain, header copied, num_buffers 1. */
START_TEST(test_rx_single)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint16_t heads[4];
    for (int i = 0; i < 4; i++)
        heads[i] = rx_post(&t, 1536);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 200, 7);
    mkhdr(d, VIRTIO_NET_HDR_F_DATA_VALID, 0, 0x1234, 0x56);
    d[VIRTIO_NET_HDR_OFF_NUM_BUFFERS] = 0x77; /* the device's to fill */
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    uint32_t ul = 0;
    uint8_t *b = rx_used(&t, 0, &ul);
    expect_used(&t.rx, 0, heads[0], len);
    /* GUEST_CSUM was not negotiated: flags 0 (the spec's MUST), the rest as the back end sent. */
    ck_assert_uint_eq(b[0], 0);
    ck_assert_int_eq(memcmp(b + 1, d + 1, VIRTIO_NET_HDR_OFF_NUM_BUFFERS - 1), 0);
    ck_assert_uint_eq(hdr_num_buffers(b), 1);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, d + NET_HDR_LEN, len - NET_HDR_LEN), 0);
    ck_assert_uint_eq(b[len], 0xcc); /* nothing written past the frame */
    ck_assert_uint_eq(t.rec.sig[RXQ], 1);
    /* A burst of two: one interrupt. */
    uint8_t d2[2048], d3[2048];
    uint32_t l2 = mkdgram(d2, 1514, 8), l3 = mkdgram(d3, 60, 9);
    net_write(&t, d2, l2);
    net_write(&t, d3, l3);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 3);
    ck_assert_uint_eq(t.rec.sig[RXQ], 2);
    expect_used(&t.rx, 1, heads[1], l2);
    expect_used(&t.rx, 2, heads[2], l3);
    b = rx_used(&t, 1, &ul);
    ck_assert_uint_eq(hdr_num_buffers(b), 1);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, d2 + NET_HDR_LEN, l2 - NET_HDR_LEN), 0);
    b = rx_used(&t, 2, &ul);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, d3 + NET_HDR_LEN, l3 - NET_HDR_LEN), 0);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.rx_frames, 3);
    ck_assert_uint_eq(st.rx_dropped, 0);
    /* Notifications for RX are off while buffers are there. */
    ck_assert_uint_eq(vqb_used_flags(&t.rx), VIRTQ_USED_F_NO_NOTIFY);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* Receive offloads negotiated: the back end's header reaches the guest as it is. */
START_TEST(test_rx_offload_header)
{
    struct t t;
    setup_port(&t, true, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4, 0);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4, false);
    rx_post_n(&t, 2, 1536);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 1000, 1);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 34, 16);
    d[2] = 54;  /* hdr_len */
    d[4] = 100; /* gso_size */
    net_write(&t, d, len);
    mkdgram(d + 1024, 60, 2);
    mkhdr(d + 1024, VIRTIO_NET_HDR_F_DATA_VALID, 0, 0, 0);
    net_write(&t, d + 1024, NET_HDR_LEN + 60);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 2);
    uint32_t ul;
    uint8_t *b = rx_used(&t, 0, &ul);
    ck_assert_uint_eq(ul, len);
    ck_assert_int_eq(memcmp(b, d, VIRTIO_NET_HDR_OFF_NUM_BUFFERS), 0);
    ck_assert_uint_eq(hdr_num_buffers(b), 1);
    b = rx_used(&t, 1, &ul);
    ck_assert_uint_eq(b[0], VIRTIO_NET_HDR_F_DATA_VALID);
    teardown(&t);
}
END_TEST

/* Without MRG_RXBUF a frame that does not fit the chain is dropped; the chain is kept. */
START_TEST(test_rx_too_small_chain)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint16_t head = rx_post(&t, 100);
    uint8_t d[2048];
    net_write(&t, d, mkdgram(d, 200, 1));
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    ck_assert_uint_eq(stats(&t).rx_dropped, 1);
    /* Exactly fitting. */
    uint32_t len = mkdgram(d, 100 - NET_HDR_LEN, 2);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    expect_used(&t.rx, 0, head, 100);
    uint32_t ul;
    uint8_t *b = rx_used(&t, 0, &ul);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, d + NET_HDR_LEN, len - NET_HDR_LEN), 0);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* Datagrams the port cannot pass on (shorter than a header + Ethernet header, or too long). */
START_TEST(test_rx_bad_sizes)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    rx_post_n(&t, 4, 1536);
    uint8_t *d = malloc(DG_MAX);
    net_write(&t, d, mkdgram(d, NET_FRAME_MIN - 1, 1));
    net_write(&t, d, NET_HDR_LEN - 1);
    net_write(&t, d, mkdgram(d, NET_FRAME_MAX + 1, 2));
    uint32_t len = mkdgram(d, NET_FRAME_MIN, 3);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    expect_used(&t.rx, 0, 0, len);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.rx_dropped, 3);
    ck_assert_uint_eq(st.rx_frames, 1);
    free(d);
    teardown(&t);
}
END_TEST

/* Check a mergeable frame that used chains [first, first + n): lens, num_buffers, contents. */
static void expect_merged(struct t *t, uint16_t first, unsigned n, const uint8_t *d, uint32_t len,
                          uint32_t buflen)
{
    uint32_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        uint32_t ul = 0;
        uint8_t *b = rx_used(t, (uint16_t)(first + i), &ul);
        uint32_t want = len - off < buflen ? len - off : buflen;
        ck_assert_uint_eq(ul, want);
        if (i == 0) {
            ck_assert_int_eq(memcmp(b, d, VIRTIO_NET_HDR_OFF_NUM_BUFFERS), 0);
            ck_assert_uint_eq(hdr_num_buffers(b), n);
            ck_assert_int_eq(memcmp(b + NET_HDR_LEN, d + NET_HDR_LEN, ul - NET_HDR_LEN), 0);
        } else {
            ck_assert_int_eq(memcmp(b, d + off, ul), 0);
        }
        off += ul;
    }
    ck_assert_uint_eq(off, len);
}

/* MRG_RXBUF: big frames across several 1536-byte chains; waiting for more when short of them. */
START_TEST(test_rx_mergeable)
{
    struct t t;
    bool event_idx = _i;
    setup_port(&t, true, 0, 0);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF, event_idx);
    uint8_t *d = malloc(DG_MAX);
    rx_post_n(&t, 64, 1536);
    /* 9000 bytes: 9012 = 5 * 1536 + 1332 -> 6 chains; 60012 = 39 * 1536 + 108 -> 40. */
    uint32_t l1 = mkdgram(d, 9000, 1);
    net_write(&t, d, l1);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 6);
    expect_merged(&t, 0, 6, d, l1, 1536);
    uint32_t l2 = mkdgram(d, 60000, 2);
    net_write(&t, d, l2);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 46);
    expect_merged(&t, 6, 40, d, l2, 1536);
    /* A small frame takes one chain, num_buffers 1. */
    uint32_t l3 = mkdgram(d, 60, 3);
    net_write(&t, d, l3);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 47);
    expect_merged(&t, 46, 1, d, l3, 1536);
    /* With event_idx the driver's used_event stays 0: only the first burst interrupts. */
    ck_assert_uint_eq(t.rec.sig[RXQ], event_idx ? 1 : 3);
    /* 17 chains left; a 60000-byte frame needs 40: the device waits for more and asks for a kick.
     */
    uint32_t l4 = mkdgram(d, 60000, 4);
    net_write(&t, d, l4);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 47);
    if (event_idx)
        ck_assert_uint_eq(vqb_avail_event(&t.rx), 64); /* kick once idx passes what was seen */
    else
        ck_assert_uint_eq(vqb_used_flags(&t.rx), 0);
    /* A small frame behind it waits too: order is kept. */
    uint8_t d5[128];
    uint32_t l5 = mkdgram(d5, 60, 5);
    net_write(&t, d5, l5);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 47);
    rx_post_n(&t, 30, 1536);
    kick(&t, RXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 47 + 40 + 1);
    expect_merged(&t, 47, 40, d, l4, 1536);
    expect_merged(&t, 87, 1, d5, l5, 1536);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.rx_frames, 5);
    ck_assert_uint_eq(st.rx_dropped, 0);
    ck_assert(!needs_reset(&t));
    free(d);
    teardown(&t);
}
END_TEST

/* MRG_RXBUF, but every buffer the ring can hold together is too small: dropped, not waited on. */
START_TEST(test_rx_mergeable_ring_too_small)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF);
    rx_post_n(&t, QSIZE, 64);
    uint8_t *d = malloc(DG_MAX);
    net_write(&t, d, mkdgram(d, 60000, 1));
    uint32_t len = mkdgram(d, 40, 2);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(stats(&t).rx_dropped, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    expect_merged(&t, 0, 1, d, len, 64);
    expect_used(&t.rx, 0, 0, len);
    ck_assert(!needs_reset(&t));
    free(d);
    teardown(&t);
}
END_TEST

/* The header split across descriptors (5 + 7), receive and transmit. */
START_TEST(test_header_split)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint64_t g = RXBUF_GPA;
    memset(gpa_to_host(&t.gm, g, 0x1000), 0xcc, 0x1000);
    struct vqb_seg segs[3] = {{g, 5, true}, {g + 0x100, 7, true}, {g + 0x200, 1536, true}};
    uint16_t head = vqb_add(&t.rx, segs, 3);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 500, 3);
    mkhdr(d, 0, 0, 0x0102, 0x0304);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    expect_used(&t.rx, 0, head, len);
    uint8_t h[NET_HDR_LEN];
    ck_assert_int_eq(guest_read(&t.gm, g, h, 5), 0);
    ck_assert_int_eq(guest_read(&t.gm, g + 0x100, h + 5, 7), 0);
    ck_assert_int_eq(memcmp(h, d, VIRTIO_NET_HDR_OFF_NUM_BUFFERS), 0);
    ck_assert_uint_eq(hdr_num_buffers(h), 1);
    uint8_t *p = gpa_to_host(&t.gm, g + 0x200, 1536);
    ck_assert_int_eq(memcmp(p, d + NET_HDR_LEN, 500), 0);
    ck_assert_uint_eq(p[500], 0xcc);
    ck_assert_uint_eq(*(uint8_t *)gpa_to_host(&t.gm, g + 5, 1), 0xcc);
    /* 5 + (7 + frame): the frame follows the header in the second buffer. */
    struct vqb_seg s2[2] = {{g + 0x1000, 5, true}, {g + 0x1100, 1536, true}};
    head = vqb_add(&t.rx, s2, 2);
    net_write(&t, d, len);
    spin(&t);
    expect_used(&t.rx, 1, head, len);
    ck_assert_int_eq(guest_read(&t.gm, g + 0x1000, h, 5), 0);
    ck_assert_int_eq(guest_read(&t.gm, g + 0x1100, h + 5, 7), 0);
    ck_assert_uint_eq(hdr_num_buffers(h), 1);
    ck_assert_int_eq(memcmp(h, d, VIRTIO_NET_HDR_OFF_NUM_BUFFERS), 0);
    p = gpa_to_host(&t.gm, g + 0x1100 + 7, 500);
    ck_assert_int_eq(memcmp(p, d + NET_HDR_LEN, 500), 0);
    /* Transmit with the same split. */
    mkhdr(d, 0, 0, 0, 0);
    const uint32_t cuts[] = {5, 7};
    head = tx_post_cut(&t, d, len, cuts, 2);
    const uint32_t cuts2[] = {5};
    uint16_t head2 = tx_post_cut(&t, d, len, cuts2, 1);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    expect_dgram(&t, d, len);
    expect_used(&t.tx, 0, head, 0);
    expect_used(&t.tx, 1, head2, 0);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* Header split with MRG_RXBUF: num_buffers lands inside the second descriptor. */
START_TEST(test_header_split_mergeable)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF);
    uint64_t g = RXBUF_GPA;
    struct vqb_seg segs[3] = {{g, 5, true}, {g + 0x100, 7, true}, {g + 0x200, 1000, true}};
    uint16_t h1 = vqb_add(&t.rx, segs, 3);
    struct vqb_seg s2 = {g + 0x1000, 1536, true};
    uint16_t h2 = vqb_add(&t.rx, &s2, 1);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 1500, 4);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 2);
    expect_used(&t.rx, 0, h1, 1012);
    expect_used(&t.rx, 1, h2, len - 1012);
    uint8_t h[NET_HDR_LEN];
    ck_assert_int_eq(guest_read(&t.gm, g, h, 5), 0);
    ck_assert_int_eq(guest_read(&t.gm, g + 0x100, h + 5, 7), 0);
    ck_assert_uint_eq(hdr_num_buffers(h), 2);
    ck_assert_int_eq(memcmp(gpa_to_host(&t.gm, g + 0x200, 1000), d + NET_HDR_LEN, 1000), 0);
    ck_assert_int_eq(memcmp(gpa_to_host(&t.gm, g + 0x1000, 500), d + 1012, 500), 0);
    teardown(&t);
}
END_TEST

/* ---- hostile or broken drivers ---- */

START_TEST(test_rx_readable_buffer)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint64_t g = RXBUF_GPA;
    struct vqb_seg segs[2] = {{g, NET_HDR_LEN, false}, {g + 0x100, 1536, true}};
    vqb_add(&t.rx, segs, 2);
    uint8_t d[256];
    memset(gpa_to_host(&t.gm, g, 16), 0xcc, 16);
    net_write(&t, d, mkdgram(d, 60, 1));
    net_write(&t, d, mkdgram(d, 60, 2));
    net_write(&t, d, mkdgram(d, 60, 3));
    spin(&t);
    ck_assert(needs_reset(&t));
    ck_assert_uint_ge(t.rec.csig, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    ck_assert_uint_eq(*(uint8_t *)gpa_to_host(&t.gm, g, 1), 0xcc); /* not written */
    /* The device stopped: the port holds a frame and reads no more; later kicks do nothing. */
    kick(&t, RXQ);
    kick(&t, TXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    /*
     * A reset and a new driver bring it back. The frame that met the bad chain is lost; the
     * one the port held and the one still in the socket reach the new buffers.
     */
    reset_device(&t);
    ck_assert(!needs_reset(&t));
    drive_up(&t, VIRTIO_NET_F_MAC, false);
    rx_post_n(&t, 4, 1536);
    kick(&t, RXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 2);
    for (unsigned i = 0; i < 2; i++) {
        uint32_t ul;
        uint8_t *b = rx_used(&t, (uint16_t)i, &ul);
        ck_assert_uint_eq(ul, NET_HDR_LEN + 60);
        ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), i + 2);
    }
    teardown(&t);
}
END_TEST

/* With MRG_RXBUF every RX buffer must hold the header: a shorter one is a driver error. */
START_TEST(test_rx_mergeable_short_buffer)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF);
    uint64_t g = RXBUF_GPA;
    struct vqb_seg s = {g, NET_HDR_LEN - 1, true};
    vqb_add(&t.rx, &s, 1);
    memset(gpa_to_host(&t.gm, g, 16), 0xcc, 16);
    uint8_t d[256];
    net_write(&t, d, mkdgram(d, 60, 1));
    spin(&t);
    ck_assert(needs_reset(&t));
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    ck_assert_uint_eq(*(uint8_t *)gpa_to_host(&t.gm, g, 1), 0xcc); /* not written */
    teardown(&t);
}
END_TEST

START_TEST(test_rx_outside_ram)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    struct vqb_seg s = {RAM - 100, 1536, true}; /* runs past the end of RAM */
    vqb_add(&t.rx, &s, 1);
    uint8_t d[256];
    net_write(&t, d, mkdgram(d, 60, 1));
    spin(&t);
    ck_assert(needs_reset(&t));
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    teardown(&t);

    setup(&t, VIRTIO_NET_F_MAC);
    struct vqb_seg s2 = {1ULL << 40, 1536, true};
    vqb_add(&t.rx, &s2, 1);
    net_write(&t, d, mkdgram(d, 60, 1));
    spin(&t);
    ck_assert(needs_reset(&t));
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_tx_outside_ram)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    struct vqb_seg s[2] = {{TXBUF_GPA, NET_HDR_LEN, false}, {~0ULL - 10, 100, false}};
    vqb_add(&t.tx, s, 2);
    kick(&t, TXQ);
    ck_assert(needs_reset(&t));
    ck_assert_uint_ge(t.rec.csig, 1);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 0);
    expect_no_dgram(&t);
    /* Good frames after it are not processed until a reset. */
    uint8_t d[256];
    tx_post(&t, d, mkdgram(d, 60, 1));
    kick(&t, TXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 0);
    expect_no_dgram(&t);
    teardown(&t);

    /* An indirect table outside RAM. */
    setup(&t, VIRTIO_NET_F_MAC);
    vqb_desc(&t.tx, 0, RAM - 16, 64, VIRTQ_DESC_F_INDIRECT, 0);
    vqb_add_head(&t.tx, 0);
    kick(&t, TXQ);
    ck_assert(needs_reset(&t));
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 0);
    teardown(&t);
}
END_TEST

/* Frames the device drops and counts: each chain is still given back, the device keeps going. */
START_TEST(test_tx_dropped)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint8_t *d = malloc(DG_MAX);
    unsigned n = 0;
    /* A device-writable buffer in a TX chain. */
    uint32_t len = mkdgram(d, 60, 1);
    ck_assert_int_eq(guest_write(&t.gm, TXBUF_GPA, d, len), 0);
    struct vqb_seg s[2] = {{TXBUF_GPA, len, false}, {TXBUF_GPA + 0x400, 100, true}};
    uint16_t head = vqb_add(&t.tx, s, 2);
    kick(&t, TXQ);
    expect_no_dgram(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), ++n);
    expect_used(&t.tx, 0, head, 0);
    ck_assert_uint_eq(stats(&t).tx_dropped, 1);
    ck_assert_uint_ge(t.rec.nlog, 1);
    /* Only a writable buffer. */
    struct vqb_seg w = {TXBUF_GPA, 100, true};
    vqb_add(&t.tx, &w, 1);
    /* Too short: a header and 13 bytes; just the header; nothing but 5 bytes. */
    tx_post(&t, d, mkdgram(d, NET_FRAME_MIN - 1, 2));
    tx_post(&t, d, NET_HDR_LEN);
    tx_post(&t, d, 5);
    /* Too long: a header and NET_FRAME_MAX + 1 bytes. */
    tx_post(&t, d, mkdgram(d, NET_FRAME_MAX + 1, 3));
    kick(&t, TXQ);
    n += 5;
    ck_assert_uint_eq(vqb_used_idx(&t.tx), n);
    ck_assert_uint_eq(stats(&t).tx_dropped, 6);
    expect_no_dgram(&t);
    /* The longest frame passes. */
    len = mkdgram(d, NET_FRAME_MAX, 4);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), ++n);
    expect_dgram(&t, d, len);
    /* Segmentation not negotiated: TCPV4, TCPV6, UDP, an unknown type, ECN. */
    const uint8_t gso[] = {
        VIRTIO_NET_HDR_GSO_TCPV4, VIRTIO_NET_HDR_GSO_TCPV6, VIRTIO_NET_HDR_GSO_UDP, 2, 0x55,
        VIRTIO_NET_HDR_GSO_ECN};
    for (unsigned i = 0; i < sizeof(gso); i++) {
        len = mkdgram(d, 100, 10 + i);
        mkhdr(d, 0, gso[i], 0, 0);
        tx_post(&t, d, len);
    }
    /* A partial checksum without CSUM negotiated. */
    len = mkdgram(d, 100, 20);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 34, 6);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    n += sizeof(gso) + 1;
    ck_assert_uint_eq(vqb_used_idx(&t.tx), n);
    ck_assert_uint_eq(stats(&t).tx_dropped, 6 + sizeof(gso) + 1);
    expect_no_dgram(&t);
    /* Still running: a good frame goes out. */
    len = mkdgram(d, 100, 30);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    ck_assert_uint_eq(stats(&t).tx_frames, 2);
    ck_assert(!needs_reset(&t));
    free(d);
    teardown(&t);
}
END_TEST

/* Offloads negotiated: TSO4 passes, the others still do not; checksum positions are checked. */
START_TEST(test_tx_offload_checks)
{
    struct t t;
    setup_port(&t, true, NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4, 0);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4, false);
    uint8_t d[2048];
    uint32_t len = mkdgram(d, 200, 1);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 34, 16);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len); /* passed through with its header: the back end segments */
    /* TSO6 and ECN were not negotiated. */
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 54, 16);
    tx_post(&t, d, len);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 34,
          16);
    tx_post(&t, d, len);
    /* Checksum field past the end of the frame: start + offset + 2 > 200. */
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 190, 9);
    tx_post(&t, d, len);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0xffff, 0xffff);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_no_dgram(&t);
    ck_assert_uint_eq(stats(&t).tx_dropped, 4);
    /* The field is the frame's last two bytes: fine. */
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 190, 8);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), 6);
    ck_assert_uint_eq(stats(&t).tx_frames, 2);
    teardown(&t);
}
END_TEST

/* ---- backpressure ---- */

/*
 * The guest posts no RX buffers while the network fills the socket: the port holds one frame
 * and reads nothing more; buffers and a kick let the frames flow again, in order.
 */
START_TEST(test_rx_backpressure)
{
    struct t t;
    bool event_idx = _i;
    setup_port(&t, true, 0, 0);
    set_sndbuf(t.sock, 16384);
    drive_up(&t, VIRTIO_NET_F_MAC, event_idx);
    uint8_t d[2048];
    unsigned sent = 0;
    for (;;) {
        uint32_t len = mkdgram(d, 500, sent);
        ssize_t r = send(t.sock, d, len, MSG_DONTWAIT);
        if (r < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            break;
        }
        ck_assert_int_eq(r, len);
        sent++;
    }
    ck_assert_uint_gt(sent, 3);
    ck_assert_uint_lt(sent, 200);
    spin(&t);
    /* The port took at most one frame off the socket: room for at most one more. */
    unsigned extra = 0;
    while (send(t.sock, d, mkdgram(d, 500, sent), MSG_DONTWAIT) > 0) {
        sent++;
        ck_assert_uint_le(++extra, 1);
    }
    ck_assert_int_eq(errno, EAGAIN);
    spin(&t);
    spin(&t);
    ck_assert_int_eq(send(t.sock, d, mkdgram(d, 500, sent), MSG_DONTWAIT), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 0);
    /* The device asked for a kick when buffers come. */
    if (event_idx)
        ck_assert_uint_eq(vqb_avail_event(&t.rx), 0);
    else
        ck_assert_uint_eq(vqb_used_flags(&t.rx), 0);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.rx_dropped, 0);
    ck_assert_uint_eq(st.rx_frames, 0);
    /* Some buffers: that many frames, then waiting again. */
    rx_post_n(&t, 3, 1536);
    kick(&t, RXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 3);
    if (!event_idx)
        ck_assert_uint_eq(vqb_used_flags(&t.rx), 0);
    /* Buffers for all the rest. */
    rx_post_n(&t, QSIZE - 3, 1536);
    kick(&t, RXQ);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), sent);
    for (unsigned i = 0; i < sent; i++) {
        uint32_t ul;
        uint8_t *b = rx_used(&t, (uint16_t)i, &ul);
        ck_assert_uint_eq(ul, NET_HDR_LEN + 500);
        ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), i);
        ck_assert_uint_eq(hdr_num_buffers(b), 1);
    }
    st = stats(&t);
    ck_assert_uint_eq(st.rx_frames, sent);
    ck_assert_uint_eq(st.rx_dropped, 0);
    /* The socket is empty again: the port reads once more (it was not left paused). */
    uint32_t len = mkdgram(d, 500, 999);
    net_write(&t, d, len);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), sent + 1);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/*
 * The network does not read: writev gets EAGAIN, the device holds that chain (not used yet)
 * and stops; once the network drains, the held frame and the rest go out in order.
 */
START_TEST(test_tx_backpressure)
{
    struct t t;
    setup_port(&t, true, 0, 8192);
    drive_up(&t, VIRTIO_NET_F_MAC, _i);
    uint8_t d[2048];
    const unsigned n = 60;
    uint16_t heads[60];
    for (unsigned i = 0; i < n; i++)
        heads[i] = tx_post(&t, d, mkdgram(d, 1000, i));
    kick(&t, TXQ);
    uint16_t used = vqb_used_idx(&t.tx);
    ck_assert_uint_gt(used, 0);
    ck_assert_uint_lt(used, n);
    ck_assert_uint_eq(stats(&t).tx_frames, used);
    /* Blocked: neither more turns of the loop nor kicks move it; kicks are not wanted. */
    spin(&t);
    kick(&t, TXQ);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), used);
    if (!_i)
        ck_assert_uint_eq(vqb_used_flags(&t.tx), VIRTQ_USED_F_NO_NOTIFY);
    unsigned got = 0, rounds = 0;
    while (got < n) {
        ck_assert_uint_lt(++rounds, 100);
        uint8_t b[2048];
        ssize_t r;
        unsigned before = got;
        while ((r = net_read(&t, b, sizeof(b))) > 0) {
            ck_assert_int_eq(r, NET_HDR_LEN + 1000);
            ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), got);
            got++;
        }
        ck_assert_uint_eq(vqb_used_idx(&t.tx), got); /* used once sent, not before */
        if (got < n)
            ck_assert_uint_gt(got, before);
        spin(&t);
    }
    ck_assert_uint_eq(vqb_used_idx(&t.tx), n);
    for (unsigned i = 0; i < n; i++)
        expect_used(&t.tx, (uint16_t)i, heads[i], 0);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.tx_frames, n);
    ck_assert_uint_eq(st.tx_dropped, 0);
    if (!_i)
        ck_assert_uint_eq(vqb_used_flags(&t.tx), 0); /* idle: kicks wanted again */
    expect_no_dgram(&t);
    ck_assert(!needs_reset(&t));
    teardown(&t);
}
END_TEST

/* A reset while a TX frame is held: no crash, the old chain is neither sent nor used. */
START_TEST(test_reset_with_tx_held)
{
    struct t t;
    setup_port(&t, true, 0, 8192);
    drive_up(&t, VIRTIO_NET_F_MAC, false);
    uint8_t d[2048];
    const unsigned n = 40;
    for (unsigned i = 0; i < n; i++)
        tx_post(&t, d, mkdgram(d, 1000, i));
    kick(&t, TXQ);
    uint16_t used = vqb_used_idx(&t.tx);
    ck_assert_uint_lt(used, n);
    unsigned sig = t.rec.sig[TXQ];
    reset_device(&t);
    /* Wreck the old chains, as a driver reusing its memory would. */
    memset(gpa_to_host(&t.gm, TXBUF_GPA, STRIDE * n), 0xee, STRIDE * n);
    unsigned got = 0;
    for (int round = 0; round < 5; round++) {
        uint8_t b[2048];
        while (net_read(&t, b, sizeof(b)) > 0) {
            ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), got);
            got++;
        }
        spin(&t);
    }
    ck_assert_uint_eq(got, used);
    ck_assert_uint_eq(vqb_used_idx(&t.tx), used);
    ck_assert_uint_eq(t.rec.sig[TXQ], sig);
    ck_assert_uint_eq(stats(&t).tx_frames, used);
    /* A new driver: fresh rings, frames flow. */
    drive_up(&t, VIRTIO_NET_F_MAC, false);
    uint32_t len = mkdgram(d, 100, 77);
    uint16_t head = tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_dgram(&t, d, len);
    expect_used(&t.tx, 0, head, 0);
    expect_no_dgram(&t);
    teardown(&t);
}
END_TEST

/* A reset while the port holds an RX frame for a device waiting for buffers. */
START_TEST(test_reset_with_rx_waiting)
{
    struct t t;
    setup(&t, VIRTIO_NET_F_MAC);
    uint8_t d[256];
    net_write(&t, d, mkdgram(d, 60, 1));
    net_write(&t, d, mkdgram(d, 60, 2));
    spin(&t);
    reset_device(&t);
    kick(&t, RXQ); /* ignored */
    spin(&t);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF, true);
    rx_post_n(&t, 4, 1536);
    kick(&t, RXQ);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 2);
    for (unsigned i = 0; i < 2; i++) {
        uint32_t ul;
        uint8_t *b = rx_used(&t, (uint16_t)i, &ul);
        ck_assert_uint_eq(ul, NET_HDR_LEN + 60);
        ck_assert_uint_eq(frame_seq(b + NET_HDR_LEN), i + 1);
    }
    teardown(&t);
}
END_TEST

/* ---- a bare-frame port (no vnet header) ---- */

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t s)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

#define UDP_OFF 34 /* Ethernet 14 + IPv4 20 */

/* A UDP/IPv4 frame with payload bytes, its UDP checksum field holding the pseudo-header sum. */
static uint32_t mkudp(uint8_t *f, uint32_t payload, uint8_t seed)
{
    uint32_t len = UDP_OFF + 8 + payload;
    memset(f, 0, len);
    memcpy(f, "\x52\x54\x00\x12\x34\x56\x52\x54\x00\xab\xcd\xef\x08\x00", 14);
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((len - 14) >> 8);
    ip[3] = (uint8_t)(len - 14);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
    uint16_t ipsum = (uint16_t)~fold(sum16(ip, 20, 0));
    ip[10] = (uint8_t)(ipsum >> 8);
    ip[11] = (uint8_t)ipsum;
    uint8_t *udp = f + UDP_OFF;
    uint32_t ulen = 8 + payload;
    udp[0] = 0x30, udp[1] = 0x39, udp[2] = 0x00, udp[3] = 0x35;
    udp[4] = (uint8_t)(ulen >> 8);
    udp[5] = (uint8_t)ulen;
    for (uint32_t i = 0; i < payload; i++)
        udp[8 + i] = (uint8_t)(seed + i * 13);
    /* As Linux leaves it for CHECKSUM_PARTIAL: the folded (not inverted) pseudo-header sum. */
    uint32_t ps = sum16(ip + 12, 8, 0) + 17 + ulen;
    uint16_t p = fold(ps);
    udp[6] = (uint8_t)(p >> 8);
    udp[7] = (uint8_t)p;
    return len;
}

/* The UDP checksum of f validates (and was filled in: not 0). */
static void expect_udp_valid(const uint8_t *f, uint32_t len)
{
    const uint8_t *udp = f + UDP_OFF;
    uint32_t ulen = len - UDP_OFF;
    ck_assert_uint_ne(udp[6] | udp[7], 0);
    uint32_t s = sum16(f + 14 + 12, 8, 0) + 17 + ulen;
    ck_assert_uint_eq(fold(sum16(udp, ulen, s)), 0xffff);
}

START_TEST(test_bare_port_tx_csum)
{
    struct t t;
    setup_port(&t, false, 0, 0);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM, false);
    uint8_t d[2048], f[2048], b[2048];
    /* Odd and even payloads, the header split from the frame or not. */
    const uint32_t payloads[] = {101, 100, 1, 1400};
    for (unsigned i = 0; i < 4; i++) {
        uint32_t flen = mkudp(f, payloads[i], (uint8_t)i);
        mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, UDP_OFF, 6);
        memcpy(d + NET_HDR_LEN, f, flen);
        const uint32_t cuts[] = {5, 7 + 20};
        tx_post_cut(&t, d, NET_HDR_LEN + flen, cuts, i & 1 ? 2 : 0);
        kick(&t, TXQ);
        ck_assert_int_eq(net_read(&t, b, sizeof(b)), (ssize_t)flen);
        expect_udp_valid(b, flen);
        /* Only the checksum field changed. */
        ck_assert_int_eq(memcmp(b, f, UDP_OFF + 6), 0);
        ck_assert_int_eq(memcmp(b + UDP_OFF + 8, f + UDP_OFF + 8, flen - UDP_OFF - 8), 0);
        ck_assert_uint_eq(net_csum_finish(b + 14, 20, 0), 0); /* the IP header still valid */
    }
    /* A payload chosen so that the sum is 0: UDP sends 0xffff (0 would mean "no checksum"). */
    uint32_t flen = mkudp(f, 64, 9);
    f[UDP_OFF + 8] = f[UDP_OFF + 9] = 0;
    uint16_t s = fold(sum16(f + UDP_OFF, flen - UDP_OFF, 0));
    uint16_t x = (uint16_t)(0xffff - s);
    f[UDP_OFF + 8] = (uint8_t)(x >> 8);
    f[UDP_OFF + 9] = (uint8_t)x;
    ck_assert_uint_eq(net_csum_finish(f + UDP_OFF, flen - UDP_OFF, 0), 0);
    mkhdr(d, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, UDP_OFF, 6);
    memcpy(d + NET_HDR_LEN, f, flen);
    tx_post(&t, d, NET_HDR_LEN + flen);
    kick(&t, TXQ);
    ck_assert_int_eq(net_read(&t, b, sizeof(b)), (ssize_t)flen);
    expect_udp_valid(b, flen);
    /* Without NEEDS_CSUM the frame goes out as it is. */
    uint32_t len = mkdgram(d, 300, 3);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    ck_assert_int_eq(net_read(&t, b, sizeof(b)), (ssize_t)(len - NET_HDR_LEN));
    ck_assert_int_eq(memcmp(b, d + NET_HDR_LEN, len - NET_HDR_LEN), 0);
    /* A bare-frame port offers no segmentation. */
    mkhdr(d, 0, VIRTIO_NET_HDR_GSO_TCPV4, 0, 0);
    tx_post(&t, d, len);
    kick(&t, TXQ);
    expect_no_dgram(&t);
    struct virtio_net_stats st = stats(&t);
    ck_assert_uint_eq(st.tx_frames, 6);
    ck_assert_uint_eq(st.tx_dropped, 1);
    teardown(&t);
}
END_TEST

START_TEST(test_bare_port_rx)
{
    struct t t;
    setup_port(&t, false, 0, 0);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_GUEST_CSUM, false);
    rx_post_n(&t, 4, 1536);
    uint8_t f[2048];
    mkframe(f, 60, 1);
    net_write(&t, f, 60);
    net_write(&t, f, NET_FRAME_MIN - 1); /* too short: dropped by the port */
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    uint32_t ul;
    uint8_t *b = rx_used(&t, 0, &ul);
    ck_assert_uint_eq(ul, NET_HDR_LEN + 60);
    ck_assert_uint_eq(b[0], VIRTIO_NET_HDR_F_DATA_VALID);
    ck_assert_uint_eq(b[1], VIRTIO_NET_HDR_GSO_NONE);
    for (unsigned i = 2; i < VIRTIO_NET_HDR_OFF_NUM_BUFFERS; i++)
        ck_assert_uint_eq(b[i], 0);
    ck_assert_uint_eq(hdr_num_buffers(b), 1);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, f, 60), 0);
    ck_assert_uint_eq(stats(&t).rx_dropped, 1);
    /* Without GUEST_CSUM: no DATA_VALID; with MRG_RXBUF: num_buffers still set. */
    reset_device(&t);
    drive_up(&t, VIRTIO_NET_F_MAC | VIRTIO_NET_F_MRG_RXBUF, false);
    rx_post_n(&t, 4, 1536);
    mkframe(f, 1514, 2);
    net_write(&t, f, 1514);
    spin(&t);
    ck_assert_uint_eq(vqb_used_idx(&t.rx), 1);
    b = rx_used(&t, 0, &ul);
    ck_assert_uint_eq(ul, NET_HDR_LEN + 1514);
    ck_assert_uint_eq(b[0], 0);
    ck_assert_uint_eq(hdr_num_buffers(b), 1);
    ck_assert_int_eq(memcmp(b + NET_HDR_LEN, f, 1514), 0);
    teardown(&t);
}
END_TEST

START_TEST(test_csum_helper)
{
    /* RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d. */
    const uint8_t ex[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    ck_assert_uint_eq(net_csum_finish(ex, sizeof(ex), 0), 0x220d);
    ck_assert_uint_eq(net_csum_finish(ex, 3, 0), (uint16_t) ~(0x0001 + 0xf200));
    ck_assert_uint_eq(net_csum_finish(NULL, 0, 0x1fffe), 0);
    ck_assert_uint_eq(net_csum_finish(NULL, 0, 0), 0xffff);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtio_net");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_config_and_features);
    tcase_add_test(tc, test_tx_single);
    tcase_add_test(tc, test_tx_split_and_indirect);
    tcase_add_test(tc, test_tx_signal_rules);
    tcase_add_test(tc, test_tx_budget);
    tcase_add_test(tc, test_rx_single);
    tcase_add_test(tc, test_rx_offload_header);
    tcase_add_test(tc, test_rx_too_small_chain);
    tcase_add_test(tc, test_rx_bad_sizes);
    tcase_add_loop_test(tc, test_rx_mergeable, 0, 2);
    tcase_add_test(tc, test_rx_mergeable_ring_too_small);
    tcase_add_test(tc, test_header_split);
    tcase_add_test(tc, test_header_split_mergeable);
    tcase_add_test(tc, test_rx_readable_buffer);
    tcase_add_test(tc, test_rx_mergeable_short_buffer);
    tcase_add_test(tc, test_rx_outside_ram);
    tcase_add_test(tc, test_tx_outside_ram);
    tcase_add_test(tc, test_tx_dropped);
    tcase_add_test(tc, test_tx_offload_checks);
    tcase_add_loop_test(tc, test_rx_backpressure, 0, 2);
    tcase_add_loop_test(tc, test_tx_backpressure, 0, 2);
    tcase_add_test(tc, test_reset_with_tx_held);
    tcase_add_test(tc, test_reset_with_rx_waiting);
    tcase_add_test(tc, test_bare_port_tx_csum);
    tcase_add_test(tc, test_bare_port_rx);
    tcase_add_test(tc, test_csum_helper);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
