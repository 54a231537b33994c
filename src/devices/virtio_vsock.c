/* virtio_vsock.c: virtio-vsock: guest stream sockets to host unix sockets (Firecracker-style). */
#include "devices/virtio_vsock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "state.h"
#include "virtio/virtio_attach.h"

#define CMD_MAX 32      /* longest "CONNECT <port>" line a host program may send */
#define RST_RING 256    /* resets waiting for receive buffers; more are dropped */
#define RX_BURST 16     /* reads from one host socket per wakeup: connections take turns */
#define RX_CHUNK 65536  /* most payload in one packet to the guest */
#define ACCEPT_BURST 16 /* host connections accepted per wakeup */
#define SWEEP_MS 1000   /* how often connections that wait too long are looked for */
/* Longest socket path: PATH_4294967295 must fit sun_path (108 bytes with its NUL). */
#define PATH_MAX_LEN (108 - sizeof("_4294967295") + 1)

/*
 * A connection's life: CMD (a host program connected; reading its CONNECT line), CONNECTING
 * (REQUEST sent or to send; awaiting the guest's RESPONSE), OPEN, CLOSING (its poll handle is
 * closing; the slot is free again once it has).
 */
enum conn_state { CONN_FREE, CONN_CMD, CONN_CONNECTING, CONN_OPEN, CONN_CLOSING };

/* Control packets a connection owes the guest, sent as receive buffers allow. */
enum { PEND_REQUEST = 1, PEND_RESPONSE = 2, PEND_CREDIT = 4, PEND_SHUTDOWN = 8 };

struct vconn {
    struct virtio_vsock *v;
    enum conn_state state;
    int fd;
    uv_poll_t poll;
    int poll_events;
    uint32_t host_port, guest_port;
    char cmd[CMD_MAX];
    unsigned cmd_len;
    unsigned pend;
    uint64_t deadline; /* CMD, CONNECTING: closed at this loop time (ms) unless open by then */
    /* Host -> guest: the guest's buffer and how much of it kiln has filled (credit). */
    uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
    /* Guest -> host: bytes written to the host socket, and the count the guest was last told. */
    uint32_t fwd_cnt, told_fwd_cnt;
    uint8_t *buf; /* VSOCK_CONN_BUF ring of guest bytes the host socket has not taken yet */
    uint32_t buf_off, buf_len;
    bool host_eof;      /* the host program sends no more (read gave 0) */
    bool guest_no_send; /* SHUTDOWN with SEND from the guest */
    bool guest_no_rcv;  /* SHUTDOWN with RCV from the guest */
    bool wr_shut;       /* the host socket's write side is shut */
};

struct rst {
    uint32_t host_port, guest_port;
};

struct virtio_vsock {
    struct virtio_device vd;
    uv_loop_t *loop;
    uint8_t config[VSOCK_CONFIG_LEN]; /* immutable after creation */
    uint64_t cid;
    char path[PATH_MAX_LEN]; /* with its NUL */
    const char *unlink_path; /* removed at destroy; NULL: nothing to remove */
    int listen_fd;
    uv_poll_t listen_poll;
    bool listen_open, listen_polling;
    uv_timer_t sweep; /* closes connections that wait too long for a line or the guest */
    bool sweep_open;
    uint64_t connect_timeout_ms;
    bool running;    /* activated, no reset or driver error since (loop thread) */
    bool rx_wait;    /* no receive buffers: waiting for a kick on the receive queue */
    bool rx_pushed;  /* receive buffers used since the last signal */
    bool bad_logged; /* a malformed packet was logged (once per device) */
    bool full_logged;
    bool evt_reset;  /* a TRANSPORT_RESET event is owed the driver (since a restore) */
    unsigned nconns; /* slots not FREE */
    uint32_t next_port;
    unsigned rr; /* the connection the next receive pass starts at */
    struct rst rsts[RST_RING];
    unsigned rst_head, rst_count;
    struct virtq_chain chain, tx_chain; /* scratch: receive, transmit */
    struct iovec iov[VIRTQ_CHAIN_MAX];
    struct vconn conns[VSOCK_MAX_CONNS];
};

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_LEN])
{
    le_put(out, 8, h->src_cid);
    le_put(out + 8, 8, h->dst_cid);
    le_put(out + 16, 4, h->src_port);
    le_put(out + 20, 4, h->dst_port);
    le_put(out + 24, 4, h->len);
    le_put(out + 28, 2, h->type);
    le_put(out + 30, 2, h->op);
    le_put(out + 32, 4, h->flags);
    le_put(out + 36, 4, h->buf_alloc);
    le_put(out + 40, 4, h->fwd_cnt);
}

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_LEN], struct vsock_hdr *h)
{
    *h = (struct vsock_hdr){.src_cid = le_get(in, 8),
                            .dst_cid = le_get(in + 8, 8),
                            .src_port = (uint32_t)le_get(in + 16, 4),
                            .dst_port = (uint32_t)le_get(in + 20, 4),
                            .len = (uint32_t)le_get(in + 24, 4),
                            .type = (uint16_t)le_get(in + 28, 2),
                            .op = (uint16_t)le_get(in + 30, 2),
                            .flags = (uint32_t)le_get(in + 32, 4),
                            .buf_alloc = (uint32_t)le_get(in + 36, 4),
                            .fwd_cnt = (uint32_t)le_get(in + 40, 4)};
}

