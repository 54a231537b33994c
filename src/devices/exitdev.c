/* exitdev.c: the exit device at port 0x5f0: a guest ends the VM with a status of its choosing. */
#include "devices/exitdev.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct exitdev {
    struct device dev;
    struct end_vm end;
};

static void exitdev_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                         uint32_t len)
{
    (void)d;
    (void)region;
    (void)off;
    memset(data, 0xff, len); /* nothing to read: looks like an empty bus */
}

static void exitdev_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                          uint32_t len)
{
    struct exitdev *x = (struct exitdev *)d;
    (void)region;
    (void)off;
    /* Only a byte write counts, so a stray 16- or 32-bit access cannot end the VM. */
    if (len == 1)
        end_vm(&x->end, KILN_EXIT_STATUS, data[0], 0, "guest wrote %u to the exit device", data[0]);
}

static void exitdev_destroy(struct device *d)
{
    free(d);
}

static const struct device_ops exitdev_ops = {
    .read = exitdev_read,
    .write = exitdev_write,
    .save = device_save_none,
    .restore = device_restore_none,
    .destroy = exitdev_destroy,
};

int exitdev_create(const struct end_vm *end, struct device **out)
{
    struct exitdev *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->dev = (struct device){.name = "exit device", .ops = &exitdev_ops};
    device_add_range(&x->dev, DEVICE_PIO, EXITDEV_PORT, EXITDEV_LEN);
    x->end = *end;
    *out = &x->dev;
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    int ret = exitdev_create(&env->end, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "exit device: %s", strerror(-ret)) : 0;
}

const struct device_class exitdev_class = {.name = "exit device", .create = create};
