/* guest_init_blob.S: guest_init (built static by CMake) as data in kiln, for --rootfs-host. */
    .section .rodata
    .balign 16
    .globl kiln_guest_init
    .hidden kiln_guest_init
kiln_guest_init:
    .incbin GUEST_INIT_PATH
    .globl kiln_guest_init_end
    .hidden kiln_guest_init_end
kiln_guest_init_end:
    .section .note.GNU-stack, "", @progbits
