/* acpi_pm.h: ACPI power registers: sleep control/status and reset; PM1 and PM timer for firmware.
 */
#ifndef KILN_ACPI_PM_H
#define KILN_ACPI_PM_H

#include <stdbool.h>

#include "device.h"
#include "devices/devices.h"
#include "util.h"

/* The three registers are consecutive ports from PORT_ACPI_SLEEP_CONTROL (platform/layout.h). */
#define ACPI_PM_LEN 3

extern const struct device_class acpi_pm_class;

/*
 * The device on its own: S5 ends the VM through end as a power-off, the reset register as a
 * reset. full_hardware adds the PM1 event and control blocks and the PM timer (platform/layout.h)
 * of the full ACPI model (firmware boot); S5 through PM1 control powers off too.
 */
int acpi_pm_create(const struct end_vm *end, bool full_hardware, struct device **out);

/*
 * Press the power button (any thread). Full hardware: PWRBTN_STS in PM1 status, and the SCI when
 * the guest enabled PWRBTN_EN. Hardware-reduced: the Generic Event Device's interrupt, whose _EVT
 * notifies the PNP0C0C power button. A device made by acpi_pm_create alone has no interrupt line
 * (unit tests): the registers change, nothing is raised.
 */
void acpi_pm_power_button(struct device *d);
/* Presses so far. */
uint32_t acpi_pm_presses(const struct device *d);

#endif
