/* fuzz_uart.c: the 16550A register model (devices/uart16550.c): registers, bytes in and out. */
#include "devices/uart16550.h"
#include "fuzz_common.h"

/*
 * The guest's register reads and writes and the host's side (bytes arriving on the line, the
 * back end taking transmitted bytes) in any order, with the promises uart16550.h makes
 * checked after every step. Each operation is one byte: bits 6-7 the kind, bits 0-2 the
 * register (for reads and writes) or bits 0-4 a count (for the host side).
 */

enum { OP_WRITE, OP_READ, OP_RX, OP_TX };

#define UART_MCR_OUT2 0x08
#define UART_IIR_NO_INT 0x01

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The guest reads a register; an IIR read is checked against the interrupt line. */
static void reg_read(struct uart16550 *u, unsigned reg)
{
    if ((reg & 7) != UART_IIR_FCR) {
        uart_read(u, reg);
        return;
    }
    bool line = uart_irq_line(u);
    bool out2 = uart_read(u, UART_MCR) & UART_MCR_OUT2; /* MCR reads have no side effect */
    uint8_t iir = uart_read(u, reg);
    /* INTR is "an interrupt pending (as IIR reports it) and OUT2 set". */
    FZ_CHECK(line == (!(iir & UART_IIR_NO_INT) && out2));
}

/* Bytes from the host: taken exactly when the receiver said it has room. */
static void host_rx(struct uart16550 *u, struct fz *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t space = uart_rx_space(u);
        bool took = uart_rx_push(u, fz_u8(f));
        FZ_CHECK(took == (space > 0));
        FZ_CHECK(!took || uart_rx_space(u) == space - 1);
    }
}

/* The back end takes transmitted bytes: exactly as many as were counted. */
static void host_tx(struct uart16550 *u, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        size_t count = uart_tx_count(u);
        uint8_t byte;
        FZ_CHECK(uart_tx_pop(u, &byte) == (count > 0));
        FZ_CHECK(uart_tx_count(u) == (count ? count - 1 : 0));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    struct uart16550 u;
    uart_init(&u);
    while (fz_more(&f)) {
        uint8_t op = fz_u8(&f);
        switch (op >> 6) {
        case OP_WRITE:
            uart_write(&u, op & 0x3f, fz_u8(&f)); /* offsets above 7 alias, as documented */
            break;
        case OP_READ:
            reg_read(&u, op & 0x3f);
            break;
        case OP_RX:
            host_rx(&u, &f, 1 + (op & 0x1f));
            break;
        default:
            host_tx(&u, 1 + (op & 0x1f));
            break;
        }
        FZ_CHECK(uart_rx_space(&u) <= UART_FIFO_SIZE);
        FZ_CHECK(uart_tx_count(&u) <= UART_FIFO_SIZE);
    }
    return 0;
}
