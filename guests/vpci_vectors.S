/* vpci_vectors.S: vpci guest entry points: exceptions, MSI-X and INTx interrupts. */
#include "apic.h"
    .text
    .code64
    .balign 16
    .globl vp_exception_stubs
vp_exception_stubs:
    .set vec, 0
    .rept 32
    .balign 16
    pushq $vec
    jmp exc_common
    .set vec, vec + 1
    .endr
exc_common:
    popq %rdi
    andq $-16, %rsp
    call vp_exception
1:  cli
    hlt
    jmp 1b

    .globl vp_msix_entry
vp_msix_entry:
    lock incl vp_msix_count(%rip)
    jmp eoi

    .globl vp_intx_entry
vp_intx_entry:
    pushq %rax; pushq %rcx; pushq %rdx; pushq %rsi; pushq %rdi
    pushq %r8; pushq %r9; pushq %r10; pushq %r11
    call vp_intx_handler
    popq %r11; popq %r10; popq %r9; popq %r8
    popq %rdi; popq %rsi; popq %rdx; popq %rcx; popq %rax
eoi:
    pushq %rax
    movl $(LAPIC_BASE + LAPIC_EOI), %eax
    movl $0, (%rax)
    popq %rax
    iretq

    .globl vp_spurious_entry
vp_spurious_entry:
    iretq
    .section .note.GNU-stack, "", @progbits
