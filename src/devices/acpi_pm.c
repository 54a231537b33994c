/* acpi_pm.c: ACPI power registers (sleep, reset, PM1, PM timer) and the power button. */
#include "devices/acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "boot/loader.h"
#include "platform/acpi.h"
#include "platform/aml.h"
#include "platform/layout.h"
#include "state.h"

/* Region 0: the hardware-reduced registers, one port each from PORT_ACPI_SLEEP_CONTROL. */
#define REG_SLEEP_CONTROL 0
#define REG_SLEEP_STATUS 1
#define REG_RESET 2
/* The full hardware model's blocks, regions 1-3. */
enum { REGION_REDUCED, REGION_PM1_EVT, REGION_PM1_CNT, REGION_PM_TMR };

#define SLP_EN (1u << 5)
#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK 0x7u
#define WAK_STS (1u << 7)

/* PM1 control: SCI_EN always reads 1 (ACPI mode, no SMI handshake); SLP_TYP/SLP_EN as above. */
#define PM1_SCI_EN (1u << 0)
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_EN (1u << 13)
#define PM1_WAK_STS (1u << 15)
/* PM1 status and enable: the fixed power button (PWRBTN_STS, PWRBTN_EN). */
#define PM1_PWRBTN (1u << 8)
#define PM_TIMER_HZ 3579545ULL

struct acpi_pm {
    struct device dev;
    struct end_vm end;
    bool full_hardware;
    pthread_mutex_t lock;
    uint16_t pm1_sts, pm1_en, pm1_cnt;
    uint32_t presses;      /* power button presses so far */
    struct timespec start; /* the PM timer counts from here */
    /* Full hardware: the SCI, a level line (fd -1: none); its resample fd watched on the loop. */
    struct irq_level sci;
    uv_poll_t resample;
    bool resample_open;
    int ged_fd; /* hardware-reduced: the GED's edge line (-1: none) */
};

/* Raise the SCI while an enabled PM1 event is pending (lock held). */
static void sci_update(struct acpi_pm *pm)
{
    if ((pm->pm1_sts & pm->pm1_en) && pm->sci.fd >= 0)
        irq_level_assert(&pm->sci);
}

static void sleep_request(struct acpi_pm *pm, unsigned slp_typ)
{
    if (slp_typ == ACPI_S5_SLP_TYP)
        end_vm(&pm->end, KILN_EXIT_POWEROFF, 0, 0, "guest powered off (ACPI S5)");
}

/* The PM timer: ticks of 3.579545 MHz since the device was made, 32 bits (TMR_VAL_EXT). */
static uint32_t pm_timer(const struct acpi_pm *pm)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t ns = (uint64_t)(now.tv_sec - pm->start.tv_sec) * 1000000000u + (uint64_t)now.tv_nsec -
                  (uint64_t)pm->start.tv_nsec;
    return (uint32_t)(ns / 1000000000u * PM_TIMER_HZ +
                      ns % 1000000000u * PM_TIMER_HZ / 1000000000u);
}

static uint32_t read_value(struct acpi_pm *pm, unsigned region, uint64_t off)
{
    switch (region) {
    case REGION_REDUCED: /* never asleep, so a wake is always "done" */
        return off == REG_SLEEP_STATUS ? WAK_STS : 0;
    case REGION_PM1_EVT:
        return (uint32_t)(pm->pm1_sts | (uint32_t)pm->pm1_en << 16) >> (8 * off);
    case REGION_PM1_CNT:
        return (uint32_t)(pm->pm1_cnt | PM1_SCI_EN) >> (8 * off);
    default:
        return pm_timer(pm) >> (8 * off);
    }
}

static void acpi_pm_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                         uint32_t len)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    pthread_mutex_lock(&pm->lock);
    le_put(data, len < 4 ? len : 4, read_value(pm, region, off));
    pthread_mutex_unlock(&pm->lock);
    if (len > 4)
        memset(data + 4, 0, len - 4);
}

/* Status bits are write-one-to-clear; enable bits are plain. off and len are within the block. */
static void write_pm1_evt(struct acpi_pm *pm, uint64_t off, uint32_t v, uint32_t len)
{
    uint32_t shift = 8 * (uint32_t)off, mask = len >= 4 ? ~0u : ((1u << (8 * len)) - 1) << shift;
    v <<= shift;
    pm->pm1_sts &= (uint16_t) ~(v & mask & 0xffff);
    uint32_t en_mask = (mask >> 16) & 0xffff;
    pm->pm1_en = (uint16_t)((pm->pm1_en & ~en_mask) | ((v >> 16) & en_mask));
    sci_update(pm); /* enabling an event that is already pending raises it */
}

