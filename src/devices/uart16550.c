/* uart16550.c: register-level 16550A UART model (FIFOs, interrupt identification, loopback). */
#include "devices/uart16550.h"

#include <string.h>

/* Register bits used by the model (names follow the National Semiconductor datasheet). */
#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0F

#define IIR_NONE 0x01
#define IIR_MSR 0x00
#define IIR_THRE 0x02
#define IIR_RDA 0x04
#define IIR_RLS 0x06
#define IIR_TIMEOUT 0x0C
#define IIR_FIFO_ON 0xC0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_KEEP 0xC9 /* enable, DMA mode select, RX trigger; the clear bits self-clear */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1F

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0F
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_IDLE_LINES (MSR_CTS | MSR_DSR | MSR_DCD) /* what a host-side "cable" presents */

static bool fifos_on(const struct uart16550 *u)
{
    return u->fcr & FCR_ENABLE;
}

/* With FIFOs off each direction is a single holding register. */
static uint8_t fifo_capacity(const struct uart16550 *u)
{
    return fifos_on(u) ? UART_FIFO_SIZE : 1;
}

static bool fifo_push(struct uart_fifo *f, uint8_t cap, uint8_t byte)
{
    if (f->count >= cap)
        return false;
    f->buf[(f->head + f->count) % UART_FIFO_SIZE] = byte;
    f->count++;
    return true;
}

static bool fifo_pop(struct uart_fifo *f, uint8_t *byte)
{
    if (f->count == 0)
        return false;
    *byte = f->buf[f->head];
    f->head = (uint8_t)((f->head + 1) % UART_FIFO_SIZE);
    f->count--;
    return true;
}

static void fifo_clear(struct uart_fifo *f)
{
    f->head = 0;
    f->count = 0;
}

/* Keep the LSR status bits derived from the FIFOs in step; error bits are left alone. */
static void sync_lsr(struct uart16550 *u)
{
    u->lsr &= (uint8_t) ~(LSR_DR | LSR_THRE | LSR_TEMT);
    if (u->rx.count)
        u->lsr |= LSR_DR;
    if (u->tx.count == 0)
        u->lsr |= LSR_THRE | LSR_TEMT; /* no shift register is modelled, so TEMT == THRE */
}

/* The transmitter just drained: a real 16550 raises the THRE interrupt on this edge. */
static void tx_drained(struct uart16550 *u)
{
    u->thr_ipending = true;
    sync_lsr(u);
}

static void clear_tx(struct uart16550 *u)
{
    bool had_data = u->tx.count != 0;
    fifo_clear(&u->tx);
    if (had_data)
        tx_drained(u);
}

static void clear_rx(struct uart16550 *u)
{
    fifo_clear(&u->rx);
    sync_lsr(u);
}

/* Bytes needed in the RX FIFO for "received data available" (FCR bits 6-7). */
static uint8_t rx_trigger(const struct uart16550 *u)
{
    static const uint8_t levels[4] = {1, 4, 8, 14};
    return fifos_on(u) ? levels[u->fcr >> 6] : 1;
}

/* Highest-priority enabled pending interrupt as an IIR identification code (bits 0-3). */
static uint8_t pending_id(const struct uart16550 *u)
{
    if ((u->ier & IER_ELSI) && (u->lsr & LSR_ERRORS))
        return IIR_RLS;
    /* Below the trigger level a real UART waits four character times before reporting a
     * timeout; a VMM delivers bursts with no bit clock, so the timeout is reported at once. */
    if ((u->ier & IER_ERBFI) && u->rx.count)
        return u->rx.count >= rx_trigger(u) ? IIR_RDA : IIR_TIMEOUT;
    if ((u->ier & IER_ETBEI) && u->thr_ipending)
        return IIR_THRE;
    if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTAS))
        return IIR_MSR;
    return IIR_NONE;
}

/* Drive the MSR input lines (bits 4-7) to lines, recording which changed in the delta bits. */
static void set_modem_lines(struct uart16550 *u, uint8_t lines)
{
    uint8_t old = u->msr;
    uint8_t changed = (uint8_t)((old ^ lines) & 0xF0);
    uint8_t delta = 0;
    if (changed & MSR_CTS)
        delta |= MSR_DCTS;
    if (changed & MSR_DSR)
        delta |= MSR_DDSR;
    if ((old & MSR_RI) && !(lines & MSR_RI)) /* TERI: trailing edge of RI only */
        delta |= MSR_TERI;
    if (changed & MSR_DCD)
        delta |= MSR_DDCD;
    u->msr = (uint8_t)((lines & 0xF0) | (old & MSR_DELTAS) | delta);
}

/* In loopback the modem outputs feed the modem inputs; otherwise the idle lines are seen. */
static uint8_t modem_inputs(const struct uart16550 *u)
{
    if (!(u->mcr & MCR_LOOP))
        return MSR_IDLE_LINES;
    uint8_t lines = 0;
    if (u->mcr & MCR_RTS)
        lines |= MSR_CTS;
    if (u->mcr & MCR_DTR)
        lines |= MSR_DSR;
    if (u->mcr & MCR_OUT1)
        lines |= MSR_RI;
    if (u->mcr & MCR_OUT2)
        lines |= MSR_DCD;
    return lines;
}

/* Push a byte into the receiver; a full receiver flags overrun and drops the new byte. */
static bool receive(struct uart16550 *u, uint8_t byte)
{
    if (!fifo_push(&u->rx, fifo_capacity(u), byte)) {
        u->lsr |= LSR_OE;
        return false;
    }
    sync_lsr(u);
    return true;
}

