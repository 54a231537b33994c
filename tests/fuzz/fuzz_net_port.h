/* fuzz_net_port.h: a net_port back end for the fuzz targets that is full or failing on request. */
#ifndef KILN_FUZZ_NET_PORT_H
#define KILN_FUZZ_NET_PORT_H

/*
 * What a TAP or the user-mode stack would be to virtio-net, minus the host: frames from the
 * guest are copied out whole (so AddressSanitizer checks every iovec the device hands over) and
 * checked against the port contract (net_port.h); the harness decides what send returns,
 * and delivers frames to the guest itself through port.peer, on the
 * loop thread, as a port does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "net/net_port.h"

struct fzp {
    struct net_port port;
    int send_ret;    /* what send returns next: 0, -EAGAIN (full) or -EIO (refused) */
    bool started;    /* between start and stop */
    bool rx_stopped; /* receive said -EAGAIN: hold frames until rx_resume */
    bool tx_full;    /* send said -EAGAIN: call peer->writable once there is room */
    uint64_t sent, sent_bytes, refused;
    uint8_t frame[NET_HDR_LEN + NET_FRAME_MAX];
};

static inline struct fzp *fzp_of(struct net_port *p)
{
    return (struct fzp *)p;
}

static inline int fzp_send(struct net_port *p, const struct iovec *iov, unsigned n)
{
    struct fzp *f = fzp_of(p);
    size_t total = 0, hl = p->vnet_hdr ? NET_HDR_LEN : 0;
    FZ_CHECK(f->started);
    for (unsigned i = 0; i < n; i++) {
        FZ_CHECK(iov[i].iov_len <= sizeof(f->frame) - total);
        memcpy(f->frame + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    /* The device drops runts and giants itself; what reaches a port is a frame it can send. */
    FZ_CHECK(total >= hl + NET_FRAME_MIN && total <= hl + NET_FRAME_MAX);
    if (f->send_ret == -EAGAIN) {
        f->tx_full = true;
        return -EAGAIN;
    }
    if (f->send_ret < 0) {
        f->refused++;
        return f->send_ret;
    }
    f->sent++;
    f->sent_bytes += total;
    return 0;
}

static inline void fzp_rx_resume(struct net_port *p)
{
    fzp_of(p)->rx_stopped = false;
}

static inline int fzp_set_rx_offloads(struct net_port *p, unsigned offloads)
{
    /* Only what the port offered can have been negotiated. */
    FZ_CHECK((offloads & ~(p->offloads | NET_OFFLOAD_CSUM)) == 0);
    return 0;
}

static inline int fzp_start(struct net_port *p, uv_loop_t *loop)
{
    (void)loop;
    fzp_of(p)->started = true;
    return 0;
}

static inline void fzp_stop(struct net_port *p)
{
    fzp_of(p)->started = false;
}

static inline void fzp_destroy(struct net_port *p)
{
    FZ_CHECK(!fzp_of(p)->started);
    free(p);
}

/* A new port; vnet_hdr and offloads as a TAP (with IFF_VNET_HDR) or user mode would have them. */
static inline struct fzp *fzp_create(bool vnet_hdr, unsigned offloads)
{
    static const struct net_port_ops ops = {
        .send = fzp_send,
        .rx_resume = fzp_rx_resume,
        .set_rx_offloads = fzp_set_rx_offloads,
        .start = fzp_start,
        .stop = fzp_stop,
        .destroy = fzp_destroy,
    };
    struct fzp *f = calloc(1, sizeof(*f));
    if (!f)
        abort();
    f->port.ops = &ops;
    f->port.vnet_hdr = vnet_hdr;
    f->port.offloads = vnet_hdr ? offloads : 0;
    snprintf(f->port.name, sizeof(f->port.name), "fuzz");
    return f;
}

/*
 * Deliver one frame to the guest as a port does: nothing while the device said "no room"
 * (the port holds the frame then), and a burst ends with receive_done. Returns receive's value.
 */
static inline int fzp_deliver(struct fzp *f, const uint8_t *frame, size_t len)
{
    const struct net_port_peer *peer = f->port.peer;
    if (!f->started || f->rx_stopped)
        return -EAGAIN;
    int ret = peer->receive(peer->dev, frame, len);
    FZ_CHECK(ret == 0 || ret == -EAGAIN);
    if (ret == -EAGAIN)
        f->rx_stopped = true;
    peer->receive_done(peer->dev);
    return ret;
}

/* The back end takes frames again (and says so if a send was told -EAGAIN). */
static inline void fzp_drain(struct fzp *f)
{
    f->send_ret = 0;
    if (!f->tx_full)
        return;
    f->tx_full = false;
    f->port.peer->writable(f->port.peer->dev);
}

#endif
