/* exitdev.h: the exit device: a one-byte write of V to its port ends the VM with status V. */
#ifndef KILN_EXITDEV_H
#define KILN_EXITDEV_H

#include <stdbool.h>
#include <stdint.h>

#define EXITDEV_PORT 0x5f0
#define EXITDEV_LEN 1

struct exitdev {
    void (*on_exit)(void *ctx, uint8_t status);
    void *ctx;
};

void exitdev_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
