/* virtio_net.c: virtio-net: guest frames checked and passed to a net_port on the VM loop. */
#include "devices/virtio_net.h"

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_tap.h"
#include "net/net_user.h"

struct virtio_net {
    struct virtio_device vd;
    uv_loop_t *loop;
    struct net_port *port;
    struct net_port_peer peer;
    uint8_t config[VIRTIO_NET_CONFIG_LEN]; /* immutable after creation: read without locks */
    char name[48];
    /* Loop thread only. */
    bool started;
    bool running;    /* activated with both queues ready; no reset or driver error since */
    bool mergeable;  /* MRG_RXBUF negotiated */
    bool guest_csum; /* GUEST_CSUM negotiated: frames may carry partial checksums */
    bool rx_waiting; /* told the port -EAGAIN: waiting for the driver to add RX buffers */
    bool tx_blocked; /* the port returned -EAGAIN: waiting for peer.writable */
    bool tx_held;    /* tx_chain was taken but not sent yet (back end full) */
    bool rx_pending_signal;
    uint64_t tx_offloads; /* CSUM and HOST_* features negotiated (copied at activation) */
    bool bad_logged;
    uv_idle_t tx_idle; /* continues a TX burst cut short by the budget */
    bool tx_idle_open;
    struct virtq_chain tx_chain;
    struct virtq_chain rx_chain; /* scratch */
    struct virtq_chain rx_first; /* the first chain of a mergeable frame (for num_buffers) */
    uint16_t rx_heads[VIRTIO_NET_QUEUE_SIZE];
    uint32_t rx_lens[VIRTIO_NET_QUEUE_SIZE];
    uint8_t tx_buf[NET_FRAME_MAX]; /* bare frames for ports without a vnet header */
    _Atomic uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;
};

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static void put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

static void count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void log_bad(struct virtio_net *n, const char *what)
{
    if (n->bad_logged)
        return;
    n->bad_logged = true;
    klog(n->vd.log, KILN_LOG_WARN, "%s: bad frame from the driver: %s (not logged again)", n->name,
         what);
}

