#!/usr/bin/env python3
"""bad_images.py HELLO_ELF OUTDIR: write the malformed kernel images of cli_bad_matrix.sh.

Each file is one defect in an otherwise plausible image: ELF64 files are the hello guest with
one field changed, bzImages a synthetic setup header (boot protocol 2.15, 64-bit entry) with one
value wrong. The names are the matrix's case names.
"""
import os
import struct
import sys

hello_path, out = sys.argv[1], sys.argv[2]
hello = open(hello_path, "rb").read()

# ELF64 header fields: (offset, struct format).
E_IDENT_CLASS, E_IDENT_DATA, E_IDENT_VERSION = 4, 5, 6
E_TYPE, E_MACHINE, E_ENTRY = (16, "<H"), (18, "<H"), (24, "<Q")
E_PHOFF, E_PHENTSIZE, E_PHNUM = (32, "<Q"), (54, "<H"), (56, "<H")
PHDR_SIZE = 56
# Program header fields, relative to one header.
P_TYPE, P_OFFSET, P_PADDR = (0, "<I"), (8, "<Q"), (24, "<Q")
P_FILESZ, P_MEMSZ = (32, "<Q"), (40, "<Q")


def put(buf, field, value, base=0):
    off, fmt = field
    struct.pack_into(fmt, buf, base + off, value)


def elf(**changes):
    b = bytearray(hello)
    phoff = struct.unpack_from("<Q", b, 32)[0]
    for name, (field, value, ph) in changes.items():
        put(b, field, value, phoff + ph * PHDR_SIZE if ph is not None else 0)
    return b


def elf_byte(offset, value):
    b = bytearray(hello)
    b[offset] = value
    return b


def bzimage(version=0x020F, xloadflags=0x3, setup_sects=30, init_size=16 << 20,
            cmdline_size=2048, total=64 << 10):
    b = bytearray(total)
    b[0x1F1] = setup_sects
    struct.pack_into("<I", b, 0x1F4, 0x10000)  # syssize: 1 MiB, whatever the file holds
    struct.pack_into("<H", b, 0x1FE, 0xAA55)  # boot_flag
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, version)
    b[0x211] = 0x01  # loadflags: LOADED_HIGH
    struct.pack_into("<I", b, 0x230, 2 << 20)  # kernel_alignment
    b[0x234] = 1  # relocatable_kernel
    struct.pack_into("<H", b, 0x236, xloadflags)
    struct.pack_into("<I", b, 0x238, cmdline_size)
    struct.pack_into("<I", b, 0x260, init_size)
    return b


images = {
    "elf_truncated_header": hello[:40],
    "elf_class32": elf_byte(E_IDENT_CLASS, 1),
    "elf_big_endian": elf_byte(E_IDENT_DATA, 2),
    "elf_bad_version": elf_byte(E_IDENT_VERSION, 9),
    "elf_machine_arm": elf(m=(E_MACHINE, 40, None)),
    "elf_shared_object": elf(t=(E_TYPE, 3, None)),
    "elf_bad_phentsize": elf(s=(E_PHENTSIZE, 32, None)),
    "elf_too_many_phdrs": elf(n=(E_PHNUM, 0xFFFF, None)),
    "elf_phdrs_past_end": elf(o=(E_PHOFF, len(hello) - 8, None)),
    "elf_no_load": elf(a=(P_TYPE, 0, 0), b=(P_TYPE, 0, 1)),
    "elf_segment_past_file": elf(o=(P_OFFSET, 1 << 40, 0)),
    "elf_filesz_over_memsz": elf(f=(P_FILESZ, 0x2000, 0)),
    "elf_segment_wraps": elf(p=(P_PADDR, 0xFFFFFFFFFFFFF000, 0), m=(P_MEMSZ, 0x2000, 0)),
    "elf_segment_outside_ram": elf(p=(P_PADDR, 0x40000000, 0)),
    "elf_entry_outside_ram": elf(e=(E_ENTRY, 0x80000000, None)),
    "bz_truncated": bzimage(total=4096),
    "bz_setup_only": bzimage(total=31 * 512),
    "bz_old_protocol": bzimage(version=0x0204),
    "bz_no_64bit_entry": bzimage(xloadflags=0),
    "bz_too_big_for_ram": bzimage(init_size=1 << 30),
    "bz_short_cmdline": bzimage(cmdline_size=16),
}
os.makedirs(out, exist_ok=True)
for name, data in images.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes(data))
