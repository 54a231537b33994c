/* rtc.c: MC146818 RTC and CMOS RAM: the clock, BCD/binary and 12/24-hour modes, memory sizes. */
#include "devices/rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "boot/loader.h"
#include "platform/acpi.h"
#include "platform/aml.h"
#include "platform/layout.h"
#include "state.h"

/* Registers and CMOS cells. */
enum {
    REG_SEC = 0x00,
    REG_MIN = 0x02,
    REG_HOUR = 0x04,
    REG_WDAY = 0x06,
    REG_MDAY = 0x07,
    REG_MON = 0x08,
    REG_YEAR = 0x09,
    REG_A = 0x0a,
    REG_B = 0x0b,
    REG_C = 0x0c,
    REG_D = 0x0d,
    CMOS_EQUIPMENT = 0x14,
    CMOS_BASE_KB = 0x15,   /* and 0x16 */
    CMOS_EXT_KB = 0x17,    /* and 0x18; again at 0x30, 0x31 */
    CMOS_CHECKSUM = 0x2e,  /* high byte; low at 0x2f: sum of 0x10-0x2d */
    CMOS_EXT_KB2 = 0x30,   /* and 0x31 */
    REG_CENTURY = 0x32,    /* where ACPI's FADT and firmware look */
    CMOS_ABOVE_16M = 0x34, /* and 0x35: 64 KiB units of RAM from 16 MiB up to 4 GiB */
    CMOS_ABOVE_4G = 0x5b,  /* 0x5b-0x5d: 64 KiB units of RAM from 4 GiB */
    CMOS_CPUS = 0x5f,      /* vCPUs - 1 (SeaBIOS reads it) */
};

#define B_SET 0x80
#define B_BINARY 0x04
#define B_24H 0x02
#define A_UIP 0x80
#define D_VALID 0x80
#define HOUR_PM 0x80
#define UIP_NS 244000 /* the update cycle: set for this long before each second ends */

struct civil {
    int64_t year;
    int mon, mday, hour, min, sec;
};

struct rtc {
    struct device dev;
    pthread_mutex_t lock; /* any vCPU may use the ports */
    uint8_t index;
    uint8_t ram[128];
    int64_t offset; /* guest seconds minus host UTC seconds */
    bool frozen;    /* register B's SET bit: the guest is setting the clock */
    struct civil set_time;
};

/* Days since 1970-01-01 of a proleptic Gregorian date (any year, no overflow for sane ones). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static struct civil civil_from_seconds(int64_t t)
{
    int64_t days = t / 86400, rem = t % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    struct civil c = {
        .mday = (int)(doy - (153 * mp + 2) / 5 + 1),
        .mon = (int)(mp < 10 ? mp + 3 : mp - 9),
        .hour = (int)(rem / 3600),
        .min = (int)(rem / 60 % 60),
        .sec = (int)(rem % 60),
    };
    c.year = yoe + era * 400 + (c.mon <= 2);
    return c;
}

static int64_t seconds_from_civil(const struct civil *c)
{
    return days_from_civil(c->year, c->mon, c->mday) * 86400 + c->hour * 3600 + c->min * 60 +
           c->sec;
}

static struct timespec host_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts;
}

/* The time the guest sees now. */
static struct civil guest_time(const struct rtc *r)
{
    return r->frozen ? r->set_time : civil_from_seconds(host_now().tv_sec + r->offset);
}