static struct virtq *queue(struct virtio_vsock *v, unsigned q)
{
    return &v->vd.queues[q].vq;
}

static void driver_error(struct virtio_vsock *v, unsigned q, int err)
{
    v->running = false;
    virtio_device_error(&v->vd, q, err);
}

/* A malformed packet: logged once per device (a hostile guest could flood the log). */
static void bad_packet(struct virtio_vsock *v, const char *why)
{
    if (!v->bad_logged)
        klog(v->vd.log, KILN_LOG_WARN, "virtio-vsock: dropped a bad packet: %s (logged once)", why);
    v->bad_logged = true;
}

/* Room the guest has for more bytes of this connection. */
static uint32_t peer_credit(const struct vconn *c)
{
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
    return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void conn_poll_cb(uv_poll_t *h, int status, int events);

/* Poll the host socket for what the connection can use now. */
static void conn_update_poll(struct vconn *c)
{
    struct virtio_vsock *v = c->v;
    if (c->state != CONN_CMD && c->state != CONN_CONNECTING && c->state != CONN_OPEN)
        return;
    int ev = 0;
    if (v->running && c->state == CONN_CMD)
        ev |= UV_READABLE;
    if (v->running && c->state == CONN_OPEN && !c->host_eof && !c->guest_no_rcv && !v->rx_wait &&
        peer_credit(c) > 0)
        ev |= UV_READABLE;
    if (v->running && c->state == CONN_OPEN && c->buf_len)
        ev |= UV_WRITABLE;
    if (ev == c->poll_events)
        return;
    c->poll_events = ev;
    if (ev)
        uv_poll_start(&c->poll, ev, conn_poll_cb);
    else
        uv_poll_stop(&c->poll);
}

static void update_all_polls(struct virtio_vsock *v)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        conn_update_poll(&v->conns[i]);
}

/* ---- Connection slots. */

static void conn_closed(uv_handle_t *h)
{
    struct vconn *c = h->data;
    close(c->fd);
    c->fd = -1;
    c->state = CONN_FREE;
    c->v->nconns--;
}

/* Forget a connection and close its host socket (the slot is free once the handle has closed). */
static void conn_close(struct vconn *c)
{
    if (c->state == CONN_FREE || c->state == CONN_CLOSING)
        return;
    free(c->buf);
    c->buf = NULL;
    c->buf_len = 0;
    c->pend = 0;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->poll, conn_closed);
}

static void queue_rst(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    if (v->rst_count == RST_RING) {
        if (!v->full_logged)
            klog(v->vd.log, KILN_LOG_WARN,
                 "virtio-vsock: too many resets waiting; dropping "
                 "(logged once)");
        v->full_logged = true;
        return;
    }
    v->rsts[(v->rst_head + v->rst_count++) % RST_RING] = (struct rst){host_port, guest_port};
}

/* Close a connection the guest knows of, telling it with a RST. */
static void conn_reset(struct vconn *c)
{
    bool known =
        c->state == CONN_OPEN || (c->state == CONN_CONNECTING && !(c->pend & PEND_REQUEST));
    if (known)
        queue_rst(c->v, c->host_port, c->guest_port);
    conn_close(c);
}

/* A free slot for host socket fd, polled from now on; NULL (fd closed) if none. */
static struct vconn *conn_new(struct virtio_vsock *v, int fd)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vconn *c = &v->conns[i];
        if (c->state != CONN_FREE)
            continue;
        *c = (struct vconn){.v = v,
                            .state = CONN_CMD,
                            .fd = fd,
                            .deadline = uv_now(v->loop) + v->connect_timeout_ms};
        if (uv_poll_init(v->loop, &c->poll, fd) < 0) {
            *c = (struct vconn){.v = v, .fd = -1};
            break;
        }
        c->poll.data = c;
        v->nconns++;
        return c;
    }
    if (!v->full_logged)
        klog(v->vd.log, KILN_LOG_WARN,
             "virtio-vsock: %d connections open; refusing more (logged once)", VSOCK_MAX_CONNS);
    v->full_logged = true;
    close(fd);
    return NULL;
}

/* The open connection between host_port and guest_port, or NULL. */
static struct vconn *conn_find(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vconn *c = &v->conns[i];
        if ((c->state == CONN_CONNECTING || c->state == CONN_OPEN) && c->host_port == host_port &&
            c->guest_port == guest_port)
            return c;
    }
    return NULL;
}

/* A host port for a new connection to guest_port that no open one uses. */
static uint32_t alloc_port(struct virtio_vsock *v, uint32_t guest_port)
{
    for (;;) {
        uint32_t p = v->next_port++;
        if (v->next_port == UINT32_MAX)
            v->next_port = VSOCK_HOST_PORT_FIRST;
        if (!conn_find(v, p, guest_port))
            return p;
    }
}

/* ---- Device -> guest packets (receive queue). */

/* The index of a chain's first writable buffer (readable ones come first). */
static unsigned first_writable(const struct virtq_chain *ch)
{
    unsigned f = ch->count;
    while (f > 0 && ch->buf[f - 1].writable)
        f--;
    return f;
}

