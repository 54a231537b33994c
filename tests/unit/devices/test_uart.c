/* test_uart.c: unit tests for the 16550A UART register model. */
#include <check.h>
#include <stdlib.h>

#include "devices/uart16550.h"

enum {
    IER_RDA = 0x01,
    IER_THRE = 0x02,
    IER_RLS = 0x04,
    IER_MS = 0x08,
    LSR_DR = 0x01,
    LSR_OE = 0x02,
    LSR_THRE = 0x20,
    LSR_TEMT = 0x40,
    MCR_DTR = 0x01,
    MCR_RTS = 0x02,
    MCR_OUT1 = 0x04,
    MCR_OUT2 = 0x08,
    MCR_LOOP = 0x10,
    FCR_ON = 0x01,
};

static uint8_t rd(struct uart16550 *u, unsigned off)
{
    return uart_read(u, off);
}

static void wr(struct uart16550 *u, unsigned off, uint8_t v)
{
    uart_write(u, off, v);
}

static void push_n(struct uart16550 *u, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert(uart_rx_push(u, (uint8_t)('a' + i)));
}

START_TEST(reset_values)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    ck_assert_uint_eq(rd(u, UART_IER_DLM), 0x00);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    ck_assert_uint_eq(rd(u, UART_LCR), 0x03);
    ck_assert_uint_eq(rd(u, UART_MCR), 0x00);
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB0);
    ck_assert_uint_eq(rd(u, UART_SCR), 0x00);
    ck_assert_uint_eq(uart_rx_space(u), 1);
    ck_assert_uint_eq(uart_tx_count(u), 0);
    ck_assert(!uart_irq_line(u));
    wr(u, UART_LCR, 0x83);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 12);
    ck_assert_uint_eq(rd(u, UART_IER_DLM), 0);
}
END_TEST

START_TEST(dlab_selects_divisor)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_RDA);
    wr(u, UART_LCR, 0x83);
    wr(u, UART_RBR_THR_DLL, 0x01);
    wr(u, UART_IER_DLM, 0x02);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 0x01);
    ck_assert_uint_eq(rd(u, UART_IER_DLM), 0x02);
    ck_assert_uint_eq(uart_tx_count(u), 0); /* the DLL write did not transmit */
    wr(u, UART_LCR, 0x03);
    ck_assert_uint_eq(rd(u, UART_IER_DLM), IER_RDA); /* IER untouched by the DLM write */
    ck_assert_uint_eq(u->dll, 0x01);
    ck_assert_uint_eq(u->dlm, 0x02);
    /* With DLAB clear, offset 0 is THR/RBR again. */
    wr(u, UART_RBR_THR_DLL, 'q');
    ck_assert_uint_eq(uart_tx_count(u), 1);
}
END_TEST

START_TEST(dlab_hides_rbr)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    push_n(u, 1);
    wr(u, UART_LCR, 0x80);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 12);
    ck_assert_uint_eq(rd(u, UART_LSR) & LSR_DR, LSR_DR); /* byte still waiting */
    wr(u, UART_LCR, 0x03);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'a');
}
END_TEST

START_TEST(ier_and_lcr_masks)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, 0xFF);
    ck_assert_uint_eq(rd(u, UART_IER_DLM), 0x0F);
    wr(u, UART_LCR, 0x5B);
    ck_assert_uint_eq(rd(u, UART_LCR), 0x5B);
    wr(u, UART_MCR, 0xEF);
    ck_assert_uint_eq(rd(u, UART_MCR), 0x0F);
}
END_TEST

START_TEST(scratch_register)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_SCR, 0x5A);
    ck_assert_uint_eq(rd(u, UART_SCR), 0x5A);
    wr(u, UART_SCR, 0xA5);
    ck_assert_uint_eq(rd(u, UART_SCR), 0xA5);
}
END_TEST

START_TEST(offsets_masked)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, 15, 0x77);
    ck_assert_uint_eq(rd(u, UART_SCR), 0x77);
    ck_assert_uint_eq(rd(u, 0x107), 0x77);
    ck_assert_uint_eq(rd(u, 8 + UART_LCR), 0x03);
    wr(u, 8 + UART_RBR_THR_DLL, 'z');
    uint8_t b = 0;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(b, 'z');
}
END_TEST

