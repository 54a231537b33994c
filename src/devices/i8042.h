/* i8042.h: minimal PS/2 controller: enough for Linux to probe it and to reset through it. */
#ifndef KILN_I8042_H
#define KILN_I8042_H

#include "device.h"
#include "devices/devices.h"
#include "util.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64

extern const struct device_class i8042_class;

/*
 * The device on its own: PIO ranges I8042_DATA_PORT (region 0) and I8042_CMD_PORT (region 1);
 * a CPU reset through it (command 0xFE, or the output port's reset line) ends the VM through
 * end as a reset.
 */
int i8042_create(const struct end_vm *end, struct device **out);

#endif
