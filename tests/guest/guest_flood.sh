#!/usr/bin/env bash
# guest_flood.sh: a guest printing as fast as it can loses no byte, even to a slow reader.
# Usage: guest_flood.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/flood.elf" "flood guest"
require_kvm "$GUESTS/hello.elf"

# expected N: what the flood guest prints for lines=N.
expected() {
    awk -v n="$1" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "flood %d abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n", i
        print "flood: done"
    }'
}

# check_output WHAT FILE N
check_output() {
    if expected "$3" | cmp -s - "$2"; then
        ok "$1: all $3 lines intact"
    else
        fail "$1: output differs from the $3 expected lines ($(wc -c <"$2") bytes received)"
        expected "$3" | diff - "$2" | head -n 10 >&2
    fi
}

run_kiln run --kernel "$GUESTS/flood.elf" --cmdline "lines=300" --timeout 60
expect_rc 0 "flood to a file" && check_output "flood to a file" "$OUT" 300

run_kiln run --kernel "$GUESTS/flood.elf" --cmdline "lines=300" --serial "file=$TEST_TMP/console" \
    --timeout 60
expect_rc 0 "flood with --serial file" &&
    check_output "flood with --serial file" "$TEST_TMP/console" 300

# More than a pipe buffer (64 KiB) to a reader that starts late: kiln must wait for the reader
# (and the guest for kiln), not drop bytes.
slow=$TEST_TMP/slow.out
timeout -s KILL "$KILN_RUN_LIMIT" "$KILN" run --kernel "$GUESTS/flood.elf" --cmdline "lines=1000" \
    --timeout 60 2>"$TEST_TMP/slow.err" | {
    sleep 1
    cat
} >"$slow"
RC=${PIPESTATUS[0]}
if [ "$RC" -eq 0 ]; then
    ok "flood to a slow pipe: exit status 0"
    check_output "flood to a slow pipe" "$slow" 1000
else
    fail "flood to a slow pipe: exit status $RC: $(head -n 3 "$TEST_TMP/slow.err")"
fi
finish
