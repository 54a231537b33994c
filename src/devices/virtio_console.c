/* virtio_console.c: virtio-console, multiport: named guest ports to host files and sockets. */
#include "devices/virtio_console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "state.h"
#include "virtio/virtio_attach.h"

/* Control messages waiting for the driver's buffers: 3 per port and a few; more is a flood. */
#define OUTBOX_MAX (4 * KILN_MAX_PORTS + 8)
#define RX_CHUNK 65536 /* most bytes read from a socket into one receive chain */

struct con_msg {
    uint32_t id;
    uint16_t event, value;
};

struct con_port {
    struct virtio_console *c;
    unsigned id; /* 1.. : its queues are VIRTIO_CONSOLE_RXQ(id) and VIRTIO_CONSOLE_TXQ(id) */
    char name[KILN_PORT_NAME_MAX + 1];
    int fd;
    bool socket;
    bool host_open;  /* the host end is there: a file always, a socket until it hangs up */
    bool ready;      /* the driver sent PORT_READY */
    bool guest_open; /* a guest program has the port open (the driver drops input otherwise) */
    bool rx_wait;    /* no receive buffers: waiting for a kick on the receive queue */
    bool tx_held;    /* tx_chain taken and partly written: the socket was full */
    uint32_t tx_done;
    struct virtq_chain tx_chain;
    uv_poll_t poll;
    bool poll_open;
    int poll_events;
};

struct virtio_console {
    struct virtio_device vd;
    uv_loop_t *loop;
    uint8_t config[VIRTIO_CONSOLE_CONFIG_LEN]; /* immutable after creation */
    bool running; /* activated, no reset or driver error since (loop thread) */
    bool flood_logged;
    unsigned nports;
    struct con_port ports[KILN_MAX_PORTS];
    struct con_msg outbox[OUTBOX_MAX];
    unsigned out_head, out_count;
    struct virtq_chain chain; /* scratch for control and receive chains */
    struct iovec iov[VIRTQ_CHAIN_MAX];
};

static struct virtq *queue(struct virtio_console *c, unsigned q)
{
    return &c->vd.queues[q].vq;
}

static void driver_error(struct virtio_console *c, unsigned q, int err)
{
    c->running = false;
    virtio_device_error(&c->vd, q, err);
}

static struct con_port *port_of(struct virtio_console *c, uint32_t id)
{
    return id >= 1 && id <= c->nports ? &c->ports[id - 1] : NULL;
}

static void port_poll_cb(uv_poll_t *h, int status, int events);

/* Poll the socket for what the port can use now: input with buffers to put it in, room for a
 * held write. */
static void port_update_poll(struct con_port *p)
{
    if (!p->poll_open)
        return;
    int ev = 0;
    if (p->c->running && p->host_open && p->ready && p->guest_open && !p->rx_wait)
        ev |= UV_READABLE;
    if (p->c->running && p->host_open && p->tx_held)
        ev |= UV_WRITABLE;
    if (ev == p->poll_events)
        return;
    p->poll_events = ev;
    if (ev)
        uv_poll_start(&p->poll, ev, port_poll_cb);
    else
        uv_poll_stop(&p->poll);
}

/* ---- Control messages to the driver (control receive queue). */

static void ctrl_send(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value)
{
    if (c->out_count == OUTBOX_MAX) {
        if (!c->flood_logged)
            klog(c->vd.log, KILN_LOG_WARN,
                 "virtio-console: driver floods the control queue; "
                 "dropping messages (logged once)");
        c->flood_logged = true;
        return;
    }
    c->outbox[(c->out_head + c->out_count++) % OUTBOX_MAX] = (struct con_msg){id, event, value};
}

