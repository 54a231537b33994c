/* test_net_user.c: the libslirp port, driven by hand-made guest frames and a recording peer. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/net_user.h"

#define MAX_FRAMES 1024
#define GUEST_PORT 8022

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

/* The device side: records what it takes; `full` or an exhausted budget mean no RX buffers. */
struct rec {
    struct net_port_peer peer;
    uint8_t *frames[MAX_FRAMES];
    size_t lens[MAX_FRAMES];
    unsigned n;
    bool full;
    int budget; /* < 0: unlimited */
    unsigned refused;
    unsigned dones;
    bool keep;          /* false: count and check order only, do not store */
    unsigned next_seq;  /* with !keep: the ARP reply sequence number expected next */
    unsigned out_order; /* with !keep: replies that arrived out of order */
};

struct harness {
    uv_loop_t loop;
    uv_timer_t tick;
    struct kiln_log log;
    struct net_port *port;
    struct rec rec;
    char err[KILN_ERRMSG_MAX];
};

static unsigned arp_seq(const uint8_t *f);

static int rec_receive(void *dev, const uint8_t *frame, size_t len)
{
    struct rec *r = dev;
    if (r->full || r->budget == 0) {
        r->refused++;
        return -EAGAIN;
    }
    if (r->budget > 0)
        r->budget--;
    if (!r->keep) {
        if (arp_seq(frame) != r->next_seq)
            r->out_order++;
        r->next_seq++;
        r->n++;
        return 0;
    }
    ck_assert_uint_lt(r->n, MAX_FRAMES);
    r->frames[r->n] = malloc(len);
    memcpy(r->frames[r->n], frame, len);
    r->lens[r->n++] = len;
    return 0;
}

static void rec_done(void *dev)
{
    ((struct rec *)dev)->dones++;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void setup_log(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    h->log.level = KILN_LOG_ERROR;
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
}

static void start(struct harness *h, const struct kiln_net *cfg)
{
    int ret = net_user_create(cfg, 0, &h->loop, &h->log, &h->port, h->err);
    ck_assert_msg(ret == 0, "create: %d %s", ret, h->err);
    ck_assert(!h->port->vnet_hdr);
    ck_assert_uint_eq(h->port->offloads, 0);
    ck_assert_int_eq(h->port->ops->set_rx_offloads(h->port, 0), 0);
    h->rec.peer.receive = rec_receive;
    h->rec.peer.receive_done = rec_done;
    h->rec.peer.dev = &h->rec;
    h->rec.budget = -1;
    h->rec.keep = true;
    h->port->peer = &h->rec.peer;
    ck_assert_int_eq(h->port->ops->start(h->port, &h->loop), 0);
    ck_assert_int_eq(uv_timer_init(&h->loop, &h->tick), 0);
    uv_timer_start(&h->tick, tick_cb, 5, 5);
}

static void finish(struct harness *h)
{
    h->port->ops->stop(h->port);
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT); /* the close callbacks */
    h->port->ops->destroy(h->port);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
    for (unsigned i = 0; i < h->rec.n && h->rec.keep; i++)
        free(h->rec.frames[i]);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef bool (*frame_match)(const uint8_t *f, size_t len, const void *arg);

/* Index of the first recorded frame from `from` on that matches, or -1. */
static int find(struct harness *h, unsigned from, frame_match m, const void *arg)
{
    for (unsigned i = from; i < h->rec.n; i++)
        if (m(h->rec.frames[i], h->rec.lens[i], arg))
            return (int)i;
    return -1;
}

/* Run the loop until a matching frame arrives or timeout_ms pass. */
static int run_until(struct harness *h, unsigned from, frame_match m, const void *arg,
                     int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    int i;
    while ((i = find(h, from, m, arg)) < 0 && now_ms() < end)
        uv_run(&h->loop, UV_RUN_ONCE);
    return i;
}

static void run_for(struct harness *h, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        uv_run(&h->loop, UV_RUN_ONCE);
}

static void send_frame(struct harness *h, const uint8_t *f, size_t len)
{
    struct iovec iov = {.iov_base = (void *)f, .iov_len = len};
    ck_assert_int_eq(h->port->ops->send(h->port, &iov, 1), 0);
}

/* ---- frame building ---- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static size_t eth_hdr(uint8_t *f, const uint8_t *dst, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, guest_mac, 6);
    put16(f + 12, type);
    return 14;
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* An ARP frame from the guest's MAC (42 bytes). */
static size_t arp_frame(uint8_t *f, uint16_t op, const char *sip, const char *tip,
                        const uint8_t *tha)
{
    size_t o = eth_hdr(f, op == 1 ? bcast : tha, 0x0806);
    put16(f + o, 1);
    put16(f + o + 2, 0x0800);
    f[o + 4] = 6;
    f[o + 5] = 4;
    put16(f + o + 6, op);
    memcpy(f + o + 8, guest_mac, 6);
    inet_pton(AF_INET, sip, f + o + 14);
    memset(f + o + 18, 0, 6);
    if (tha)
        memcpy(f + o + 18, tha, 6);
    inet_pton(AF_INET, tip, f + o + 24);
    return o + 28;
}

/* DHCPDISCOVER: Ethernet + IPv4 + UDP 68->67 + a full-size BOOTP message. */
static size_t dhcp_discover(uint8_t *f)
{
    const size_t bootp_len = 236 + 312;
    memset(f, 0, 14 + 20 + 8 + bootp_len);
    size_t o = eth_hdr(f, bcast, 0x0800);
    uint8_t *ip = f + o;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(20 + 8 + bootp_len));
    put16(ip + 4, 0x1234);
    ip[8] = 64;
    ip[9] = 17;
    memset(ip + 16, 0xff, 4); /* 0.0.0.0 -> 255.255.255.255 */
    put16(ip + 10, ip_csum(ip, 20));
    uint8_t *udp = ip + 20;
    put16(udp, 68);
    put16(udp + 2, 67);
    put16(udp + 4, (uint16_t)(8 + bootp_len));
    uint8_t *b = udp + 8;
    b[0] = 1; /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    memcpy(b + 4, "\xde\xad\xbe\xef", 4); /* xid */
    memcpy(b + 28, guest_mac, 6);
    memcpy(b + 236, "\x63\x82\x53\x63", 4); /* magic cookie */
    b[240] = 53;                            /* DHCP message type: DISCOVER */
    b[241] = 1;
    b[242] = 1;
    b[243] = 255;
    return 14 + 20 + 8 + bootp_len;
}