uint16_t net_csum_finish(const uint8_t *data, size_t len, uint32_t sum)
{
    uint64_t s = sum;
    size_t i = 0;
    for (; i + 1 < len; i += 2)
        s += (uint32_t)(data[i] << 8 | data[i + 1]);
    if (i < len)
        s += (uint32_t)data[i] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* Stop the device because the driver broke the rules: NEEDS_RESET until it resets us. */
static void driver_error(struct virtio_net *n, unsigned q, int err)
{
    n->running = false;
    n->vd.queues[q].vq.broken = true;
    virtio_device_error(&n->vd, q, err);
}

/* ---- Receive: frames from the back end into the driver's RX buffers. ---- */

/* Take the next RX chain: 1, 0 (none), or <0 after a driver error was raised. */
static int rx_pop(struct virtio_net *n, struct virtq_chain *c)
{
    int ret = virtq_pop(&n->vd.queues[VIRTIO_NET_RXQ].vq, c);
    if (ret < 0) {
        driver_error(n, VIRTIO_NET_RXQ, ret);
        return ret;
    }
    if (ret == 1 && (c->readable_len != 0 || c->writable_len == 0)) {
        log_bad(n, "RX buffer that is not (only) device-writable");
        driver_error(n, VIRTIO_NET_RXQ, -EINVAL);
        return -EINVAL;
    }
    /* The spec: with MRG_RXBUF every buffer holds at least the header (num_buffers goes there). */
    if (ret == 1 && n->mergeable && c->writable_len < NET_HDR_LEN) {
        log_bad(n, "mergeable RX buffer shorter than the 12-byte header");
        driver_error(n, VIRTIO_NET_RXQ, -EINVAL);
        return -EINVAL;
    }
    return ret;
}

/* The header the guest sees: the back end's, or a synthetic one for bare frames. */
static void rx_header(const struct virtio_net *n, const uint8_t *frame, uint8_t *hdr)
{
    if (n->port->vnet_hdr) {
        memcpy(hdr, frame, NET_HDR_LEN);
        /* A TAP marks frames DATA_VALID whatever the offloads; without GUEST_CSUM flags is 0. */
        if (!n->guest_csum)
            hdr[0] = 0;
        return;
    }
    memset(hdr, 0, NET_HDR_LEN);
    /* User-mode frames are built with complete checksums: the guest need not check them. */
    if (n->guest_csum)
        hdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
}

/* No RX buffers (enough) for the frame: wait for the driver, or retry if it just added some. */
static int rx_wait(struct virtio_net *n, uint16_t taken)
{
    struct virtq *q = &n->vd.queues[VIRTIO_NET_RXQ].vq;
    uint16_t seen = q->last_avail;
    virtq_unpop(q, taken);
    if (virtq_wait_for_more(q, seen))
        return 1;
    n->rx_waiting = true;
    return -EAGAIN;
}

/*
 * Place header + payload into as many chains as it needs (one unless mergeable). Returns 0
 * (placed, or dropped and counted), 1 (retry: buffers arrived meanwhile) or -EAGAIN.
 */
static int rx_place(struct virtio_net *n, const uint8_t *hdr, const uint8_t *data, uint32_t len)
{
    struct virtq *q = &n->vd.queues[VIRTIO_NET_RXQ].vq;
    uint32_t total = NET_HDR_LEN + len, done = 0;
    uint16_t used = 0;
    while (done < total) {
        if (used == q->ring_size || (!n->mergeable && used == 1)) {
            /* Every buffer the ring can hold is too small: the guest loses this frame. */
            virtq_unpop(q, used);
            count(&n->rx_dropped);
            return 0;
        }
        struct virtq_chain *c = used == 0 ? &n->rx_first : &n->rx_chain;
        int ret = rx_pop(n, c);
        if (ret < 0)
            return 0;
        if (ret == 0)
            return rx_wait(n, used);
        uint32_t take = c->writable_len < total - done ? c->writable_len : total - done;
        /* This chain holds bytes [done, done + take) of header + payload. */
        if (done < NET_HDR_LEN) {
            uint32_t h = NET_HDR_LEN - done < take ? NET_HDR_LEN - done : take;
            virtq_bufs_write(c->buf, c->count, 0, hdr + done, h);
        }
        uint32_t from = done > NET_HDR_LEN ? done : NET_HDR_LEN;
        if (from < done + take)
            virtq_bufs_write(c->buf, c->count, from - done, data + (from - NET_HDR_LEN),
                             done + take - from);
        n->rx_heads[used] = c->head;
        n->rx_lens[used] = take;
        used++;
        done += take;
    }
    /* num_buffers: 1 without MRG_RXBUF, as the spec asks. */
    uint8_t nb[2];
    put16(nb, used);
    virtq_bufs_write(n->rx_first.buf, n->rx_first.count, VIRTIO_NET_HDR_OFF_NUM_BUFFERS, nb,
                     sizeof(nb));
    /* One used->idx update: a driver must never see a frame's first buffer without the rest. */
    for (uint16_t i = 0; i < used; i++)
        virtq_fill(q, i, n->rx_heads[i], n->rx_lens[i]);
    virtq_flush(q, used);
    count(&n->rx_frames);
    n->rx_pending_signal = true;
    return 0;
}

static int net_receive(void *dev, const uint8_t *frame, size_t len)
{
    struct virtio_net *n = dev;
    if (!n->running || n->rx_waiting)
        return -EAGAIN;
    size_t hl = n->port->vnet_hdr ? NET_HDR_LEN : 0;
    if (len < hl + NET_FRAME_MIN || len > hl + NET_FRAME_MAX) {
        count(&n->rx_dropped);
        return 0;
    }
    uint8_t hdr[NET_HDR_LEN];
    rx_header(n, frame, hdr);
    int ret;
    while ((ret = rx_place(n, hdr, frame + hl, (uint32_t)(len - hl))) == 1)
        ;
    struct virtq *q = &n->vd.queues[VIRTIO_NET_RXQ].vq;
    if (ret == 0 && q->notify)
        virtq_set_notify(q, false); /* only wanted while waiting for buffers */
    return ret;
}

static void net_receive_done(void *dev)
{
    struct virtio_net *n = dev;
    if (!n->rx_pending_signal)
        return;
    n->rx_pending_signal = false;
    virtio_queue_signal(&n->vd, VIRTIO_NET_RXQ);
}

/* ---- Transmit: the driver's frames to the back end. ---- */

/* The header offload fields must match what was negotiated. Returns NULL or the reason. */
static const char *tx_check_header(const struct virtio_net *n, const uint8_t *hdr, uint32_t len)
{
    uint8_t flags = hdr[0], gso = hdr[1] & ~VIRTIO_NET_HDR_GSO_ECN;
    if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        if (!(n->tx_offloads & VIRTIO_NET_F_CSUM))
            return "partial checksum without CSUM";
        uint32_t start = get16(hdr + VIRTIO_NET_HDR_OFF_CSUM_START);
        uint32_t field = get16(hdr + VIRTIO_NET_HDR_OFF_CSUM_OFFSET);
        if (start + field + 2 > len)
            return "checksum position beyond the frame";
    }
    if ((hdr[1] & VIRTIO_NET_HDR_GSO_ECN) && !(n->tx_offloads & VIRTIO_NET_F_HOST_ECN))
        return "ECN segmentation not negotiated";
    switch (gso) {
    case VIRTIO_NET_HDR_GSO_NONE:
        return len > NET_FRAME_MAX ? "frame too long" : NULL;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        return n->tx_offloads & VIRTIO_NET_F_HOST_TSO4 ? NULL : "TSO4 not negotiated";
    case VIRTIO_NET_HDR_GSO_TCPV6:
        return n->tx_offloads & VIRTIO_NET_F_HOST_TSO6 ? NULL : "TSO6 not negotiated";
    case VIRTIO_NET_HDR_GSO_UDP:
        return n->tx_offloads & VIRTIO_NET_F_HOST_UFO ? NULL : "UFO not negotiated";
    default:
        return "unknown segmentation type";
    }
}

