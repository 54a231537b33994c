/* virtio_9p.c: virtio-9p: a host directory shared with the guest, served by fs/p9.c. */
#include "devices/virtio_9p.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/p9.h"
#include "state.h"
#include "virtio/virtio_attach.h"

struct virtio_9p {
    struct virtio_device vd;
    struct p9_server *srv;
    uint8_t config[VIRTIO_9P_CONFIG_LEN]; /* tag_len, tag: immutable after creation */
    bool running;
    bool serving; /* a request is between its pop and its push (loop thread) */
    struct virtq_chain chain;
    struct iovec iov[VIRTQ_CHAIN_MAX]; /* the chain's writable buffers: the reply goes there */
    uint8_t *req;                      /* P9_MSIZE_MAX: a stable copy of one request */
};

/* One request: the T-message from the readable buffers, the reply into the writable ones. */
static void serve(struct virtio_9p *p)
{
    const struct virtq_chain *c = &p->chain;
    unsigned first_w = c->count;
    while (first_w > 0 && c->buf[first_w - 1].writable)
        first_w--;
    uint32_t in = c->readable_len < P9_MSIZE_MAX ? c->readable_len : P9_MSIZE_MAX;
    uint32_t cap = c->writable_len < P9_MSIZE_MAX ? c->writable_len : P9_MSIZE_MAX;
    virtq_bufs_read(c->buf, first_w, 0, p->req, in); /* the guest cannot change it under us */
    unsigned niov = virtq_bufs_iov(c->buf + first_w, c->count - first_w, 0, cap, p->iov);
    size_t n = p9_handle_iov(p->srv, p->req, in, p->iov, niov);
    virtq_push(&p->vd.queues[0].vq, c->head, (uint32_t)n);
}

static void p9_queue_notify(struct virtio_device *vd, unsigned q)
{
    struct virtio_9p *p = vd->priv;
    struct virtq *vq = &vd->queues[0].vq;
    if (!p->running || q != 0)
        return;
    bool served = false;
    for (;;) {
        int ret = virtq_pop(vq, &p->chain);
        if (ret < 0) {
            p->running = false;
            virtio_device_error(vd, 0, ret);
            return;
        }
        if (ret == 0)
            break;
        p->serving = true;
        serve(p);
        p->serving = false;
        served = true;
    }
    if (served)
        virtio_queue_signal(vd, 0);
}

static int p9_activate(struct virtio_device *vd)
{
    struct virtio_9p *p = vd->priv;
    pthread_mutex_lock(&vd->lock);
    p->running = vd->queues[0].enabled && vd->queues[0].vq.ready;
    pthread_mutex_unlock(&vd->lock);
    if (p->running)
        p9_queue_notify(vd, 0); /* requests made before DRIVER_OK get no kick of their own */
    return 0;
}

static int p9_reset(struct device *d)
{
    struct virtio_9p *p = virtio_device_of(d)->priv;
    p->running = false;
    return 0; /* requests are served as they come: nothing in flight */
}

/*
 * Snapshot (loop thread): the server's session, after the core's queues. Requests are served
 * whole on the loop thread, so none is ever half done when this runs; -EBUSY if one were.
 * Requests the guest queued but kiln had not taken are in guest RAM and its ring: the restored
 * queue takes them.
 */
static int p9_save(const struct device *d, struct device_state *st)
{
    const struct virtio_9p *p = virtio_device_of((struct device *)d)->priv;
    return p->serving ? -EBUSY : p9_server_save(p->srv, st);
}

/* Restore (before anything runs, before any seccomp filter): the fids opened again. */
static int p9_restore(struct device *d, struct device_state *st)
{
    struct virtio_9p *p = virtio_device_of(d)->priv;
    return p9_server_restore(p->srv, st);
}

static void p9_destroy(struct device *d)
{
    virtio_9p_destroy(virtio_device_of(d)->priv);
}

static const struct virtio_device_ops p9_ops = {
    .dev =
        {
            .read = virtio_config_read_bytes,
            .write = virtio_config_write_ignored,
            .reset = p9_reset,
            .save = p9_save,
            .restore = p9_restore,
            .destroy = p9_destroy,
        },
    .name = "virtio-9p",
    .device_id = VIRTIO_ID_9P,
    .config_len = VIRTIO_9P_CONFIG_LEN,
    .activate = p9_activate,
    .queue_notify = p9_queue_notify,
};

