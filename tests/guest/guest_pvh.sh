#!/usr/bin/env bash
# guest_pvh.sh: an ELF with a Xen PVH note enters at its 32-bit entry with hvm_start_info.
# Usage: guest_pvh.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/pvh.elf" "pvh guest"
need_file "$GUESTS/pvh8.elf" "pvh8 guest"
require_kvm "$GUESTS/hello.elf"

cmdline="pvh-test answer=42 quoted='a b'"
# pvh: 4-byte entry address in the note; pvh8: 8 bytes, as in a Linux vmlinux.
for g in pvh pvh8; do
    run_kiln run --kernel "$GUESTS/$g.elf" --cmdline "$cmdline" --timeout 30
    expect_rc 0 "$g" || continue
    expect_stdout_line "Hello from PVH" "$g"
    expect_stdout_line "pvh: cmdline: $cmdline" "$g"
    expect_stderr_empty "$g"
done
finish