/* Finish a partial checksum in the bare frame f (positions checked by tx_check_header). */
static void tx_finish_csum(uint8_t *f, uint32_t len, const uint8_t *hdr)
{
    uint32_t start = get16(hdr + VIRTIO_NET_HDR_OFF_CSUM_START);
    uint32_t field = start + get16(hdr + VIRTIO_NET_HDR_OFF_CSUM_OFFSET);
    /* The field holds the pseudo-header sum; the checksum covers it and the data after start. */
    uint16_t c = net_csum_finish(f + start, len - start, 0);
    /* As Linux does: a UDP checksum of 0 means "none" (invalid over IPv6); 0xffff is equal. */
    if (c == 0)
        c = 0xffff;
    f[field] = (uint8_t)(c >> 8);
    f[field + 1] = (uint8_t)c;
}

/* Hand the chain's frame to the port: 0 done (sent or dropped), -EAGAIN back end full. */
static int tx_send(struct virtio_net *n, const struct virtq_chain *c)
{
    if (c->writable_len != 0 || c->readable_len < NET_HDR_LEN + NET_FRAME_MIN ||
        c->readable_len - NET_HDR_LEN > NET_FRAME_MAX) {
        log_bad(n, c->writable_len ? "device-writable buffer in a TX chain"
                                   : "frame too short or too long");
        count(&n->tx_dropped);
        return 0;
    }
    uint32_t len = c->readable_len - NET_HDR_LEN;
    uint8_t hdr[NET_HDR_LEN];
    /* Checked and sent from this copy: no double fetch. (TX chains are all readable here.) */
    virtq_bufs_read(c->buf, c->count, 0, hdr, NET_HDR_LEN);
    const char *bad = tx_check_header(n, hdr, len);
    if (bad) {
        log_bad(n, bad);
        count(&n->tx_dropped);
        return 0;
    }
    struct iovec iov[VIRTQ_CHAIN_MAX + 1];
    unsigned cnt;
    if (n->port->vnet_hdr) {
        put16(hdr + VIRTIO_NET_HDR_OFF_NUM_BUFFERS, 0);
        iov[0] = (struct iovec){hdr, NET_HDR_LEN};
        cnt = 1 + virtq_bufs_iov(c->buf, c->count, NET_HDR_LEN, len, iov + 1);
    } else {
        /* A port without offloads gets a stable, complete copy. */
        virtq_bufs_read(c->buf, c->count, NET_HDR_LEN, n->tx_buf, len);
        if (hdr[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM)
            tx_finish_csum(n->tx_buf, len, hdr);
        iov[0] = (struct iovec){n->tx_buf, len};
        cnt = 1;
    }
    int ret = n->port->ops->send(n->port, iov, cnt);
    if (ret == -EAGAIN)
        return ret;
    count(ret < 0 ? &n->tx_dropped : &n->tx_frames);
    return 0;
}

static void tx_idle_cb(uv_idle_t *h);

/* Send available frames until the ring is empty, the back end is full or the budget is spent. */
static void tx_pump(struct virtio_net *n)
{
    struct virtq *q = &n->vd.queues[VIRTIO_NET_TXQ].vq;
    unsigned budget = VIRTIO_NET_TX_BUDGET;
    virtq_set_notify(q, false); /* kicks while we are busy would only wake us for nothing */
    while (n->running && !n->tx_blocked) {
        if (budget-- == 0) {
            uv_idle_start(&n->tx_idle, tx_idle_cb);
            break;
        }
        if (!n->tx_held) {
            int ret = virtq_pop(q, &n->tx_chain);
            if (ret < 0) {
                driver_error(n, VIRTIO_NET_TXQ, ret);
                break;
            }
            if (ret == 0 && !virtq_enable_notify_and_check(q))
                break;
            if (ret == 0)
                continue;
        }
        if (tx_send(n, &n->tx_chain) == -EAGAIN) {
            n->tx_held = true;
            n->tx_blocked = true; /* peer.writable resumes us; no kicks meanwhile */
            break;
        }
        n->tx_held = false;
        virtq_push(q, n->tx_chain.head, 0);
    }
    virtio_queue_signal(&n->vd, VIRTIO_NET_TXQ);
}

static void tx_idle_cb(uv_idle_t *h)
{
    struct virtio_net *n = h->data;
    uv_idle_stop(h);
    tx_pump(n);
}

static void net_writable(void *dev)
{
    struct virtio_net *n = dev;
    n->tx_blocked = false;
    if (n->running)
        tx_pump(n);
}

/* ---- virtio_device_ops ---- */

/* Receive offloads the driver accepted, as the port's NET_OFFLOAD_* bits. */
static unsigned rx_offloads(const struct virtio_device *vd)
{
    if (!virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM))
        return 0;
    unsigned o = NET_OFFLOAD_CSUM;
    o |= virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO4) ? NET_OFFLOAD_TSO4 : 0;
    o |= virtio_has_feature(vd, VIRTIO_NET_F_GUEST_TSO6) ? NET_OFFLOAD_TSO6 : 0;
    o |= virtio_has_feature(vd, VIRTIO_NET_F_GUEST_ECN) ? NET_OFFLOAD_ECN : 0;
    o |= virtio_has_feature(vd, VIRTIO_NET_F_GUEST_UFO) ? NET_OFFLOAD_UFO : 0;
    return o;
}

