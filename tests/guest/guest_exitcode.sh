#!/usr/bin/env bash
# guest_exitcode.sh: the guest's exit-device status becomes kiln's exit status, clamped to 123.
# Usage: guest_exitcode.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/exitcode.elf" "exitcode guest"
require_kvm "$GUESTS/hello.elf"

# status written by the guest : exit status kiln must give
for pair in 0:0 1:1 7:7 123:123 124:123 200:123 255:123; do
    status=${pair%%:*}
    want=${pair##*:}
    run_kiln run --kernel "$GUESTS/exitcode.elf" --cmdline "status=$status" --timeout 30
    expect_rc "$want" "status=$status" || continue
    expect_stdout_line "exitcode: exiting with status $status" "status=$status"
    if [ "$status" -le 123 ]; then
        expect_stderr_empty "status=$status"
    elif grep -q "^kiln: .*$status" "$ERR" && [ "$(wc -l <"$ERR")" -eq 1 ]; then
        # Statuses above 123 would collide with kiln's own codes: kiln must say it clamped.
        ok "status=$status: one warning on stderr naming $status"
    else
        fail "status=$status: expected one 'kiln: ' warning naming $status on stderr"
        dump_run
    fi
done
finish
