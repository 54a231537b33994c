/* net_port.h: the packet back end a virtio-net device talks to (TAP, user-mode, a test socket). */
#ifndef KILN_NET_PORT_H
#define KILN_NET_PORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <uv.h>

/* Size of the virtio-net header (virtio 1.x: struct virtio_net_hdr_v1, with num_buffers). */
#define NET_HDR_LEN 12u
/* Largest Ethernet frame either side may pass (a 64 KiB GSO frame plus its Ethernet header). */
#define NET_FRAME_MAX (65535u + 14u + 4u)
/* Smallest: an Ethernet header. */
#define NET_FRAME_MIN 14u

/* Offloads a port can take in frames from the guest and put in frames to the guest. */
#define NET_OFFLOAD_CSUM 0x01u /* partial checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM) */
#define NET_OFFLOAD_TSO4 0x02u
#define NET_OFFLOAD_TSO6 0x04u
#define NET_OFFLOAD_ECN 0x08u
#define NET_OFFLOAD_UFO 0x10u

struct net_port;

/*
 * The device side, called by the port on the loop thread.
 *
 * receive: one frame for the guest. With port->vnet_hdr the frame starts with a NET_HDR_LEN
 * virtio-net header (num_buffers is the device's to fill), otherwise it is a bare Ethernet
 * frame. Returns 0 when the frame was taken (or dropped and counted by the device), or -EAGAIN
 * when the guest has no room: the port must keep that frame (or drop it if it cannot, and
 * count it), stop reading its back end, and offer the frame again only after the device calls
 * ops->rx_resume. Never an unbounded queue: while stopped the port reads nothing new.
 *
 * receive_done: a burst of receive calls is over (the device interrupts the guest once).
 *
 * writable: the port can take frames again after send returned -EAGAIN.
 */
struct net_port_peer {
    int (*receive)(void *dev, const uint8_t *frame, size_t len);
    void (*receive_done)(void *dev);
    void (*writable)(void *dev);
    void *dev;
};

struct net_port_ops {
    /*
     * One frame from the guest: iov holds the NET_HDR_LEN header first if port->vnet_hdr,
     * else a bare Ethernet frame with complete checksums (the device finishes partial ones).
     * Returns 0 when sent, -EAGAIN when the back end is full (the device keeps the frame,
     * stops taking frames from the guest and sends it again after peer->writable), or another
     * -errno when the back end refused the frame (the device drops and counts it).
     */
    int (*send)(struct net_port *p, const struct iovec *iov, unsigned n);
    /* The guest has receive buffers again after receive returned -EAGAIN. */
    void (*rx_resume)(struct net_port *p);
    /* Offloads (NET_OFFLOAD_*) the guest accepts in frames it receives; 0 or -errno. */
    int (*set_rx_offloads)(struct net_port *p, unsigned offloads);
    /* Start and stop servicing the back end on the VM's loop (the loop thread). */
    int (*start)(struct net_port *p, uv_loop_t *loop);
    void (*stop)(struct net_port *p);
    /* Free the port (stopped, or never started). */
    void (*destroy)(struct net_port *p);
};

struct net_port {
    const struct net_port_ops *ops;
    const struct net_port_peer *peer; /* set by the device before start */
    bool vnet_hdr;                    /* frames carry a NET_HDR_LEN header both ways */
    unsigned offloads;                /* NET_OFFLOAD_* the back end handles (needs vnet_hdr) */
    char name[32];                    /* for messages: "tap0", "user" */
    _Atomic uint64_t dropped;         /* frames for the guest the port had to drop */
};

#endif
