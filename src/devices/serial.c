/* serial.c: COM1 adapter: locks the UART model, pulses its IRQ line, moves bytes via libuv. */
#include "devices/serial.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/uart16550.h"
#include "platform/acpi.h"
#include "platform/aml.h"
#include "platform/irq_routing.h"
#include "state.h"

/* Output waiting for the host fd. Bounded: when full, the UART stops draining (THRE stays 0). */
#define SERIAL_OUT_RING 65536
#define SERIAL_IN_BUF 4096
/* Writes of at most PIPE_BUF never block on a pipe the poller found writable. */
#define SERIAL_WRITE_CHUNK 4096
#define CTRL_A 0x01

struct serial {
    struct device dev;
    pthread_mutex_t lock; /* guards uart, ring, in_buf, irq_level */
    struct uart16550 uart;
    struct serial_config cfg;
    bool irq_level;

    uint8_t *ring;
    size_t ring_head, ring_len;
    uint8_t in_buf[SERIAL_IN_BUF];
    size_t in_head, in_len;
    bool esc_pending; /* saw Ctrl-A, waiting for the next byte */

    /* Loop side. */
    uv_loop_t *loop;
    uv_async_t async; /* vCPU -> loop: output queued or input space freed */
    uv_poll_t in_poll, out_poll;
    bool in_pollable, out_pollable;
    bool in_polling, out_polling;
    bool in_eof;
    bool started;
};

static const struct device_ops serial_ops;

int serial_create(const struct serial_config *cfg, struct serial **out)
{
    struct serial *s = calloc(1, sizeof(*s));
    uint8_t *ring = malloc(SERIAL_OUT_RING);
    if (!s || !ring) {
        free(s);
        free(ring);
        if (cfg->irq_fd >= 0)
            close(cfg->irq_fd);
        return -ENOMEM;
    }
    s->dev = (struct device){.name = "COM1", .ops = &serial_ops};
    device_add_range(&s->dev, DEVICE_PIO, SERIAL_COM1_PORT, SERIAL_PORT_LEN);
    s->ring = ring;
    pthread_mutex_init(&s->lock, NULL);
    uart_init(&s->uart);
    s->cfg = *cfg;
    *out = s;
    return 0;
}

struct device *serial_device(struct serial *s)
{
    return &s->dev;
}

/* The UART's registers and FIFOs, and the output the host has not taken yet (sent after restore).
 */
static int serial_save(const struct device *d, struct device_state *st)
{
    struct serial *s = (struct serial *)d;
    pthread_mutex_lock(&s->lock);
    state_put(st, &s->uart, sizeof(s->uart));
    state_put_u32(st, s->irq_level);
    state_put_u64(st, s->ring_len);
    size_t first =
        SERIAL_OUT_RING - s->ring_head < s->ring_len ? SERIAL_OUT_RING - s->ring_head : s->ring_len;
    state_put(st, s->ring + s->ring_head, first);
    state_put(st, s->ring, s->ring_len - first);
    pthread_mutex_unlock(&s->lock);
    return st->err ? -st->err : 0;
}

static int serial_restore(struct device *d, struct device_state *st)
{
    struct serial *s = (struct serial *)d;
    /* The UART's bytes as saved: its bool must be 0 or 1 before they are a struct uart16550. */
    uint8_t raw[sizeof(struct uart16550)];
    state_get(st, raw, sizeof(raw));
    struct uart16550 uart = {0};
    bool flag_ok = raw[offsetof(struct uart16550, thr_ipending)] <= 1;
    if (flag_ok)
        memcpy(&uart, raw, sizeof(uart));
    uint32_t level = state_get_u32(st);
    uint64_t len = state_get_u64(st);
    if (st->err || !flag_ok || len > SERIAL_OUT_RING || level > 1 ||
        uart.rx.count > UART_FIFO_SIZE || uart.tx.count > UART_FIFO_SIZE ||
        uart.rx.head >= UART_FIFO_SIZE || uart.tx.head >= UART_FIFO_SIZE)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    state_get(st, s->ring, (size_t)len);
    s->ring_head = 0;
    s->ring_len = st->err ? 0 : (size_t)len;
    s->uart = uart;
    s->irq_level = level;
    pthread_mutex_unlock(&s->lock);
    return st->err ? -st->err : 0;
}

