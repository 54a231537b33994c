/* virtio_console.h: virtio-console with named ports: guest streams to host files and sockets. */
#ifndef KILN_VIRTIO_CONSOLE_H
#define KILN_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <uv.h>

#include "devices/devices.h"
#include "kiln.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_CONSOLE_F_MULTIPORT (1ULL << 1)
#define VIRTIO_CONSOLE_CONFIG_LEN 12 /* cols, rows, max_nr_ports, emerg_wr */
#define VIRTIO_CONSOLE_QUEUE_SIZE 128

/* Queues: port 0's pair (never added), the control pair, then each port's receive/transmit. */
#define VIRTIO_CONSOLE_CTRL_RXQ 2               /* device -> driver control messages */
#define VIRTIO_CONSOLE_CTRL_TXQ 3               /* driver -> device control messages */
#define VIRTIO_CONSOLE_RXQ(id) (2u + 2u * (id)) /* host -> guest data of port id (1..) */
#define VIRTIO_CONSOLE_TXQ(id) (3u + 2u * (id)) /* guest -> host data of port id */

/* Control events (virtio 1.x, "Console Device", control messages). */
enum virtio_console_event {
    VIRTIO_CONSOLE_DEVICE_READY = 0,
    VIRTIO_CONSOLE_DEVICE_ADD = 1,
    VIRTIO_CONSOLE_DEVICE_REMOVE = 2,
    VIRTIO_CONSOLE_PORT_READY = 3,
    VIRTIO_CONSOLE_CONSOLE_PORT = 4,
    VIRTIO_CONSOLE_RESIZE = 5,
    VIRTIO_CONSOLE_PORT_OPEN = 6,
    VIRTIO_CONSOLE_PORT_NAME = 7,
};
#define VIRTIO_CONSOLE_CTRL_LEN 8 /* le32 id, le16 event, le16 value */

/* One port as the device gets it: its name and its open host end. */
struct virtio_console_port_spec {
    const char *name;
    int fd;      /* the device owns it from virtio_console_create on */
    bool socket; /* a connected stream socket (both ways); else a file written to */
};

struct virtio_console;

extern const struct device_class virtio_console_class;

/*
 * A console device with ports 1..n (the guest's /dev/vport*p1 ...; udev links
 * /dev/virtio-ports/NAME). Takes every fd, even on failure. Returns 0 or -errno with errmsg.
 */
int virtio_console_create(const struct virtio_console_port_spec *ports, unsigned n, uv_loop_t *loop,
                          const struct guest_mem *mem, const struct kiln_log *log,
                          struct virtio_console **out, char *errmsg);
struct virtio_device *virtio_console_device(struct virtio_console *c);
int virtio_console_start(struct virtio_console *c);
void virtio_console_stop(struct virtio_console *c);
void virtio_console_destroy(struct virtio_console *c);

#endif
