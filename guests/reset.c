/* reset.c: asks the i8042 controller for a CPU reset, which kiln treats as the end of the VM. */
#include "guest.h"

int guest_main(void *boot_info)
{
    (void)boot_info;
    serial_puts("reset: pulsing the reset line through the i8042\n");
    outb(I8042_CMD, 0xfe);
    /* kiln should have stopped the VM on the write; give it a moment in case that is async. */
    for (unsigned i = 0; i < 100000; i++)
        cpu_relax();
    serial_puts("reset: still running after the reset command\n");
    return 6;
}
