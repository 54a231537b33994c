/* exitdev.h: the exit device: a one-byte write of V to its port ends the VM with status V. */
#ifndef KILN_EXITDEV_H
#define KILN_EXITDEV_H

#include "device.h"
#include "devices/devices.h"
#include "util.h"

#define EXITDEV_PORT 0x5f0
#define EXITDEV_LEN 1

extern const struct device_class exitdev_class;

/* The device on its own: PIO range EXITDEV_PORT; a write of V calls end with status V. */
int exitdev_create(const struct end_vm *end, struct device **out);

#endif
