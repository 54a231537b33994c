/* net_tap.c: TAP back end (and any frame-per-read fd): one uv_poll, bounded to one held frame. */
#include "net/net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Frames read per readable event before the loop services others. */
#define READ_BURST 64
#define READ_MAX (NET_HDR_LEN + NET_FRAME_MAX)

struct fd_port {
    struct net_port port;
    int fd;
    bool is_tap; /* TUNSETOFFLOAD applies */
    const struct kiln_log *log;
    uv_poll_t poll;
    bool poll_open;
    int events;      /* what poll is started for (0: stopped) */
    bool rx_paused;  /* the device has no room: read nothing until rx_resume */
    bool want_write; /* a send hit EAGAIN: tell the device when the fd is writable */
    bool pending;    /* buf holds a frame the device has not taken yet */
    size_t pending_len;
    bool read_err_logged, write_err_logged;
    uint8_t buf[READ_MAX + 1]; /* + 1 to tell an oversized frame from a maximal one */
};

static struct fd_port *to_fd(struct net_port *p)
{
    return (struct fd_port *)p;
}

static void poll_cb(uv_poll_t *h, int status, int events);

/* Poll for what is wanted now: reads unless paused, writability while a send waits. */
static void update_poll(struct fd_port *f)
{
    if (!f->poll_open)
        return;
    int ev = (f->rx_paused ? 0 : UV_READABLE) | (f->want_write ? UV_WRITABLE : 0);
    if (ev == f->events)
        return;
    f->events = ev;
    if (ev == 0)
        uv_poll_stop(&f->poll);
    else
        uv_poll_start(&f->poll, ev, poll_cb);
}

/* Offer the frame in buf to the device: false if it has no room (the frame stays held). */
static bool deliver(struct fd_port *f, size_t len)
{
    const struct net_port_peer *peer = f->port.peer;
    if (peer->receive(peer->dev, f->buf, len) == -EAGAIN) {
        f->pending = true;
        f->pending_len = len;
        f->rx_paused = true;
        return false;
    }
    f->pending = false;
    return true;
}

static void read_frames(struct fd_port *f)
{
    unsigned delivered = 0;
    for (unsigned i = 0; i < READ_BURST && !f->rx_paused; i++) {
        ssize_t n = read(f->fd, f->buf, sizeof(f->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN && !f->read_err_logged) {
                f->read_err_logged = true;
                klog(f->log, KILN_LOG_WARN, "net %s: read: %s (not logged again)", f->port.name,
                     strerror(errno));
            }
            break;
        }
        if ((size_t)n > READ_MAX ||
            (size_t)n < (f->port.vnet_hdr ? NET_HDR_LEN : 0) + NET_FRAME_MIN) {
            atomic_fetch_add_explicit(&f->port.dropped, 1, memory_order_relaxed);
            continue;
        }
        if (deliver(f, (size_t)n))
            delivered++;
    }
    if (delivered)
        f->port.peer->receive_done(f->port.peer->dev);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct fd_port *f = h->data;
    if (status < 0) {
        if (!f->read_err_logged)
            klog(f->log, KILN_LOG_WARN, "net %s: poll: %s", f->port.name, uv_strerror(status));
        f->read_err_logged = true;
        return;
    }
    if ((events & UV_WRITABLE) && f->want_write) {
        f->want_write = false;
        update_poll(f);
        f->port.peer->writable(f->port.peer->dev);
    }
    if ((events & UV_READABLE) && !f->rx_paused)
        read_frames(f);
    update_poll(f);
}

static int fd_send(struct net_port *p, const struct iovec *iov, unsigned n)
{
    struct fd_port *f = to_fd(p);
    for (;;) {
        if (writev(f->fd, iov, (int)n) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            f->want_write = true;
            update_poll(f);
            return -EAGAIN;
        }
        int err = errno;
        if (!f->write_err_logged)
            klog(f->log, err == EINVAL ? KILN_LOG_DEBUG : KILN_LOG_WARN,
                 "net %s: frame refused: %s (not logged again)", p->name, strerror(err));
        f->write_err_logged = true;
        return -err;
    }
}

static void fd_rx_resume(struct net_port *p)
{
    struct fd_port *f = to_fd(p);
    f->rx_paused = false;
    if (f->pending && deliver(f, f->pending_len))
        f->port.peer->receive_done(f->port.peer->dev);
    update_poll(f);
}