static bool is_dhcp_offer(const uint8_t *f, size_t len, const void *arg)
{
    (void)arg;
    if (len < 14 + 20 + 8 + 244 || get16(f + 12) != 0x0800 || f[14 + 9] != 17)
        return false;
    const uint8_t *udp = f + 14 + (f[14] & 0xf) * 4;
    if (get16(udp) != 67 || get16(udp + 2) != 68)
        return false;
    const uint8_t *b = udp + 8, *end = f + len;
    if (b[0] != 2 || memcmp(b + 4, "\xde\xad\xbe\xef", 4) != 0)
        return false;
    for (const uint8_t *o = b + 240; o + 2 <= end && *o != 255; o += o[0] ? 2 + o[1] : 1)
        if (o[0] == 53 && o[1] == 1 && o + 3 <= end)
            return o[2] == 2; /* DHCPOFFER */
    return false;
}

static bool is_arp(const uint8_t *f, size_t len, uint16_t op, const char *sip, const char *tip)
{
    struct in_addr s, t;
    inet_pton(AF_INET, sip, &s);
    inet_pton(AF_INET, tip, &t);
    return len >= 42 && get16(f + 12) == 0x0806 && get16(f + 20) == op &&
           memcmp(f + 28, &s, 4) == 0 && memcmp(f + 38, &t, 4) == 0;
}

static bool is_arp_reply_from_host(const uint8_t *f, size_t len, const void *arg)
{
    (void)arg;
    return is_arp(f, len, 2, "10.0.2.2", "10.0.2.15") && memcmp(f, guest_mac, 6) == 0 &&
           memcmp(f + 32, guest_mac, 6) == 0;
}

