/* exitdev.c: the exit device at port 0x5f0: a guest ends the VM with a status of its choosing. */
#include "devices/exitdev.h"

#include <string.h>

void exitdev_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct exitdev *x = dev;
    (void)offset;
    if (!is_write) {
        memset(data, 0xff, len); /* nothing to read: looks like an empty bus */
        return;
    }
    /* Only a byte write counts, so a stray 16- or 32-bit access cannot end the VM. */
    if (len == 1)
        x->on_exit(x->ctx, data[0]);
}
