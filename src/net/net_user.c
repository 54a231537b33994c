/*
 * net_user.c: user-mode networking. libslirp runs a TCP/IP stack on the guest's side and ordinary
 * sockets on the host's; this file feeds it guest frames, hands its frames to the device, and
 * services its sockets and timers on the VM's libuv loop.
 *
 * One epoll set per port holds the sockets slirp wants watched, and one uv_poll_t watches that
 * set, so the loop sees one descriptor however many connections the guest opens. Before the loop
 * waits, a uv_prepare_t asks slirp for its poll set (slirp_pollfds_fill), brings the epoll set up
 * to date and arms a uv_timer_t for slirp's timeout. When the set is readable or the timer fires,
 * one service pass collects the ready descriptors and calls slirp_pollfds_poll.
 *
 * slirp's own timers (version 4 timer_new_opaque) are plain records kept here and folded into the
 * same uv_timer_t: they are created inside slirp_new, before the port has a loop handle, and freed
 * inside slirp_cleanup, after the VM's loop has run for the last time.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "net/net_user.h"

#define GUEST_ERRORS_LOGGED 3u
#define ETH_FRAME_PAD 60u /* shortest Ethernet frame without its FCS */

/* One descriptor as slirp listed it in the last fill; its index is what add_poll returned. */
struct poll_req {
    int fd;
    int events; /* SLIRP_POLL_* */
};

/* What the port knows about one descriptor number. */
struct fd_state {
    uint32_t want;     /* epoll events wanted in the current fill */
    uint32_t revents;  /* epoll events collected in the current service pass */
    unsigned fill_gen; /* fill in which `want` was computed */
    unsigned sync_gen; /* fill in which the epoll set was updated for it */
    unsigned poll_gen; /* service pass in which `revents` was collected */
    bool in_epoll;     /* registered in the epoll set (as far as the port knows) */
};

struct slirp_timer {
    struct slirp_timer *next;
    SlirpTimerId id;
    void *cb_opaque;
    int64_t expire_ms; /* slirp's clock, milliseconds */
    bool armed;
};

/* A frame waiting for the guest: bytes [off, off + len) of the queue's ring. */
struct queued_frame {
    uint32_t off;
    uint32_t len;
};

/* The loop handles, allocated apart from the port: the last close callback frees them. */
struct user_handles {
    uv_poll_t poll;
    uv_prepare_t prepare;
    uv_timer_t timer;
    unsigned open;
};

/*
 * libslirp, loaded with dlopen by each user-mode port: a VM without one never maps libslirp and
 * the glib it pulls in (about 1 MiB of RSS and a millisecond of start-up). Each port holds its
 * own handle (dlopen counts references), so there is no process-wide state.
 */
struct slirp_api {
    void *dl;
    __typeof__(slirp_new) *new_;
    __typeof__(slirp_cleanup) *cleanup;
    __typeof__(slirp_input) *input;
    __typeof__(slirp_pollfds_fill) *pollfds_fill;
    __typeof__(slirp_pollfds_poll) *pollfds_poll;
    __typeof__(slirp_handle_timer) *handle_timer;
    __typeof__(slirp_add_hostfwd) *add_hostfwd;
};

#define SLIRP_SONAME "libslirp.so.0"

struct net_user {
    struct net_port port;
    struct slirp_api api;
    unsigned index;
    const struct kiln_log *log;
    Slirp *slirp;
    int epfd;
    struct user_handles *h; /* NULL unless started */

    /* The last fill: index -> descriptor. */
    struct poll_req *reqs;
    unsigned nreqs, reqs_cap;
    bool fill_valid; /* nothing has run in slirp since the last fill */
    unsigned fill_gen, poll_gen;

    /* Descriptors in the epoll set, and per-descriptor state indexed by fd. */
    int *watched;
    unsigned nwatched, watched_cap; /* watched_next has the same capacity */
    int *watched_next;
    struct fd_state *fds;
    unsigned fds_cap;
    struct epoll_event *events;
    unsigned events_cap;

    struct slirp_timer *timers;

