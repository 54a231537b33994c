/* start.S: 64-bit entry of the test guests: stack, zeroed .bss, serial init, guest_main, exit. */

/* Bytes of stack for the boot CPU (APs get their own in the SMP guest). */
#define BOOT_STACK_SIZE 16384

    .section .text.start, "ax"
    .code64
    .globl _start
/*
 * kiln enters here in long mode with interrupts off and rsi pointing at the Linux zero page;
 * the stack pointer is undefined, so nothing may touch the stack before rsp is set.
 */
_start:
    cli
    movq %rsi, %rdi
    .globl guest_start64
/* Common 64-bit path; rdi holds the boot information pointer handed to guest_main. */
guest_start64:
    cld
    movabsq $boot_stack_top, %rsp
    movq %rdi, %rbx /* callee-saved: survives the .bss clear and serial_init */
    /* kiln zeroes memory past p_filesz, but a guest should not depend on its loader for that. */
    movabsq $__bss_start, %rdi
    movabsq $__bss_end, %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    call serial_init
    movq %rbx, %rdi
    call guest_main
    movl %eax, %edi
    call guest_exit

    /* Stacks live outside .bss so the clear above stays short. */
    .section .stack, "aw", @nobits
    .balign 16
boot_stack:
    .skip BOOT_STACK_SIZE
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
