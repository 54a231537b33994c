/* pvpanic.c: pvpanic at port 0x505: reads give the events supported, writes report them. */
#include "devices/pvpanic.h"

#include <string.h>

void pvpanic_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct pvpanic *p = dev;
    (void)offset;
    if (!is_write) {
        memset(data, 0, len);
        data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
        return;
    }
    uint8_t events = data[0] & (PVPANIC_PANICKED | PVPANIC_CRASH_LOADED);
    if (events)
        p->on_event(p->ctx, events);
}