/*
 * The next receive chain with room for a header, in v->chain; *first: its first writable
 * buffer. 1 = got one, 0 = none (rx_wait set unless more arrived), -1 = driver error.
 */
static int rx_pop(struct virtio_vsock *v, unsigned *first)
{
    struct virtq *q = queue(v, VSOCK_RXQ);
    for (;;) {
        int ret = virtq_pop(q, &v->chain);
        if (ret < 0) {
            driver_error(v, VSOCK_RXQ, ret);
            return -1;
        }
        if (ret == 0) {
            v->rx_wait = !virtq_enable_notify_and_check(q);
            if (v->rx_wait)
                return 0;
            continue;
        }
        const struct virtq_chain *ch = &v->chain;
        if (ch->writable_len < VSOCK_HDR_LEN) {
            bad_packet(v, "a receive buffer smaller than a header");
            virtq_push(q, ch->head, 0);
            v->rx_pushed = true;
            continue;
        }
        *first = first_writable(ch);
        return 1;
    }
}

/* Header of a packet from host_port to guest_port (credit fields: c's, or 0 without c). */
static struct vsock_hdr hdr_to_guest(struct virtio_vsock *v, struct vconn *c, uint32_t host_port,
                                     uint32_t guest_port, uint16_t op)
{
    struct vsock_hdr h = {.src_cid = VSOCK_HOST_CID,
                          .dst_cid = v->cid,
                          .src_port = host_port,
                          .dst_port = guest_port,
                          .type = VSOCK_TYPE_STREAM,
                          .op = op};
    if (c) {
        h.buf_alloc = VSOCK_CONN_BUF;
        h.fwd_cnt = c->fwd_cnt;
        c->told_fwd_cnt = c->fwd_cnt;
    }
    return h;
}

/* Finish the chain rx_pop took: the header, then len payload bytes already in place. */
static void rx_push(struct virtio_vsock *v, unsigned first, const struct vsock_hdr *h)
{
    uint8_t raw[VSOCK_HDR_LEN];
    vsock_hdr_encode(h, raw);
    const struct virtq_chain *ch = &v->chain;
    virtq_bufs_write(ch->buf + first, ch->count - first, 0, raw, sizeof(raw));
    virtq_push(queue(v, VSOCK_RXQ), ch->head, VSOCK_HDR_LEN + h->len);
    v->rx_pushed = true;
}

/* One control packet of c's (the lowest pending bit). False: no receive buffer for it. */
static bool conn_send_ctrl(struct vconn *c)
{
    struct virtio_vsock *v = c->v;
    unsigned first;
    if (rx_pop(v, &first) <= 0)
        return false;
    unsigned bit = c->pend & -c->pend;
    c->pend &= ~bit;
    uint16_t op = bit == PEND_REQUEST    ? VSOCK_OP_REQUEST
                  : bit == PEND_RESPONSE ? VSOCK_OP_RESPONSE
                  : bit == PEND_CREDIT   ? VSOCK_OP_CREDIT_UPDATE
                                         : VSOCK_OP_SHUTDOWN;
    struct vsock_hdr h = hdr_to_guest(v, c, c->host_port, c->guest_port, op);
    if (op == VSOCK_OP_SHUTDOWN)
        h.flags = VSOCK_SHUTDOWN_SEND;
    rx_push(v, first, &h);
    return true;
}

/* Send every pending control packet the receive buffers allow; then interrupt the driver. */
static void rx_flush(struct virtio_vsock *v)
{
    unsigned first;
    while (v->running && !v->rx_wait && v->rst_count && rx_pop(v, &first) > 0) {
        const struct rst *r = &v->rsts[v->rst_head];
        struct vsock_hdr h = hdr_to_guest(v, NULL, r->host_port, r->guest_port, VSOCK_OP_RST);
        rx_push(v, first, &h);
        v->rst_head = (v->rst_head + 1) % RST_RING;
        v->rst_count--;
    }
    for (unsigned i = 0; i < VSOCK_MAX_CONNS && v->running && !v->rx_wait; i++) {
        struct vconn *c = &v->conns[(v->rr + i) % VSOCK_MAX_CONNS];
        while (c->pend && v->running && !v->rx_wait && conn_send_ctrl(c))
            ;
    }
    v->rr = (v->rr + 1) % VSOCK_MAX_CONNS;
    if (v->rx_pushed)
        virtio_queue_signal(&v->vd, VSOCK_RXQ);
    v->rx_pushed = false;
    if (v->rx_wait)
        update_all_polls(v);
}

/* ---- Connection endings and credit. */

/* Tell the guest about freed buffer space once a quarter of it has been freed since last time. */
static void maybe_credit(struct vconn *c)
{
    if (c->fwd_cnt - c->told_fwd_cnt >= VSOCK_CONN_BUF / 4)
        c->pend |= PEND_CREDIT;
}

/* Pass on the guest's half-closes once its bytes are out; close when both ways are done. */
static void maybe_finish(struct vconn *c)
{
    if (c->state != CONN_OPEN || c->buf_len)
        return;
    if (c->guest_no_send && !c->wr_shut) {
        shutdown(c->fd, SHUT_WR);
        c->wr_shut = true;
    }
    if (c->guest_no_send && (c->guest_no_rcv || c->host_eof))
        conn_reset(c);
}

/* ---- Guest -> host bytes. */