static bool is_arp_who_has_guest(const uint8_t *f, size_t len, const void *arg)
{
    (void)arg;
    return is_arp(f, len, 1, "10.0.2.2", "10.0.2.15");
}

/* A TCP SYN (without ACK) from 10.0.2.2 to 10.0.2.15:*port. */
static bool is_syn_to_guest(const uint8_t *f, size_t len, const void *arg)
{
    const uint16_t *port = arg;
    if (len < 14 + 20 + 20 || get16(f + 12) != 0x0800 || f[14 + 9] != 6)
        return false;
    struct in_addr src, dst;
    inet_pton(AF_INET, "10.0.2.2", &src);
    inet_pton(AF_INET, NET_USER_GUEST_ADDR, &dst);
    const uint8_t *ip = f + 14, *tcp = ip + (ip[0] & 0xf) * 4;
    return memcmp(f, guest_mac, 6) == 0 && memcmp(ip + 12, &src, 4) == 0 &&
           memcmp(ip + 16, &dst, 4) == 0 && get16(tcp + 2) == *port && (tcp[13] & 0x12) == 0x02;
}

/* ARP requests for the gateway numbered by their sender address 10.9.hi.lo. */
static size_t arp_numbered(uint8_t *f, unsigned seq)
{
    char sip[32];
    snprintf(sip, sizeof(sip), "10.9.%u.%u", seq >> 8 & 0xff, seq & 0xff);
    return arp_frame(f, 1, sip, "10.0.2.2", NULL);
}

/* The number of the ARP reply to arp_numbered(seq): its target address. */
static unsigned arp_seq(const uint8_t *f)
{
    return (unsigned)f[14 + 26] << 8 | f[14 + 27];
}

static uint16_t free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    return ntohs(a.sin_port);
}

static int connect_local(uint16_t port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    ck_assert_msg(connect(s, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    return s;
}

static struct kiln_net user_cfg(void)
{
    struct kiln_net cfg = {.kind = KILN_NET_USER};
    return cfg;
}

/* ---- tests ---- */

START_TEST(test_dhcp_offer)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    start(&h, &cfg);
    static uint8_t f[1024];
    size_t len = dhcp_discover(f);
    /* In two pieces, as a device may hand it over. */
    struct iovec iov[2] = {{.iov_base = f, .iov_len = 30},
                           {.iov_base = f + 30, .iov_len = len - 30}};
    ck_assert_int_eq(h.port->ops->send(h.port, iov, 2), 0);
    int i = run_until(&h, 0, is_dhcp_offer, NULL, 2000);
    ck_assert_msg(i >= 0, "no DHCPOFFER among %u frames", h.rec.n);
    const uint8_t *yiaddr = h.rec.frames[i] + 14 + 20 + 8 + 16;
    struct in_addr want;
    inet_pton(AF_INET, NET_USER_GUEST_ADDR, &want);
    ck_assert_mem_eq(yiaddr, &want, 4);
    ck_assert_mem_eq(h.rec.frames[i], bcast, 6); /* to the broadcast address */
    ck_assert_uint_ge(h.rec.dones, 1);
    ck_assert_uint_eq(h.port->dropped, 0);
    finish(&h);
}
END_TEST

START_TEST(test_arp_gateway)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    start(&h, &cfg);
    uint8_t f[64];
    size_t len = arp_frame(f, 1, NET_USER_GUEST_ADDR, "10.0.2.2", NULL);
    send_frame(&h, f, len);
    /* Delivered before the loop waits, not from within send. */
    ck_assert_uint_eq(h.rec.n, 0);
    int i = run_until(&h, 0, is_arp_reply_from_host, NULL, 2000);
    ck_assert_msg(i >= 0, "no ARP reply among %u frames", h.rec.n);
    ck_assert_uint_eq(h.rec.dones, 1);
    /* Runts and giants are dropped and counted. */
    send_frame(&h, f, 10);
    ck_assert_uint_eq(h.port->dropped, 1);
    static uint8_t big[NET_FRAME_MAX + 1];
    send_frame(&h, big, sizeof(big));
    ck_assert_uint_eq(h.port->dropped, 2);
    finish(&h);
}
END_TEST

