/* exitcode.c: exits with the status named by "status=N" (0-255) on the kernel command line. */
#include "guest.h"

int guest_main(void *zero_page)
{
    const char *cmdline = bootparams_cmdline(zero_page);
    char arg[24];
    uint64_t status;

    if (!cmdline_get(cmdline, "status", arg, sizeof(arg)) || !parse_u64(arg, &status) ||
        status > 255) {
        serial_puts("exitcode: want status=N (0-255) on the command line, got \"");
        serial_puts(cmdline);
        serial_puts("\"\n");
        return GUEST_EXIT_USAGE;
    }
    serial_puts("exitcode: exiting with status ");
    serial_put_dec(status);
    serial_putc('\n');
    return (int)status;
}