static void serial_destroy(struct device *d)
{
    struct serial *s = (struct serial *)d;
    pthread_mutex_destroy(&s->lock);
    if (s->cfg.irq_fd >= 0)
        close(s->cfg.irq_fd);
    free(s->ring);
    free(s);
}

/* Pulse the interrupt on each rising edge of the UART's INTR output (ISA IRQs are edge). */
static void update_irq_locked(struct serial *s)
{
    bool level = uart_irq_line(&s->uart);
    if (level && !s->irq_level && s->cfg.irq_fd >= 0) {
        uint64_t one = 1;
        if (write(s->cfg.irq_fd, &one, sizeof(one)) < 0)
            klog(s->cfg.log, KILN_LOG_DEBUG, "serial: irq eventfd write: %s", strerror(errno));
    }
    s->irq_level = level;
}

/* Move transmitted bytes from the UART into the output ring. Returns true if any moved. */
static bool pump_tx_locked(struct serial *s)
{
    bool moved = false;
    uint8_t byte;
    while (uart_tx_count(&s->uart) > 0) {
        if (s->cfg.out_fd >= 0 && s->ring_len == SERIAL_OUT_RING)
            break;
        uart_tx_pop(&s->uart, &byte);
        if (s->cfg.out_fd < 0)
            continue;
        s->ring[(s->ring_head + s->ring_len) % SERIAL_OUT_RING] = byte;
        s->ring_len++;
        moved = true;
    }
    return moved;
}

/* Feed buffered input into the UART receiver while it has room. Returns true if any moved. */
static bool pump_rx_locked(struct serial *s)
{
    bool moved = false;
    while (s->in_len > 0 && uart_rx_space(&s->uart) > 0) {
        uart_rx_push(&s->uart, s->in_buf[s->in_head]);
        s->in_head = (s->in_head + 1) % SERIAL_IN_BUF;
        s->in_len--;
        moved = true;
    }
    return moved;
}

/* After a register access (lock held, released here): move bytes, update the line, wake. */
static void after_access_unlock(struct serial *s)
{
    bool wake = pump_tx_locked(s);
    /* Freed input space: the loop may have stopped reading when its buffer filled. */
    if (pump_rx_locked(s))
        wake = true;
    update_irq_locked(s);
    bool started = s->started;
    pthread_mutex_unlock(&s->lock);
    if (wake && started)
        uv_async_send(&s->async);
}

/* Wider accesses hit the addressed register only; the UART is a byte device. vCPU threads. */
static void serial_read(struct device *d, unsigned region, uint64_t off, uint8_t *data,
                        uint32_t len)
{
    struct serial *s = (struct serial *)d;
    (void)region;
    memset(data, 0, len);
    pthread_mutex_lock(&s->lock);
    data[0] = uart_read(&s->uart, (unsigned)off);
    after_access_unlock(s);
}

static void serial_write(struct device *d, unsigned region, uint64_t off, const uint8_t *data,
                         uint32_t len)
{
    struct serial *s = (struct serial *)d;
    (void)region;
    (void)len;
    pthread_mutex_lock(&s->lock);
    uart_write(&s->uart, (unsigned)off, data[0]);
    after_access_unlock(s);
}

/* Write part of the ring to the output fd. Returns bytes written, 0 if it would block, -errno. */
static ssize_t write_some(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    size_t len = s->ring_len;
    size_t head = s->ring_head;
    pthread_mutex_unlock(&s->lock);
    if (len == 0)
        return 0;
    /* Only this thread consumes, so [head, head + len) stays valid without the lock. */
    size_t chunk = SERIAL_OUT_RING - head < len ? SERIAL_OUT_RING - head : len;
    if (chunk > SERIAL_WRITE_CHUNK)
        chunk = SERIAL_WRITE_CHUNK;
    ssize_t n = write(s->cfg.out_fd, s->ring + head, chunk);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    pthread_mutex_lock(&s->lock);
    s->ring_head = (s->ring_head + (size_t)n) % SERIAL_OUT_RING;
    s->ring_len -= (size_t)n;
    pump_tx_locked(s);
    update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

static size_t pending_output(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    size_t len = s->ring_len;
    pthread_mutex_unlock(&s->lock);
    return len;
}

/* Output is broken (e.g. the reader went away): discard from now on so the guest never stalls. */
static void drop_output(struct serial *s, int err)
{
    klog(s->cfg.log, KILN_LOG_WARN, "serial output: %s; discarding further output", strerror(err));
    pthread_mutex_lock(&s->lock);
    s->cfg.out_fd = -1;
    s->ring_len = 0;
    pump_tx_locked(s);
    update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);
}