START_TEST(test_hostfwd_connect)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    uint16_t port = free_port(), gport = GUEST_PORT;
    cfg.hostfwd[0] = (struct kiln_hostfwd){.host_port = port, .guest_port = GUEST_PORT};
    cfg.nhostfwd = 1;
    start(&h, &cfg);
    int s = connect_local(port);
    /* slirp does not know the guest's MAC yet: it asks, the guest answers. */
    int i = run_until(&h, 0, is_arp_who_has_guest, NULL, 3000);
    ck_assert_msg(i >= 0, "no ARP request for the guest among %u frames", h.rec.n);
    uint8_t f[64];
    size_t len = arp_frame(f, 2, NET_USER_GUEST_ADDR, "10.0.2.2", h.rec.frames[i] + 6);
    send_frame(&h, f, len);
    i = run_until(&h, 0, is_syn_to_guest, &gport, 3000);
    ck_assert_msg(i >= 0, "no SYN to the guest among %u frames", h.rec.n);
    close(s);
    finish(&h);
}
END_TEST

START_TEST(test_hostfwd_busy)
{
    struct harness h;
    setup_log(&h);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(s, 1), 0);
    socklen_t al = sizeof(a);
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    struct kiln_net cfg = user_cfg();
    cfg.hostfwd[0] = (struct kiln_hostfwd){.host_port = 0, .guest_port = 22};
    cfg.hostfwd[1] = (struct kiln_hostfwd){
        .host_addr = "127.0.0.1", .host_port = ntohs(a.sin_port), .guest_port = 22};
    cfg.nhostfwd = 2;
    int ret = net_user_create(&cfg, 0, &h.loop, &h.log, &h.port, h.err);
    ck_assert_int_eq(ret, -EADDRINUSE);
    ck_assert_ptr_null(h.port);
    char want[64];
    snprintf(want, sizeof(want), "hostfwd tcp:127.0.0.1:%u: cannot listen", ntohs(a.sin_port));
    ck_assert_msg(strstr(h.err, want), "message: %s", h.err);
    ck_assert_msg(strstr(h.err, strerror(EADDRINUSE)), "message: %s", h.err);
    close(s);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

START_TEST(test_hostfwd_bad_address)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    cfg.nhostfwd = 1;
    const struct {
        const char *host, *guest, *needle;
    } cases[] = {
        {"300.1.2.3", NULL, "bad host address \"300.1.2.3\""},
        {"localhost", NULL, "bad host address \"localhost\""},
        {"::1", NULL, "bad host address \"::1\""},
        {NULL, "guest", "bad guest address \"guest\""},
        {"", "192.168.1.5", "guest address 192.168.1.5 is not"},
        {"", "10.0.2.2", "guest address 10.0.2.2 is not"},
    };
    for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        cfg.hostfwd[0] = (struct kiln_hostfwd){
            .host_addr = cases[c].host, .guest_addr = cases[c].guest, .guest_port = 22};
        int ret = net_user_create(&cfg, 0, &h.loop, &h.log, &h.port, h.err);
        ck_assert_int_eq(ret, -EINVAL);
        ck_assert_ptr_null(h.port);
        ck_assert_msg(strstr(h.err, cases[c].needle), "case %u: %s", c, h.err);
        ck_assert_msg(strncmp(h.err, "--net user: hostfwd tcp:", 24) == 0, "%s", h.err);
    }
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

START_TEST(test_backpressure_bound)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    start(&h, &cfg);
    h.rec.keep = false;
    h.rec.full = true;
    uint8_t f[64];
    const unsigned extra = 44;
    for (unsigned i = 0; i < NET_USER_QUEUE_FRAMES + extra; i++)
        send_frame(&h, f, arp_numbered(f, i));
    ck_assert_uint_eq(h.port->dropped, extra);
    run_for(&h, 50); /* the port offers the head, the guest has no room: paused */
    ck_assert_uint_ge(h.rec.refused, 1);
    ck_assert_uint_eq(h.rec.n, 0);
    unsigned refused = h.rec.refused;
    run_for(&h, 50); /* paused: nothing is offered until rx_resume */
    ck_assert_uint_eq(h.rec.refused, refused);
    h.rec.full = false;
    h.port->ops->rx_resume(h.port);
    ck_assert_uint_eq(h.rec.n, NET_USER_QUEUE_FRAMES);
    ck_assert_uint_eq(h.rec.out_order, 0);
    ck_assert_uint_eq(h.rec.dones, 1);
    ck_assert_uint_eq(h.port->dropped, extra);
    finish(&h);
}
END_TEST

