/* pvpanic.c: pvpanic at port 0x505: reads give the events supported, writes report them. */
#include "devices/pvpanic.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/aml.h"
#include "platform/layout.h"

struct pvpanic {
    struct device dev;
    struct end_vm end;
    const struct kiln_log *log;
};

static void pvpanic_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                         uint32_t len)
{
    (void)d;
    (void)region;
    (void)off;
    memset(data, 0, len);
    data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                          uint32_t len)
{
    struct pvpanic *p = (struct pvpanic *)d;
    (void)region;
    (void)off;
    (void)len;
    uint8_t events = data[0] & (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
    if (events & PVPANIC_PANICKED)
        end_vm(&p->end, KILN_EXIT_CRASH, 0, 0, "guest kernel panicked (pvpanic)");
    else if (events)
        klog(p->log, KILN_LOG_INFO, "guest reports a crash kernel is loaded (pvpanic)");
}

/* Linux's pvpanic-mmio driver binds to QEMU0001 and takes its I/O port. */
static void pvpanic_describe(const struct device *d, struct aml *a)
{
    (void)d;
    size_t dev = aml_device_open(a, "PEVT");
    aml_name(a, "_HID");
    aml_string(a, "QEMU0001");
    aml_name(a, "_STA");
    aml_integer(a, 0x0f);
    aml_crs_io(a, PORT_PVPANIC, 1, -1);
    aml_close(a, dev);
}

static void pvpanic_destroy(struct device *d)
{
    free(d);
}

static const struct device_ops pvpanic_ops = {
    .read = pvpanic_read,
    .write = pvpanic_write,
    .save = device_save_none,
    .restore = device_restore_none,
    .destroy = pvpanic_destroy,
    .describe = pvpanic_describe,
};

int pvpanic_create(const struct end_vm *end, const struct kiln_log *log, struct device **out)
{
    struct pvpanic *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->dev = (struct device){.name = "pvpanic", .ops = &pvpanic_ops};
    device_add_range(&p->dev, DEVICE_PIO, PORT_PVPANIC, 1);
    p->end = *end;
    p->log = log;
    *out = &p->dev;
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    int ret = pvpanic_create(&env->end, env->log, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "pvpanic: %s", strerror(-ret)) : 0;
}

const struct device_class pvpanic_class = {.name = "pvpanic", .create = create};
