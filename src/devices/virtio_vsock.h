/* virtio_vsock.h: virtio-vsock: guest stream sockets to host unix sockets (Firecracker-style). */
#ifndef KILN_VIRTIO_VSOCK_H
#define KILN_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "devices/devices.h"
#include "kiln.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_VSOCK 19
#define VSOCK_CONFIG_LEN 8 /* le64 guest_cid */
#define VSOCK_QUEUE_SIZE 256
#define VSOCK_RXQ 0 /* device -> driver packets */
#define VSOCK_TXQ 1 /* driver -> device packets */
#define VSOCK_EVQ 2 /* device -> driver events (a transport reset after a restore) */
#define VSOCK_NQ 3

#define VSOCK_HOST_CID 2
/* An event (virtio 1.x, "Device Events"): le32 id. TRANSPORT_RESET: drop every connection. */
#define VSOCK_EVENT_LEN 4
#define VSOCK_EVENT_TRANSPORT_RESET 0
#define VSOCK_HDR_LEN 44
#define VSOCK_TYPE_STREAM 1
/* Connections at once (both directions together), and the guest bytes kiln holds for each one
 * whose host program is slow to read: the buf_alloc it advertises. */
#define VSOCK_MAX_CONNS 128
#define VSOCK_CONN_BUF (128u * 1024)
/* A host program that sends no CONNECT line, or whose guest does not answer, is closed after: */
#define VSOCK_CONNECT_TIMEOUT_MS 10000
/* Host ports kiln hands out to host-initiated connections start here. */
#define VSOCK_HOST_PORT_FIRST 0x40000000u

enum vsock_op {
    VSOCK_OP_INVALID = 0,
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV 1u  /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2u /* the sender will send no more */

/* A packet header (virtio 1.x, "Socket Device"), in host byte order. */
struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port, len;
    uint16_t type, op;
    uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_LEN]);
void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_LEN], struct vsock_hdr *h);

struct virtio_vsock;

extern const struct device_class virtio_vsock_class;

/*
 * Listen on the unix socket path for host programs (non-blocking, close-on-exec). An existing
 * socket nobody listens on is replaced; anything else there is refused. Returns 0 or -errno.
 */
int virtio_vsock_listen(const char *path, int *fd, char *errmsg);

/*
 * A vsock device for guest cid, whose host programs connect through listen_fd (the device owns
 * it, even on failure; -1: none) and whose guest connections to host port P go to the unix
 * socket "PATH_P". unlink_path (NULL: none): removed when destroyed, so it must live as long as
 * the device. Returns 0 or -errno with errmsg.
 */
int virtio_vsock_create(uint64_t cid, const char *path, int listen_fd, const char *unlink_path,
                        uv_loop_t *loop, const struct guest_mem *mem, const struct kiln_log *log,
                        struct virtio_vsock **out, char *errmsg);
struct virtio_device *virtio_vsock_device(struct virtio_vsock *v);
int virtio_vsock_start(struct virtio_vsock *v);
void virtio_vsock_stop(struct virtio_vsock *v);
void virtio_vsock_destroy(struct virtio_vsock *v);
/* Change VSOCK_CONNECT_TIMEOUT_MS, before start (for tests). */
void virtio_vsock_set_connect_timeout(struct virtio_vsock *v, uint64_t ms);
/* Connections open now (for tests). */
unsigned virtio_vsock_conns(const struct virtio_vsock *v);

#endif
