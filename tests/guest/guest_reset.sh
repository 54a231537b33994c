#!/usr/bin/env bash
# guest_reset.sh: a reset through the i8042 (out 0x64, 0xfe) ends the VM with exit status 0.
# Usage: guest_reset.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/reset.elf" "reset guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/reset.elf" --timeout 30
expect_rc 0 "reset"
expect_stdout_line "reset: pulsing the reset line through the i8042" "reset"
if grep -q "still running" "$OUT"; then
    fail "reset: the guest kept running after the reset command"
    dump_run
fi
finish
