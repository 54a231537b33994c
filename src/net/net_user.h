/* net_user.h: user-mode networking (libslirp) as a net_port, serviced on the VM's libuv loop. */
#ifndef KILN_NET_USER_H
#define KILN_NET_USER_H

#include <uv.h>

#include "kiln.h"
#include "net/net_port.h"
#include "util.h"

/*
 * The guest's network: 10.0.2.0/24 with the gateway 10.0.2.2 (connections to it reach the host's
 * 127.0.0.1), DNS 10.0.2.3 and DHCP leases from 10.0.2.15; IPv6 fec0::/64 with fec0::2 and DNS
 * fec0::3.
 */
#define NET_USER_GUEST_ADDR "10.0.2.15"

/*
 * Frames for the guest that the port holds while the guest has no receive buffers (and those
 * slirp produced during ops->send, handed over before the loop next sleeps). Beyond either
 * bound a frame is dropped and counted in port->dropped.
 */
#define NET_USER_QUEUE_FRAMES 256u
#define NET_USER_QUEUE_BYTES (1u << 20)

/*
 * Create a user-mode port for net device `index` ("net%u (user)" in messages). Every hostfwd
 * listening socket is bound here, so a busy or bad port is reported at once. A hostfwd with no
 * host address listens on 127.0.0.1 (QEMU's default is every address: kiln deliberately does not
 * expose the guest beyond this host unless asked); one with no guest address forwards to
 * 10.0.2.15. loop is the VM's loop; the port creates its handles on it in ops->start.
 *
 * The port follows net_port.h, with vnet_hdr false and no offloads. Frames slirp produces for the
 * guest while inside ops->send are never handed to peer->receive from within send: they are
 * queued and delivered before the loop next waits. After ops->stop the loop must run (uv_run)
 * before ops->destroy, so that the handles' close callbacks run.
 *
 * Returns 0 or -errno with a one-line message in errmsg (KILN_ERRMSG_MAX bytes) naming the input.
 */
int net_user_create(const struct kiln_net *cfg, unsigned index, uv_loop_t *loop,
                    const struct kiln_log *log, struct net_port **out, char *errmsg);

#endif
