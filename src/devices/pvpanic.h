/* pvpanic.h: the pvpanic device: the guest kernel reports a panic through one I/O port. */
#ifndef KILN_PVPANIC_H
#define KILN_PVPANIC_H

#include <stdbool.h>
#include <stdint.h>

#define PVPANIC_PANICKED (1u << 0)
#define PVPANIC_CRASH_LOADED (1u << 1)

struct pvpanic {
    void (*on_event)(void *ctx, uint8_t events);
    void *ctx;
};

void pvpanic_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