/* Put one message (and a port's name after PORT_NAME) into a chain's writable buffers. */
static uint32_t ctrl_fill(struct virtio_console *c, const struct con_msg *m)
{
    uint8_t msg[VIRTIO_CONSOLE_CTRL_LEN + KILN_PORT_NAME_MAX];
    le_put(msg, 4, m->id);
    le_put(msg + 4, 2, m->event);
    le_put(msg + 6, 2, m->value);
    uint32_t len = VIRTIO_CONSOLE_CTRL_LEN;
    const struct con_port *p = port_of(c, m->id);
    if (m->event == VIRTIO_CONSOLE_PORT_NAME && p) {
        memcpy(msg + len, p->name, strlen(p->name));
        len += (uint32_t)strlen(p->name);
    }
    const struct virtq_chain *ch = &c->chain;
    unsigned first = ch->count;
    while (first > 0 && ch->buf[first - 1].writable)
        first--;
    if (len > ch->writable_len)
        len = ch->writable_len; /* a driver that posts tiny buffers gets what fits */
    virtq_bufs_write(ch->buf + first, ch->count - first, 0, msg, len);
    return len;
}

/* Hand queued messages to the driver while it has buffers for them. */
static void ctrl_flush(struct virtio_console *c)
{
    struct virtq *q = queue(c, VIRTIO_CONSOLE_CTRL_RXQ);
    bool pushed = false;
    while (c->running && c->out_count) {
        int ret = virtq_pop(q, &c->chain);
        if (ret < 0) {
            driver_error(c, VIRTIO_CONSOLE_CTRL_RXQ, ret);
            return;
        }
        if (ret == 0) {
            if (virtq_enable_notify_and_check(q))
                continue;
            break;
        }
        virtq_set_notify(q, false);
        virtq_push(q, c->chain.head, ctrl_fill(c, &c->outbox[c->out_head]));
        c->out_head = (c->out_head + 1) % OUTBOX_MAX;
        c->out_count--;
        pushed = true;
    }
    if (pushed)
        virtio_queue_signal(&c->vd, VIRTIO_CONSOLE_CTRL_RXQ);
}

/* ---- Control messages from the driver (control transmit queue). */

static void handle_ctrl(struct virtio_console *c, const struct con_msg *m)
{
    struct con_port *p = port_of(c, m->id);
    switch (m->event) {
    case VIRTIO_CONSOLE_DEVICE_READY:
        for (unsigned i = 0; m->value == 1 && i < c->nports; i++)
            ctrl_send(c, c->ports[i].id, VIRTIO_CONSOLE_DEVICE_ADD, 0);
        break;
    case VIRTIO_CONSOLE_PORT_READY:
        if (!p || m->value != 1 || p->ready)
            break;
        p->ready = true;
        ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_NAME, 1);
        ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_OPEN, p->host_open);
        port_update_poll(p);
        break;
    case VIRTIO_CONSOLE_PORT_OPEN:
        /* Linux throws away input for a port nobody has open: read the host's only while open. */
        if (p) {
            p->guest_open = m->value == 1;
            port_update_poll(p);
        }
        break;
    default:
        break; /* the rest are the device's to send, or need nothing here */
    }
}

static void ctrl_pump(struct virtio_console *c)
{
    struct virtq *q = queue(c, VIRTIO_CONSOLE_CTRL_TXQ);
    bool pushed = false;
    while (c->running) {
        int ret = virtq_pop(q, &c->chain);
        if (ret < 0) {
            driver_error(c, VIRTIO_CONSOLE_CTRL_TXQ, ret);
            return;
        }
        if (ret == 0)
            break;
        uint8_t raw[VIRTIO_CONSOLE_CTRL_LEN];
        if (c->chain.readable_len >= sizeof(raw)) {
            virtq_bufs_read(c->chain.buf, c->chain.count, 0, raw, sizeof(raw));
            const struct con_msg m = {(uint32_t)le_get(raw, 4), (uint16_t)le_get(raw + 4, 2),
                                      (uint16_t)le_get(raw + 6, 2)};
            handle_ctrl(c, &m);
        }
        virtq_push(q, c->chain.head, 0);
        pushed = true;
    }
    if (pushed)
        virtio_queue_signal(&c->vd, VIRTIO_CONSOLE_CTRL_TXQ);
    ctrl_flush(c);
}

