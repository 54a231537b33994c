/* i8042.c: a PS/2 controller with no keyboard attached; command 0xFE resets (ends) the VM. */
#include "devices/i8042.h"
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define STATUS_OBF 0x01     /* output buffer full */
#define STATUS_SYSFLAG 0x04 /* self test passed */
#define STATUS_CMD 0x08     /* last write was a command */

#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_DISABLE_AUX 0xa7
#define CMD_ENABLE_AUX 0xa8
#define CMD_TEST_AUX 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_TEST_KBD 0xab
#define CMD_DISABLE_KBD 0xad
#define CMD_ENABLE_KBD 0xae
#define CMD_READ_OUTPORT 0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_RESET 0xfe

#define CTR_KBD_DISABLED 0x10
#define CTR_AUX_DISABLED 0x20

enum { REGION_DATA, REGION_CMD };

struct i8042 {
    struct device dev;
    struct end_vm end;
    pthread_mutex_t lock; /* guards the registers below */
    uint8_t ctr;          /* controller configuration ("command byte") */
    uint8_t out;          /* output buffer */
    bool out_full;
    uint8_t pending; /* command waiting for its data byte, 0 if none */
};

/* The registers at power-on (lock held or not yet shared). */
static void power_on(struct i8042 *k)
{
    k->ctr = CTR_KBD_DISABLED | CTR_AUX_DISABLED;
    k->out = 0;
    k->out_full = false;
    k->pending = 0;
}

static void put_out(struct i8042 *k, uint8_t byte)
{
    k->out = byte;
    k->out_full = true;
}

/* Returns true if the command asks for a CPU reset. */
static bool command(struct i8042 *k, uint8_t cmd)
{
    switch (cmd) {
    case CMD_READ_CTR:
        put_out(k, k->ctr);
        break;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTPORT:
        k->pending = cmd;
        break;
    case CMD_SELF_TEST:
        put_out(k, 0x55);
        break;
    case CMD_TEST_KBD:
    case CMD_TEST_AUX:
        put_out(k, 0x00); /* interface test passed */
        break;
    case CMD_READ_OUTPORT:
        put_out(k, 0x01); /* A20 and reset lines high: nothing in progress */
        break;
    case CMD_DISABLE_KBD:
        k->ctr |= CTR_KBD_DISABLED;
        break;
    case CMD_ENABLE_KBD:
        k->ctr &= ~CTR_KBD_DISABLED;
        break;
    case CMD_DISABLE_AUX:
        k->ctr |= CTR_AUX_DISABLED;
        break;
    case CMD_ENABLE_AUX:
        k->ctr &= ~CTR_AUX_DISABLED;
        break;
    case CMD_RESET:
        return true;
    default:
        break;
    }
    return false;
}

/* Returns true if the data completes a write of the output port with the reset line low. */
static bool data_write(struct i8042 *k, uint8_t val)
{
    uint8_t cmd = k->pending;
    k->pending = 0;
    if (cmd == CMD_WRITE_CTR)
        k->ctr = val;
    else if (cmd == CMD_WRITE_OUTPORT)
        return (val & 1) == 0;
    /* Bytes for the (absent) keyboard get no answer: the guest times out and moves on. */
    return false;
}

/* Device ops. Either port's access runs under the lock; the reset is reported after it. */

static void i8042_read(struct device *d, unsigned region, uint64_t off, uint8_t *data, uint32_t len)
{
    struct i8042 *k = (struct i8042 *)d;
    (void)off;
    memset(data, 0, len);
    pthread_mutex_lock(&k->lock);
    if (region == REGION_DATA) {
        data[0] = k->out;
        k->out_full = false;
    } else {
        data[0] = STATUS_SYSFLAG | (k->out_full ? STATUS_OBF : 0) | (k->pending ? STATUS_CMD : 0);
    }
    pthread_mutex_unlock(&k->lock);
}

static void i8042_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                        uint32_t len)
{
    struct i8042 *k = (struct i8042 *)d;
    (void)off;
    (void)len;
    pthread_mutex_lock(&k->lock);
    bool reset = region == REGION_DATA ? data_write(k, data[0]) : command(k, data[0]);
    pthread_mutex_unlock(&k->lock);
    if (reset)
        end_vm(&k->end, KILN_EXIT_REBOOT, 0, 0, "guest reset through the i8042 controller");
}

static int i8042_reset(struct device *d)
{
    struct i8042 *k = (struct i8042 *)d;
    pthread_mutex_lock(&k->lock);
    power_on(k);
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static void i8042_destroy(struct device *d)
{
    struct i8042 *k = (struct i8042 *)d;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* The controller's registers (the VM is paused: no vCPU holds the lock). */
static int i8042_save(const struct device *d, struct device_state *st)
{
    const struct i8042 *k = (const struct i8042 *)d;
    const uint8_t regs[4] = {k->ctr, k->out, k->out_full, k->pending};
    state_put(st, regs, sizeof(regs));
    return st->err ? -st->err : 0;
}

static int i8042_restore(struct device *d, struct device_state *st)
{
    struct i8042 *k = (struct i8042 *)d;
    uint8_t regs[4];
    state_get(st, regs, sizeof(regs));
    if (st->err || regs[2] > 1)
        return -EINVAL;
    k->ctr = regs[0];
    k->out = regs[1];
    k->out_full = regs[2];
    k->pending = regs[3];
    return 0;
}

static const struct device_ops i8042_ops = {
    .read = i8042_read,
    .write = i8042_write,
    .save = i8042_save,
    .restore = i8042_restore,
    .reset = i8042_reset,
    .destroy = i8042_destroy,
};

int i8042_create(const struct end_vm *end, struct device **out)
{
    struct i8042 *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->dev = (struct device){.name = "i8042", .ops = &i8042_ops};
    device_add_range(&k->dev, DEVICE_PIO, I8042_DATA_PORT, 1);
    device_add_range(&k->dev, DEVICE_PIO, I8042_CMD_PORT, 1);
    k->end = *end;
    pthread_mutex_init(&k->lock, NULL);
    power_on(k);
    *out = &k->dev;
    return 0;
}

static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    int ret = i8042_create(&env->end, out);
    return ret < 0 ? kiln_fail(errmsg, -ret, "i8042: %s", strerror(-ret)) : 0;
}

const struct device_class i8042_class = {.name = "i8042", .create = create};