static int net_activate(struct virtio_device *vd)
{
    struct virtio_net *n = vd->priv;
    pthread_mutex_lock(&vd->lock);
    n->mergeable = virtio_has_feature(vd, VIRTIO_NET_F_MRG_RXBUF);
    n->guest_csum = virtio_has_feature(vd, VIRTIO_NET_F_GUEST_CSUM);
    n->tx_offloads =
        vd->driver_features & (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 |
                               VIRTIO_NET_F_HOST_ECN | VIRTIO_NET_F_HOST_UFO);
    unsigned offloads = rx_offloads(vd);
    bool ready = vd->queues[VIRTIO_NET_RXQ].enabled && vd->queues[VIRTIO_NET_RXQ].vq.ready &&
                 vd->queues[VIRTIO_NET_TXQ].enabled && vd->queues[VIRTIO_NET_TXQ].vq.ready;
    pthread_mutex_unlock(&vd->lock);
    int err = n->port->ops->set_rx_offloads(n->port, offloads);
    if (err < 0) {
        klog(vd->log, KILN_LOG_WARN, "%s: cannot set receive offloads: %s", n->name,
             strerror(-err));
        return err;
    }
    n->running = ready;
    n->rx_waiting = false;
    if (!ready)
        return 0;
    /* RX kicks are only wanted while waiting for buffers. */
    virtq_set_notify(&vd->queues[VIRTIO_NET_RXQ].vq, false);
    n->port->ops->rx_resume(n->port); /* frames held while the device was not running */
    tx_pump(n); /* buffers made available before DRIVER_OK get no kick of their own */
    return 0;
}