    /* Frames for the guest that wait in a ring of NET_USER_QUEUE_BYTES. */
    uint8_t *ring;
    struct queued_frame q[NET_USER_QUEUE_FRAMES];
    unsigned q_head, q_count;
    uint32_t ring_wr;
    bool rx_paused; /* the guest had no buffers: slirp reads nothing from its host sockets */
    bool in_send;   /* inside slirp_input on behalf of ops->send */
    bool delivered; /* frames went to the peer in the current burst */

    unsigned guest_errors;
    bool epoll_warned;

    uint8_t *txbuf; /* NET_FRAME_MAX: a guest frame gathered from several iovecs */
};

static struct net_user *to_user(struct net_port *p)
{
    return (struct net_user *)p;
}

/* ---- the receive queue ---- */

static bool queue_push(struct net_user *u, const uint8_t *buf, size_t len)
{
    if (u->q_count == NET_USER_QUEUE_FRAMES || len > NET_USER_QUEUE_BYTES)
        return false;
    uint32_t off;
    if (u->q_count == 0) {
        off = 0;
    } else {
        uint32_t rd = u->q[u->q_head].off;
        uint32_t wr = u->ring_wr;
        if (wr > rd) { /* used: [rd, wr); free: [wr, end) and [0, rd) */
            if (len <= NET_USER_QUEUE_BYTES - wr)
                off = wr;
            else if (len <= rd)
                off = 0;
            else
                return false;
        } else { /* wrapped: used [rd, end) and [0, wr); free: [wr, rd) */
            if (len > rd - wr)
                return false;
            off = wr;
        }
    }
    memcpy(u->ring + off, buf, len);
    unsigned slot = (u->q_head + u->q_count) % NET_USER_QUEUE_FRAMES;
    u->q[slot].off = off;
    u->q[slot].len = (uint32_t)len;
    u->q_count++;
    u->ring_wr = off + (uint32_t)len;
    return true;
}

static void queue_pop(struct net_user *u)
{
    u->q_head = (u->q_head + 1) % NET_USER_QUEUE_FRAMES;
    u->q_count--;
}

/* The guest has no receive buffers: stop reading host sockets until rx_resume. */
static void rx_pause(struct net_user *u)
{
    if (!u->rx_paused) {
        u->rx_paused = true;
        u->fill_valid = false; /* the next fill leaves out POLLIN */
    }
}

static void end_burst(struct net_user *u)
{
    if (u->delivered) {
        u->delivered = false;
        u->port.peer->receive_done(u->port.peer->dev);
    }
}

/* Offer one frame to the device: false if it has no room (the frame stays with the caller). */
static bool deliver(struct net_user *u, const uint8_t *buf, size_t len)
{
    int ret = u->port.peer->receive(u->port.peer->dev, buf, len);
    if (ret == -EAGAIN)
        return false;
    if (ret == 0)
        u->delivered = true;
    else
        u->port.dropped++;
    return true;
}

/* Hand queued frames to the device in order, until it is full or the queue is empty. */
static void drain_queue(struct net_user *u)
{
    if (!u->port.peer)
        return;
    while (u->q_count) {
        const struct queued_frame *f = &u->q[u->q_head];
        if (!deliver(u, u->ring + f->off, f->len)) {
            rx_pause(u);
            break;
        }
        queue_pop(u);
    }
    if (u->q_count == 0 && u->rx_paused) {
        u->rx_paused = false;
        u->fill_valid = false; /* read host sockets again */
    }
    end_burst(u);
}

/* ---- slirp callbacks ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_user *u = opaque;
    if (len < NET_FRAME_MIN || len > NET_FRAME_MAX || !u->port.peer) {
        u->port.dropped++;
        return (ssize_t)len;
    }
    if (!u->in_send && !u->rx_paused && u->q_count == 0) {
        if (deliver(u, buf, len))
            return (ssize_t)len;
        rx_pause(u);
    }
    if (!queue_push(u, buf, len))
        u->port.dropped++;
    return (ssize_t)len; /* what does not fit is dropped: TCP retransmits, as on a real link */
}

