/* initrd.c: reports where kiln put the initrd, its size, first line and a byte sum. */
#include "guest.h"

#define FIRST_LINE_MAX 64

int guest_main(void *zero_page)
{
    const uint8_t *bp = zero_page;
    uint64_t addr = phys_read32((uintptr_t)bp + BP_RAMDISK_IMAGE) |
                    (uint64_t)phys_read32((uintptr_t)bp + BP_EXT_RAMDISK_IMAGE) << 32;
    uint64_t size = phys_read32((uintptr_t)bp + BP_RAMDISK_SIZE) |
                    (uint64_t)phys_read32((uintptr_t)bp + BP_EXT_RAMDISK_SIZE) << 32;
    const uint8_t *data = (const uint8_t *)(uintptr_t)addr;
    uint32_t sum = 0;

    if (!addr || !size) {
        serial_puts("initrd: none\n");
        return 0;
    }
    serial_puts("initrd: at ");
    serial_put_hex(addr);
    serial_puts(" size=");
    serial_put_dec(size);
    serial_putc('\n');
    /* The tests keep the initrd small: each byte costs a few emulated instructions here. */
    for (uint64_t i = 0; i < size; i++)
        sum += data[i];
    serial_puts("initrd: sum=");
    serial_put_dec(sum);
    serial_putc('\n');
    serial_puts("initrd: first line: ");
    for (uint64_t i = 0; i < size && i < FIRST_LINE_MAX && data[i] != '\n'; i++)
        serial_putc(data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '?');
    serial_putc('\n');
    /* Linux expects a page-aligned initrd. */
    GUEST_ASSERT((addr & 0xfff) == 0);
    return 0;
}