static void out_poll_cb(uv_poll_t *h, int status, int events);

static void flush_output(struct serial *s)
{
    if (s->cfg.out_fd < 0)
        return;
    if (!s->out_pollable) {
        /* Regular files never block for long; write everything now. */
        ssize_t n;
        while ((n = write_some(s)) > 0)
            ;
        if (n < 0)
            drop_output(s, (int)-n);
        return;
    }
    ssize_t n = write_some(s);
    if (n < 0) {
        drop_output(s, (int)-n);
        n = 0;
    }
    bool want = s->cfg.out_fd >= 0 && pending_output(s) > 0;
    if (want && !s->out_polling) {
        uv_poll_start(&s->out_poll, UV_WRITABLE, out_poll_cb);
        s->out_polling = true;
    } else if (!want && s->out_polling) {
        uv_poll_stop(&s->out_poll);
        s->out_polling = false;
    }
}

static void out_poll_cb(uv_poll_t *h, int status, int events)
{
    struct serial *s = h->data;
    (void)events;
    if (status < 0) {
        drop_output(s, -status);
        uv_poll_stop(&s->out_poll);
        s->out_polling = false;
        return;
    }
    flush_output(s);
}

/* Queue input bytes, acting on the Ctrl-A escape. Runs on the loop thread, lock held. */
static bool queue_input_locked(struct serial *s, const uint8_t *buf, size_t n)
{
    bool escape = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        if (s->cfg.escape && s->esc_pending) {
            s->esc_pending = false;
            if (c == 'x' || c == 'X') {
                escape = true;
                continue;
            }
        } else if (s->cfg.escape && c == CTRL_A) {
            s->esc_pending = true;
            continue;
        }
        if (s->in_len < SERIAL_IN_BUF) {
            s->in_buf[(s->in_head + s->in_len) % SERIAL_IN_BUF] = c;
            s->in_len++;
        }
    }
    return escape;
}

static void update_input_poll(struct serial *s);

/* Bytes of input the buffer can still take. */
static size_t input_room(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    size_t room = SERIAL_IN_BUF - s->in_len;
    pthread_mutex_unlock(&s->lock);
    return room;
}

/* Input read from the host: into the buffer and the UART; Ctrl-A x ends the VM. */
static void take_input(struct serial *s, const uint8_t *buf, size_t n)
{
    pthread_mutex_lock(&s->lock);
    bool escape = queue_input_locked(s, buf, n);
    pump_rx_locked(s);
    update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (escape)
        end_vm(&s->cfg.end, KILN_EXIT_STOPPED, 0, 0, "stopped from the console (Ctrl-A x)");
}

static void in_poll_cb(uv_poll_t *h, int status, int events)
{
    struct serial *s = h->data;
    (void)events;
    uint8_t buf[SERIAL_IN_BUF];
    ssize_t n = status < 0 ? -1 : read(s->cfg.in_fd, buf, input_room(s));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        take_input(s, buf, (size_t)n);
    else
        s->in_eof = true; /* end of input: the guest simply receives nothing more */
    update_input_poll(s);
}

/* Read input only while there is room for it: a guest that does not read stops the reader. */
static void update_input_poll(struct serial *s)
{
    if (!s->in_pollable)
        return;
    pthread_mutex_lock(&s->lock);
    bool room = s->in_len < SERIAL_IN_BUF;
    pthread_mutex_unlock(&s->lock);
    bool want = room && !s->in_eof;
    if (want && !s->in_polling) {
        uv_poll_start(&s->in_poll, UV_READABLE, in_poll_cb);
        s->in_polling = true;
    } else if (!want && s->in_polling) {
        uv_poll_stop(&s->in_poll);
        s->in_polling = false;
    }
}