/* Write what the ring holds to the host socket. False: the connection was reset. */
static bool conn_flush(struct vconn *c)
{
    while (c->buf_len) {
        uint32_t end = c->buf_off + c->buf_len;
        struct iovec iov[2] = {{c->buf + c->buf_off, c->buf_len}, {c->buf, 0}};
        if (end > VSOCK_CONN_BUF) {
            iov[0].iov_len = VSOCK_CONN_BUF - c->buf_off;
            iov[1].iov_len = end - VSOCK_CONN_BUF;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            conn_reset(c);
            return false;
        }
        c->buf_off = (c->buf_off + (uint32_t)w) % VSOCK_CONN_BUF;
        c->buf_len -= (uint32_t)w;
        c->fwd_cnt += (uint32_t)w;
    }
    if (!c->buf_len) {
        free(c->buf); /* an idle connection holds no buffer */
        c->buf = NULL;
        c->buf_off = 0;
    }
    maybe_credit(c);
    maybe_finish(c);
    return true;
}

/* len payload bytes of an RW packet in ch: straight to the host socket, the rest into the ring. */
static void conn_take(struct vconn *c, const struct virtq_chain *ch, uint32_t len)
{
    struct virtio_vsock *v = c->v;
    if (len > VSOCK_CONN_BUF - c->buf_len) {
        bad_packet(v, "the guest sent beyond the credit kiln gave");
        conn_reset(c);
        return;
    }
    uint32_t done = 0;
    while (!c->buf_len && done < len) {
        unsigned n = virtq_bufs_iov(ch->buf, ch->count, VSOCK_HDR_LEN + done, len - done, v->iov);
        struct msghdr mh = {.msg_iov = v->iov, .msg_iovlen = n};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w <= 0) {
            conn_reset(c);
            return;
        }
        done += (uint32_t)w;
        c->fwd_cnt += (uint32_t)w;
    }
    if (done < len && !c->buf && !(c->buf = malloc(VSOCK_CONN_BUF))) {
        klog(v->vd.log, KILN_LOG_WARN, "virtio-vsock: out of memory; resetting a connection");
        conn_reset(c);
        return;
    }
    while (done < len) { /* at most twice: up to the ring's end, then from its start */
        uint32_t at = (c->buf_off + c->buf_len) % VSOCK_CONN_BUF;
        uint32_t n = len - done < VSOCK_CONN_BUF - at ? len - done : VSOCK_CONN_BUF - at;
        virtq_bufs_read(ch->buf, ch->count, VSOCK_HDR_LEN + done, c->buf + at, n);
        c->buf_len += n;
        done += n;
    }
    maybe_credit(c);
}

/* ---- Host -> guest bytes. */

/* One read from the host socket into the next receive chain. False: stop for now. */
static bool conn_rx_once(struct vconn *c)
{
    struct virtio_vsock *v = c->v;
    uint32_t credit = peer_credit(c);
    unsigned first;
    /* Data never overtakes the RESPONSE that opens the connection for the guest. */
    if (!credit || c->host_eof || c->guest_no_rcv || (c->pend & PEND_RESPONSE) ||
        rx_pop(v, &first) <= 0)
        return false;
    const struct virtq_chain *ch = &v->chain;
    uint32_t room = ch->writable_len - VSOCK_HDR_LEN;
    room = room < credit ? room : credit;
    room = room < RX_CHUNK ? room : RX_CHUNK;
    if (room == 0) { /* a header-only buffer: use it for a credit update */
        struct vsock_hdr h =
            hdr_to_guest(v, c, c->host_port, c->guest_port, VSOCK_OP_CREDIT_UPDATE);
        rx_push(v, first, &h);
        return false;
    }
    unsigned n = virtq_bufs_iov(ch->buf + first, ch->count - first, VSOCK_HDR_LEN, room, v->iov);
    ssize_t r = readv(c->fd, v->iov, (int)n);
    if (r > 0) {
        struct vsock_hdr h = hdr_to_guest(v, c, c->host_port, c->guest_port, VSOCK_OP_RW);
        h.len = (uint32_t)r;
        c->tx_cnt += (uint32_t)r;
        rx_push(v, first, &h);
        return true;
    }
    virtq_unpop(queue(v, VSOCK_RXQ), 1); /* nothing read: the buffers stay the driver's */
    if (r == 0) {
        c->host_eof = true;
        c->pend |= PEND_SHUTDOWN;
        maybe_finish(c);
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_reset(c);
    }
    return false;
}

/* ---- Host-initiated connections: "CONNECT <port>\n", then "OK <hostport>\n". */

/* The port of a "CONNECT <port>" line (an optional \r at its end), or false. */
static bool parse_connect(const char *s, uint32_t *port)
{
    if (strncmp(s, "CONNECT ", 8) != 0)
        return false;
    s += 8;
    uint64_t p = 0;
    const char *d = s;
    for (; *d >= '0' && *d <= '9' && d - s < 10; d++)
        p = p * 10 + (uint64_t)(*d - '0');
    if (d == s || (*d && strcmp(d, "\r") != 0) || p >= UINT32_MAX)
        return false;
    *port = (uint32_t)p;
    return true;
}