int virtio_9p_create(int root_fd, const char *tag, bool read_only, const struct guest_mem *mem,
                     const struct kiln_log *log, struct virtio_9p **out, char *errmsg)
{
    struct virtio_9p *p = calloc(1, sizeof(*p));
    uint8_t *req = malloc(P9_MSIZE_MAX);
    size_t tag_len = strlen(tag);
    int ret = !p || !req ? -ENOMEM : tag_len > KILN_SHARE_TAG_MAX ? -EINVAL : 0;
    if (ret == 0)
        ret = p9_server_create(root_fd, read_only, &p->srv);
    else
        close(root_fd);
    if (ret < 0) {
        free(p);
        free(req);
        return kiln_fail(errmsg, -ret, "share %s: %s", tag, strerror(-ret));
    }
    p->req = req;
    le_put(p->config, 2, tag_len);
    memcpy(p->config + 2, tag, tag_len);
    virtio_device_init(&p->vd, &p9_ops, p,
                       VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC, 1,
                       VIRTIO_9P_QUEUE_SIZE, mem, log);
    p->vd.config = p->config;
    *out = p;
    return 0;
}

struct virtio_device *virtio_9p_device(struct virtio_9p *p)
{
    return &p->vd;
}

void virtio_9p_destroy(struct virtio_9p *p)
{
    if (!p)
        return;
    p9_server_destroy(p->srv);
    virtio_device_destroy(&p->vd);
    free(p->req);
    free(p);
}

/* ---- The device class: one virtio-9p per --share, after the networks. */

static unsigned p9_count(const struct kiln_config *cfg)
{
    return cfg->nshares;
}

static bool tag_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > KILN_SHARE_TAG_MAX)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~' || *s == ',')
            return false;
    return true;
}

static int p9_check(const struct kiln_config *cfg, char *errmsg)
{
    if (cfg->nshares > KILN_MAX_SHARES)
        return kiln_fail(errmsg, EINVAL, "%u shares (at most %d)", cfg->nshares, KILN_MAX_SHARES);
    for (unsigned i = 0; i < cfg->nshares; i++) {
        const struct kiln_share *sh = &cfg->shares[i];
        if (!sh->path || !sh->path[0])
            return kiln_fail(errmsg, EINVAL, "share %u: empty path", i);
        if (!tag_ok(sh->tag))
            return kiln_fail(errmsg, EINVAL,
                             "share %s: a tag is 1-%d printable characters, no spaces or commas",
                             sh->path, KILN_SHARE_TAG_MAX);
        for (unsigned j = 0; j < i; j++)
            if (strcmp(cfg->shares[j].tag, sh->tag) == 0)
                return kiln_fail(errmsg, EINVAL, "share %s: tag %s is given twice", sh->path,
                                 sh->tag);
    }
    return 0;
}

/* The directory is opened here, before /dev/kvm: a missing one is the user's error. */
static int p9_prepare(const struct device_env *env, unsigned index, void **prepared, char *errmsg)
{
    const struct kiln_share *sh = &env->cfg->shares[index];
    int fd = open(sh->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kiln_fail(errmsg, errno, "share %s: %s", sh->path, strerror(errno));
    struct virtio_9p *p;
    int ret = virtio_9p_create(fd, sh->tag, sh->read_only, env->mem, env->log, &p, errmsg);
    if (ret == 0)
        *prepared = p;
    return ret;
}

static void p9_discard(void *prepared)
{
    virtio_9p_destroy(prepared);
}

static int p9_attach(const struct device_env *env, unsigned index, void *prepared,
                     struct device **out, char *errmsg)
{
    struct virtio_9p *p = prepared;
    const char *tag = env->cfg->shares[index].tag;
    int ret = virtio_attach(env->virtio, &p->vd, out);
    if (ret < 0)
        kiln_fail(errmsg, -ret, "share %s: %s: %s", tag, virtio_transport_name(env->virtio),
                  strerror(-ret));
    return ret;
}

const struct device_class virtio_9p_class = {.name = "virtio-9p",
                                             .count = p9_count,
                                             .check = p9_check,
                                             .prepare = p9_prepare,
                                             .discard = p9_discard,
                                             .create = p9_attach,
                                             .virtio = true};
