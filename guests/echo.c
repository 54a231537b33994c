/* echo.c: reads one line from the serial port and echoes it back: tests console input. */
#include "guest.h"

#define LINE_MAX 128
/*
 * LSR polls to wait for the first byte, and for each following one. A poll is a PIO exit (about
 * 15 us each on a nested-emulation host, 1-2 us on hardware), so these bound the wait to
 * seconds, not minutes.
 */
#define FIRST_BYTE_POLLS 400000
#define NEXT_BYTE_POLLS 200000

int guest_main(void *boot_info)
{
    char line[LINE_MAX + 1];
    size_t n = 0;

    (void)boot_info;
    serial_puts("echo: ready\n");
    for (;;) {
        int c = serial_getc(n ? NEXT_BYTE_POLLS : FIRST_BYTE_POLLS);
        if (c < 0) {
            serial_puts("echo: timed out waiting for input\n");
            return 5;
        }
        if (c == '\n' || c == '\r')
            break;
        if (n < LINE_MAX)
            line[n++] = (char)c;
    }
    line[n] = '\0';
    serial_puts("echo: got \"");
    serial_puts(line);
    serial_puts("\"\n");
    return 0;
}