/* Regular files cannot be polled: read them in pieces as the guest makes room. */
static void read_file_input(struct serial *s)
{
    if (s->in_pollable || s->in_eof || s->cfg.in_fd < 0)
        return;
    uint8_t buf[SERIAL_IN_BUF];
    size_t room = input_room(s);
    if (room == 0)
        return;
    ssize_t n = read(s->cfg.in_fd, buf, room);
    if (n > 0)
        take_input(s, buf, (size_t)n);
    else
        s->in_eof = true;
}

static void async_cb(uv_async_t *h)
{
    struct serial *s = h->data;
    flush_output(s);
    update_input_poll(s);
    read_file_input(s);
}

/* Try to set up a poller on fd; files and /dev/null refuse, which selects direct I/O instead. */
static bool init_poll(struct serial *s, uv_poll_t *p, int fd)
{
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        return false;
    if (uv_poll_init(s->loop, p, fd) != 0)
        return false;
    p->data = s;
    return true;
}

static int serial_start(struct device *d, uv_loop_t *loop)
{
    struct serial *s = (struct serial *)d;
    s->loop = loop;
    int ret = uv_async_init(loop, &s->async, async_cb);
    if (ret < 0)
        return ret;
    s->async.data = s;
    s->in_pollable = init_poll(s, &s->in_poll, s->cfg.in_fd);
    s->out_pollable = init_poll(s, &s->out_poll, s->cfg.out_fd);
    s->in_eof = s->cfg.in_fd < 0;
    pthread_mutex_lock(&s->lock);
    s->started = true;
    pthread_mutex_unlock(&s->lock);
    update_input_poll(s);
    read_file_input(s);
    return 0;
}

static void serial_flush(struct serial *s, int timeout_ms);

static void serial_stop(struct device *d)
{
    struct serial *s = (struct serial *)d;
    serial_flush(s, SERIAL_FLUSH_MS);
    if (!s->started)
        return;
    pthread_mutex_lock(&s->lock);
    s->started = false;
    pthread_mutex_unlock(&s->lock);
    if (s->in_pollable)
        uv_close((uv_handle_t *)&s->in_poll, NULL);
    if (s->out_pollable)
        uv_close((uv_handle_t *)&s->out_poll, NULL);
    uv_close((uv_handle_t *)&s->async, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write out whatever the guest sent that is still buffered, waiting at most timeout_ms. */
static void serial_flush(struct serial *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (s->cfg.out_fd >= 0 && pending_output(s) > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = s->cfg.out_fd, .events = POLLOUT};
        if (s->out_pollable && poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t n = write_some(s);
        if (n < 0)
            break;
    }
}

/* Device (COM1) { _HID PNP0501, _CRS: its ports and IRQ 4 }. */
static void serial_describe(const struct device *d, struct aml *a)
{
    (void)d;
    size_t dev = aml_device_open(a, "COM1");
    aml_name(a, "_HID");
    aml_byte(a, 0x0c);
    aml_bytes(a, &(uint32_t){acpi_eisaid("PNP0501")}, 4);
    aml_name(a, "_UID");
    aml_integer(a, 0);
    aml_crs_io(a, SERIAL_COM1_PORT, SERIAL_PORT_LEN, SERIAL_COM1_IRQ);
    aml_close(a, dev);
}

static const struct device_ops serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .save = serial_save,
    .restore = serial_restore,
    .start = serial_start,
    .stop = serial_stop,
    .destroy = serial_destroy,
    .describe = serial_describe,
};

/* COM1 from the VM's configuration: its streams, the escape, and an edge line on IRQ 4. */
static int create(const struct device_env *env, unsigned index, void *prepared, struct device **out,
                  char *errmsg)
{
    (void)index;
    (void)prepared;
    struct serial_config sc = {
        .in_fd = env->cfg->serial_in_fd,
        .out_fd = env->cfg->serial_out_fd,
        .escape = env->cfg->serial_escape,
        .end = env->end,
        .log = env->log,
    };
    int ret = irq_edge_init(env->irqs, SERIAL_COM1_IRQ, &sc.irq_fd);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "KVM_IRQFD for COM1: %s", strerror(-ret));
    struct serial *s;
    ret = serial_create(&sc, &s);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "serial: %s", strerror(-ret));
    *out = &s->dev;
    return 0;
}

const struct device_class serial_class = {.name = "COM1", .create = create};
