/* pvpanic.h: the pvpanic device: the guest kernel reports a panic through one I/O port. */
#ifndef KILN_PVPANIC_H
#define KILN_PVPANIC_H

#include "device.h"
#include "devices/devices.h"
#include "util.h"

#define PVPANIC_PANICKED (1u << 0)
#define PVPANIC_CRASH_LOADED (1u << 1)

extern const struct device_class pvpanic_class;

/*
 * The device on its own: PIO range PORT_PVPANIC (platform/layout.h), and the DSDT entry
 * (QEMU0001) Linux's pvpanic driver binds to. A panic ends the VM through end as a crash; a
 * loaded crash kernel is logged.
 */
int pvpanic_create(const struct end_vm *end, const struct kiln_log *log, struct device **out);

#endif
