/* uart16550.h: register-level model of a 16550A UART, free of file descriptors and locks. */
#ifndef KILN_UART16550_H
#define KILN_UART16550_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_FIFO_SIZE 16

/* Register offsets (DLAB selects DLL/DLM at offsets 0 and 1). */
enum uart_reg {
    UART_RBR_THR_DLL = 0,
    UART_IER_DLM = 1,
    UART_IIR_FCR = 2,
    UART_LCR = 3,
    UART_MCR = 4,
    UART_LSR = 5,
    UART_MSR = 6,
    UART_SCR = 7,
};

struct uart_fifo {
    uint8_t buf[UART_FIFO_SIZE];
    uint8_t head;
    uint8_t count;
};

struct uart16550 {
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t dll, dlm;
    bool thr_ipending; /* THR-empty interrupt latched (cleared by IIR read or THR write) */
    struct uart_fifo rx;
    struct uart_fifo tx;
};

/* Reset state: 8N1 divisor 12 (9600 baud), FIFOs off, modem lines CTS/DSR/DCD asserted. */
void uart_init(struct uart16550 *u);

/* Guest register access at offset 0-7 (higher offsets are masked to 0-7). */
uint8_t uart_read(struct uart16550 *u, unsigned offset);
void uart_write(struct uart16550 *u, unsigned offset, uint8_t value);

/* Level of the INTR output as wired on a PC: an enabled interrupt is pending and MCR.OUT2 set. */
bool uart_irq_line(const struct uart16550 *u);

/* Host side, receive: bytes the receiver can still take (FIFO size, or 1 with FIFOs off). */
size_t uart_rx_space(const struct uart16550 *u);
/* Deliver one received byte. Returns false (byte dropped, overrun flagged) if there is no room. */
bool uart_rx_push(struct uart16550 *u, uint8_t byte);

/* Host side, transmit: bytes the guest wrote and the host has not taken yet. */
size_t uart_tx_count(const struct uart16550 *u);
/* Take the oldest transmitted byte. Returns false if none. */
bool uart_tx_pop(struct uart16550 *u, uint8_t *byte);

#endif