static void cb_guest_error(const char *msg, void *opaque)
{
    struct net_user *u = opaque;
    if (u->guest_errors < GUEST_ERRORS_LOGGED)
        klog(u->log, KILN_LOG_WARN, "net%u (user): guest error: %s%s", u->index, msg,
             u->guest_errors + 1 == GUEST_ERRORS_LOGGED ? " (further ones not reported)" : "");
    if (u->guest_errors < GUEST_ERRORS_LOGGED)
        u->guest_errors++;
}

static int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cb_clock_get_ns(void *opaque)
{
    (void)opaque;
    return clock_ns();
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct net_user *u = opaque;
    struct slirp_timer *t = calloc(1, sizeof(*t));
    if (!t) {
        klog(u->log, KILN_LOG_ERROR, "net%u (user): out of memory for a timer", u->index);
        return NULL;
    }
    t->id = id;
    t->cb_opaque = cb_opaque;
    t->next = u->timers;
    u->timers = t;
    return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
    struct net_user *u = opaque;
    for (struct slirp_timer **pp = &u->timers; *pp; pp = &(*pp)->next) {
        if (*pp == timer) {
            *pp = (*pp)->next;
            free(timer);
            return;
        }
    }
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    struct net_user *u = opaque;
    struct slirp_timer *t = timer;
    if (!t)
        return;
    t->expire_ms = expire_ms;
    t->armed = true;
    u->fill_valid = false; /* the next prepare recomputes the wake-up time */
}

/* slirp 4.7 announces sockets here, but not reliably with the right descriptor: unused. */
static void cb_register_poll_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
    (void)fd;
    (void)opaque;
}

static void cb_notify(void *opaque)
{
    struct net_user *u = opaque;
    u->fill_valid = false;
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_register_poll_fd,
    .unregister_poll_fd = cb_unregister_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

/* ---- polling ---- */

static bool grow(void **arr, unsigned *cap, unsigned need, size_t elem)
{
    if (need <= *cap)
        return true;
    unsigned n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, (size_t)n * elem);
    if (!p)
        return false;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *arr = p;
    *cap = n;
    return true;
}

static int cb_add_poll(int fd, int events, void *opaque)
{
    struct net_user *u = opaque;
    if (fd < 0 || !grow((void **)&u->reqs, &u->reqs_cap, u->nreqs + 1, sizeof(*u->reqs)) ||
        !grow((void **)&u->fds, &u->fds_cap, (unsigned)fd + 1, sizeof(*u->fds)))
        return -1; /* slirp then skips this socket in the poll pass */
    u->reqs[u->nreqs].fd = fd;
    u->reqs[u->nreqs].events = events;
    return (int)u->nreqs++;
}

static uint32_t to_epoll(int events, bool rx_paused)
{
    uint32_t ev = 0;
    if ((events & SLIRP_POLL_IN) && !rx_paused)
        ev |= EPOLLIN;
    if ((events & SLIRP_POLL_PRI) && !rx_paused)
        ev |= EPOLLPRI;
    if (events & SLIRP_POLL_OUT)
        ev |= EPOLLOUT;
    if (events & SLIRP_POLL_ERR)
        ev |= EPOLLERR;
    if (events & SLIRP_POLL_HUP)
        ev |= EPOLLHUP;
    return ev;
}

static int from_epoll(uint32_t ev)
{
    int r = 0;
    if (ev & EPOLLIN)
        r |= SLIRP_POLL_IN;
    if (ev & EPOLLOUT)
        r |= SLIRP_POLL_OUT;
    if (ev & EPOLLPRI)
        r |= SLIRP_POLL_PRI;
    if (ev & EPOLLERR)
        r |= SLIRP_POLL_ERR;
    if (ev & EPOLLHUP)
        r |= SLIRP_POLL_HUP;
    return r;
}

static void epoll_warn(struct net_user *u, const char *what, int fd, int err)
{
    if (u->epoll_warned)
        return;
    u->epoll_warned = true;
    klog(u->log, KILN_LOG_WARN, "net%u (user): epoll %s fd %d: %s", u->index, what, fd,
         strerror(err));
}