/* Read the command line a byte at a time (nothing after it is consumed), then ask the guest. */
static void conn_read_cmd(struct vconn *c)
{
    for (;;) {
        char ch;
        ssize_t r = read(c->fd, &ch, 1);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (r <= 0 || c->cmd_len == CMD_MAX - 1) {
            conn_close(c);
            return;
        }
        if (ch == '\n')
            break;
        c->cmd[c->cmd_len++] = ch;
    }
    c->cmd[c->cmd_len] = '\0';
    uint32_t port;
    if (!parse_connect(c->cmd, &port)) {
        klog(c->v->vd.log, KILN_LOG_INFO, "virtio-vsock: a host program sent '%s', not CONNECT",
             c->cmd);
        conn_close(c);
        return;
    }
    c->guest_port = port;
    c->host_port = alloc_port(c->v, port);
    c->state = CONN_CONNECTING;
    c->pend |= PEND_REQUEST;
    c->deadline = uv_now(c->v->loop) + c->v->connect_timeout_ms;
    conn_update_poll(c);
}

/* The guest accepted: tell the host program, then relay. */
static void host_established(struct vconn *c)
{
    char ok[32];
    int n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
    struct iovec iov = {ok, (size_t)n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    c->state = CONN_OPEN;
    if (sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
        conn_reset(c); /* a fresh socket has room for a line: the program is gone */
}

/*
 * A host program that sends no CONNECT line, or whose guest never answers the REQUEST (no
 * RESPONSE, no RST), is closed after the timeout instead of waiting, and holding a slot, forever.
 */
static void sweep_cb(uv_timer_t *h)
{
    struct virtio_vsock *v = h->data;
    uint64_t now = uv_now(v->loop);
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        struct vconn *c = &v->conns[i];
        if ((c->state == CONN_CMD || c->state == CONN_CONNECTING) && now >= c->deadline) {
            klog(v->vd.log, KILN_LOG_INFO, "virtio-vsock: %s to guest port %u timed out",
                 c->state == CONN_CMD ? "a host program's CONNECT line" : "a connection",
                 c->guest_port);
            conn_reset(c);
        }
    }
    rx_flush(v);
}

static void listen_cb(uv_poll_t *h, int status, int events)
{
    struct virtio_vsock *v = h->data;
    (void)status;
    (void)events;
    for (unsigned i = 0; i < ACCEPT_BURST && v->running; i++) {
        int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        struct vconn *c = conn_new(v, fd);
        if (c)
            conn_update_poll(c);
    }
}

static void listen_update_poll(struct virtio_vsock *v)
{
    if (!v->listen_open || v->running == v->listen_polling)
        return;
    v->listen_polling = v->running;
    if (v->running)
        uv_poll_start(&v->listen_poll, UV_READABLE, listen_cb);
    else
        uv_poll_stop(&v->listen_poll);
}

/* ---- Guest -> device packets (transmit queue). */

/* A guest connection to host port P: the unix socket PATH_P, or a RST. */
static void guest_connect(struct virtio_vsock *v, const struct vsock_hdr *h)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->path, h->dst_port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        klog(v->vd.log, KILN_LOG_DEBUG, "virtio-vsock: guest port %u to %s: %s", h->src_port,
             sa.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        queue_rst(v, h->dst_port, h->src_port);
        return;
    }
    struct vconn *c = conn_new(v, fd);
    if (!c) {
        queue_rst(v, h->dst_port, h->src_port);
        return;
    }
    c->state = CONN_OPEN;
    c->host_port = h->dst_port;
    c->guest_port = h->src_port;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    c->pend |= PEND_RESPONSE;
}