START_TEST(fifo_enable_reports_in_iir)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1);
    ck_assert_uint_eq(uart_rx_space(u), UART_FIFO_SIZE);
    wr(u, UART_IIR_FCR, 0);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    ck_assert_uint_eq(uart_rx_space(u), 1);
}
END_TEST

START_TEST(fifo_mode_change_clears_both)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    push_n(u, 3);
    for (int i = 0; i < 3; i++)
        wr(u, UART_RBR_THR_DLL, 'x');
    ck_assert_uint_eq(uart_tx_count(u), 3);
    wr(u, UART_IIR_FCR, 0);
    ck_assert_uint_eq(uart_tx_count(u), 0);
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    push_n(u, 1);
    wr(u, UART_IIR_FCR, FCR_ON);
    ck_assert_uint_eq(rd(u, UART_LSR) & LSR_DR, 0);
}
END_TEST

START_TEST(fifo_clear_bits)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    push_n(u, 5);
    wr(u, UART_RBR_THR_DLL, 'x');
    wr(u, UART_RBR_THR_DLL, 'y');
    wr(u, UART_IIR_FCR, FCR_ON | 0x02);
    ck_assert_uint_eq(rd(u, UART_LSR), 0); /* RX empty, TX still holds two bytes */
    ck_assert_uint_eq(uart_tx_count(u), 2);
    ck_assert_uint_eq(uart_rx_space(u), UART_FIFO_SIZE);
    wr(u, UART_IIR_FCR, FCR_ON | 0x04);
    ck_assert_uint_eq(uart_tx_count(u), 0);
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1); /* FIFOs stayed enabled */
}
END_TEST

START_TEST(fifo_order_and_capacity)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    for (int i = 0; i < UART_FIFO_SIZE; i++) {
        ck_assert_uint_eq(uart_rx_space(u), (size_t)(UART_FIFO_SIZE - i));
        ck_assert(uart_rx_push(u, (uint8_t)(0x40 + i)));
    }
    ck_assert_uint_eq(uart_rx_space(u), 0);
    for (int i = 0; i < UART_FIFO_SIZE; i++)
        ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 0x40 + i);
    ck_assert_uint_eq(rd(u, UART_LSR) & LSR_DR, 0);
    /* The ring wraps correctly on a second pass. */
    push_n(u, 10);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'a');
    push_n(u, 7);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'b');
}
END_TEST

/* Each trigger level: one byte short reports a timeout (0x0C), reaching it reports RDA (0x04). */
START_TEST(rx_trigger_levels)
{
    static const struct {
        uint8_t fcr;
        int level;
    } cases[] = {{0x01, 1}, {0x41, 4}, {0x81, 8}, {0xC1, 14}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct uart16550 st, *u = &st;
        uart_init(u);
        wr(u, UART_IIR_FCR, cases[c].fcr);
        wr(u, UART_IER_DLM, IER_RDA);
        ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1);
        push_n(u, cases[c].level - 1);
        if (cases[c].level > 1)
            ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xCC);
        push_n(u, 1);
        ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC4);
    }
}
END_TEST

START_TEST(rx_timeout_then_empty)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, 0x41); /* trigger 4 */
    wr(u, UART_IER_DLM, IER_RDA);
    push_n(u, 4);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC4);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'a');
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xCC);
    rd(u, UART_RBR_THR_DLL);
    rd(u, UART_RBR_THR_DLL);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xCC);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'd');
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1);
    /* Data without ERBFI raises nothing. */
    wr(u, UART_IER_DLM, 0);
    push_n(u, 1);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1);
}
END_TEST

START_TEST(rx_overrun_fifo)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    push_n(u, UART_FIFO_SIZE);
    ck_assert(!uart_rx_push(u, 'Z'));
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_DR | LSR_THRE | LSR_TEMT); /* OE read-cleared */
    for (int i = 0; i < UART_FIFO_SIZE; i++)
        ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'a' + i);
    ck_assert_uint_eq(rd(u, UART_LSR) & LSR_DR, 0); /* the dropped byte never appears */
}
END_TEST

