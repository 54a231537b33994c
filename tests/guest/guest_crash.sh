#!/usr/bin/env bash
# guest_crash.sh: a guest that triple-faults makes kiln exit 126 with one line on stderr.
# Usage: guest_crash.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/crash.elf" "crash guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/crash.elf" --timeout 30
expect_rc 126 "crash"
expect_stdout_line "crash: triple faulting now" "crash"
if [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q '^kiln: ' "$ERR"; then
    ok "crash: one 'kiln: ' line on stderr"
else
    fail "crash: expected exactly one 'kiln: ' line on stderr"
    dump_run
fi
finish
