/* flood.c: prints many numbered lines as fast as the UART takes them: tests output flow control. */
#include "guest.h"

#define DEFAULT_LINES 500
#define MAX_LINES 100000

int guest_main(void *zero_page)
{
    const char *cmdline = bootparams_cmdline(zero_page);
    char arg[24];
    uint64_t lines = DEFAULT_LINES;

    if (cmdline_get(cmdline, "lines", arg, sizeof(arg)) &&
        (!parse_u64(arg, &lines) || lines > MAX_LINES)) {
        serial_puts("flood: lines=N wants a number up to 100000\n");
        return GUEST_EXIT_USAGE;
    }
    /* Each line names its number, so the test can spot a lost, repeated or mangled byte. */
    for (uint64_t i = 0; i < lines; i++) {
        serial_puts("flood ");
        serial_put_dec(i);
        serial_puts(" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n");
    }
    serial_puts("flood: done\n");
    return 0;
}
