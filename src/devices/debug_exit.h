/* debug_exit.h: QEMU-compatible debug exit: a guest write of V ends the VM with status V. */
#ifndef KILN_DEBUG_EXIT_H
#define KILN_DEBUG_EXIT_H

#include "device.h"
#include "devices/devices.h"
#include "util.h"

/* One instance when kiln_config.debug_exit_size is set. */
extern const struct device_class debug_exit_class;

/* The device on its own: PIO ports port .. port + size - 1; a write of V calls end with V. */
int debug_exit_create(const struct end_vm *end, uint16_t port, uint8_t size, struct device **out);

#endif
