/* pvh_entry.S: PVH entry note and 32-bit entry that switches to long mode for the PVH guest. */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define CR0_PE 0x00000001
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

/*
 * The PHYS32_ENTRY note. Its descriptor is the 32-bit entry address; Linux (an ELF64 vmlinux)
 * stores it as 8 bytes, so PVH_NOTE_DESC_SIZE=8 builds a variant that checks kiln accepts both.
 */
#ifndef PVH_NOTE_DESC_SIZE
#define PVH_NOTE_DESC_SIZE 4
#endif
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz: "Xen" and its NUL */
    .long PVH_NOTE_DESC_SIZE        /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
    .asciz "Xen"
    .balign 4
#if PVH_NOTE_DESC_SIZE == 8
    .quad pvh_start32
#else
    .long pvh_start32
#endif
    .balign 4

    .section .text.pvh, "ax"
    .code32
    .globl pvh_start32
/*
 * kiln enters here in 32-bit protected mode, paging off, with flat segments whose selectors and
 * GDT we must not rely on, and ebx = physical address of struct hvm_start_info. ebx is left
 * alone until guest_main gets it.
 */
pvh_start32:
    cli
    cld
    lgdt guest_gdt_desc
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    /* Long mode needs PAE paging: our own identity map, since PVH gives us no page tables. */
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $pvh_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PG | CR0_PE), %eax
    movl %eax, %cr0
    /* Loading a 64-bit code selector activates long mode. */
    ljmp $SEL_CODE64, $pvh_start64

    .code64
pvh_start64:
    movl $SEL_DATA, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %ebx, %edi /* zero-extends: upper halves are undefined after the mode switch */
    jmp guest_start64

/* Identity map of the first 1 GiB with 2 MiB pages: kiln's start info and cmdline live there. */
    .section .data.pvh_pagetables, "aw"
    .balign 4096
pvh_pml4:
    .quad pvh_pdpt + 0x3 /* present, writable */
    .fill 511, 8, 0
pvh_pdpt:
    .quad pvh_pd + 0x3
    .fill 511, 8, 0
pvh_pd:
    .set pd_index, 0
    .rept 512
    .quad (pd_index << 21) + 0x83 /* present, writable, 2 MiB page */
    .set pd_index, pd_index + 1
    .endr

    .section .note.GNU-stack, "", @progbits
