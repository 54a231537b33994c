/* debugexit.c: writes "value=V" with "width=1|2|4" to "port=P" (all from the command line). */
#include "guest.h"

/* The named number from the command line, or false. */
static bool arg_u64(const char *cmdline, const char *name, uint64_t *out)
{
    char arg[24];
    return cmdline_get(cmdline, name, arg, sizeof(arg)) && parse_u64(arg, out);
}

int guest_main(void *zero_page)
{
    const char *cmdline = bootparams_cmdline(zero_page);
    uint64_t port, value, width;

    if (!arg_u64(cmdline, "port", &port) || port > 0xffff || !arg_u64(cmdline, "value", &value) ||
        value > 0xffffffffu || !arg_u64(cmdline, "width", &width)) {
        serial_puts("debugexit: want port=P value=V width=1|2|4\n");
        return GUEST_EXIT_USAGE;
    }
    serial_puts("debugexit: writing ");
    serial_put_dec(value);
    serial_puts(" to port ");
    serial_put_dec(port);
    serial_putc('\n');
    if (width == 1)
        outb((uint16_t)port, (uint8_t)value);
    else if (width == 2)
        outw((uint16_t)port, (uint16_t)value);
    else
        outl((uint16_t)port, (uint32_t)value);
    /* Still running: no device there ended the VM. */
    serial_puts("debugexit: still running\n");
    return 42;
}
