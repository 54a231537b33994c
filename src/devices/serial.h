/* serial.h: COM1: the 16550A model on the PIO bus, with its byte streams on the libuv loop. */
#ifndef KILN_SERIAL_H
#define KILN_SERIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_PORT_LEN 8

struct serial;

struct serial_config {
    int in_fd;   /* -1: no input */
    int out_fd;  /* -1: output discarded */
    int irq_fd;  /* eventfd wired to the interrupt line, -1: polling only */
    bool escape; /* Ctrl-A x calls on_escape */
    void (*on_escape)(void *ctx);
    void *ctx;
    const struct kiln_log *log;
};

int serial_create(const struct serial_config *cfg, struct serial **out);
void serial_destroy(struct serial *s);

/* Bus handler for the 8 UART registers. Runs on vCPU threads. */
void serial_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Start and stop the back end on loop (the loop thread only). */
int serial_start(struct serial *s, uv_loop_t *loop);
void serial_stop(struct serial *s);

/* Write out whatever the guest sent that is still buffered, waiting at most timeout_ms. */
void serial_flush(struct serial *s, int timeout_ms);

#endif