/* Why the header of a packet of readable bytes is refused, or NULL. *reply: answer with RST. */
static const char *hdr_problem(const struct virtio_vsock *v, const struct vsock_hdr *h,
                               uint32_t readable, bool *reply)
{
    *reply = false;
    if (h->src_cid != v->cid)
        return "src_cid is not the guest's";
    if (h->dst_cid != VSOCK_HOST_CID)
        return "dst_cid is not the host's (2)";
    *reply = h->op != VSOCK_OP_RST;
    if (h->len > readable - VSOCK_HDR_LEN)
        return "len beyond the packet's buffers";
    if (h->type != VSOCK_TYPE_STREAM)
        return "type is not STREAM";
    if (h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
        return "unknown op";
    if (h->len && h->op != VSOCK_OP_RW)
        return "payload on a control packet";
    return NULL;
}

/* A packet for an existing connection. */
static void conn_packet(struct vconn *c, const struct vsock_hdr *h, const struct virtq_chain *ch)
{
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    bool open = c->state == CONN_OPEN;
    switch (h->op) {
    case VSOCK_OP_REQUEST: /* a second request for the same ports */
        conn_reset(c);
        break;
    case VSOCK_OP_RESPONSE:
        if (c->state == CONN_CONNECTING && !(c->pend & PEND_REQUEST))
            host_established(c);
        else
            conn_reset(c);
        break;
    case VSOCK_OP_RST:
        conn_close(c);
        break;
    case VSOCK_OP_SHUTDOWN:
        if (!open) {
            conn_reset(c);
            break;
        }
        c->guest_no_rcv |= (h->flags & VSOCK_SHUTDOWN_RCV) != 0;
        c->guest_no_send |= (h->flags & VSOCK_SHUTDOWN_SEND) != 0;
        maybe_finish(c);
        break;
    case VSOCK_OP_RW:
        if (!open || c->guest_no_send) {
            conn_reset(c);
            break;
        }
        conn_take(c, ch, h->len);
        break;
    case VSOCK_OP_CREDIT_REQUEST:
        c->pend |= PEND_CREDIT;
        break;
    default: /* CREDIT_UPDATE: the credit fields were all it carried */
        break;
    }
    conn_update_poll(c);
}

/* A bad packet for these ports: the connection, if there is one, ends; the guest gets a RST. */
static void conn_reset_or_rst(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
    struct vconn *c = conn_find(v, host_port, guest_port);
    if (c)
        conn_reset(c);
    else
        queue_rst(v, host_port, guest_port);
}

static void handle_tx(struct virtio_vsock *v, const struct virtq_chain *ch)
{
    if (ch->readable_len < VSOCK_HDR_LEN) {
        bad_packet(v, "shorter than a header");
        return;
    }
    uint8_t raw[VSOCK_HDR_LEN];
    virtq_bufs_read(ch->buf, ch->count, 0, raw, sizeof(raw));
    struct vsock_hdr h;
    vsock_hdr_decode(raw, &h);
    bool reply;
    const char *why = hdr_problem(v, &h, ch->readable_len, &reply);
    struct vconn *c = why ? NULL : conn_find(v, h.dst_port, h.src_port);
    if (why) {
        bad_packet(v, why);
        if (reply)
            conn_reset_or_rst(v, h.dst_port, h.src_port);
    } else if (c) {
        conn_packet(c, &h, ch);
    } else if (h.op == VSOCK_OP_REQUEST) {
        guest_connect(v, &h);
    } else if (h.op != VSOCK_OP_RST) {
        queue_rst(v, h.dst_port, h.src_port);
    }
}

/* Every packet the driver queued; the answers go out as receive buffers allow. */
static void tx_pump(struct virtio_vsock *v)
{
    struct virtq *q = queue(v, VSOCK_TXQ);
    bool pushed = false;
    while (v->running) {
        int ret = virtq_pop(q, &v->tx_chain);
        if (ret < 0) {
            driver_error(v, VSOCK_TXQ, ret);
            return;
        }
        if (ret == 0)
            break;
        handle_tx(v, &v->tx_chain);
        virtq_push(q, v->tx_chain.head, 0);
        pushed = true;
    }
    if (pushed)
        virtio_queue_signal(&v->vd, VSOCK_TXQ);
    rx_flush(v);
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
    struct vconn *c = h->data;
    struct virtio_vsock *v = c->v;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE; /* an error shows up as the read's or the write's */
    if (c->state == CONN_CMD) {
        conn_read_cmd(c);
    } else if (c->state == CONN_OPEN) {
        if ((events & UV_WRITABLE) && c->buf_len)
            conn_flush(c);
        for (unsigned i = 0; i < RX_BURST && c->state == CONN_OPEN && (events & UV_READABLE) &&
                             v->running && conn_rx_once(c);
             i++)
            ;
        conn_update_poll(c);
    }
    rx_flush(v);
}

/* ---- Device -> guest events (event queue). */

/*
 * The transport reset owed since a restore, into the driver's next event buffer, and the
 * interrupt: the guest drops the connections it had (this process has none of them), and keeps
 * its listening sockets. Without a buffer now, it goes when the driver kicks the event queue.
 */
static void evq_flush(struct virtio_vsock *v)
{
    struct virtq *q = queue(v, VSOCK_EVQ);
    bool pushed = false;
    /* Bounded: a driver that keeps posting short buffers cannot hold the loop (its next kick
     * brings the device back). */
    for (unsigned n = 0; n < 2 * VSOCK_QUEUE_SIZE && v->evt_reset && v->running; n++) {
        int ret = virtq_pop(q, &v->chain);
        if (ret < 0) {
            driver_error(v, VSOCK_EVQ, ret);
            return;
        }
        if (ret == 0 && virtq_enable_notify_and_check(q))
            continue;
        if (ret == 0)
            break;
        const struct virtq_chain *ch = &v->chain;
        if (ch->writable_len < VSOCK_EVENT_LEN) {
            bad_packet(v, "an event buffer smaller than an event");
            virtq_push(q, ch->head, 0);
            pushed = true;
            continue;
        }
        uint8_t ev[VSOCK_EVENT_LEN];
        le_put(ev, VSOCK_EVENT_LEN, VSOCK_EVENT_TRANSPORT_RESET);
        unsigned f = first_writable(ch);
        virtq_bufs_write(ch->buf + f, ch->count - f, 0, ev, sizeof(ev));
        virtq_push(q, ch->head, VSOCK_EVENT_LEN);
        pushed = true;
        v->evt_reset = false;
    }
    if (pushed)
        virtio_queue_signal(&v->vd, VSOCK_EVQ);
}

/* ---- virtio_device_ops ---- */

static int vsock_activate(struct virtio_device *vd)
{
    struct virtio_vsock *v = vd->priv;
    pthread_mutex_lock(&vd->lock);
    bool ready = true;
    for (unsigned q = VSOCK_RXQ; q <= VSOCK_TXQ; q++)
        ready = ready && vd->queues[q].enabled && vd->queues[q].vq.ready;
    pthread_mutex_unlock(&vd->lock);
    v->running = ready;
    v->rx_wait = false;
    evq_flush(v); /* before any host connection: a reset after a new one would drop it too */
    listen_update_poll(v);
    if (ready)
        tx_pump(v);
    return 0;
}

/* The driver reset the device: every connection ends (the guest's sockets are gone with it). */
static int vsock_reset(struct device *d)
{
    struct virtio_vsock *v = virtio_device_of(d)->priv;
    v->running = false;
    v->rx_wait = false;
    v->rst_count = 0;
    v->evt_reset = false; /* a driver starting over has no connections to drop */
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        conn_close(&v->conns[i]);
    listen_update_poll(v);
    return 0; /* every request is handled synchronously: nothing in flight */
}

static void vsock_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct virtio_vsock *v = vd->priv;
    if (!v->running)
        return;
    if (q == VSOCK_TXQ) {
        tx_pump(v);
    } else if (q == VSOCK_RXQ && v->rx_wait) {
        v->rx_wait = false;
        virtq_set_notify(queue(v, q), false);
        rx_flush(v);
        update_all_polls(v);
    } else if (q == VSOCK_EVQ) {
        evq_flush(v);
    }
}

