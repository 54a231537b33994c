/* serial.h: COM1: the 16550A model on the PIO bus, with its byte streams on the libuv loop. */
#ifndef KILN_SERIAL_H
#define KILN_SERIAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "device.h"
#include "devices/devices.h"
#include "util.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_PORT_LEN 8

struct serial;

/* On a stop, output the guest sent is still written out for at most this long. */
#define SERIAL_FLUSH_MS 2000

struct serial_config {
    int in_fd;   /* -1: no input */
    int out_fd;  /* -1: output discarded */
    int irq_fd;  /* eventfd wired to the interrupt line (owned from create on), -1: polling only */
    bool escape; /* Ctrl-A x ends the VM through end as stopped */
    struct end_vm end;
    const struct kiln_log *log;
};

extern const struct device_class serial_class;

/*
 * COM1 on its own. Its device (serial_device) has the 8 UART registers as PIO range 0 and the
 * DSDT entry (PNP0501); start and stop run the byte streams on a loop, and stop first writes
 * out what the guest sent, for at most SERIAL_FLUSH_MS. Returns 0 or -ENOMEM.
 */
int serial_create(const struct serial_config *cfg, struct serial **out);
struct device *serial_device(struct serial *s);

#endif
