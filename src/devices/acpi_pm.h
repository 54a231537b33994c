/* acpi_pm.h: hardware-reduced ACPI power registers: sleep control/status and reset. */
#ifndef KILN_ACPI_PM_H
#define KILN_ACPI_PM_H

#include "device.h"
#include "devices/devices.h"
#include "util.h"

/* The three registers are consecutive ports from PORT_ACPI_SLEEP_CONTROL (platform/layout.h). */
#define ACPI_PM_LEN 3

extern const struct device_class acpi_pm_class;

/* The device on its own: S5 ends the VM through end as a power-off, the reset register as a
 * reset. */
int acpi_pm_create(const struct end_vm *end, struct device **out);

#endif
