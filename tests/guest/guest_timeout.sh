#!/usr/bin/env bash
# guest_timeout.sh: --timeout stops a guest that never ends, with exit status 124, on time.
# Usage: guest_timeout.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/spin.elf" "spin guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/spin.elf" --timeout 1
expect_rc 124 "spin --timeout 1"
expect_stdout_line "spin: spinning forever" "spin --timeout 1"
# Not before the deadline, and not much after it (a generous bound for loaded CI machines).
if [ "$ELAPSED_MS" -ge 950 ] && [ "$ELAPSED_MS" -le 10000 ]; then
    ok "spin --timeout 1: stopped after $ELAPSED_MS ms"
else
    fail "spin --timeout 1: stopped after $ELAPSED_MS ms, expected about 1000"
    dump_run
fi
finish
