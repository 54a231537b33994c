/* state.c: the snapshot state buffer: bounded appends and reads with a sticky error. */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void state_put(struct device_state *st, const void *p, size_t n)
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

void state_get(struct device_state *st, void *p, size_t n)
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

int state_done(const struct device_state *st)
{
    if (st->err)
        return -st->err;
    return st->off == st->len ? 0 : -EINVAL;
}

void state_free(struct device_state *st)
{
    free(st->buf);
    *st = (struct device_state){0};
}