static int net_reset(struct device *d)
{
    struct virtio_net *n = virtio_device_of(d)->priv;
    n->running = false;
    n->rx_waiting = false;
    n->tx_held = false;    /* the chain belongs to the old driver */
    n->tx_blocked = false; /* a full back end says so again on the next send */
    n->rx_pending_signal = false;
    if (n->tx_idle_open)
        uv_idle_stop(&n->tx_idle);
    return 0; /* every frame is handled synchronously: nothing in flight */
}

static void net_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct virtio_net *n = vd->priv;
    if (!n->running)
        return;
    if (q == VIRTIO_NET_TXQ && !n->tx_blocked) {
        tx_pump(n);
    } else if (q == VIRTIO_NET_RXQ && n->rx_waiting) {
        n->rx_waiting = false;
        virtq_set_notify(&vd->queues[VIRTIO_NET_RXQ].vq, false);
        n->port->ops->rx_resume(n->port);
    }
}

static int net_start(struct device *d, uv_loop_t *loop)
{
    (void)loop; /* the device's own: the loop it was created on */
    return virtio_net_start(virtio_device_of(d)->priv);
}

static void net_stop(struct device *d)
{
    virtio_net_stop(virtio_device_of(d)->priv);
}

static void net_destroy(struct device *d)
{
    virtio_net_destroy(virtio_device_of(d)->priv);
}

static void net_stats(const struct device *d, struct kiln_stats *st)
{
    struct virtio_net_stats ns;
    virtio_net_get_stats(virtio_device_of((struct device *)d)->priv, &ns);
    st->net_rx_frames += ns.rx_frames;
    st->net_tx_frames += ns.tx_frames;
    st->net_rx_dropped += ns.rx_dropped;
    st->net_tx_dropped += ns.tx_dropped;
}

/*
 * Snapshot (loop thread): nothing of its own beyond the core's queues, once no frame is half
 * sent (-EBUSY until the back end took it). The back end is opened anew on restore: a TAP by
 * name; a user network starts empty, so the guest's connections through it are gone.
 */
static int net_save(const struct device *d, struct device_state *st)
{
    (void)st;
    const struct virtio_net *n = virtio_device_of((struct device *)d)->priv;
    return n->tx_held ? -EBUSY : 0;
}

static const struct virtio_device_ops net_ops = {
    .dev =
        {
            .read = virtio_config_read_bytes,
            .write = virtio_config_write_ignored, /* the MAC is not writable in virtio 1.x */
            .reset = net_reset,
            .save = net_save,
            .restore = device_restore_none,
            .start = net_start,
            .stop = net_stop,
            .destroy = net_destroy,
            .stats = net_stats,
        },
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .config_len = VIRTIO_NET_CONFIG_LEN,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
};

