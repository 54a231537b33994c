/* api_server.c: accepts API clients on the loop, frames their lines and the file descriptors
 * sent with them, writes the replies. */
#include "api/api_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Received file descriptors a client may have waiting for the end of their line. */
#define API_PENDING_FDS (4 * API_FDS_MAX)

/*
 * A file descriptor received (fd -1: the mark of some the kernel dropped, MSG_CTRUNC) and the
 * buffer offset of the last byte that came with it: it belongs to the line holding that byte.
 * (A client sends a request line and its descriptors in one sendmsg; the kernel hands them over
 * with the first bytes of that message, and ends the read there.)
 */
struct pending_fd {
    int fd;
    size_t at;
};

struct api_client {
    uv_poll_t poll;
    int fd;
    struct api_server *server;
    char buf[API_LINE_MAX];
    size_t len;
    bool discarding; /* skipping the rest of an oversized line */
    bool closing;
    struct pending_fd pending[API_PENDING_FDS];
    unsigned npending;
    char *out; /* replies not yet written */
    size_t out_len;
};

struct api_server {
    uv_poll_t listener;
    int listen_fd;
    bool listening;
    const struct api_command *cmds;
    size_t ncmds;
    void *ctx;
    const struct kiln_log *log;
    struct api_client *clients[API_MAX_CLIENTS];
};

static void client_closed(uv_handle_t *h)
{
    struct api_client *c = h->data;
    close(c->fd);
    free(c->out);
    free(c);
}

static void client_close(struct api_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
        if (c->server->clients[i] == c)
            c->server->clients[i] = NULL;
    for (unsigned i = 0; i < c->npending; i++)
        if (c->pending[i].fd >= 0)
            close(c->pending[i].fd);
    c->npending = 0;
    uv_close((uv_handle_t *)&c->poll, client_closed);
}

static void client_poll_cb(uv_poll_t *h, int status, int events);

/* Watch for requests, and for room to write while replies wait. */
static void watch(struct api_client *c)
{
    int events = UV_READABLE | (c->out_len ? UV_WRITABLE : 0);
    if (!c->closing && uv_poll_start(&c->poll, events, client_poll_cb) < 0)
        client_close(c);
}

/* Write what the socket takes of the waiting replies: 0, or -1 when the client is gone. */
static int flush_out(struct api_client *c)
{
    while (c->out_len) {
        struct iovec iov = {.iov_base = c->out, .iov_len = c->out_len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        /* MSG_NOSIGNAL: a client gone must not raise SIGPIPE in a program embedding libkiln. */
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (w <= 0)
            return -1;
        c->out_len -= (size_t)w;
        memmove(c->out, c->out + w, c->out_len);
    }
    return 0;
}

/* Queue line (taken over) to the client; one that leaves too much unread is dropped. */
static void send_line(struct api_client *c, char *line)
{
    size_t n = line ? strlen(line) : 0;
    char *grown = line && !c->closing && c->out_len + n <= API_MAX_PENDING
                      ? realloc(c->out, c->out_len + n)
                      : NULL;
    if (!grown) {
        if (line && !c->closing && c->out_len + n > API_MAX_PENDING)
            klog(c->server->log, KILN_LOG_WARN, "API socket: a client reads no replies; dropped");
        free(line);
        client_close(c);
        return;
    }
    memcpy(grown + c->out_len, line, n);
    c->out = grown;
    c->out_len += n;
    free(line);
    if (flush_out(c) < 0)
        client_close(c);
    else
        watch(c);
}

/*
 * Move the descriptors of the line ending at offset nl into fds (a drop mark, or more than
 * API_FDS_MAX: fds->extra, the surplus closed); the later ones move down with the buffer.
 */
static void line_fds(struct api_client *c, size_t nl, struct api_fds *fds)
{
    *fds = (struct api_fds){.n = 0};
    unsigned keep = 0;
    for (unsigned i = 0; i < c->npending; i++) {
        struct pending_fd p = c->pending[i];
        if (p.at > nl) {
            p.at -= nl + 1;
            c->pending[keep++] = p;
        } else if (p.fd >= 0 && fds->n < API_FDS_MAX) {
            fds->fd[fds->n++] = p.fd;
        } else {
            if (p.fd >= 0)
                close(p.fd);
            fds->extra = true;
        }
    }
    c->npending = keep;
}

static void close_fds(struct api_fds *fds)
{
    for (unsigned i = 0; i < fds->n; i++)
        close(fds->fd[i]);
    fds->n = 0;
}

/* Answer every whole line in the buffer; keep the start of the next one. */
static void take_lines(struct api_client *c)
{
    char *nl;
    struct api_fds fds;
    while (!c->closing && (nl = memchr(c->buf, '\n', c->len))) {
        size_t n = (size_t)(nl - c->buf);
        line_fds(c, n, &fds);
        if (c->discarding) {
            c->discarding = false; /* the end of the oversized line */
        } else {
            struct api_server *s = c->server;
            send_line(c, api_handle_line(s->cmds, s->ncmds, s->ctx, c->buf, n, &fds));
        }
        close_fds(&fds); /* lent to the command only */
        c->len -= n + 1;
        memmove(c->buf, nl + 1, c->len);
    }
    if (!c->closing && c->len == sizeof(c->buf)) { /* full, and no newline in it */
        line_fds(c, c->len - 1, &fds);
        close_fds(&fds);
        if (!c->discarding)
            send_line(c, api_error_line("request line longer than 4096 bytes"));
        c->discarding = true;
        c->len = 0;
    }
}

/* Keep a received descriptor until its line is complete: 0, or -1 (closed) when too many wait. */
static int add_pending(struct api_client *c, int fd, size_t at)
{
    if (c->npending == API_PENDING_FDS) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    c->pending[c->npending++] = (struct pending_fd){.fd = fd, .at = at};
    return 0;
}

/* The descriptors of one received message, each for the line holding byte at. */
static int take_fds(struct api_client *c, struct msghdr *mh, size_t at)
{
    int ret = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            ret |= add_pending(c, fd, at);
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        ret |= add_pending(c, -1, at);
    return ret;
}

/* One read: request bytes, and any descriptors sent with them (close-on-exec at once). */
static void read_client(struct api_client *c)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * API_FDS_MAX)];
    } control;
    struct iovec iov = {.iov_base = c->buf + c->len, .iov_len = sizeof(c->buf) - c->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control.buf,
                        .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c); /* EOF or error: a partial request is dropped */
        return;
    }
    if (take_fds(c, &mh, c->len + (size_t)n - 1) < 0) {
        klog(c->server->log, KILN_LOG_WARN,
             "API socket: a client sent too many file descriptors; dropped");
        client_close(c);
        return;
    }
    c->len += (size_t)n;
    take_lines(c);
}

