/* gdt.S: a flat GDT with 32-bit code, 64-bit code and data, for guests that switch modes. */

    .section .data.guest_gdt, "aw"
    .balign 16
    .globl guest_gdt
/* Writable: the CPU sets the accessed bit in a descriptor when a selector is loaded. */
guest_gdt:
    .quad 0                     /* 0x00: null */
    .quad 0x00cf9a000000ffff    /* 0x08: 32-bit code, base 0, limit 4 GiB */
    .quad 0x00af9a000000ffff    /* 0x10: 64-bit code (L=1), same selector kiln uses */
    .quad 0x00cf92000000ffff    /* 0x18: data, base 0, limit 4 GiB, same selector kiln uses */
    .globl guest_gdt_end
guest_gdt_end:

    .balign 8
    .globl guest_gdt_desc
/* Pseudo-descriptor for lgdt; a 32-bit base suffices since the guest lives below 4 GiB. */
guest_gdt_desc:
    .word guest_gdt_end - guest_gdt - 1
    .long guest_gdt

    .section .note.GNU-stack, "", @progbits
