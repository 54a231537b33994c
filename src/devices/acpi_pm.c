/* acpi_pm.c: the FADT's sleep control register ends the VM on S5; the reset register resets. */
#include "devices/acpi_pm.h"

#include <string.h>

#include "platform/acpi.h"

#define REG_SLEEP_CONTROL 0
#define REG_SLEEP_STATUS 1
#define REG_RESET 2

#define SLP_EN (1u << 5)
#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK 0x7u
#define WAK_STS (1u << 7)

void acpi_pm_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct acpi_pm *pm = dev;
    if (!is_write) {
        memset(data, 0, len);
        /* Never asleep, so a wake is always "done": Linux polls WAK_STS after S-state entry. */
        if (offset == REG_SLEEP_STATUS)
            data[0] = WAK_STS;
        return;
    }
    uint8_t v = data[0];
    if (offset == REG_SLEEP_CONTROL && (v & SLP_EN) &&
        ((v >> SLP_TYP_SHIFT) & SLP_TYP_MASK) == ACPI_S5_SLP_TYP)
        pm->on_poweroff(pm->ctx);
    else if (offset == REG_RESET && v == ACPI_RESET_VALUE)
        pm->on_reset(pm->ctx);
}