/*
 * Put fd in the epoll set with events. Every listed descriptor is written on every sync, even
 * with unchanged events: slirp closes sockets without telling (epoll forgets them by itself) and
 * the kernel hands the same number to the next socket, so "unchanged" cannot be trusted.
 */
static bool epoll_set(struct net_user *u, int fd, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    struct fd_state *s = &u->fds[fd];
    int op = s->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    int ret = epoll_ctl(u->epfd, op, fd, &ev);
    if (ret < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        ret = epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (ret < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
        ret = epoll_ctl(u->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (ret < 0) {
        epoll_warn(u, "add", fd, errno);
        s->in_epoll = false;
        return false;
    }
    s->in_epoll = true;
    return true;
}

/* Make the epoll set hold exactly the descriptors of the last fill, with their events. */
static void sync_epoll(struct net_user *u)
{
    unsigned gen = u->fill_gen;
    for (unsigned i = 0; i < u->nreqs; i++) {
        struct fd_state *s = &u->fds[u->reqs[i].fd];
        if (s->fill_gen != gen) {
            s->fill_gen = gen;
            s->want = 0;
        }
        s->want |= to_epoll(u->reqs[i].events, u->rx_paused);
    }
    /* The descriptors of this fill, each once, become the new watched list. */
    unsigned cap = u->watched_cap;
    if (!grow((void **)&u->watched_next, &cap, u->nreqs, sizeof(int)) ||
        !grow((void **)&u->watched, &u->watched_cap, u->nreqs, sizeof(int))) {
        epoll_warn(u, "sync", -1, ENOMEM);
        return;
    }
    unsigned n = 0;
    for (unsigned i = 0; i < u->nreqs; i++) {
        int fd = u->reqs[i].fd;
        struct fd_state *s = &u->fds[fd];
        if (s->sync_gen == gen)
            continue;
        s->sync_gen = gen;
        if (epoll_set(u, fd, s->want))
            u->watched_next[n++] = fd;
    }
    /* Those slirp no longer lists leave the set (a closed one has left it already). */
    for (unsigned i = 0; i < u->nwatched; i++) {
        int fd = u->watched[i];
        struct fd_state *s = &u->fds[fd];
        if (s->fill_gen == gen || !s->in_epoll)
            continue;
        if (epoll_ctl(u->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT && errno != EBADF)
            epoll_warn(u, "del", fd, errno);
        s->in_epoll = false;
    }
    int *t = u->watched;
    u->watched = u->watched_next;
    u->watched_next = t;
    u->nwatched = n;
}

/* Ask slirp what to watch and for how long it may sleep; returns that time in milliseconds. */
static uint64_t fill(struct net_user *u)
{
    uint32_t timeout = UINT32_MAX;
    u->nreqs = 0;
    u->fill_gen++;
    u->api.pollfds_fill(u->slirp, &timeout, cb_add_poll, u);
    sync_epoll(u);
    u->fill_valid = true;

    int64_t now = clock_ns() / 1000000;
    uint64_t ms = timeout;
    for (struct slirp_timer *t = u->timers; t; t = t->next) {
        if (!t->armed)
            continue;
        uint64_t left = t->expire_ms > now ? (uint64_t)(t->expire_ms - now) : 0;
        if (left < ms)
            ms = left;
    }
    return ms;
}

static void run_timers(struct net_user *u)
{
    int64_t now = clock_ns() / 1000000;
    /* A handler may re-arm, free or create timers: look again from the start after each. */
    for (unsigned budget = 16; budget; budget--) {
        struct slirp_timer *t = u->timers;
        while (t && !(t->armed && t->expire_ms <= now))
            t = t->next;
        if (!t)
            break;
        t->armed = false;
        u->api.handle_timer(u->slirp, t->id, t->cb_opaque);
    }
}

static int cb_get_revents(int idx, void *opaque)
{
    struct net_user *u = opaque;
    if (idx < 0 || (unsigned)idx >= u->nreqs)
        return 0;
    const struct fd_state *s = &u->fds[u->reqs[idx].fd];
    return s->poll_gen == u->poll_gen ? from_epoll(s->revents) : 0;
}

/* One pass: collect what is ready, let slirp read, write, accept and run its TCP timers. */
static void service(struct net_user *u)
{
    /* The indices slirp will ask about must come from a fill made after slirp last ran. */
    if (!u->fill_valid)
        fill(u);
    int n = 0;
    if (u->nwatched) {
        if (!grow((void **)&u->events, &u->events_cap, u->nwatched, sizeof(*u->events)))
            return;
        n = epoll_wait(u->epfd, u->events, (int)u->nwatched, 0);
    }
    int select_error = n < 0 && errno != EINTR;
    if (select_error)
        epoll_warn(u, "wait", u->epfd, errno);
    u->poll_gen++;
    for (int i = 0; i < n; i++) {
        struct fd_state *s = &u->fds[u->events[i].data.fd];
        s->revents = u->events[i].events;
        s->poll_gen = u->poll_gen;
    }
    u->api.pollfds_poll(u->slirp, select_error, cb_get_revents, u);
    run_timers(u);
    u->fill_valid = false;
    end_burst(u);
}

static void on_timer(uv_timer_t *t)
{
    service(t->data);
}

/* Before the loop waits: a fresh fill, the epoll set to match, and slirp's wake-up time. */
static void arm(struct net_user *u)
{
    uint64_t ms = fill(u);
    end_burst(u); /* a fill may expire UDP sockets; it sends nothing, but be safe */
    uv_timer_stop(&u->h->timer);
    if (ms != UINT32_MAX)
        uv_timer_start(&u->h->timer, on_timer, ms, 0);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct net_user *u = h->data;
    (void)events;
    if (status < 0)
        epoll_warn(u, "poll", u->epfd, -status);
    service(u);
}

static void on_prepare(uv_prepare_t *h)
{
    struct net_user *u = h->data;
    if (!u->rx_paused && u->q_count)
        drain_queue(u); /* frames slirp made during ops->send */
    if (!u->fill_valid)
        arm(u);
}

/* ---- port operations ---- */

static int user_send(struct net_port *p, const struct iovec *iov, unsigned n)
{
    struct net_user *u = to_user(p);
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        if (iov[i].iov_len > NET_FRAME_MAX - len) {
            p->dropped++;
            return 0;
        }
        len += iov[i].iov_len;
    }
    if (len < NET_FRAME_MIN) {
        p->dropped++;
        return 0;
    }
    const uint8_t *frame = iov[0].iov_base;
    size_t pass = len;
    /* libslirp reads ARP and NC-SI headers without checking the length: pad short frames. */
    if (n > 1 || len < ETH_FRAME_PAD) {
        size_t off = 0;
        for (unsigned i = 0; i < n; i++) {
            memcpy(u->txbuf + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        if (len < ETH_FRAME_PAD) {
            memset(u->txbuf + len, 0, ETH_FRAME_PAD - len);
            pass = ETH_FRAME_PAD;
        }
        frame = u->txbuf;
    }
    u->in_send = true;
    u->api.input(u->slirp, frame, (int)pass);
    u->in_send = false;
    u->fill_valid = false;
    return 0;
}

static void user_rx_resume(struct net_port *p)
{
    drain_queue(to_user(p));
}

static int user_set_rx_offloads(struct net_port *p, unsigned offloads)
{
    (void)p;
    (void)offloads;
    return 0; /* slirp makes complete frames: nothing to turn on or off */
}

static void handle_closed(uv_handle_t *handle)
{
    struct user_handles *h = handle->data;
    if (--h->open == 0)
        free(h);
}

static int user_start(struct net_port *p, uv_loop_t *loop)
{
    struct net_user *u = to_user(p);
    if (u->h)
        return 0;
    struct user_handles *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    int ret = uv_poll_init(loop, &h->poll, u->epfd);
    if (ret < 0) {
        free(h);
        return ret;
    }
    uv_prepare_init(loop, &h->prepare);
    uv_timer_init(loop, &h->timer);
    h->poll.data = u;
    h->prepare.data = u;
    h->timer.data = u;
    h->open = 3;
    u->h = h;
    /* The loop lives for the VM, not for slirp's housekeeping. */
    uv_unref((uv_handle_t *)&h->prepare);
    uv_unref((uv_handle_t *)&h->timer);
    u->fill_valid = false;
    uv_prepare_start(&h->prepare, on_prepare);
    ret = uv_poll_start(&h->poll, UV_READABLE, on_poll);
    if (ret < 0) {
        p->ops->stop(p);
        return ret;
    }
    return 0;
}

static void user_stop(struct net_port *p)
{
    struct net_user *u = to_user(p);
    struct user_handles *h = u->h;
    if (!h)
        return;
    u->h = NULL;
    /* From here on the handles belong to their close callbacks. */
    h->poll.data = h;
    h->prepare.data = h;
    h->timer.data = h;
    uv_close((uv_handle_t *)&h->poll, handle_closed);
    uv_close((uv_handle_t *)&h->prepare, handle_closed);
    uv_close((uv_handle_t *)&h->timer, handle_closed);
}

static void user_destroy(struct net_port *p)
{
    if (!p)
        return;
    struct net_user *u = to_user(p);
    user_stop(p);   /* harmless if stopped; the handles are freed when the loop next runs */
    p->peer = NULL; /* the device may be gone: whatever slirp still emits is dropped */
    if (u->slirp)
        u->api.cleanup(u->slirp); /* closes slirp's sockets and frees its timers */
    while (u->timers)             /* none are left by slirp_cleanup in 4.7; be safe */
        cb_timer_free(u->timers, u);
    if (u->api.dl)
        dlclose(u->api.dl);
    if (u->epfd >= 0)
        close(u->epfd);
    free(u->reqs);
    free(u->watched);
    free(u->watched_next);
    free(u->fds);
    free(u->events);
    free(u->ring);
    free(u->txbuf);
    free(u);
}

static const struct net_port_ops user_ops = {
    .send = user_send,
    .rx_resume = user_rx_resume,
    .set_rx_offloads = user_set_rx_offloads,
    .start = user_start,
    .stop = user_stop,
    .destroy = user_destroy,
};

/* ---- creation ---- */

/* dlsym into *slot, or false. (POSIX guarantees that function pointers survive the cast.) */
static bool sym(void *dl, const char *name, void *slot)
{
    void *f = dlsym(dl, name);
    memcpy(slot, &f, sizeof(f));
    return f != NULL;
}

static int load_slirp(struct slirp_api *a, char *errmsg)
{
    a->dl = dlopen(SLIRP_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!a->dl)
        return kiln_fail(errmsg, ENOENT, "--net user: cannot load %s (install libslirp0): %s",
                         SLIRP_SONAME, dlerror());
    bool ok = sym(a->dl, "slirp_new", &a->new_) && sym(a->dl, "slirp_cleanup", &a->cleanup) &&
              sym(a->dl, "slirp_input", &a->input) &&
              sym(a->dl, "slirp_pollfds_fill", &a->pollfds_fill) &&
              sym(a->dl, "slirp_pollfds_poll", &a->pollfds_poll) &&
              sym(a->dl, "slirp_handle_timer", &a->handle_timer) &&
              sym(a->dl, "slirp_add_hostfwd", &a->add_hostfwd);
    if (!ok)
        return kiln_fail(errmsg, ENOSYS, "--net user: %s lacks a function kiln needs: %s",
                         SLIRP_SONAME, dlerror());
    return 0;
}

static void fwd_name(const struct kiln_hostfwd *f, char *buf, size_t len)
{
    const char *ha = f->host_addr && *f->host_addr ? f->host_addr : "127.0.0.1";
    snprintf(buf, len, "%s:%s:%u", f->udp ? "udp" : "tcp", ha, f->host_port);
}

static int add_hostfwd(struct net_user *u, const struct kiln_hostfwd *f, struct in_addr net,
                       char *errmsg)
{
    char name[96];
    fwd_name(f, name, sizeof(name));
    struct in_addr host, guest;
    const char *ha = f->host_addr && *f->host_addr ? f->host_addr : "127.0.0.1";
    if (inet_pton(AF_INET, ha, &host) != 1)
        return kiln_fail(errmsg, EINVAL,
                         "--net user: hostfwd %s: bad host address \"%s\" (an IPv4 address)", name,
                         ha);
    const char *ga = f->guest_addr && *f->guest_addr ? f->guest_addr : NET_USER_GUEST_ADDR;
    if (inet_pton(AF_INET, ga, &guest) != 1)
        return kiln_fail(errmsg, EINVAL,
                         "--net user: hostfwd %s: bad guest address \"%s\" (an IPv4 address)", name,
                         ga);
    uint32_t g = ntohl(guest.s_addr), host_part = g & 0xff;
    if ((g & 0xffffff00u) != ntohl(net.s_addr) || host_part == 0 || host_part == 2 ||
        host_part == 3 || host_part == 255)
        return kiln_fail(errmsg, EINVAL,
                         "--net user: hostfwd %s: guest address %s is not a guest's address in "
                         "10.0.2.0/24",
                         name, ga);
    if (f->guest_port == 0)
        return kiln_fail(errmsg, EINVAL, "--net user: hostfwd %s: guest port 0", name);
    errno = 0;
    if (u->api.add_hostfwd(u->slirp, f->udp, host, f->host_port, guest, f->guest_port) < 0) {
        int err = errno ? errno : EADDRNOTAVAIL;
        return kiln_fail(errmsg, err, "--net user: hostfwd %s: cannot listen: %s", name,
                         strerror(err));
    }
    return 0;
}

int net_user_create(const struct kiln_net *cfg, unsigned index, uv_loop_t *loop,
                    const struct kiln_log *log, struct net_port **out, char *errmsg)
{
    (void)loop; /* the handles are created in ops->start, on the loop it is given */
    *out = NULL;
    struct net_user *u = calloc(1, sizeof(*u));
    if (!u)
        return kiln_fail(errmsg, ENOMEM, "--net user: out of memory");
    u->epfd = -1;
    u->port.ops = &user_ops;
    u->port.vnet_hdr = false;
    u->port.offloads = 0;
    snprintf(u->port.name, sizeof(u->port.name), "user");
    u->index = index;
    u->log = log;
    int ret;
    u->ring = malloc(NET_USER_QUEUE_BYTES);
    u->txbuf = malloc(NET_FRAME_MAX + ETH_FRAME_PAD);
    if (!u->ring || !u->txbuf) {
        ret = kiln_fail(errmsg, ENOMEM, "--net user: out of memory");
        goto fail;
    }
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (u->epfd < 0) {
        ret = kiln_fail(errmsg, errno, "--net user: epoll_create1: %s", strerror(errno));
        goto fail;
    }

    SlirpConfig sc = {
        .version = 4,
        .restricted = cfg->restricted,
        .in_enabled = true,
        .if_mtu = 0, /* libslirp's default, 1500 */
        .in6_enabled = true,
        .vprefix_len = 64,
    };
    inet_pton(AF_INET, "10.0.2.0", &sc.vnetwork);
    inet_pton(AF_INET, "255.255.255.0", &sc.vnetmask);
    inet_pton(AF_INET, "10.0.2.2", &sc.vhost);
    inet_pton(AF_INET, NET_USER_GUEST_ADDR, &sc.vdhcp_start);
    inet_pton(AF_INET, "10.0.2.3", &sc.vnameserver);
    inet_pton(AF_INET6, "fec0::", &sc.vprefix_addr6);
    inet_pton(AF_INET6, "fec0::2", &sc.vhost6);
    inet_pton(AF_INET6, "fec0::3", &sc.vnameserver6);
    if ((ret = load_slirp(&u->api, errmsg)) < 0)
        goto fail;
    u->slirp = u->api.new_(&sc, &slirp_callbacks, u);
    if (!u->slirp) {
        ret = kiln_fail(errmsg, ENOMEM, "--net user: cannot create the user-mode network");
        goto fail;
    }
    for (unsigned i = 0; i < cfg->nhostfwd && i < KILN_MAX_HOSTFWD; i++) {
        ret = add_hostfwd(u, &cfg->hostfwd[i], sc.vnetwork, errmsg);
        if (ret < 0)
            goto fail;
    }
    *out = &u->port;
    return 0;

fail:
    user_destroy(&u->port);
    return ret;
}