START_TEST(fifo_off_single_holding_register)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    ck_assert(uart_rx_push(u, 'a'));
    ck_assert_uint_eq(uart_rx_space(u), 0);
    ck_assert(!uart_rx_push(u, 'b'));
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'a');
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 0); /* empty receiver */
    /* One byte with FIFOs off is always "data available", never a timeout. */
    wr(u, UART_IER_DLM, IER_RDA);
    push_n(u, 1);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x04);
    /* Transmit side holds one byte; a second write is dropped. */
    wr(u, UART_RBR_THR_DLL, '1');
    wr(u, UART_RBR_THR_DLL, '2');
    ck_assert_uint_eq(uart_tx_count(u), 1);
    uint8_t b = 0;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(b, '1');
    ck_assert(!uart_tx_pop(u, &b));
}
END_TEST

START_TEST(tx_fifo_full_drops)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    for (int i = 0; i < UART_FIFO_SIZE + 1; i++)
        wr(u, UART_RBR_THR_DLL, (uint8_t)i);
    ck_assert_uint_eq(uart_tx_count(u), UART_FIFO_SIZE);
    ck_assert_uint_eq(rd(u, UART_LSR) & (LSR_THRE | LSR_TEMT), 0);
    for (int i = 0; i < UART_FIFO_SIZE; i++) {
        uint8_t b = 0xFF;
        ck_assert(uart_tx_pop(u, &b));
        ck_assert_uint_eq(b, i);
    }
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
}
END_TEST

/* Build all four interrupt sources, then peel them off in priority order. */
START_TEST(iir_priorities)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_RDA | IER_THRE | IER_RLS | IER_MS);
    wr(u, UART_MCR, MCR_LOOP | MCR_RTS); /* DSR and DCD drop: delta bits set */
    wr(u, UART_MCR, 0);
    push_n(u, 1);
    ck_assert(!uart_rx_push(u, 'b')); /* overrun */
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x06);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x06); /* IIR read does not clear line status */
    rd(u, UART_LSR);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x04);
    rd(u, UART_RBR_THR_DLL);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x00);    /* THRE acknowledged by the previous read */
    ck_assert_uint_eq(rd(u, UART_MSR) & 0x0F, 0x0A); /* DSR and DCD changed */
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
}
END_TEST

START_TEST(iir_read_only_clears_reported_thre)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_RDA | IER_THRE);
    push_n(u, 1);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x04); /* THRE pending but masked by priority */
    rd(u, UART_RBR_THR_DLL);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02); /* so it survived */
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
}
END_TEST

START_TEST(line_status_needs_elsi)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_RDA);
    push_n(u, 1);
    ck_assert(!uart_rx_push(u, 'b'));
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x04);
}
END_TEST

START_TEST(thre_latch_rules)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_THRE);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);            /* enabling ETBEI with THR empty */
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);            /* IIR read acknowledged it */
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT); /* status bit stays */
    /* A THR write clears a latched THRE; draining the byte latches it again. */
    wr(u, UART_IER_DLM, 0);
    wr(u, UART_IER_DLM, IER_THRE);
    wr(u, UART_RBR_THR_DLL, 'x');
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    ck_assert_uint_eq(rd(u, UART_LSR), 0x00);
    uint8_t b;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
}
END_TEST

START_TEST(thre_relatches_only_when_fifo_empty)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    wr(u, UART_IER_DLM, IER_THRE);
    rd(u, UART_IIR_FCR);
    for (int i = 0; i < 3; i++)
        wr(u, UART_RBR_THR_DLL, 'x');
    uint8_t b;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(uart_tx_count(u), 1);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1);
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC2);
    ck_assert(!uart_tx_pop(u, &b));
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0xC1); /* popping nothing does not re-latch */
}
END_TEST

