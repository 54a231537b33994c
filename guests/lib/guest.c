/* guest.c: serial console, exit, assert and string helpers for kiln's freestanding test guests. */
#include "guest.h"

/* 16550 registers (offsets from COM1) and the line status bits polled below. */
#define UART_RBR 0
#define UART_THR 0
#define UART_DLL 0
#define UART_IER 1
#define UART_DLM 1
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_DR 0x01
#define LSR_THRE 0x20

/*
 * Bound on LSR polls per transmitted byte: kiln drains the transmitter from another thread, so
 * THRE normally comes back at once; the bound only keeps a broken UART from hanging the guest.
 */
#define TX_POLLS 1000000

void serial_init(void)
{
    /*
     * Program the UART as a driver on real hardware would (115200 8N1). This also checks that
     * kiln keeps the divisor latch (written through offset 0 while DLAB is set) out of the output
     * stream. FCR is left alone: switching the FIFOs on empties the receiver, and a test may
     * have queued input before the guest started.
     */
    outb(COM1 + UART_IER, 0x00);
    outb(COM1 + UART_LCR, 0x80);
    outb(COM1 + UART_DLL, 0x01);
    outb(COM1 + UART_DLM, 0x00);
    outb(COM1 + UART_LCR, 0x03);
    outb(COM1 + UART_MCR, 0x03);
}

void serial_putc(char c)
{
    for (unsigned i = 0; i < TX_POLLS; i++) {
        if (inb(COM1 + UART_LSR) & LSR_THRE)
            break;
        cpu_relax();
    }
    outb(COM1 + UART_THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

void serial_put_dec(uint64_t v)
{
    char buf[21];
    int i = sizeof(buf);
    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    serial_puts(&buf[i]);
}

void serial_put_hex(uint64_t v)
{
    char buf[19];
    int i = sizeof(buf);
    buf[--i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[v & 0xf];
        v >>= 4;
    } while (v);
    buf[--i] = 'x';
    buf[--i] = '0';
    serial_puts(&buf[i]);
}

int serial_getc(uint64_t max_polls)
{
    for (uint64_t i = 0; i < max_polls; i++) {
        if (inb(COM1 + UART_LSR) & LSR_DR)
            return inb(COM1 + UART_RBR);
        cpu_relax();
    }
    return -1;
}

void cpu_halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt" ::: "memory");
}

void guest_exit(unsigned status)
{
    outb(EXIT_PORT, (uint8_t)status);
    /* Only reached if the exit device is missing: a clear message beats a silent hang. */
    serial_puts("guest: exit device did not stop the VM\n");
    cpu_halt_forever();
}

void guest_assert_fail(const char *file, int line, const char *expr)
{
    serial_puts("ASSERT FAILED: ");
    serial_puts(file);
    serial_putc(':');
    serial_put_dec((uint64_t)line);
    serial_puts(": ");
    serial_puts(expr);
    serial_putc('\n');
    guest_exit(GUEST_EXIT_ASSERT);
}

bool cmdline_get(const char *cmdline, const char *key, char *buf, size_t size)
{
    size_t klen = strlen(key);
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *tok = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - tok) > klen && memcmp(tok, key, klen) == 0 && tok[klen] == '=') {
            size_t n = 0;
            for (const char *v = tok + klen + 1; v < p && n + 1 < size; v++)
                buf[n++] = *v;
            buf[n] = '\0';
            return true;
        }
    }
    return false;
}

bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

const char *bootparams_cmdline(const void *zero_page)
{
    const uint8_t *bp = zero_page;
    uint64_t ptr = *(const uint32_t *)(bp + BP_CMD_LINE_PTR) |
                   (uint64_t) * (const uint32_t *)(bp + BP_EXT_CMD_LINE_PTR) << 32;
    return ptr ? (const char *)(uintptr_t)ptr : "";
}

/*
 * rep movsb/stosb rather than byte loops: the compiler could turn such a loop back into a call
 * to memcpy/memset (itself), and one string instruction is also the cheapest thing to emulate.
 */
void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}