/* ---- Port data. */

/* The host end went away: tell the driver, stop polling; what the guest sends is dropped. */
static void port_hangup(struct con_port *p)
{
    if (!p->host_open)
        return;
    p->host_open = false;
    klog(p->c->vd.log, KILN_LOG_INFO, "virtio-console port %s: the host end closed", p->name);
    if (p->ready) {
        ctrl_send(p->c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 0);
        ctrl_flush(p->c);
    }
    port_update_poll(p);
}

/* Write the rest of the held chain: 1 done, 0 the socket is full, -1 the host end is gone. */
static int port_write(struct con_port *p)
{
    const struct virtq_chain *ch = &p->tx_chain;
    while (p->host_open && p->tx_done < ch->readable_len) {
        unsigned n = virtq_bufs_iov(ch->buf, ch->count, p->tx_done, ch->readable_len - p->tx_done,
                                    p->c->iov);
        ssize_t w;
        if (p->socket) {
            /* MSG_NOSIGNAL: a listener that went away must not raise SIGPIPE in the caller's
             * process (libkiln cannot assume the program ignores it). */
            struct msghdr mh = {.msg_iov = p->c->iov, .msg_iovlen = n};
            w = sendmsg(p->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            w = writev(p->fd, p->c->iov, (int)n);
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w <= 0) {
            port_hangup(p);
            return -1;
        }
        p->tx_done += (uint32_t)w;
    }
    return 1;
}

/* Guest -> host: everything the driver queued, until the queue is empty or the socket full. */
static void port_tx(struct con_port *p)
{
    struct virtio_console *c = p->c;
    unsigned qi = VIRTIO_CONSOLE_TXQ(p->id);
    struct virtq *q = queue(c, qi);
    bool pushed = false;
    while (c->running) {
        if (!p->tx_held) {
            int ret = virtq_pop(q, &p->tx_chain);
            if (ret < 0) {
                driver_error(c, qi, ret);
                return;
            }
            if (ret == 0)
                break;
            p->tx_held = true;
            p->tx_done = 0;
        }
        if (port_write(p) == 0)
            break; /* the poll's UV_WRITABLE brings us back */
        p->tx_held = false;
        virtq_push(q, p->tx_chain.head, 0);
        pushed = true;
    }
    if (pushed)
        virtio_queue_signal(&c->vd, qi);
    port_update_poll(p);
}

/* Host -> guest: one read from the socket into the next receive chain. False: stop for now. */
static bool port_rx_once(struct con_port *p)
{
    struct virtio_console *c = p->c;
    unsigned qi = VIRTIO_CONSOLE_RXQ(p->id);
    struct virtq *q = queue(c, qi);
    int ret = virtq_pop(q, &c->chain);
    if (ret < 0) {
        driver_error(c, qi, ret);
        return false;
    }
    if (ret == 0) {
        p->rx_wait = !virtq_enable_notify_and_check(q);
        return !p->rx_wait;
    }
    const struct virtq_chain *ch = &c->chain;
    unsigned first = ch->count;
    while (first > 0 && ch->buf[first - 1].writable)
        first--;
    uint32_t room = ch->writable_len < RX_CHUNK ? ch->writable_len : RX_CHUNK;
    unsigned n = virtq_bufs_iov(ch->buf + first, ch->count - first, 0, room, c->iov);
    ssize_t r = n ? readv(p->fd, c->iov, (int)n) : 0;
    if (r > 0) {
        virtq_push(q, ch->head, (uint32_t)r);
        virtio_queue_signal(&c->vd, qi);
        return true;
    }
    virtq_unpop(q, 1); /* nothing read: the buffers stay the driver's, for the next read */
    if (r == 0 && n)
        port_hangup(p);
    else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        port_hangup(p);
    return false;
}

static void port_poll_cb(uv_poll_t *h, int status, int events)
{
    struct con_port *p = h->data;
    if (status < 0)
        events = UV_READABLE; /* an error shows up as the read's */
    if (events & UV_WRITABLE)
        port_tx(p);
    if (events & UV_READABLE) {
        for (unsigned i = 0; i < 16 && p->c->running && p->host_open && port_rx_once(p); i++)
            ;
    }
    port_update_poll(p);
}

/* ---- virtio_device_ops ---- */

static int con_activate(struct virtio_device *vd)
{
    struct virtio_console *c = vd->priv;
    pthread_mutex_lock(&vd->lock);
    bool ready = true;
    for (unsigned q = VIRTIO_CONSOLE_CTRL_RXQ; q <= VIRTIO_CONSOLE_CTRL_TXQ; q++)
        ready = ready && vd->queues[q].enabled && vd->queues[q].vq.ready;
    pthread_mutex_unlock(&vd->lock);
    c->running = ready; /* without MULTIPORT's control queues there is nothing to serve */
    if (!ready)
        return 0;
    ctrl_pump(c); /* messages queued before DRIVER_OK get no kick of their own */
    /* Ports are ready here only in a restored device: their queued output and input go on. */
    for (unsigned i = 0; i < c->nports && c->running; i++)
        if (c->ports[i].ready)
            port_tx(&c->ports[i]);
    return 0;
}

static int con_reset(struct device *d)
{
    struct virtio_console *c = virtio_device_of(d)->priv;
    c->running = false;
    c->out_count = 0;
    for (unsigned i = 0; i < c->nports; i++) {
        struct con_port *p = &c->ports[i];
        /* A held chain belongs to the old driver. */
        p->ready = p->guest_open = p->rx_wait = p->tx_held = false;
        port_update_poll(p);
    }
    return 0; /* every request is handled synchronously: nothing in flight */
}

static void con_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct virtio_console *c = vd->priv;
    if (!c->running)
        return;
    if (q == VIRTIO_CONSOLE_CTRL_TXQ || q == VIRTIO_CONSOLE_CTRL_RXQ) {
        ctrl_pump(c);
        return;
    }
    struct con_port *p = q >= 4 ? port_of(c, (q - 2) / 2) : NULL;
    if (!p || !p->ready)
        return; /* port 0's queues, or a port the driver has not set up */
    if (q == VIRTIO_CONSOLE_TXQ(p->id) && !p->tx_held) {
        port_tx(p);
    } else if (q == VIRTIO_CONSOLE_RXQ(p->id) && p->rx_wait) {
        p->rx_wait = false;
        virtq_set_notify(queue(c, q), false);
        port_update_poll(p);
    }
}

