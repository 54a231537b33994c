/*
 * fwsnap.S: a 64 KiB "BIOS" image (kiln --firmware) for the firmware snapshot test. From the
 * reset vector, in real mode: put 'K' in CMOS cell 0x40 (leaving the RTC's index there), select
 * fw_cfg's signature item and read its first byte, then print "tick XXXX" (hex) TICKS times on
 * COM1, touching nothing else. Then, without selecting anything again, the RTC's data port must
 * give 'K' and fw_cfg's the signature's second byte, 'E': true only if a snapshot taken during
 * the ticks restored the RTC's index and memory and fw_cfg's selector and offset. Prints
 * "fwsnap: ok" and exits 0 through the exit device, or "fwsnap: FAIL" and exits 1.
 */
#define TICKS 0x1000
#define COM1 0x3f8
#define EXITDEV 0x5f0

    .code16
    .text
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ss
    mov $0x7000, %sp
    mov %cs, %ax
    mov %ax, %ds
    mov $0x40, %al /* CMOS cell 0x40 = 'K'; the index stays on it */
    out %al, $0x70
    mov $'K', %al
    out %al, $0x71
    mov $0x510, %dx /* fw_cfg: select the signature, read "Q" */
    xor %ax, %ax
    out %ax, %dx
    mov $0x511, %dx
    in %dx, %al
    cmp $'Q', %al
    jne fail
    xor %si, %si
tick:
    mov $msg_tick, %bx
    call puts
    mov %si, %ax
    call puthex16
    mov $'\n', %al
    call putc
    inc %si
    cmp $TICKS, %si
    jb tick
    in $0x71, %al
    cmp $'K', %al
    jne fail
    mov $0x511, %dx
    in %dx, %al
    cmp $'E', %al
    jne fail
    mov $msg_ok, %bx
    call puts
    xor %al, %al
    jmp done
fail:
    mov $msg_fail, %bx
    call puts
    mov $1, %al
done:
    mov $EXITDEV, %dx
    out %al, %dx
1:  hlt
    jmp 1b

/* putc: %al to COM1 once its transmitter has room. */
putc:
    push %dx
    push %ax
    mov $COM1 + 5, %dx
1:  in %dx, %al
    test $0x20, %al
    jz 1b
    pop %ax
    mov $COM1, %dx
    out %al, %dx
    pop %dx
    ret

/* puts: the NUL-terminated string at %ds:%bx. */
puts:
    mov (%bx), %al
    test %al, %al
    jz 1f
    call putc
    inc %bx
    jmp puts
1:  ret

/* puthex16: %ax as four hex digits. */
puthex16:
    mov $4, %cx
1:  rol $4, %ax
    push %ax
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 2f
    add $'a' - '9' - 1, %al
2:  call putc
    pop %ax
    loop 1b
    ret

msg_tick:
    .asciz "tick "
msg_ok:
    .asciz "fwsnap: ok\n"
msg_fail:
    .asciz "fwsnap: FAIL\n"

    /* The reset vector, 16 bytes below the end (4 GiB): into the copy below 1 MiB. */
    .org 0xfff0
    ljmp $0xf000, $_start
    .org 0x10000
