/* test_serial.c: the COM1 adapter and its libuv back end, with pipes standing in for stdio. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/serial.h"
#include "devices/uart16550.h"
#include "state.h"

#define LSR_DR 0x01
#define LSR_THRE 0x20

struct harness {
    uv_loop_t loop;
    struct serial *s;
    struct device *dev;
    int in[2];  /* host writes in[1], serial reads in[0] */
    int out[2]; /* serial writes out[1], host reads out[0] */
    int irq;
    int escapes;
    struct kiln_log log;
};

/* The VM's end callback: only the console escape ends it here. */
static void on_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    (void)status;
    (void)error;
    (void)msg;
    ck_assert_int_eq(reason, KILN_EXIT_STOPPED);
    ((struct harness *)ctx)->escapes++;
}

static void setup(struct harness *h, bool escape)
{
    memset(h, 0, sizeof(*h));
    ck_assert_int_eq(pipe2(h->in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(h->out, O_CLOEXEC), 0);
    h->irq = eventfd(0, EFD_NONBLOCK); /* the serial device owns it from create on */
    h->log.level = KILN_LOG_ERROR;
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    struct serial_config cfg = {
        .in_fd = h->in[0],
        .out_fd = h->out[1],
        .irq_fd = h->irq,
        .escape = escape,
        .end = {on_end, h},
        .log = &h->log,
    };
    ck_assert_int_eq(serial_create(&cfg, &h->s), 0);
    h->dev = serial_device(h->s);
    ck_assert_int_eq(h->dev->ops->start(h->dev, &h->loop), 0);
}

static void teardown(struct harness *h)
{
    h->dev->ops->stop(h->dev);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
    h->dev->ops->destroy(h->dev); /* closes h->irq */
    close(h->in[0]);
    close(h->in[1]);
    close(h->out[0]);
    close(h->out[1]);
}

static void spin(struct harness *h)
{
    for (int i = 0; i < 20; i++)
        uv_run(&h->loop, UV_RUN_NOWAIT);
}

static uint8_t reg_read(struct harness *h, unsigned reg)
{
    uint8_t v = 0;
    h->dev->ops->read(h->dev, 0, reg, &v, 1);
    return v;
}

static void reg_write(struct harness *h, unsigned reg, uint8_t v)
{
    h->dev->ops->write(h->dev, 0, reg, &v, 1);
}

START_TEST(test_output_reaches_fd)
{
    struct harness h;
    setup(&h, false);
    const char *msg = "hello\r\n";
    for (const char *p = msg; *p; p++) {
        ck_assert(reg_read(&h, UART_LSR) & LSR_THRE);
        reg_write(&h, UART_RBR_THR_DLL, (uint8_t)*p);
    }
    spin(&h);
    char buf[32] = {0};
    ck_assert_int_eq(read(h.out[0], buf, sizeof(buf)), (ssize_t)strlen(msg));
    ck_assert_str_eq(buf, msg);
    teardown(&h);
}
END_TEST

START_TEST(test_input_reaches_guest)
{
    struct harness h;
    setup(&h, false);
    ck_assert_int_eq(write(h.in[1], "abc", 3), 3);
    spin(&h);
    char got[4] = {0};
    for (int i = 0; i < 3; i++) {
        ck_assert(reg_read(&h, UART_LSR) & LSR_DR);
        got[i] = (char)reg_read(&h, UART_RBR_THR_DLL);
        spin(&h); /* a 1-byte receiver (FIFOs off) refills as the guest reads */
    }
    ck_assert_str_eq(got, "abc");
    ck_assert(!(reg_read(&h, UART_LSR) & LSR_DR));
    teardown(&h);
}
END_TEST

START_TEST(test_escape_sequence)
{
    struct harness h;
    setup(&h, true);
    /* Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A x is the escape and is not delivered. */
    ck_assert_int_eq(write(h.in[1], "\x01\x01", 2), 2);
    spin(&h);
    ck_assert_uint_eq(reg_read(&h, UART_RBR_THR_DLL), 0x01);
    ck_assert_int_eq(h.escapes, 0);
    ck_assert_int_eq(write(h.in[1], "\x01x", 2), 2);
    spin(&h);
    ck_assert_int_eq(h.escapes, 1);
    ck_assert(!(reg_read(&h, UART_LSR) & LSR_DR));
    teardown(&h);
}
END_TEST

START_TEST(test_output_backpressure_is_bounded)
{
    struct harness h;
    setup(&h, false);
    /* Fill the pipe so the host side stops taking bytes. */
    int fl = fcntl(h.out[1], F_GETFL);
    fcntl(h.out[1], F_SETFL, fl | O_NONBLOCK);
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    size_t filled = 0;
    ssize_t n;
    while ((n = write(h.out[1], junk, sizeof(junk))) > 0)
        filled += (size_t)n;
    ck_assert_int_eq(errno, EAGAIN);
    /* The guest can queue a bounded amount, then the UART reports not ready. */
    size_t sent = 0;
    while ((reg_read(&h, UART_LSR) & LSR_THRE) && sent < 1000000) {
        reg_write(&h, UART_RBR_THR_DLL, 'g');
        sent++;
        if (sent % 1024 == 0)
            spin(&h);
    }
    ck_assert_uint_lt(sent, 1000000);
    ck_assert_uint_ge(sent, 4096);
    /* Draining the host side lets the guest continue. */
    char buf[65536];
    fcntl(h.out[0], F_SETFL, fcntl(h.out[0], F_GETFL) | O_NONBLOCK);
    size_t drained = 0;
    for (int i = 0; i < 100 && !(reg_read(&h, UART_LSR) & LSR_THRE); i++) {
        while ((n = read(h.out[0], buf, sizeof(buf))) > 0)
            drained += (size_t)n;
        spin(&h);
    }
    ck_assert_uint_ge(drained, filled);
    ck_assert(reg_read(&h, UART_LSR) & LSR_THRE);
    teardown(&h);
}
END_TEST

START_TEST(test_irq_pulses_on_rising_edge)
{
    struct harness h;
    setup(&h, false);
    uint64_t count = 0;
    reg_write(&h, UART_MCR, 0x08); /* OUT2: the IRQ line is connected */
    ck_assert_int_eq(read(h.irq, &count, sizeof(count)), -1);
    reg_write(&h, UART_IER_DLM, 0x02); /* THR empty interrupt: pending at once */
    ck_assert_int_eq(read(h.irq, &count, sizeof(count)), (ssize_t)sizeof(count));
    ck_assert_uint_eq(count, 1);
    /* While the line stays high no further pulse is sent. */
    reg_read(&h, UART_LSR);
    ck_assert_int_eq(read(h.irq, &count, sizeof(count)), -1);
    /* Reading IIR clears the THRE interrupt (line low); a THR write re-arms it on drain. */
    ck_assert_uint_eq(reg_read(&h, UART_IIR_FCR) & 0x0f, 0x02);
    reg_write(&h, UART_RBR_THR_DLL, 'x');
    ck_assert_int_eq(read(h.irq, &count, sizeof(count)), (ssize_t)sizeof(count));
    spin(&h);
    teardown(&h);
}
END_TEST

START_TEST(test_no_output_fd_discards)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct kiln_log log = {.level = KILN_LOG_ERROR};
    struct serial_config cfg = {.in_fd = -1, .out_fd = -1, .irq_fd = -1, .log = &log};
    struct serial *s;
    ck_assert_int_eq(serial_create(&cfg, &s), 0);
    struct device *d = serial_device(s);
    ck_assert_int_eq(d->ops->start(d, &loop), 0);
    for (int i = 0; i < 100000; i++) {
        uint8_t v = 'z';
        d->ops->write(d, 0, UART_RBR_THR_DLL, &v, 1);
    }
    uint8_t lsr = 0;
    d->ops->read(d, 0, UART_LSR, &lsr, 1);
    ck_assert(lsr & LSR_THRE);
    d->ops->stop(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    d->ops->destroy(d);
}
END_TEST

/* A crafted snapshot whose UART bool (thr_ipending) is neither 0 nor 1 is refused, and the
 * device then still takes its own saved state (found by tests/fuzz/fuzz_snapshot.c). */
START_TEST(test_restore_refuses_bad_bool)
{
    struct kiln_log log = {.level = KILN_LOG_ERROR};
    struct serial_config cfg = {.in_fd = -1, .out_fd = -1, .irq_fd = -1, .log = &log};
    struct serial *s;
    ck_assert_int_eq(serial_create(&cfg, &s), 0);
    struct device *d = serial_device(s);
    uint8_t v = 0x5a;
    d->ops->write(d, 0, UART_SCR, &v, 1);
    struct device_state good = {0};
    ck_assert_int_eq(d->ops->save(d, &good), 0);
    ck_assert_uint_ge(good.len, sizeof(struct uart16550));
    uint8_t *bad = malloc(good.len);
    ck_assert_ptr_nonnull(bad);
    memcpy(bad, good.buf, good.len);
    bad[offsetof(struct uart16550, thr_ipending)] = 6;
    struct device_state r = state_reader(bad, good.len);
    ck_assert_int_eq(d->ops->restore(d, &r), -EINVAL);
    r = state_reader(good.buf, good.len);
    ck_assert_int_eq(d->ops->restore(d, &r), 0);
    ck_assert_int_eq(state_done(&r), 0);
    v = 0;
    d->ops->read(d, 0, UART_SCR, &v, 1);
    ck_assert_uint_eq(v, 0x5a);
    free(bad);
    state_free(&good);
    d->ops->destroy(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("serial");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_output_reaches_fd);
    tcase_add_test(tc, test_input_reaches_guest);
    tcase_add_test(tc, test_escape_sequence);
    tcase_add_test(tc, test_output_backpressure_is_bounded);
    tcase_add_test(tc, test_irq_pulses_on_rising_edge);
    tcase_add_test(tc, test_no_output_fd_discards);
    tcase_add_test(tc, test_restore_refuses_bad_bool);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