/*
 * Snapshot (loop thread): the guest's CID and the next host port to hand out. Connections are
 * not saved, as in Firecracker: their host sockets belong to this process. Every packet is
 * handled as it arrives, so nothing is ever in flight.
 */
static int vsock_save(const struct device *d, struct device_state *st)
{
    const struct virtio_vsock *v = virtio_device_of((struct device *)d)->priv;
    state_put_u64(st, v->cid);
    state_put_u32(st, v->next_port);
    return 0;
}

/*
 * Restore into a device made from the same configuration, before it starts. It has no
 * connections; a driver that was running gets a transport reset once its queues are live again
 * (new host ports go on from the saved one, so none matches a connection the guest has not
 * dropped yet).
 */
static int vsock_restore(struct device *d, struct device_state *st)
{
    struct virtio_device *vd = virtio_device_of(d);
    struct virtio_vsock *v = vd->priv;
    uint64_t cid = state_get_u64(st);
    uint32_t next_port = state_get_u32(st);
    if (st->err || next_port < VSOCK_HOST_PORT_FIRST || next_port == UINT32_MAX)
        return -EINVAL;
    if (cid != v->cid) {
        klog(vd->log, KILN_LOG_WARN, "virtio-vsock: the snapshot's guest CID is %llu, not %llu",
             (unsigned long long)cid, (unsigned long long)v->cid);
        return -EINVAL;
    }
    v->next_port = next_port;
    v->evt_reset = (vd->status & VIRTIO_STATUS_DRIVER_OK) != 0;
    return 0;
}

static int vsock_start(struct device *d, uv_loop_t *loop)
{
    (void)loop; /* the device's own: the loop it was created on */
    return virtio_vsock_start(virtio_device_of(d)->priv);
}

static void vsock_stop(struct device *d)
{
    virtio_vsock_stop(virtio_device_of(d)->priv);
}

static void vsock_destroy(struct device *d)
{
    virtio_vsock_destroy(virtio_device_of(d)->priv);
}

static const struct virtio_device_ops vsock_ops = {
    .dev =
        {
            .read = virtio_config_read_bytes,
            .write = virtio_config_write_ignored, /* guest_cid is read-only */
            .reset = vsock_reset,
            .save = vsock_save,
            .restore = vsock_restore,
            .start = vsock_start,
            .stop = vsock_stop,
            .destroy = vsock_destroy,
        },
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .config_len = VSOCK_CONFIG_LEN,
    .activate = vsock_activate,
    .queue_notify = vsock_queue_notify,
};

/* ---- Creation ---- */

int virtio_vsock_listen(const char *path, int *fd, char *errmsg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) + sizeof("_4294967295") > sizeof(sa.sun_path))
        return kiln_fail(errmsg, ENAMETOOLONG, "vsock: socket path %s: longer than %zu bytes", path,
                         sizeof(sa.sun_path) - sizeof("_4294967295"));
    memcpy(sa.sun_path, path, strlen(path));
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return kiln_fail(errmsg, EEXIST, "vsock: %s exists and is not a socket", path);
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return kiln_fail(errmsg, errno, "vsock: socket: %s", strerror(errno));
    /* A socket left by an earlier run is replaced; one something listens on is refused. */
    if (connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN) {
        close(*fd);
        return kiln_fail(errmsg, EADDRINUSE, "vsock: %s: something listens there already", path);
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        int err = errno;
        close(*fd);
        return kiln_fail(errmsg, err, "vsock: %s: %s", path, strerror(err));
    }
    if (bind(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(*fd, 128) < 0) {
        int err = errno;
        close(*fd);
        return kiln_fail(errmsg, err, "vsock: %s: %s", path, strerror(err));
    }
    return 0;
}

