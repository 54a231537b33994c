/* virtio_net.h: virtio-net (one RX/TX queue pair) over a net_port back end (TAP, user mode). */
#ifndef KILN_VIRTIO_NET_H
#define KILN_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "devices/devices.h"
#include "memory.h"
#include "net/net_port.h"
#include "util.h"
#include "virtio/virtio.h"

/* Feature bits (virtio 1.x, "Network Device"). */
#define VIRTIO_NET_F_CSUM (1ULL << 0)
#define VIRTIO_NET_F_GUEST_CSUM (1ULL << 1)
#define VIRTIO_NET_F_MTU (1ULL << 3)
#define VIRTIO_NET_F_MAC (1ULL << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ULL << 7)
#define VIRTIO_NET_F_GUEST_TSO6 (1ULL << 8)
#define VIRTIO_NET_F_GUEST_ECN (1ULL << 9)
#define VIRTIO_NET_F_GUEST_UFO (1ULL << 10)
#define VIRTIO_NET_F_HOST_TSO4 (1ULL << 11)
#define VIRTIO_NET_F_HOST_TSO6 (1ULL << 12)
#define VIRTIO_NET_F_HOST_ECN (1ULL << 13)
#define VIRTIO_NET_F_HOST_UFO (1ULL << 14)
#define VIRTIO_NET_F_MRG_RXBUF (1ULL << 15)
#define VIRTIO_NET_F_STATUS (1ULL << 16)
#define VIRTIO_NET_F_CTRL_VQ (1ULL << 17)
#define VIRTIO_NET_F_MQ (1ULL << 22)

/* struct virtio_net_hdr_v1: flags, gso_type, then le16 hdr_len, gso_size, csum_start,
 * csum_offset, num_buffers. */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80
#define VIRTIO_NET_HDR_OFF_CSUM_START 6
#define VIRTIO_NET_HDR_OFF_CSUM_OFFSET 8
#define VIRTIO_NET_HDR_OFF_NUM_BUFFERS 10

/* Config space: mac[6], le16 status, le16 max_virtqueue_pairs. */
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CONFIG_LEN 10
#define VIRTIO_NET_S_LINK_UP 1

#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_QUEUE_SIZE 256u
/* Frames sent to the back end per turn of the loop before RX and other devices get theirs. */
#define VIRTIO_NET_TX_BUDGET 128u

struct virtio_net_config {
    struct net_port *port; /* the device owns it from create on, even on failure */
    uint8_t mac[6];
};

/* Counters (frames). Readable from any thread. */
struct virtio_net_stats {
    uint64_t rx_frames, tx_frames;
    uint64_t rx_dropped; /* for the guest but dropped: malformed, too big, no fitting buffer */
    uint64_t tx_dropped; /* from the guest but dropped: malformed, refused by the back end */
};

struct virtio_net;

/* One virtio-net per configured network (kiln_config.nets), back end TAP or user mode. */
extern const struct device_class virtio_net_class;

int virtio_net_create(const struct virtio_net_config *cfg, uv_loop_t *loop,
                      const struct guest_mem *mem, const struct kiln_log *log,
                      struct virtio_net **out, char *errmsg);
struct virtio_device *virtio_net_device(struct virtio_net *net);
/* Start/stop the back end and the device's loop handles (the loop thread). */
int virtio_net_start(struct virtio_net *net);
void virtio_net_stop(struct virtio_net *net);
void virtio_net_get_stats(const struct virtio_net *net, struct virtio_net_stats *st);
void virtio_net_destroy(struct virtio_net *net);

/* Internet checksum helpers (exposed for tests): one's complement sum, folded and inverted. */
uint16_t net_csum_finish(const uint8_t *data, size_t len, uint32_t sum);

#endif