/* ---- Creation ---- */

static uint64_t offered_features(const struct net_port *p)
{
    uint64_t f = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF |
                 VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC;
    /* Bare-frame ports get partial checksums finished here and give complete frames. */
    if (!p->vnet_hdr)
        return f | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM;
    if (!(p->offloads & NET_OFFLOAD_CSUM))
        return f;
    f |= VIRTIO_NET_F_CSUM | VIRTIO_NET_F_GUEST_CSUM;
    if (p->offloads & NET_OFFLOAD_TSO4)
        f |= VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_GUEST_TSO4;
    if (p->offloads & NET_OFFLOAD_TSO6)
        f |= VIRTIO_NET_F_HOST_TSO6 | VIRTIO_NET_F_GUEST_TSO6;
    if (p->offloads & NET_OFFLOAD_ECN)
        f |= VIRTIO_NET_F_HOST_ECN | VIRTIO_NET_F_GUEST_ECN;
    if (p->offloads & NET_OFFLOAD_UFO)
        f |= VIRTIO_NET_F_HOST_UFO | VIRTIO_NET_F_GUEST_UFO;
    return f;
}

int virtio_net_create(const struct virtio_net_config *cfg, uv_loop_t *loop,
                      const struct guest_mem *mem, const struct kiln_log *log,
                      struct virtio_net **out, char *errmsg)
{
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        cfg->port->ops->destroy(cfg->port);
        return kiln_fail(errmsg, ENOMEM, "net %s: out of memory", cfg->port->name);
    }
    n->loop = loop;
    n->port = cfg->port;
    snprintf(n->name, sizeof(n->name), "virtio-net %s", cfg->port->name);
    memcpy(n->config + VIRTIO_NET_CFG_MAC, cfg->mac, 6);
    put16(n->config + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
    put16(n->config + VIRTIO_NET_CFG_MAX_PAIRS, 1);
    n->peer = (struct net_port_peer){net_receive, net_receive_done, net_writable, n};
    n->port->peer = &n->peer;
    virtio_device_init(&n->vd, &net_ops, n, offered_features(n->port), 2, VIRTIO_NET_QUEUE_SIZE,
                       mem, log);
    n->vd.config = n->config;
    *out = n;
    return 0;
}

struct virtio_device *virtio_net_device(struct virtio_net *net)
{
    return &net->vd;
}

int virtio_net_start(struct virtio_net *net)
{
    int ret = uv_idle_init(net->loop, &net->tx_idle);
    if (ret < 0)
        return ret;
    net->tx_idle_open = true;
    net->tx_idle.data = net;
    ret = net->port->ops->start(net->port, net->loop);
    net->started = ret == 0;
    return ret;
}

void virtio_net_stop(struct virtio_net *net)
{
    net->running = false;
    if (net->started)
        net->port->ops->stop(net->port);
    net->started = false;
    if (net->tx_idle_open)
        uv_close((uv_handle_t *)&net->tx_idle, NULL);
    net->tx_idle_open = false;
}

void virtio_net_get_stats(const struct virtio_net *net, struct virtio_net_stats *st)
{
    st->rx_frames = atomic_load_explicit(&net->rx_frames, memory_order_relaxed);
    st->tx_frames = atomic_load_explicit(&net->tx_frames, memory_order_relaxed);
    st->rx_dropped = atomic_load_explicit(&net->rx_dropped, memory_order_relaxed);
    st->tx_dropped = atomic_load_explicit(&net->tx_dropped, memory_order_relaxed);
    /* Frames the port dropped (its bounded queue was full) never reached the guest. */
    st->rx_dropped += atomic_load_explicit(&net->port->dropped, memory_order_relaxed);
}

void virtio_net_destroy(struct virtio_net *net)
{
    if (!net)
        return;
    net->port->ops->destroy(net->port);
    virtio_device_destroy(&net->vd);
    free(net);
}

/* ---- The device class: one virtio-net per --net, in order (eth0 first), after the disks. */