static void client_poll_cb(uv_poll_t *h, int status, int events)
{
    struct api_client *c = h->data;
    if (status < 0 || ((events & UV_WRITABLE) && flush_out(c) < 0)) {
        client_close(c);
        return;
    }
    if (events & UV_READABLE)
        read_client(c);
    watch(c);
}

/* A free slot, or -1. */
static int free_slot(const struct api_server *s)
{
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        if (!s->clients[i])
            return i;
    return -1;
}

/* Serve the accepted socket fd, or tell it there is no room and close it. */
static void add_client(struct api_server *s, int fd)
{
    struct api_client *c = calloc(1, sizeof(*c));
    if (!c || uv_poll_init(s->listener.loop, &c->poll, fd) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->server = s;
    c->poll.data = c;
    int slot = free_slot(s);
    if (slot < 0) {
        /* Accepted only to say so: a connection left in the backlog would wake the loop forever. */
        send_line(c, api_error_line("too many API clients"));
        client_close(c);
        return;
    }
    s->clients[slot] = c;
    watch(c);
}

static void listener_cb(uv_poll_t *h, int status, int events)
{
    struct api_server *s = h->data;
    (void)events;
    if (status < 0)
        return;
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        add_client(s, fd);
}

static void listener_closed(uv_handle_t *h)
{
    struct api_server *s = h->data;
    close(s->listen_fd);
}

int api_server_start(uv_loop_t *loop, int listen_fd, const struct api_command *cmds, size_t ncmds,
                     void *ctx, const struct kiln_log *log, struct api_server **out)
{
    *out = NULL;
    struct api_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct api_server){.cmds = cmds, .ncmds = ncmds, .ctx = ctx, .log = log};
    /* A duplicate: closing it must leave the caller's socket open for the next VM. */
    s->listen_fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
    int ret = s->listen_fd < 0 ? -errno : uv_poll_init(loop, &s->listener, s->listen_fd);
    if (ret < 0) {
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        free(s);
        return ret;
    }
    s->listener.data = s;
    s->listening = true;
    *out = s;
    return uv_poll_start(&s->listener, UV_READABLE, listener_cb);
}

void api_server_stop(struct api_server *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
        if (s->clients[i])
            client_close(s->clients[i]);
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, listener_closed);
    s->listening = false;
}

void api_server_free(struct api_server *s)
{
    free(s);
}