static int con_start(struct device *d, uv_loop_t *loop)
{
    (void)loop; /* the device's own: the loop it was created on */
    return virtio_console_start(virtio_device_of(d)->priv);
}

static void con_stop(struct device *d)
{
    virtio_console_stop(virtio_device_of(d)->priv);
}

static void con_destroy(struct device *d)
{
    virtio_console_destroy(virtio_device_of(d)->priv);
}

/* ---- Snapshot. */

#define PORT_READY_BIT 1u
#define PORT_GUEST_OPEN_BIT 2u
#define PORT_HOST_OPEN_BIT 4u

/*
 * Snapshot (loop thread): each port's name and what the driver made of it (ready, open in the
 * guest, the host end as the driver was told), then the control messages the driver has not
 * taken yet. A write half done to a full socket answers -EBUSY until the socket takes the
 * rest. Host ends are not saved: the restored VM opens them again from its configuration.
 */
static int con_save(const struct device *d, struct device_state *st)
{
    const struct virtio_console *c = virtio_device_of((struct device *)d)->priv;
    state_put_u32(st, c->nports);
    for (unsigned i = 0; i < c->nports; i++) {
        const struct con_port *p = &c->ports[i];
        if (p->tx_held)
            return -EBUSY;
        state_put(st, p->name, sizeof(p->name));
        state_put_u32(st, (p->ready ? PORT_READY_BIT : 0) |
                              (p->guest_open ? PORT_GUEST_OPEN_BIT : 0) |
                              (p->host_open ? PORT_HOST_OPEN_BIT : 0));
    }
    state_put_u32(st, c->out_count);
    for (unsigned i = 0; i < c->out_count; i++) {
        const struct con_msg *m = &c->outbox[(c->out_head + i) % OUTBOX_MAX];
        state_put_u32(st, m->id);
        state_put_u32(st, (uint32_t)m->event | (uint32_t)m->value << 16);
    }
    return st->err ? -st->err : 0;
}

