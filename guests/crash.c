/* crash.c: triple-faults on purpose, so kiln must report a crashed guest (exit status 126). */
#include "guest.h"

int guest_main(void *boot_info)
{
    /* An IDT with limit 0 makes every exception undeliverable: #UD -> #GP -> #DF -> shutdown. */
    static const struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } empty_idt = {0, 0};

    (void)boot_info;
    serial_puts("crash: triple faulting now\n");
    __asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt) : "memory");
    /* Still here: the CPU did not shut down. Say so with a status no test expects. */
    serial_puts("crash: still running after ud2\n");
    return 3;
}