static void write_pm1_cnt(struct acpi_pm *pm, uint64_t off, uint32_t v, uint32_t len)
{
    uint32_t shift = 8 * (uint32_t)off, mask = len >= 2 ? 0xffff : 0xffu << shift;
    uint16_t cnt = (uint16_t)((pm->pm1_cnt & ~mask) | ((v << shift) & mask));
    pm->pm1_cnt = cnt & (uint16_t)~PM1_SLP_EN; /* SLP_EN is write-only */
    if (cnt & PM1_SLP_EN)
        sleep_request(pm, (cnt >> PM1_SLP_TYP_SHIFT) & SLP_TYP_MASK);
}

static void acpi_pm_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                          uint32_t len)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    uint32_t v = (uint32_t)le_get(data, len < 4 ? len : 4);
    if (region == REGION_REDUCED) {
        if (off == REG_SLEEP_CONTROL && (v & SLP_EN))
            sleep_request(pm, (v >> SLP_TYP_SHIFT) & SLP_TYP_MASK);
        else if (off == REG_RESET && (v & 0xff) == ACPI_RESET_VALUE)
            end_vm(&pm->end, KILN_EXIT_REBOOT, 0, 0, "guest reset through the ACPI reset register");
        return;
    }
    pthread_mutex_lock(&pm->lock);
    if (region == REGION_PM1_EVT)
        write_pm1_evt(pm, off, v, len);
    else if (region == REGION_PM1_CNT)
        write_pm1_cnt(pm, off, v, len);
    pthread_mutex_unlock(&pm->lock); /* the PM timer is read-only */
}

static int acpi_pm_reset(struct device *d)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    pthread_mutex_lock(&pm->lock);
    pm->pm1_sts = pm->pm1_en = pm->pm1_cnt = 0;
    pthread_mutex_unlock(&pm->lock);
    return 0;
}

/* The guest took the SCI (EOI): raise it again if an enabled event is still pending. */
static void resample_cb(uv_poll_t *h, int status, int events)
{
    struct acpi_pm *pm = h->data;
    (void)events;
    if (status < 0 || !irq_level_resampled(&pm->sci))
        return;
    pthread_mutex_lock(&pm->lock);
    sci_update(pm);
    pthread_mutex_unlock(&pm->lock);
}

static int acpi_pm_start(struct device *d, uv_loop_t *loop)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    if (pm->sci.resample_fd < 0)
        return 0;
    int ret = uv_poll_init(loop, &pm->resample, pm->sci.resample_fd);
    if (ret < 0)
        return ret;
    pm->resample.data = pm;
    pm->resample_open = true;
    return uv_poll_start(&pm->resample, UV_READABLE, resample_cb);
}

static void acpi_pm_stop(struct device *d)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    if (pm->resample_open)
        uv_close((uv_handle_t *)&pm->resample, NULL);
    pm->resample_open = false;
}

static void acpi_pm_destroy(struct device *d)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    irq_level_release(&pm->sci);
    if (pm->ged_fd >= 0)
        close(pm->ged_fd);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}

/* PM1 status, enable and control (the PM timer counts host time and needs nothing). */
static int acpi_pm_save(const struct device *d, struct device_state *st)
{
    const struct acpi_pm *pm = (const struct acpi_pm *)d;
    const uint16_t regs[3] = {pm->pm1_sts, pm->pm1_en, pm->pm1_cnt};
    state_put(st, regs, sizeof(regs));
    return st->err ? -st->err : 0;
}

static int acpi_pm_restore(struct device *d, struct device_state *st)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    uint16_t regs[3];
    state_get(st, regs, sizeof(regs));
    if (st->err)
        return -EINVAL;
    pm->pm1_sts = regs[0];
    pm->pm1_en = regs[1];
    pm->pm1_cnt = regs[2];
    return 0;
}

/* \_SB.PWRB as an AML NameString: root, two segments. */
static void aml_pwrb_path(struct aml *a)
{
    aml_byte(a, '\\');
    aml_byte(a, 0x2f); /* MultiNamePrefix */
    aml_byte(a, 2);
    aml_nameseg(a, "_SB_");
    aml_nameseg(a, "PWRB");
}

