/* spin.c: never ends (interrupts off, busy loop), so only kiln's --timeout can stop it. */
#include "guest.h"

int guest_main(void *boot_info)
{
    (void)boot_info;
    serial_puts("spin: spinning forever\n");
    /* A pause loop rather than hlt: the vCPU stays busy, as a wedged guest kernel would be. */
    for (;;)
        cpu_relax();
}
