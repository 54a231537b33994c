/* net_tap.h: net_port over a frame-per-read file descriptor: a TAP device, or a test socket. */
#ifndef KILN_NET_TAP_H
#define KILN_NET_TAP_H

#include <stdbool.h>

#include "net/net_port.h"
#include "util.h"

/*
 * Open the existing TAP interface name with IFF_VNET_HDR (a 12-byte header both ways) and find
 * the offloads it supports. Returns 0 or -errno with a one-line message in errmsg naming the
 * interface and the reason (missing, not a TAP, owned by another user, busy).
 */
int net_tap_open(const char *name, const struct kiln_log *log, struct net_port **out, char *errmsg);

/*
 * A port over fd (nonblocking; each read and write is one frame, as on a TAP or a SOCK_DGRAM
 * socket), owned from now on. With vnet_hdr frames carry the 12-byte header both ways.
 * Returns 0 or -ENOMEM (fd is closed then).
 */
int net_fd_port_create(int fd, bool vnet_hdr, unsigned offloads, const char *name,
                       const struct kiln_log *log, struct net_port **out);

#endif