/* One port's saved name and flags: the same port of this configuration, or -EINVAL. */
static int restore_port(struct con_port *p, struct device_state *st)
{
    char name[sizeof(p->name)];
    state_get(st, name, sizeof(name));
    uint32_t flags = state_get_u32(st);
    if (st->err || name[sizeof(name) - 1] != '\0' || strcmp(name, p->name) != 0 ||
        flags > (PORT_READY_BIT | PORT_GUEST_OPEN_BIT | PORT_HOST_OPEN_BIT))
        return -EINVAL;
    p->ready = flags & PORT_READY_BIT;
    p->guest_open = flags & PORT_GUEST_OPEN_BIT;
    p->rx_wait = p->tx_held = false; /* the rings say again what is waiting */
    /* The host end was opened anew: a driver told it had gone hears it is back. */
    if (p->ready && !(flags & PORT_HOST_OPEN_BIT) && p->host_open)
        return 1;
    return 0;
}

/* A saved control message: only what ctrl_send sends, about a port there is. */
static bool msg_ok(const struct virtio_console *c, const struct con_msg *m)
{
    bool event = m->event == VIRTIO_CONSOLE_DEVICE_ADD || m->event == VIRTIO_CONSOLE_PORT_NAME ||
                 m->event == VIRTIO_CONSOLE_PORT_OPEN;
    return event && m->value <= 1 && m->id >= 1 && m->id <= c->nports;
}

static int con_restore(struct device *d, struct device_state *st)
{
    struct virtio_console *c = virtio_device_of(d)->priv;
    if (state_get_u32(st) != c->nports || st->err)
        return -EINVAL;
    bool reopened[KILN_MAX_PORTS] = {false};
    for (unsigned i = 0; i < c->nports; i++) {
        int ret = restore_port(&c->ports[i], st);
        if (ret < 0)
            return ret;
        reopened[i] = ret == 1;
    }
    uint32_t n = state_get_u32(st);
    if (st->err || n > OUTBOX_MAX)
        return -EINVAL;
    c->out_head = 0;
    c->out_count = n;
    for (unsigned i = 0; i < n; i++) {
        uint32_t id = state_get_u32(st), ev = state_get_u32(st);
        c->outbox[i] = (struct con_msg){id, (uint16_t)ev, (uint16_t)(ev >> 16)};
        if (st->err || !msg_ok(c, &c->outbox[i])) {
            c->out_count = 0;
            return -EINVAL;
        }
    }
    for (unsigned i = 0; i < c->nports; i++)
        if (reopened[i])
            ctrl_send(c, c->ports[i].id, VIRTIO_CONSOLE_PORT_OPEN, 1);
    return 0;
}

static const struct virtio_device_ops con_ops = {
    .dev =
        {
            .read = virtio_config_read_bytes,
            .write = virtio_config_write_ignored, /* emerg_wr is not offered */
            .reset = con_reset,
            .save = con_save,
            .restore = con_restore,
            .start = con_start,
            .stop = con_stop,
            .destroy = con_destroy,
        },
    .name = "virtio-console",
    .device_id = VIRTIO_ID_CONSOLE,
    .config_len = VIRTIO_CONSOLE_CONFIG_LEN,
    .activate = con_activate,
    .queue_notify = con_queue_notify,
};

