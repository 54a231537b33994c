/* smp_trampoline.S: AP start-up code: real mode -> protected mode -> long mode -> ap_main. */
#include "smp.h"

#define SEL_CODE32 0x08
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define GDT_LIMIT 31 /* guest_gdt in lib/gdt.S: 4 descriptors */
#define CR0_PE 0x00000001
#define CR0_NW 0x20000000
#define CR0_CD 0x40000000
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

/* Offset of a trampoline label from the start of the copy, i.e. from the real-mode CS base. */
#define T(label) ((label) - smp_trampoline_start)

/*
 * The trampoline is data as far as the image is concerned: the BSP copies it to
 * SMP_TRAMPOLINE_BASE, and the SIPI vector (SMP_TRAMPOLINE_BASE >> 12) starts each AP at its
 * first byte with CS = SMP_TRAMPOLINE_BASE >> 4, IP = 0.
 */
    .section .rodata.smp_trampoline, "a"
    .code16
    .globl smp_trampoline_start
smp_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    /* Progress counters let the BSP tell "never started" from "stuck on the way up". */
    lock incl T(smp_trampoline_real_count)
    lgdtl T(tramp_gdt_desc)
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW), %eax
    orl $CR0_PE, %eax
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $(SMP_TRAMPOLINE_BASE + T(tramp32))

    .code32
tramp32:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    lock incl smp_ap_pmode_count
    /* Same paging as the BSP: its CR3 (kiln's identity map), PAE, EFER.LME, then PG. */
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl smp_ap_cr3, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $CR0_PG, %eax
    movl %eax, %cr0
    ljmp $SEL_CODE64, $ap_start64

    .balign 4
/* A copy of guest_gdt's pseudo-descriptor: real mode can only address this 64 KiB segment. */
tramp_gdt_desc:
    .word GDT_LIMIT
    .long guest_gdt
    .balign 4
    .globl smp_trampoline_real_count
smp_trampoline_real_count:
    .long 0
    .globl smp_trampoline_end
smp_trampoline_end:

    .text
    .code64
/* First 64-bit code of an AP: pick a stack by local APIC ID and call ap_main(apic_id). */
ap_start64:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    /* The LAPIC ID register, not CPUID: ap_main checks CPUID against it. */
    movl $(LAPIC_BASE + LAPIC_ID), %eax
    movl (%rax), %ebx
    shrl $24, %ebx
    cmpl $SMP_MAX_CPUS, %ebx
    jae ap_park
    leal 1(%ebx), %eax
    imull $SMP_AP_STACK_SIZE, %eax
    movabsq $ap_stacks, %rsp
    addq %rax, %rsp
    movl %ebx, %edi
    call ap_main
ap_park:
    cli
    hlt
    jmp ap_park

    .section .stack, "aw", @nobits
    .balign 16
ap_stacks:
    .skip SMP_MAX_CPUS * SMP_AP_STACK_SIZE

    .section .note.GNU-stack, "", @progbits