static int fd_set_rx_offloads(struct net_port *p, unsigned offloads)
{
    struct fd_port *f = to_fd(p);
    if (!f->is_tap)
        return 0;
    unsigned flags = 0;
    flags |= offloads & NET_OFFLOAD_CSUM ? TUN_F_CSUM : 0;
    flags |= offloads & NET_OFFLOAD_TSO4 ? TUN_F_TSO4 : 0;
    flags |= offloads & NET_OFFLOAD_TSO6 ? TUN_F_TSO6 : 0;
    flags |= offloads & NET_OFFLOAD_ECN ? TUN_F_TSO_ECN : 0;
    flags |= offloads & NET_OFFLOAD_UFO ? TUN_F_UFO : 0;
    return ioctl(f->fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

static int fd_start(struct net_port *p, uv_loop_t *loop)
{
    struct fd_port *f = to_fd(p);
    int ret = uv_poll_init(loop, &f->poll, f->fd);
    if (ret < 0)
        return ret;
    f->poll.data = f;
    f->poll_open = true;
    f->events = 0;
    update_poll(f);
    return 0;
}

static void fd_stop(struct net_port *p)
{
    struct fd_port *f = to_fd(p);
    if (f->poll_open)
        uv_close((uv_handle_t *)&f->poll, NULL);
    f->poll_open = false;
}

static void fd_destroy(struct net_port *p)
{
    struct fd_port *f = to_fd(p);
    close(f->fd);
    free(f);
}

static const struct net_port_ops fd_ops = {
    .send = fd_send,
    .rx_resume = fd_rx_resume,
    .set_rx_offloads = fd_set_rx_offloads,
    .start = fd_start,
    .stop = fd_stop,
    .destroy = fd_destroy,
};

int net_fd_port_create(int fd, bool vnet_hdr, unsigned offloads, const char *name,
                       const struct kiln_log *log, struct net_port **out)
{
    struct fd_port *f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    f->fd = fd;
    f->log = log;
    f->port.ops = &fd_ops;
    f->port.vnet_hdr = vnet_hdr;
    f->port.offloads = vnet_hdr ? offloads : 0;
    snprintf(f->port.name, sizeof(f->port.name), "%s", name);
    *out = &f->port;
    return 0;
}

/* ---- Opening a TAP interface ---- */

/* Read a hex or decimal number from /sys/class/net/NAME/FILE. Returns 0 or -errno. */
static int sysfs_number(const char *name, const char *file, unsigned long *v)
{
    char path[96], text[32];
    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", name, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (err)
        return err;
    text[n] = '\0';
    char *end;
    *v = strtoul(text, &end, 0);
    return end == text ? -EINVAL : 0;
}

static int check_name(const char *name, char *errmsg)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= IFNAMSIZ || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return kiln_fail(errmsg, EINVAL, "--net tap=%s: not a valid interface name (1-%d chars)",
                         name ? name : "", IFNAMSIZ - 1);
    return 0;
}

/* The interface must exist and be a TAP; its tun_flags tell (and whether it is multi-queue). */
static int check_tap(const char *name, unsigned long *tun_flags, const struct kiln_log *log,
                     char *errmsg)
{
    unsigned long ifflags = 0;
    if (sysfs_number(name, "flags", &ifflags) < 0)
        return kiln_fail(errmsg, ENODEV,
                         "--net tap=%s: no such network interface (create it first: ip tuntap "
                         "add dev %s mode tap user $USER)",
                         name, name);
    if (sysfs_number(name, "tun_flags", tun_flags) < 0)
        return kiln_fail(errmsg, EINVAL, "--net tap=%s: not a TAP interface", name);
    if (!(*tun_flags & IFF_TAP))
        return kiln_fail(errmsg, EINVAL, "--net tap=%s: a TUN (layer 3) interface, not a TAP",
                         name);
    if (!(ifflags & IFF_UP))
        klog(log, KILN_LOG_WARN,
             "net %s: interface is down: the guest's frames are dropped "
             "until it is up (ip link set %s up)",
             name, name);
    return 0;
}

static int attach_tap(int fd, const char *name, unsigned long tun_flags, char *errmsg)
{
    unsigned int features = 0;
    if (ioctl(fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR))
        return kiln_fail(errmsg, ENOTSUP,
                         "--net tap=%s: the kernel's TAP driver has no virtio-net headers", name);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (tun_flags & IFF_MULTI_QUEUE));
    if (ioctl(fd, TUNSETIFF, &ifr) == 0)
        return 0;
    int e = errno;
    if (e == EPERM || e == EACCES)
        return kiln_fail(errmsg, e,
                         "--net tap=%s: permission denied: the TAP belongs to another user or "
                         "group (ip tuntap add dev %s mode tap user $USER)",
                         name, name);
    if (e == EBUSY)
        return kiln_fail(errmsg, e, "--net tap=%s: in use by another program", name);
    return kiln_fail(errmsg, e, "--net tap=%s: cannot attach: %s", name, strerror(e));
}

/* The largest set of offloads the TAP accepts (then all off until the guest asks for them). */
static unsigned probe_offloads(int fd)
{
    static const struct {
        unsigned tun, port;
    } sets[] = {
        {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO,
         NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN |
             NET_OFFLOAD_UFO},
        {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
         NET_OFFLOAD_CSUM | NET_OFFLOAD_TSO4 | NET_OFFLOAD_TSO6 | NET_OFFLOAD_ECN},
        {TUN_F_CSUM, NET_OFFLOAD_CSUM},
    };
    unsigned found = 0;
    for (size_t i = 0; i < ARRAY_SIZE(sets) && !found; i++)
        if (ioctl(fd, TUNSETOFFLOAD, sets[i].tun) == 0)
            found = sets[i].port;
    ioctl(fd, TUNSETOFFLOAD, 0);
    return found;
}

int net_tap_open(const char *name, const struct kiln_log *log, struct net_port **out, char *errmsg)
{
    unsigned long tun_flags = 0;
    int ret = check_name(name, errmsg);
    if (ret == 0)
        ret = check_tap(name, &tun_flags, log, errmsg);
    if (ret < 0)
        return ret;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return kiln_fail(errmsg, errno, "--net tap=%s: cannot open /dev/net/tun: %s", name,
                         strerror(errno));
    ret = attach_tap(fd, name, tun_flags, errmsg);
    int hdr = NET_HDR_LEN;
    if (ret == 0 && ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
        ret = kiln_fail(errmsg, errno, "--net tap=%s: TUNSETVNETHDRSZ: %s", name, strerror(errno));
    if (ret < 0) {
        close(fd);
        return ret;
    }
    unsigned offloads = probe_offloads(fd);
    ret = net_fd_port_create(fd, true, offloads, name, log, out);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "--net tap=%s: out of memory", name);
    ((struct fd_port *)*out)->is_tap = true;
    return 0;
}