/* Partial resumes keep the queue non-empty while its ring wraps around many times. */
START_TEST(test_backpressure_partial)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    start(&h, &cfg);
    h.rec.keep = false;
    h.rec.budget = 0;
    uint8_t f[64];
    unsigned seq = 0;
    send_frame(&h, f, arp_numbered(f, seq++));
    h.port->ops->rx_resume(h.port); /* refused: paused with one frame queued */
    const unsigned rounds = 2 * NET_USER_QUEUE_BYTES / 64 / 128;
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < 128; i++)
            send_frame(&h, f, arp_numbered(f, seq++));
        h.rec.budget = 128;
        unsigned dones = h.rec.dones;
        h.port->ops->rx_resume(h.port);
        ck_assert_uint_eq(h.rec.budget, 0);
        ck_assert_uint_eq(h.rec.dones, dones + 1);
    }
    ck_assert_uint_eq(h.rec.n, rounds * 128);
    ck_assert_uint_eq(h.rec.out_order, 0);
    ck_assert_uint_eq(h.port->dropped, 0);
    h.rec.budget = -1;
    h.port->ops->rx_resume(h.port);
    ck_assert_uint_eq(h.rec.n, seq);
    ck_assert_uint_eq(h.rec.out_order, 0);
    finish(&h);
}
END_TEST

/* While the guest has no buffers slirp reads nothing from the host: here, no accept(). */
START_TEST(test_paused_stops_host_reads)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    uint16_t port = free_port(), gport = GUEST_PORT;
    cfg.hostfwd[0] = (struct kiln_hostfwd){.host_port = port, .guest_port = GUEST_PORT};
    cfg.nhostfwd = 1;
    start(&h, &cfg);
    h.rec.full = true;
    uint8_t f[64];
    send_frame(&h, f, arp_frame(f, 1, NET_USER_GUEST_ADDR, "10.0.2.2", NULL));
    run_for(&h, 20);
    ck_assert_uint_eq(h.rec.refused, 1); /* paused */
    int s = connect_local(port);
    run_for(&h, 300);
    ck_assert_uint_eq(h.rec.refused, 1);
    h.rec.full = false;
    h.port->ops->rx_resume(h.port);
    ck_assert_int_ge(find(&h, 0, is_arp_reply_from_host, NULL), 0);
    /* Its ARP request taught slirp the guest's MAC: the SYN follows at once. */
    ck_assert_int_lt(find(&h, 0, is_syn_to_guest, &gport), 0);
    ck_assert_int_ge(run_until(&h, 0, is_syn_to_guest, &gport, 3000), 0);
    close(s);
    finish(&h);
}
END_TEST

START_TEST(test_destroy_unstarted)
{
    struct harness h;
    setup_log(&h);
    struct kiln_net cfg = user_cfg();
    cfg.restricted = true;
    cfg.hostfwd[0] = (struct kiln_hostfwd){.udp = true, .host_port = 0, .guest_port = 53};
    cfg.nhostfwd = 1;
    ck_assert_int_eq(net_user_create(&cfg, 0, &h.loop, &h.log, &h.port, h.err), 0);
    h.port->ops->destroy(h.port);
    ck_assert_int_eq(uv_loop_close(&h.loop), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("net_user");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dhcp_offer);
    tcase_add_test(tc, test_arp_gateway);
    tcase_add_test(tc, test_hostfwd_connect);
    tcase_add_test(tc, test_hostfwd_busy);
    tcase_add_test(tc, test_hostfwd_bad_address);
    tcase_add_test(tc, test_backpressure_bound);
    tcase_add_test(tc, test_backpressure_partial);
    tcase_add_test(tc, test_paused_stops_host_reads);
    tcase_add_test(tc, test_destroy_unstarted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