/* The sequence Linux's 8250 startup uses to check that THRE is re-asserted. */
START_TEST(ier_enable_relatches_thre)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_THRE);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
    wr(u, UART_IER_DLM, 0);
    wr(u, UART_IER_DLM, IER_THRE);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
    /* Rewriting IER with ETBEI already set is not an enable edge. */
    wr(u, UART_IER_DLM, IER_THRE | IER_RDA);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    /* Enabling while THR holds data does not latch; the drain does. */
    wr(u, UART_IER_DLM, 0);
    wr(u, UART_RBR_THR_DLL, 'x');
    wr(u, UART_IER_DLM, IER_THRE);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    uint8_t b;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
}
END_TEST

START_TEST(thre_masked_by_ier)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_MCR, MCR_OUT2);
    wr(u, UART_RBR_THR_DLL, 'x');
    uint8_t b;
    ck_assert(uart_tx_pop(u, &b));
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    ck_assert(!uart_irq_line(u));
}
END_TEST

START_TEST(out2_gates_irq_line)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_RDA);
    push_n(u, 1);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x04);
    ck_assert(!uart_irq_line(u));
    wr(u, UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT1);
    ck_assert(!uart_irq_line(u));
    wr(u, UART_MCR, MCR_OUT2);
    ck_assert(uart_irq_line(u));
    rd(u, UART_RBR_THR_DLL);
    ck_assert(!uart_irq_line(u));
    /* OUT2 alone, with nothing pending, keeps the line low. */
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
}
END_TEST

START_TEST(loopback_data)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IIR_FCR, FCR_ON);
    wr(u, UART_MCR, MCR_LOOP | MCR_OUT2);
    wr(u, UART_IER_DLM, IER_RDA);
    wr(u, UART_RBR_THR_DLL, 'L');
    ck_assert_uint_eq(uart_tx_count(u), 0); /* nothing reaches the host */
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_DR | LSR_THRE | LSR_TEMT);
    ck_assert(uart_irq_line(u));
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 'L');
    /* The host's line is disconnected while looping back. */
    ck_assert_uint_eq(uart_rx_space(u), 0);
    ck_assert(!uart_rx_push(u, 'h'));
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT); /* not an overrun */
    /* Looping more than the receiver holds overruns. */
    for (int i = 0; i < UART_FIFO_SIZE + 1; i++)
        wr(u, UART_RBR_THR_DLL, (uint8_t)i);
    ck_assert_uint_eq(rd(u, UART_LSR) & LSR_OE, LSR_OE);
    wr(u, UART_MCR, 0);
    ck_assert_uint_eq(uart_rx_space(u), 0); /* the FIFO is still full of looped bytes */
    ck_assert_uint_eq(rd(u, UART_RBR_THR_DLL), 0);
    ck_assert_uint_eq(uart_rx_space(u), 1);
}
END_TEST

START_TEST(loopback_thre_reasserts)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_MCR, MCR_LOOP);
    wr(u, UART_IER_DLM, IER_THRE);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02);
    wr(u, UART_RBR_THR_DLL, 'x');
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x02); /* byte crossed the loop, THR empty again */
}
END_TEST

START_TEST(loopback_msr_mirror)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_MCR, MCR_LOOP);
    ck_assert_uint_eq(rd(u, UART_MSR), 0x0B); /* CTS, DSR, DCD fell */
    ck_assert_uint_eq(rd(u, UART_MSR), 0x00); /* deltas cleared by the read */
    wr(u, UART_MCR, MCR_LOOP | MCR_RTS);
    ck_assert_uint_eq(rd(u, UART_MSR), 0x11);
    wr(u, UART_MCR, MCR_LOOP | MCR_DTR);
    ck_assert_uint_eq(rd(u, UART_MSR), 0x23);
    wr(u, UART_MCR, MCR_LOOP | MCR_OUT1);
    ck_assert_uint_eq(rd(u, UART_MSR), 0x42); /* RI rising edge: no TERI */
    wr(u, UART_MCR, MCR_LOOP | MCR_OUT2);
    ck_assert_uint_eq(rd(u, UART_MSR), 0x8C); /* RI trailing edge: TERI, DCD rose */
    wr(u, UART_MCR, MCR_LOOP | 0x0F);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xF3);
    wr(u, UART_MCR, MCR_OUT2);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB4); /* back to the idle lines; RI fell */
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB0);
}
END_TEST