static unsigned net_count(const struct kiln_config *cfg)
{
    return cfg->nnets;
}

static int check_net(const struct kiln_net *n, unsigned i, char *errmsg)
{
    if (n->kind == KILN_NET_TAP && (!n->tap_name || !n->tap_name[0]))
        return kiln_fail(errmsg, EINVAL, "net %u: a TAP device needs an interface name", i);
    if (n->kind != KILN_NET_TAP && n->kind != KILN_NET_USER)
        return kiln_fail(errmsg, EINVAL, "net %u: kind %d is not tap or user", i, (int)n->kind);
    if (n->kind == KILN_NET_TAP && n->nhostfwd)
        return kiln_fail(errmsg, EINVAL, "--net tap=%s: hostfwd is for user-mode networking",
                         n->tap_name);
    if (n->nhostfwd > KILN_MAX_HOSTFWD)
        return kiln_fail(errmsg, EINVAL, "net %u: %u port forwards (at most %d)", i, n->nhostfwd,
                         KILN_MAX_HOSTFWD);
    if (n->mac_set && (n->mac[0] & 1))
        return kiln_fail(errmsg, EINVAL, "net %u: MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast",
                         i, n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
    return 0;
}

static int net_check(const struct kiln_config *cfg, char *errmsg)
{
    for (unsigned i = 0; i < cfg->nnets && i < KILN_MAX_NETS; i++) {
        int ret = check_net(&cfg->nets[i], i, errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/*
 * The default MAC: locally administered 02:6b:6c ("kl") and three bytes of an FNV-1a hash of
 * the device's kind, TAP name and index, so it is the same every run and two VMs on different
 * TAPs of one bridge differ.
 */
static void default_mac(const struct kiln_net *n, unsigned index, uint8_t mac[6])
{
    char key[64];
    snprintf(key, sizeof(key), "%s/%s/%u", n->kind == KILN_NET_TAP ? "tap" : "user",
             n->kind == KILN_NET_TAP ? n->tap_name : "", index);
    uint32_t h = 2166136261u;
    for (const char *c = key; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    const uint8_t m[6] = {0x02, 0x6b, 0x6c, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h};
    memcpy(mac, m, 6);
}

/* The back end (TAP or user-mode, with its port forwards) is opened here, before /dev/kvm. */
static int net_prepare(const struct device_env *env, unsigned index, void **prepared, char *errmsg)
{
    const struct kiln_net *cn = &env->cfg->nets[index];
    struct virtio_net_config nc = {0};
    int ret = cn->kind == KILN_NET_TAP
                  ? net_tap_open(cn->tap_name, env->log, &nc.port, errmsg)
                  : net_user_create(cn, index, env->loop, env->log, &nc.port, errmsg);
    if (ret < 0)
        return ret;
    if (cn->mac_set)
        memcpy(nc.mac, cn->mac, 6);
    else
        default_mac(cn, index, nc.mac);
    struct virtio_net *net;
    if ((ret = virtio_net_create(&nc, env->loop, env->mem, env->log, &net, errmsg)) == 0)
        *prepared = net;
    return ret;
}

static void net_discard(void *prepared)
{
    virtio_net_destroy(prepared);
}

static int net_attach(const struct device_env *env, unsigned index, void *prepared,
                      struct device **out, char *errmsg)
{
    struct virtio_net *net = prepared;
    char name[64]; /* a failed attach frees net and its port */
    snprintf(name, sizeof(name), "%s", net->port->name);
    int ret = virtio_attach(env->virtio, &net->vd, out);
    if (ret < 0)
        kiln_fail(errmsg, -ret, "net %u (%s): %s: %s", index, name,
                  virtio_transport_name(env->virtio), strerror(-ret));
    return ret;
}

const struct device_class virtio_net_class = {.name = "virtio-net",
                                              .count = net_count,
                                              .check = net_check,
                                              .prepare = net_prepare,
                                              .discard = net_discard,
                                              .create = net_attach,
                                              .virtio = true};