/* ---- Creation ---- */

int virtio_console_create(const struct virtio_console_port_spec *ports, unsigned n, uv_loop_t *loop,
                          const struct guest_mem *mem, const struct kiln_log *log,
                          struct virtio_console **out, char *errmsg)
{
    struct virtio_console *c = n <= KILN_MAX_PORTS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        for (unsigned i = 0; i < n; i++)
            close(ports[i].fd);
        return kiln_fail(errmsg, n <= KILN_MAX_PORTS ? ENOMEM : EINVAL,
                         "virtio-console: %u ports (at most %d)", n, KILN_MAX_PORTS);
    }
    c->loop = loop;
    c->nports = n;
    for (unsigned i = 0; i < n; i++) {
        struct con_port *p = &c->ports[i];
        *p = (struct con_port){
            .c = c, .id = i + 1, .fd = ports[i].fd, .socket = ports[i].socket, .host_open = true};
        snprintf(p->name, sizeof(p->name), "%s", ports[i].name);
    }
    le_put(c->config + 4, 4, n + 1); /* max_nr_ports: port 0 is there but never added */
    virtio_device_init(&c->vd, &con_ops, c,
                       VIRTIO_CONSOLE_F_MULTIPORT | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC,
                       VIRTIO_CONSOLE_TXQ(n) + 1, VIRTIO_CONSOLE_QUEUE_SIZE, mem, log);
    c->vd.config = c->config;
    *out = c;
    return 0;
}

struct virtio_device *virtio_console_device(struct virtio_console *c)
{
    return &c->vd;
}

int virtio_console_start(struct virtio_console *c)
{
    for (unsigned i = 0; i < c->nports; i++) {
        struct con_port *p = &c->ports[i];
        if (!p->socket)
            continue;
        int ret = uv_poll_init(c->loop, &p->poll, p->fd);
        if (ret < 0)
            return ret;
        p->poll_open = true;
        p->poll.data = p;
        p->poll_events = 0; /* port_update_poll starts it when the port has a use for it */
    }
    return 0;
}

void virtio_console_stop(struct virtio_console *c)
{
    c->running = false;
    for (unsigned i = 0; i < c->nports; i++) {
        struct con_port *p = &c->ports[i];
        if (p->poll_open)
            uv_close((uv_handle_t *)&p->poll, NULL);
        p->poll_open = false;
    }
}

void virtio_console_destroy(struct virtio_console *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nports; i++)
        close(c->ports[i].fd);
    virtio_device_destroy(&c->vd);
    free(c);
}

/* ---- The device class: one virtio-console when there are --port options. */