START_TEST(msr_constant_outside_loopback)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB0);
    wr(u, UART_MCR, 0);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB0);
}
END_TEST

START_TEST(modem_status_interrupt)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, IER_MS);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    wr(u, UART_MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x00);
    ck_assert(uart_irq_line(u));
    ck_assert_uint_eq(rd(u, UART_MSR), 0x92);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR), 0x01);
    ck_assert(!uart_irq_line(u));
}
END_TEST

START_TEST(lsr_writes_ignored)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_LSR, 0x1F);
    wr(u, UART_MSR, 0x0F);
    ck_assert_uint_eq(rd(u, UART_LSR), LSR_THRE | LSR_TEMT);
    ck_assert_uint_eq(rd(u, UART_MSR), 0xB0);
}
END_TEST

/* The probe sequence of Linux's 8250 autoconfig: scratch, loopback MSR, FIFO detection. */
START_TEST(linux_autoconfig_probe)
{
    struct uart16550 st, *u = &st;
    uart_init(u);
    wr(u, UART_IER_DLM, 0);
    ck_assert_uint_eq(rd(u, UART_IER_DLM) & 0x0F, 0);
    wr(u, UART_IER_DLM, 0x0F);
    ck_assert_uint_eq(rd(u, UART_IER_DLM) & 0x0F, 0x0F);
    wr(u, UART_IER_DLM, 0);
    wr(u, UART_MCR, MCR_LOOP | 0x0A);
    ck_assert_uint_eq(rd(u, UART_MSR) & 0xF0, 0x90);
    wr(u, UART_MCR, 0);
    wr(u, UART_IIR_FCR, FCR_ON);
    ck_assert_uint_eq(rd(u, UART_IIR_FCR) >> 6, 3); /* 16550A: FIFOs usable */
}
END_TEST

static Suite *uart_suite(void)
{
    Suite *s = suite_create("uart16550");
    TCase *regs = tcase_create("registers");
    tcase_add_test(regs, reset_values);
    tcase_add_test(regs, dlab_selects_divisor);
    tcase_add_test(regs, dlab_hides_rbr);
    tcase_add_test(regs, ier_and_lcr_masks);
    tcase_add_test(regs, scratch_register);
    tcase_add_test(regs, offsets_masked);
    tcase_add_test(regs, lsr_writes_ignored);
    tcase_add_test(regs, linux_autoconfig_probe);
    suite_add_tcase(s, regs);

    TCase *fifo = tcase_create("fifo");
    tcase_add_test(fifo, fifo_enable_reports_in_iir);
    tcase_add_test(fifo, fifo_mode_change_clears_both);
    tcase_add_test(fifo, fifo_clear_bits);
    tcase_add_test(fifo, fifo_order_and_capacity);
    tcase_add_test(fifo, rx_trigger_levels);
    tcase_add_test(fifo, rx_timeout_then_empty);
    tcase_add_test(fifo, rx_overrun_fifo);
    tcase_add_test(fifo, fifo_off_single_holding_register);
    tcase_add_test(fifo, tx_fifo_full_drops);
    suite_add_tcase(s, fifo);

    TCase *irq = tcase_create("interrupts");
    tcase_add_test(irq, iir_priorities);
    tcase_add_test(irq, iir_read_only_clears_reported_thre);
    tcase_add_test(irq, line_status_needs_elsi);
    tcase_add_test(irq, thre_latch_rules);
    tcase_add_test(irq, thre_relatches_only_when_fifo_empty);
    tcase_add_test(irq, ier_enable_relatches_thre);
    tcase_add_test(irq, thre_masked_by_ier);
    tcase_add_test(irq, out2_gates_irq_line);
    tcase_add_test(irq, modem_status_interrupt);
    suite_add_tcase(s, irq);

    TCase *loop = tcase_create("loopback");
    tcase_add_test(loop, loopback_data);
    tcase_add_test(loop, loopback_thre_reasserts);
    tcase_add_test(loop, loopback_msr_mirror);
    tcase_add_test(loop, msr_constant_outside_loopback);
    suite_add_tcase(s, loop);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uart_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
