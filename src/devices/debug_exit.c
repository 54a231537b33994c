/* debug_exit.c: QEMU's isa-debug-exit for test frameworks: a guest write of V ends the VM. */
#include "devices/debug_exit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct debug_exit {
    struct device dev;
    struct end_vm end;
};

static void debug_exit_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                            uint32_t len)
{
    (void)d;
    (void)region;
    (void)off;
    memset(data, 0xff, len); /* write-only, as in QEMU: reads see an empty bus */
}

/* Any write in the range counts, of any width, whatever its offset (QEMU does the same). */
static void debug_exit_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                             uint32_t len)
{
    struct debug_exit *x = (struct debug_exit *)d;
    (void)region;
    (void)off;
    uint32_t v = (uint32_t)le_get(data, len > 4 ? 4 : len);
    end_vm(&x->end, KILN_EXIT_DEBUG, (int)(v & 0x7fffffff), 0,
           "guest wrote 0x%x to the debug exit device", v);
}

static void debug_exit_destroy(struct device *d)
{
    free(d);
}

static const struct device_ops debug_exit_ops = {
    .read = debug_exit_read,
    .write = debug_exit_write,
    .save = device_save_none,
    .restore = device_restore_none,
    .destroy = debug_exit_destroy,
};

int debug_exit_create(const struct end_vm *end, uint16_t port, uint8_t size, struct device **out)
{
    struct debug_exit *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->dev = (struct device){.name = "debug exit device", .ops = &debug_exit_ops};
    device_add_range(&x->dev, DEVICE_PIO, port, size);
    x->end = *end;
    *out = &x->dev;
    return 0;
}

static unsigned count(const struct kiln_config *cfg)
{
    return cfg->debug_exit_size ? 1 : 0;
}

static int check(const struct kiln_config *cfg, char *errmsg)
{
    unsigned size = cfg->debug_exit_size, port = cfg->debug_exit_port;
    if (size != 0 && size != 1 && size != 2 && size != 4)
        return kiln_fail(errmsg, EINVAL, "debug exit device: size %u (expected 1, 2 or 4)", size);
    if (size && !range_within(port, size, 0x10000))
        return kiln_fail(errmsg, EINVAL, "debug exit device: ports 0x%x+%u go past 0xffff", port,
                         size);
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    int ret =
        debug_exit_create(&env->end, env->cfg->debug_exit_port, env->cfg->debug_exit_size, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "debug exit device: %s", strerror(-ret)) : 0;
}

const struct device_class debug_exit_class = {
    .name = "debug exit device", .count = count, .check = check, .create = create};