static unsigned con_count(const struct kiln_config *cfg)
{
    return cfg->nports ? 1 : 0;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > KILN_PORT_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static int con_check(const struct kiln_config *cfg, char *errmsg)
{
    if (cfg->nports > KILN_MAX_PORTS)
        return kiln_fail(errmsg, EINVAL, "%u ports (at most %d)", cfg->nports, KILN_MAX_PORTS);
    for (unsigned i = 0; i < cfg->nports; i++) {
        const struct kiln_port *p = &cfg->ports[i];
        if (!name_ok(p->name))
            return kiln_fail(errmsg, EINVAL,
                             "port '%s': a name is 1-%d letters, digits, '.', '_' or '-'",
                             p->name ? p->name : "", KILN_PORT_NAME_MAX);
        if (!p->path || !p->path[0])
            return kiln_fail(errmsg, EINVAL, "port %s: empty path", p->name);
        if (p->kind != KILN_PORT_FILE && p->kind != KILN_PORT_SOCKET)
            return kiln_fail(errmsg, EINVAL, "port %s: kind %d is not file or socket", p->name,
                             (int)p->kind);
        for (unsigned j = 0; j < i; j++)
            if (strcmp(cfg->ports[j].name, p->name) == 0)
                return kiln_fail(errmsg, EINVAL, "port %s: the name is given twice", p->name);
    }
    return 0;
}

/*
 * A file the guest's bytes are appended to (never truncated: it is the user's), or a character
 * device such as /dev/null. Opened non-blocking so a FIFO cannot hang kiln, then refused: a
 * stream both ways is what socket= is for. Writes then block, as a file's do.
 */
static int open_file(const struct kiln_port *kp, int *fd, char *errmsg)
{
    *fd = open(kp->path, O_WRONLY | O_CREAT | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0644);
    if (*fd < 0)
        return kiln_fail(errmsg, errno, "port %s: %s: %s", kp->name, kp->path, strerror(errno));
    struct stat st;
    const char *bad = fstat(*fd, &st) < 0                          ? strerror(errno)
                      : S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) ? NULL
                                                                   : "not a file or device";
    if (!bad && fcntl(*fd, F_SETFL, O_APPEND) < 0)
        bad = strerror(errno);
    if (bad) {
        close(*fd);
        return kiln_fail(errmsg, EINVAL, "port %s: %s: %s", kp->name, kp->path, bad);
    }
    return 0;
}

/* A connection to a unix socket something on the host listens on. */
static int open_socket(const struct kiln_port *kp, int *fd, char *errmsg)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(kp->path) >= sizeof(sa.sun_path))
        return kiln_fail(errmsg, ENAMETOOLONG, "port %s: socket path %s: longer than %zu bytes",
                         kp->name, kp->path, sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, kp->path, strlen(kp->path));
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return kiln_fail(errmsg, errno, "port %s: socket: %s", kp->name, strerror(errno));
    if (connect(*fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        fcntl(*fd, F_SETFL, O_NONBLOCK) < 0) {
        int err = errno;
        close(*fd);
        return kiln_fail(errmsg, err, "port %s: socket %s: %s", kp->name, kp->path, strerror(err));
    }
    return 0;
}

/* Every port's host end is opened here, before /dev/kvm. */
static int con_prepare(const struct device_env *env, unsigned index, void **prepared, char *errmsg)
{
    (void)index;
    const struct kiln_config *cfg = env->cfg;
    struct virtio_console_port_spec specs[KILN_MAX_PORTS];
    for (unsigned i = 0; i < cfg->nports; i++) {
        const struct kiln_port *kp = &cfg->ports[i];
        bool sock = kp->kind == KILN_PORT_SOCKET;
        int fd = -1, ret = sock ? open_socket(kp, &fd, errmsg) : open_file(kp, &fd, errmsg);
        if (ret < 0) {
            for (unsigned j = 0; j < i; j++)
                close(specs[j].fd);
            return ret;
        }
        specs[i] = (struct virtio_console_port_spec){kp->name, fd, sock};
    }
    struct virtio_console *c;
    int ret = virtio_console_create(specs, cfg->nports, env->loop, env->mem, env->log, &c, errmsg);
    if (ret == 0)
        *prepared = c;
    return ret;
}

static void con_discard(void *prepared)
{
    virtio_console_destroy(prepared);
}

static int con_attach(const struct device_env *env, unsigned index, void *prepared,
                      struct device **out, char *errmsg)
{
    (void)index;
    struct virtio_console *c = prepared;
    int ret = virtio_attach(env->virtio, &c->vd, out);
    if (ret < 0)
        kiln_fail(errmsg, -ret, "virtio-console: %s: %s", virtio_transport_name(env->virtio),
                  strerror(-ret));
    return ret;
}

const struct device_class virtio_console_class = {.name = "virtio-console",
                                                  .count = con_count,
                                                  .check = con_check,
                                                  .prepare = con_prepare,
                                                  .discard = con_discard,
                                                  .create = con_attach,
                                                  .virtio = true};
