/* ticker.c: port I/O without end, so its exit count shows whether it runs; can reset itself. */
#include "guest.h"

/* The UART's scratch register: a port kiln handles silently, at one exit per write. */
#define COM1_SCRATCH 0x3ff

int guest_main(void *zero_page)
{
    const char *cmdline = bootparams_cmdline(zero_page);
    char arg[24];
    uint64_t reset_after = 0;
    if (cmdline_get(cmdline, "reset_after", arg, sizeof(arg)) && !parse_u64(arg, &reset_after)) {
        serial_puts("ticker: reset_after=N wants a number\n");
        return GUEST_EXIT_USAGE;
    }
    serial_puts("ticker: ticking\n");
    for (uint64_t i = 1;; i++) {
        outb(COM1_SCRATCH, (uint8_t)i);
        /* reset_after=N: a reboot after N writes (each boot starts counting again). */
        if (i == reset_after)
            outb(I8042_CMD, 0xfe);
    }
}
