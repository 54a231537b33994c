/* i8042.c: a PS/2 controller with no keyboard attached; command 0xFE resets (ends) the VM. */
#include "devices/i8042.h"

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

void i8042_init(struct i8042 *k, void (*on_reset)(void *ctx), void *ctx)
{
    memset(k, 0, sizeof(*k));
    pthread_mutex_init(&k->lock, NULL);
    k->ctr = CTR_KBD_DISABLED | CTR_AUX_DISABLED;
    k->on_reset = on_reset;
    k->ctx = ctx;
}

void i8042_destroy(struct i8042 *k)
{
    pthread_mutex_destroy(&k->lock);
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

void i8042_data_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct i8042 *k = dev;
    (void)offset;
    bool reset = false;
    pthread_mutex_lock(&k->lock);
    if (is_write) {
        reset = data_write(k, data[0]);
    } else {
        memset(data, 0, len);
        data[0] = k->out;
        k->out_full = false;
    }
    pthread_mutex_unlock(&k->lock);
    if (reset)
        k->on_reset(k->ctx);
}

void i8042_cmd_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
    struct i8042 *k = dev;
    (void)offset;
    bool reset = false;
    pthread_mutex_lock(&k->lock);
    if (is_write) {
        reset = command(k, data[0]);
    } else {
        memset(data, 0, len);
        data[0] = STATUS_SYSFLAG | (k->out_full ? STATUS_OBF : 0) | (k->pending ? STATUS_CMD : 0);
    }
    pthread_mutex_unlock(&k->lock);
    if (reset)
        k->on_reset(k->ctx);
}
