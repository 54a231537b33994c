/* acpi_pm.h: hardware-reduced ACPI power registers: sleep control/status and reset. */
#ifndef KILN_ACPI_PM_H
#define KILN_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

/* The three registers are consecutive ports, in this order (see layout.h). */
#define ACPI_PM_LEN 3

struct acpi_pm {
    void (*on_poweroff)(void *ctx);
    void (*on_reset)(void *ctx);
    void *ctx;
};

void acpi_pm_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
