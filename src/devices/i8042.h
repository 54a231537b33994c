/* i8042.h: minimal PS/2 controller: enough for Linux to probe it and to reset through it. */
#ifndef KILN_I8042_H
#define KILN_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

struct i8042 {
    pthread_mutex_t lock;
    uint8_t ctr; /* controller configuration ("command byte") */
    uint8_t out; /* output buffer */
    bool out_full;
    uint8_t pending; /* command waiting for its data byte, 0 if none */
    void (*on_reset)(void *ctx);
    void *ctx;
};

void i8042_init(struct i8042 *k, void (*on_reset)(void *ctx), void *ctx);
void i8042_destroy(struct i8042 *k);
/* Bus handlers: one for the data port (0x60), one for the command/status port (0x64). */
void i8042_data_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
void i8042_cmd_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