void uart_init(struct uart16550 *u)
{
    memset(u, 0, sizeof(*u));
    u->lcr = 0x03; /* 8 data bits, no parity, 1 stop bit */
    u->dll = 12;   /* 115200 / 12 = 9600 baud */
    u->msr = MSR_IDLE_LINES;
    sync_lsr(u);
}

static uint8_t read_rbr(struct uart16550 *u)
{
    uint8_t byte = 0; /* an empty receiver reads as 0 (hardware returns the stale byte) */
    fifo_pop(&u->rx, &byte);
    sync_lsr(u);
    return byte;
}

/* Reading IIR acknowledges a THRE interrupt, but only when it is the one being reported. */
static uint8_t read_iir(struct uart16550 *u)
{
    uint8_t id = pending_id(u);
    if (id == IIR_THRE)
        u->thr_ipending = false;
    return (uint8_t)(id | (fifos_on(u) ? IIR_FIFO_ON : 0));
}

static uint8_t read_lsr(struct uart16550 *u)
{
    uint8_t value = u->lsr;
    u->lsr &= (uint8_t)~LSR_ERRORS;
    return value;
}

static uint8_t read_msr(struct uart16550 *u)
{
    uint8_t value = u->msr;
    u->msr &= (uint8_t)~MSR_DELTAS;
    return value;
}

uint8_t uart_read(struct uart16550 *u, unsigned offset)
{
    bool dlab = u->lcr & LCR_DLAB;
    switch (offset & 7) {
    case UART_RBR_THR_DLL:
        return dlab ? u->dll : read_rbr(u);
    case UART_IER_DLM:
        return dlab ? u->dlm : u->ier;
    case UART_IIR_FCR:
        return read_iir(u);
    case UART_LCR:
        return u->lcr;
    case UART_MCR:
        return u->mcr;
    case UART_LSR:
        return read_lsr(u);
    case UART_MSR:
        return read_msr(u);
    default:
        return u->scr;
    }
}

/* A THR write acknowledges THRE. A full TX FIFO drops the byte (hardware overwrites one). */
static void write_thr(struct uart16550 *u, uint8_t value)
{
    u->thr_ipending = false;
    if (u->mcr & MCR_LOOP) {
        /* The byte crosses the internal loop at once, so the transmitter is empty again. */
        receive(u, value);
        tx_drained(u);
        return;
    }
    fifo_push(&u->tx, fifo_capacity(u), value);
    sync_lsr(u);
}

/* Enabling ETBEI while THR is empty raises THRE at once; Linux's 8250 driver depends on it. */
static void write_ier(struct uart16550 *u, uint8_t value)
{
    bool was_enabled = u->ier & IER_ETBEI;
    u->ier = value & IER_MASK;
    if (!was_enabled && (u->ier & IER_ETBEI) && u->tx.count == 0)
        u->thr_ipending = true;
}

static void write_fcr(struct uart16550 *u, uint8_t value)
{
    bool enable = value & FCR_ENABLE;
    if (enable != fifos_on(u)) {
        /* Switching modes changes the receiver/transmitter size; both are emptied. */
        clear_rx(u);
        clear_tx(u);
    }
    if (value & FCR_CLEAR_RX)
        clear_rx(u);
    if (value & FCR_CLEAR_TX)
        clear_tx(u);
    u->fcr = enable ? (uint8_t)(value & FCR_KEEP) : 0;
}

static void write_mcr(struct uart16550 *u, uint8_t value)
{
    u->mcr = value & MCR_MASK;
    set_modem_lines(u, modem_inputs(u));
}

void uart_write(struct uart16550 *u, unsigned offset, uint8_t value)
{
    bool dlab = u->lcr & LCR_DLAB;
    switch (offset & 7) {
    case UART_RBR_THR_DLL:
        if (dlab)
            u->dll = value;
        else
            write_thr(u, value);
        break;
    case UART_IER_DLM:
        if (dlab)
            u->dlm = value;
        else
            write_ier(u, value);
        break;
    case UART_IIR_FCR:
        write_fcr(u, value);
        break;
    case UART_LCR:
        u->lcr = value;
        break;
    case UART_MCR:
        write_mcr(u, value);
        break;
    case UART_LSR:
    case UART_MSR:
        break; /* status registers: writes are ignored (factory test use only) */
    default:
        u->scr = value;
        break;
    }
}

bool uart_irq_line(const struct uart16550 *u)
{
    return pending_id(u) != IIR_NONE && (u->mcr & MCR_OUT2);
}

/* In loopback the serial input is disconnected from the line, so host bytes must wait. */
size_t uart_rx_space(const struct uart16550 *u)
{
    if (u->mcr & MCR_LOOP)
        return 0;
    return (size_t)(fifo_capacity(u) - u->rx.count);
}

bool uart_rx_push(struct uart16550 *u, uint8_t byte)
{
    if (u->mcr & MCR_LOOP)
        return false; /* line disconnected: not an overrun, the byte never arrived */
    return receive(u, byte);
}

size_t uart_tx_count(const struct uart16550 *u)
{
    return u->tx.count;
}

bool uart_tx_pop(struct uart16550 *u, uint8_t *byte)
{
    if (!fifo_pop(&u->tx, byte))
        return false;
    if (u->tx.count == 0)
        tx_drained(u);
    return true;
}
