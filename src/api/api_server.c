/* api_server.c: accepts API clients on the loop, frames their lines, writes the replies. */
#include "api/api_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct api_client {
    uv_pipe_t pipe;
    struct api_server *server;
    char buf[API_LINE_MAX];
    size_t len;
    bool discarding; /* skipping the rest of an oversized line */
    bool closing;
};

struct api_server {
    uv_pipe_t listener;
    bool listening;
    const struct api_command *cmds;
    size_t ncmds;
    void *ctx;
    const struct kiln_log *log;
    struct api_client *clients[API_MAX_CLIENTS];
};

struct api_write {
    uv_write_t req;
    char *line;
};

static void client_closed(uv_handle_t *h)
{
    free(h->data);
}

static void client_close(struct api_client *c)
{
    if (c->closing)
        return;
    c->closing = true;
    for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
        if (c->server->clients[i] == c)
            c->server->clients[i] = NULL;
    uv_close((uv_handle_t *)&c->pipe, client_closed);
}

static void write_done(uv_write_t *req, int status)
{
    struct api_write *w = (struct api_write *)req;
    (void)status; /* a client gone before its reply changes nothing */
    free(w->line);
    free(w);
}

/* Queue line (taken over) to the client; one that leaves too much unread is dropped. */
static void send_line(struct api_client *c, char *line)
{
    struct api_write *w = line ? malloc(sizeof(*w)) : NULL;
    if (!w || c->closing) {
        free(line);
        free(w);
        if (!c->closing)
            client_close(c);
        return;
    }
    w->line = line;
    uv_buf_t b = uv_buf_init(line, (unsigned)strlen(line));
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_done) < 0) {
        free(line);
        free(w);
        client_close(c);
    } else if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > API_MAX_PENDING) {
        klog(c->server->log, KILN_LOG_WARN, "API socket: a client reads no replies; dropped");
        client_close(c);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct api_client *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

/* Answer every whole line in the buffer; keep the start of the next one. */
static void take_lines(struct api_client *c)
{
    char *nl;
    while (!c->closing && (nl = memchr(c->buf, '\n', c->len))) {
        size_t n = (size_t)(nl - c->buf);
        if (c->discarding) {
            c->discarding = false; /* the end of the oversized line */
        } else {
            struct api_server *s = c->server;
            send_line(c, api_handle_line(s->cmds, s->ncmds, s->ctx, c->buf, n));
        }
        c->len -= n + 1;
        memmove(c->buf, nl + 1, c->len);
    }
    if (c->len == sizeof(c->buf)) { /* full, and no newline in it */
        if (!c->discarding)
            send_line(c, api_error_line("request line longer than 4096 bytes"));
        c->discarding = true;
        c->len = 0;
    }
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct api_client *c = st->data;
    (void)buf;
    if (n < 0) {
        client_close(c); /* EOF or error: a partial request is dropped */
        return;
    }
    c->len += (size_t)n;
    take_lines(c);
}

/* A free slot, or -1. */
static int free_slot(const struct api_server *s)
{
    for (int i = 0; i < API_MAX_CLIENTS; i++)
        if (!s->clients[i])
            return i;
    return -1;
}

static void connection_cb(uv_stream_t *listener, int status)
{
    struct api_server *s = listener->data;
    struct api_client *c = status < 0 ? NULL : calloc(1, sizeof(*c));
    if (!c)
        return;
    c->server = s;
    c->pipe.data = c;
    if (uv_pipe_init(listener->loop, &c->pipe, 0) < 0) {
        free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0) {
        uv_close((uv_handle_t *)&c->pipe, client_closed);
        return;
    }
    int slot = free_slot(s);
    if (slot < 0) {
        /* Accepted only to say so: a connection left in the backlog would wake the loop forever. */
        send_line(c, api_error_line("too many API clients"));
        client_close(c);
        return;
    }
    s->clients[slot] = c;
    if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) < 0)
        client_close(c);
}

int api_server_start(uv_loop_t *loop, int listen_fd, const struct api_command *cmds, size_t ncmds,
                     void *ctx, const struct kiln_log *log, struct api_server **out)
{
    *out = NULL;
    struct api_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct api_server){.cmds = cmds, .ncmds = ncmds, .ctx = ctx, .log = log};
    /* A duplicate: closing the handle must leave the caller's socket open for the next VM. */
    int fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
    int ret = fd < 0 ? -errno : uv_pipe_init(loop, &s->listener, 0);
    if (ret < 0) {
        if (fd >= 0)
            close(fd);
        free(s);
        return ret;
    }
    s->listener.data = s;
    s->listening = true;
    *out = s;
    ret = uv_pipe_open(&s->listener, fd);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return uv_listen((uv_stream_t *)&s->listener, API_MAX_CLIENTS, connection_cb);
}

void api_server_stop(struct api_server *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
        if (s->clients[i])
            client_close(s->clients[i]);
    if (s->listening)
        uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = false;
}

void api_server_free(struct api_server *s)
{
    free(s);
}
