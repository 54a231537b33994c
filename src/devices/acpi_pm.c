/* acpi_pm.c: the FADT's sleep control register ends the VM on S5; the reset register resets. */
#include "devices/acpi_pm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/acpi.h"
#include "platform/layout.h"

#define REG_SLEEP_CONTROL 0
#define REG_SLEEP_STATUS 1
#define REG_RESET 2

#define SLP_EN (1u << 5)
#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK 0x7u
#define WAK_STS (1u << 7)

struct acpi_pm {
    struct device dev;
    struct end_vm end;
};

static void acpi_pm_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                         uint32_t len)
{
    (void)d;
    (void)region;
    memset(data, 0, len);
    /* Never asleep, so a wake is always "done": Linux polls WAK_STS after S-state entry. */
    if (off == REG_SLEEP_STATUS)
        data[0] = WAK_STS;
}

static void acpi_pm_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                          uint32_t len)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    (void)region;
    (void)len;
    uint8_t v = data[0];
    if (off == REG_SLEEP_CONTROL && (v & SLP_EN) &&
        ((v >> SLP_TYP_SHIFT) & SLP_TYP_MASK) == ACPI_S5_SLP_TYP)
        end_vm(&pm->end, KILN_EXIT_POWEROFF, 0, 0, "guest powered off (ACPI S5)");
    else if (off == REG_RESET && v == ACPI_RESET_VALUE)
        end_vm(&pm->end, KILN_EXIT_REBOOT, 0, 0, "guest reset through the ACPI reset register");
}

static void acpi_pm_destroy(struct device *d)
{
    free(d);
}

static const struct device_ops acpi_pm_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
    .destroy = acpi_pm_destroy,
};

int acpi_pm_create(const struct end_vm *end, struct device **out)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return -ENOMEM;
    pm->dev = (struct device){.name = "ACPI power", .ops = &acpi_pm_ops};
    device_add_range(&pm->dev, DEVICE_PIO, PORT_ACPI_SLEEP_CONTROL, ACPI_PM_LEN);
    pm->end = *end;
    *out = &pm->dev;
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    int ret = acpi_pm_create(&env->end, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "ACPI power registers: %s", strerror(-ret)) : 0;
}

const struct device_class acpi_pm_class = {.name = "ACPI power", .create = create};
