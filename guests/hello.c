/* hello.c: the smallest guest: one line on the serial console, then exit status 0. */
#include "guest.h"

int guest_main(void *boot_info)
{
    (void)boot_info;
    serial_puts("Hello from kiln guest\n");
    return 0;
}