/*
 * Hardware-reduced ACPI has no fixed power button: a Generic Event Device (ACPI0013) whose
 * interrupt runs _EVT, which notifies the control-method power button PNP0C0C (Linux's button
 * driver turns the notification into a KEY_POWER input event). kiln's GED has one event only.
 */
static void acpi_pm_describe(const struct device *d, struct aml *a)
{
    const struct acpi_pm *pm = (const struct acpi_pm *)d;
    if (pm->full_hardware)
        return; /* the FADT's fixed power button: PWRBTN_STS in PM1, raised through the SCI */
    size_t dev = aml_device_open(a, "GED0");
    aml_name(a, "_HID");
    aml_string(a, "ACPI0013");
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_crs_ext_irq(a, ACPI_GED_IRQ, true);
    aml_byte(a, 0x14); /* MethodOp _EVT, one argument (the GSI) */
    size_t method = aml_open(a);
    aml_nameseg(a, "_EVT");
    aml_byte(a, 0x01);
    aml_byte(a, 0x86); /* Notify(\_SB.PWRB, 0x80): the button was pressed */
    aml_pwrb_path(a);
    aml_integer(a, 0x80);
    aml_close(a, method);
    aml_close(a, dev);
    dev = aml_device_open(a, "PWRB");
    aml_name(a, "_HID");
    aml_byte(a, 0x0c); /* DWordPrefix: an EISA ID */
    aml_le(a, acpi_eisaid("PNP0C0C"), 4);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_close(a, dev);
}

static const struct device_ops acpi_pm_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
    .save = acpi_pm_save,
    .restore = acpi_pm_restore,
    .reset = acpi_pm_reset,
    .start = acpi_pm_start,
    .stop = acpi_pm_stop,
    .destroy = acpi_pm_destroy,
    .describe = acpi_pm_describe,
};

void acpi_pm_power_button(struct device *d)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    pthread_mutex_lock(&pm->lock);
    pm->presses++;
    if (pm->full_hardware) {
        pm->pm1_sts |= PM1_PWRBTN;
        sci_update(pm);
    } else if (pm->ged_fd >= 0) {
        uint64_t one = 1;
        /* A failure (a full eventfd counter) means an interrupt is already on its way. */
        ssize_t n = write(pm->ged_fd, &one, sizeof(one));
        (void)n;
    }
    pthread_mutex_unlock(&pm->lock);
}

uint32_t acpi_pm_presses(const struct device *d)
{
    struct acpi_pm *pm = (struct acpi_pm *)d;
    pthread_mutex_lock(&pm->lock);
    uint32_t n = pm->presses;
    pthread_mutex_unlock(&pm->lock);
    return n;
}

int acpi_pm_create(const struct end_vm *end, bool full_hardware, struct device **out)
{
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return -ENOMEM;
    pm->dev = (struct device){.name = "ACPI power", .ops = &acpi_pm_ops};
    pm->full_hardware = full_hardware;
    pm->sci = (struct irq_level){.fd = -1, .resample_fd = -1};
    pm->ged_fd = -1;
    device_add_range(&pm->dev, DEVICE_PIO, PORT_ACPI_SLEEP_CONTROL, ACPI_PM_LEN);
    if (full_hardware) {
        device_add_range(&pm->dev, DEVICE_PIO, PORT_ACPI_PM1A_EVT, 4);
        device_add_range(&pm->dev, DEVICE_PIO, PORT_ACPI_PM1A_CNT, 2);
        device_add_range(&pm->dev, DEVICE_PIO, PORT_ACPI_PM_TMR, 4);
    }
    pm->end = *end;
    pthread_mutex_init(&pm->lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &pm->start);
    *out = &pm->dev;
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    bool full = boot_via_firmware(env->cfg);
    int ret = acpi_pm_create(&env->end, full, out);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "ACPI power registers: %s", strerror(-ret));
    struct acpi_pm *pm = (struct acpi_pm *)*out;
    ret = full ? irq_level_init(env->irqs, ACPI_SCI_IRQ, &pm->sci)
               : irq_edge_init(env->irqs, ACPI_GED_IRQ, &pm->ged_fd);
    if (ret < 0) {
        acpi_pm_destroy(*out);
        *out = NULL;
        return kiln_fail(errmsg, -ret, "ACPI power button interrupt: %s", strerror(-ret));
    }
    return 0;
}

const struct device_class acpi_pm_class = {.name = "ACPI power", .create = create};