static uint8_t encode(const struct rtc *r, int v)
{
    return r->ram[REG_B] & B_BINARY ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

static int decode(const struct rtc *r, uint8_t v)
{
    return r->ram[REG_B] & B_BINARY ? v : (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t encode_hour(const struct rtc *r, int h)
{
    if (r->ram[REG_B] & B_24H)
        return encode(r, h);
    return (uint8_t)(encode(r, h % 12 ? h % 12 : 12) | (h >= 12 ? HOUR_PM : 0));
}

static int decode_hour(const struct rtc *r, uint8_t v)
{
    if (r->ram[REG_B] & B_24H)
        return decode(r, v);
    return decode(r, v & 0x7f) % 12 + (v & HOUR_PM ? 12 : 0);
}

/* Register reg of the clock (a time field), or -1 if reg is not one. */
static int read_time(const struct rtc *r, uint8_t reg)
{
    struct civil c = guest_time(r);
    int64_t days = days_from_civil(c.year, c.mon, c.mday);
    switch (reg) {
    case REG_SEC:
        return encode(r, c.sec);
    case REG_MIN:
        return encode(r, c.min);
    case REG_HOUR:
        return encode_hour(r, c.hour);
    case REG_WDAY: /* 1 = Sunday; 1970-01-01 was a Thursday */
        return encode(r, (int)(((days + 4) % 7 + 7) % 7) + 1);
    case REG_MDAY:
        return encode(r, c.mday);
    case REG_MON:
        return encode(r, c.mon);
    case REG_YEAR:
        return encode(r, (int)(((c.year % 100) + 100) % 100));
    case REG_CENTURY:
        return encode(r, (int)((c.year / 100) % 100));
    default:
        return -1;
    }
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Set one time field from the guest's value; returns false if reg is not a time field. */
static bool write_time(struct rtc *r, uint8_t reg, uint8_t v)
{
    struct civil c = guest_time(r);
    switch (reg) {
    case REG_SEC:
        c.sec = clamp(decode(r, v), 0, 59);
        break;
    case REG_MIN:
        c.min = clamp(decode(r, v), 0, 59);
        break;
    case REG_HOUR:
        c.hour = clamp(decode_hour(r, v), 0, 23);
        break;
    case REG_WDAY:
        return true; /* derived from the date */
    case REG_MDAY:
        c.mday = clamp(decode(r, v), 1, 31);
        break;
    case REG_MON:
        c.mon = clamp(decode(r, v), 1, 12);
        break;
    case REG_YEAR:
        c.year = c.year / 100 * 100 + clamp(decode(r, v), 0, 99);
        break;
    case REG_CENTURY:
        c.year = clamp(decode(r, v), 0, 99) * 100 + c.year % 100;
        break;
    default:
        return false;
    }
    if (r->frozen)
        r->set_time = c;
    else
        r->offset = seconds_from_civil(&c) - host_now().tv_sec;
    return true;
}

static uint8_t read_reg(struct rtc *r, uint8_t reg)
{
    int t = read_time(r, reg);
    if (t >= 0)
        return (uint8_t)t;
    switch (reg) {
    case REG_A: /* the update-in-progress flag, just before each second ends */
        return (uint8_t)((r->ram[REG_A] & 0x7f) |
                         (host_now().tv_nsec >= 1000000000 - UIP_NS ? A_UIP : 0));
    case REG_C: /* no interrupt ever happens, so no flag is ever set */
        return 0;
    case REG_D:
        return D_VALID;
    default:
        return r->ram[reg];
    }
}

static void write_reg(struct rtc *r, uint8_t reg, uint8_t v)
{
    if (write_time(r, reg, v))
        return;
    if (reg == REG_B) {
        bool set = v & B_SET;
        if (set && !r->frozen)
            r->set_time = guest_time(r);
        else if (!set && r->frozen)
            r->offset = seconds_from_civil(&r->set_time) - host_now().tv_sec;
        r->frozen = set;
        r->ram[REG_B] = v;
    } else if (reg == REG_A) {
        r->ram[REG_A] = v & 0x7f;
    } else if (reg != REG_C && reg != REG_D) {
        r->ram[reg] = v;
    }
}

/* Region 0: the index port (bit 7 is the NMI mask, kept out of the index); region 0 off 1: data. */
static void rtc_read(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len)
{
    struct rtc *r = (struct rtc *)d;
    (void)region;
    memset(data, 0xff, len);
    pthread_mutex_lock(&r->lock);
    if (off == 1)
        data[0] = read_reg(r, r->index);
    pthread_mutex_unlock(&r->lock);
}

static void rtc_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                      uint32_t len)
{
    struct rtc *r = (struct rtc *)d;
    (void)region;
    (void)len;
    pthread_mutex_lock(&r->lock);
    if (off == 0)
        r->index = data[0] & 0x7f;
    else
        write_reg(r, r->index, data[0]);
    pthread_mutex_unlock(&r->lock);
}

static void rtc_describe(const struct device *d, struct aml *a)
{
    (void)d;
    size_t dev = aml_device_open(a, "RTC_");
    aml_name(a, "_HID");
    aml_byte(a, 0x0c); /* DWordPrefix: an EISA ID */
    aml_bytes(a, &(uint32_t){acpi_eisaid("PNP0B00")}, 4);
    aml_crs_io(a, RTC_PORT_INDEX, 2, -1);
    aml_close(a, dev);
}

static void rtc_destroy(struct device *d)
{
    struct rtc *r = (struct rtc *)d;
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void put_civil(struct device_state *st, const struct civil *c)
{
    const uint8_t f[5] = {(uint8_t)c->mon, (uint8_t)c->mday, (uint8_t)c->hour, (uint8_t)c->min,
                          (uint8_t)c->sec};
    state_put_u64(st, (uint64_t)c->year);
    state_put(st, f, sizeof(f));
}

/* Years far past any the guest can set or the clock reach, and safe from overflow. */
#define YEAR_MAX 100000

/* A date and time as the guest's writes make them (write_time clamps every field), or false. */
static bool get_civil(struct device_state *st, struct civil *c)
{
    uint8_t f[5];
    int64_t year = (int64_t)state_get_u64(st);
    state_get(st, f, sizeof(f));
    *c = (struct civil){year, f[0], f[1], f[2], f[3], f[4]};
    return !st->err && year >= 0 && year < YEAR_MAX && c->mon >= 1 && c->mon <= 12 &&
           c->mday >= 1 && c->mday <= 31 && c->hour <= 23 && c->min <= 59 && c->sec <= 59;
}

/*
 * The registers and CMOS cells as they are, and the guest's time now (or the time it is setting,
 * register B's SET). A restore continues the clock from that time, as KVM's clock continues from
 * where it stood: no time passes for the guest in between (to the second; the clock has no finer
 * grain the guest can see but register A's update flag).
 */
static int rtc_save(const struct device *d, struct device_state *st)
{
    struct rtc *r = (struct rtc *)d;
    pthread_mutex_lock(&r->lock);
    struct civil now = guest_time(r);
    state_put(st, &r->index, 1);
    state_put(st, r->ram, sizeof(r->ram));
    put_civil(st, &now);
    pthread_mutex_unlock(&r->lock);
    return st->err ? -st->err : 0;
}

static int rtc_restore(struct device *d, struct device_state *st)
{
    struct rtc *r = (struct rtc *)d;
    uint8_t index, ram[sizeof(r->ram)];
    struct civil now;
    state_get(st, &index, 1);
    state_get(st, ram, sizeof(ram));
    /* Only what the guest's writes can make: a 7-bit index, register A's UIP bit clear. */
    if (!get_civil(st, &now) || index > 0x7f || ram[REG_A] & A_UIP)
        return -EINVAL;
    pthread_mutex_lock(&r->lock);
    r->index = index;
    memcpy(r->ram, ram, sizeof(ram));
    r->frozen = ram[REG_B] & B_SET;
    r->set_time = now;
    r->offset = seconds_from_civil(&now) - host_now().tv_sec;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static const struct device_ops rtc_ops = {
    .read = rtc_read,
    .write = rtc_write,
    .save = rtc_save,
    .restore = rtc_restore,
    .destroy = rtc_destroy,
    .describe = rtc_describe,
};

static void put16(uint8_t *ram, unsigned at, uint64_t v)
{
    ram[at] = (uint8_t)v;
    ram[at + 1] = (uint8_t)(v >> 8);
}

/* The memory sizes and CPU count, in the cells PC firmware reads, and their checksum. */
static void fill_cmos(uint8_t *ram, const struct rtc_config *cfg)
{
    ram[REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
    ram[REG_B] = B_24H;
    ram[CMOS_EQUIPMENT] = 0x02; /* a maths coprocessor, no floppy */
    put16(ram, CMOS_BASE_KB, 640);
    uint64_t ext_kb = cfg->ram_below_4g > MIB ? (cfg->ram_below_4g - MIB) / KIB : 0;
    put16(ram, CMOS_EXT_KB, ext_kb < 0xfc00 ? ext_kb : 0xfc00);
    put16(ram, CMOS_EXT_KB2, ext_kb < 0xfc00 ? ext_kb : 0xfc00);
    uint64_t above16 = cfg->ram_below_4g > 16 * MIB ? (cfg->ram_below_4g - 16 * MIB) >> 16 : 0;
    put16(ram, CMOS_ABOVE_16M, above16 < 0xffff ? above16 : 0xffff);
    uint64_t above4g = cfg->ram_above_4g >> 16;
    ram[CMOS_ABOVE_4G] = (uint8_t)above4g;
    ram[CMOS_ABOVE_4G + 1] = (uint8_t)(above4g >> 8);
    ram[CMOS_ABOVE_4G + 2] = (uint8_t)(above4g >> 16);
    ram[CMOS_CPUS] = (uint8_t)(cfg->cpus - 1);
    unsigned sum = 0;
    for (unsigned i = 0x10; i <= 0x2d; i++)
        sum += ram[i];
    ram[CMOS_CHECKSUM] = (uint8_t)(sum >> 8);
    ram[CMOS_CHECKSUM + 1] = (uint8_t)sum;
}

int rtc_create(const struct rtc_config *cfg, struct device **out)
{
    struct rtc *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->dev = (struct device){.name = "RTC", .ops = &rtc_ops};
    device_add_range(&r->dev, DEVICE_PIO, RTC_PORT_INDEX, 2);
    pthread_mutex_init(&r->lock, NULL);
    fill_cmos(r->ram, cfg);
    *out = &r->dev;
    return 0;
}

/* Firmware needs the clock and the CMOS memory; a directly booted kernel goes without. */
static unsigned rtc_count(const struct kiln_config *cfg)
{
    return boot_via_firmware(cfg) ? 1 : 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    uint64_t low = guest_low_end(env->mem);
    struct rtc_config rc = {
        .ram_below_4g = low, .ram_above_4g = env->mem->size - low, .cpus = env->cfg->cpus};
    int ret = rtc_create(&rc, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "RTC: %s", strerror(-ret)) : 0;
}

const struct device_class rtc_class = {.name = "RTC", .count = rtc_count, .create = create};
