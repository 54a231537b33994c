/* state.h: saved state for snapshots: a byte buffer written in order and read back in order. */
#ifndef KILN_STATE_H
#define KILN_STATE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Saving appends to buf (growing it); restoring reads from off. The first failure sticks in err
 * (ENOMEM while saving; EINVAL when a restore reads past the end) and every later call does
 * nothing, so a save or restore checks err once at its end. Values are in host byte order:
 * a snapshot is restored on the machine kind it was taken on.
 */
struct device_state {
    uint8_t *buf;
    size_t len, cap;
    size_t off;
    int err;
};

static inline void state_put(struct device_state *st, const void *p, size_t n)
{
    if (st->err)
        return;
    if (n > st->cap - st->len) {
        size_t cap = st->cap ? st->cap : 256;
        while (cap - st->len < n) {
            if (cap > SIZE_MAX / 2) {
                st->err = ENOMEM;
                return;
            }
            cap *= 2;
        }
        uint8_t *buf = realloc(st->buf, cap);
        if (!buf) {
            st->err = ENOMEM;
            return;
        }
        st->buf = buf;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
}

static inline void state_get(struct device_state *st, void *p, size_t n)
{
    if (!st->err && n > st->len - st->off)
        st->err = EINVAL;
    if (st->err) {
        memset(p, 0, n);
        return;
    }
    memcpy(p, st->buf + st->off, n);
    st->off += n;
}

static inline int state_done(const struct device_state *st)
{
    if (st->err)
        return -st->err;
    return st->off == st->len ? 0 : -EINVAL;
}

static inline void state_free(struct device_state *st)
{
    free(st->buf);
    *st = (struct device_state){0};
}

static inline void state_put_u32(struct device_state *st, uint32_t v)
{
    state_put(st, &v, sizeof(v));
}
static inline void state_put_u64(struct device_state *st, uint64_t v)
{
    state_put(st, &v, sizeof(v));
}
static inline uint32_t state_get_u32(struct device_state *st)
{
    uint32_t v = 0;
    state_get(st, &v, sizeof(v));
    return v;
}
static inline uint64_t state_get_u64(struct device_state *st)
{
    uint64_t v = 0;
    state_get(st, &v, sizeof(v));
    return v;
}
/* A restore over a buffer of len bytes (not owned). */
static inline struct device_state state_reader(const void *buf, size_t len)
{
    return (struct device_state){.buf = (uint8_t *)buf, .len = len};
}

#endif
