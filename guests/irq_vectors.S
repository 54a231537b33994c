/* irq_vectors.S: interrupt and exception entry points for the irq guest's IDT. */
#include "apic.h"

    .text
    .code64

/* Vectors 0-31: 16-byte stubs that push their vector number; irq.c indexes them by vector. */
    .balign 16
    .globl irq_exception_stubs
irq_exception_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    pushq $vec
    jmp exception_common
    .set vec, vec + 1
    .endr

/* Any exception is a failure: report the vector from C and end the VM (never returns). */
exception_common:
    popq %rdi
    andq $-16, %rsp
    call irq_exception
1:
    cli
    hlt
    jmp 1b

/* The handlers count interrupts and acknowledge them at the local APIC. */
    .globl irq_lapic_timer_entry
irq_lapic_timer_entry:
    lock incl irq_lapic_ticks(%rip)
    jmp eoi_return

    .globl irq_pit_entry
irq_pit_entry:
    lock incl irq_pit_ticks(%rip)
eoi_return:
    pushq %rax
    movl $(LAPIC_BASE + LAPIC_EOI), %eax
    movl $0, (%rax)
    popq %rax
    iretq

/* A spurious interrupt must not be acknowledged. */
    .globl irq_spurious_entry
irq_spurious_entry:
    iretq

    .section .note.GNU-stack, "", @progbits
