/* virtio_9p.h: virtio-9p: a host directory the guest mounts (9P2000.L over virtio). */
#ifndef KILN_VIRTIO_9P_H
#define KILN_VIRTIO_9P_H

#include <stdbool.h>

#include "devices/devices.h"
#include "kiln.h"
#include "memory.h"
#include "util.h"
#include "virtio/virtio.h"

#define VIRTIO_ID_9P 9
#define VIRTIO_9P_F_MOUNT_TAG (1ULL << 0)
#define VIRTIO_9P_CONFIG_LEN (2 + KILN_SHARE_TAG_MAX) /* tag_len, then the tag (zero-padded) */
#define VIRTIO_9P_QUEUE_SIZE 128

struct virtio_9p;

extern const struct device_class virtio_9p_class;

/* A share of the directory root_fd (taken, even on failure) under tag. Returns 0 or -errno. */
int virtio_9p_create(int root_fd, const char *tag, bool read_only, const struct guest_mem *mem,
                     const struct kiln_log *log, struct virtio_9p **out, char *errmsg);
struct virtio_device *virtio_9p_device(struct virtio_9p *p);
void virtio_9p_destroy(struct virtio_9p *p);

#endif