int virtio_vsock_create(uint64_t cid, const char *path, int listen_fd, const char *unlink_path,
                        uv_loop_t *loop, const struct guest_mem *mem, const struct kiln_log *log,
                        struct virtio_vsock **out, char *errmsg)
{
    struct virtio_vsock *v = strlen(path) < PATH_MAX_LEN ? calloc(1, sizeof(*v)) : NULL;
    if (!v) {
        if (listen_fd >= 0)
            close(listen_fd);
        return kiln_fail(errmsg, ENOMEM, "virtio-vsock: out of memory");
    }
    v->loop = loop;
    v->cid = cid;
    snprintf(v->path, sizeof(v->path), "%s", path);
    v->unlink_path = unlink_path;
    v->listen_fd = listen_fd;
    v->next_port = VSOCK_HOST_PORT_FIRST;
    v->connect_timeout_ms = VSOCK_CONNECT_TIMEOUT_MS;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        v->conns[i] = (struct vconn){.v = v, .fd = -1};
    le_put(v->config, 8, cid);
    virtio_device_init(&v->vd, &vsock_ops, v, VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC, VSOCK_NQ,
                       VSOCK_QUEUE_SIZE, mem, log);
    v->vd.config = v->config;
    *out = v;
    return 0;
}

struct virtio_device *virtio_vsock_device(struct virtio_vsock *v)
{
    return &v->vd;
}

unsigned virtio_vsock_conns(const struct virtio_vsock *v)
{
    unsigned n = 0;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        n += v->conns[i].state != CONN_FREE && v->conns[i].state != CONN_CLOSING;
    return n;
}

void virtio_vsock_set_connect_timeout(struct virtio_vsock *v, uint64_t ms)
{
    v->connect_timeout_ms = ms;
}

int virtio_vsock_start(struct virtio_vsock *v)
{
    int ret = uv_timer_init(v->loop, &v->sweep);
    if (ret < 0)
        return ret;
    v->sweep_open = true;
    v->sweep.data = v;
    uint64_t every = v->connect_timeout_ms < SWEEP_MS ? v->connect_timeout_ms : SWEEP_MS;
    ret = uv_timer_start(&v->sweep, sweep_cb, every, every ? every : 1);
    if (ret < 0 || v->listen_fd < 0)
        return ret;
    ret = uv_poll_init(v->loop, &v->listen_poll, v->listen_fd);
    if (ret < 0)
        return ret;
    v->listen_open = true;
    v->listen_poll.data = v;
    listen_update_poll(v);
    return 0;
}

void virtio_vsock_stop(struct virtio_vsock *v)
{
    v->running = false;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
        conn_close(&v->conns[i]);
    if (v->listen_open)
        uv_close((uv_handle_t *)&v->listen_poll, NULL);
    v->listen_open = false;
    if (v->sweep_open)
        uv_close((uv_handle_t *)&v->sweep, NULL);
    v->sweep_open = false;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
    if (!v)
        return;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
        free(v->conns[i].buf);
        if (v->conns[i].fd >= 0)
            close(v->conns[i].fd); /* never polled: stop closes the rest */
    }
    if (v->listen_fd >= 0)
        close(v->listen_fd);
    if (v->unlink_path)
        unlink(v->unlink_path); /* this very pointer: the loop's seccomp filter checks it */
    virtio_device_destroy(&v->vd);
    free(v);
}

/* ---- The device class: one virtio-vsock when --vsock is given. */

static unsigned vsock_count(const struct kiln_config *cfg)
{
    return cfg->vsock.uds_path ? 1 : 0;
}

static int vsock_check(const struct kiln_config *cfg, char *errmsg)
{
    const struct kiln_vsock *vs = &cfg->vsock;
    if (!vs->uds_path)
        return 0;
    if (vs->cid < 3 || vs->cid >= 0xffffffffULL)
        return kiln_fail(errmsg, EINVAL, "vsock: cid %llu: must be 3 to 4294967294",
                         (unsigned long long)vs->cid);
    if (!vs->uds_path[0])
        return kiln_fail(errmsg, EINVAL, "vsock: empty socket path");
    return 0;
}

/* The listening socket is made here, before /dev/kvm. */
static int vsock_prepare(const struct device_env *env, unsigned index, void **prepared,
                         char *errmsg)
{
    (void)index;
    const struct kiln_vsock *vs = &env->cfg->vsock;
    int fd;
    int ret = virtio_vsock_listen(vs->uds_path, &fd, errmsg);
    if (ret < 0)
        return ret;
    struct virtio_vsock *v;
    ret = virtio_vsock_create(vs->cid, vs->uds_path, fd, vs->uds_path, env->loop, env->mem,
                              env->log, &v, errmsg);
    if (ret == 0)
        *prepared = v;
    else
        unlink(vs->uds_path);
    return ret;
}

static void vsock_discard(void *prepared)
{
    virtio_vsock_destroy(prepared);
}

static int vsock_attach(const struct device_env *env, unsigned index, void *prepared,
                        struct device **out, char *errmsg)
{
    (void)index;
    struct virtio_vsock *v = prepared;
    int ret = virtio_attach(env->virtio, &v->vd, out);
    if (ret < 0)
        kiln_fail(errmsg, -ret, "virtio-vsock: %s: %s", virtio_transport_name(env->virtio),
                  strerror(-ret));
    return ret;
}

const struct device_class virtio_vsock_class = {.name = "virtio-vsock",
                                                .count = vsock_count,
                                                .check = vsock_check,
                                                .prepare = vsock_prepare,
                                                .discard = vsock_discard,
                                                .create = vsock_attach,
                                                .virtio = true};
