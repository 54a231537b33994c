#!/usr/bin/env bash
# guest_hello.sh: boots the hello guest; its line must be the whole of stdout, with exit status 0.
# Usage: guest_hello.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/hello.elf" "hello guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/hello.elf" --timeout 30
expect_rc 0 "hello"
if [ "$(cat "$OUT")" = "Hello from kiln guest" ] && [ "$(wc -c <"$OUT")" -eq 22 ]; then
    ok "hello: stdout is exactly the greeting and a newline"
else
    fail "hello: stdout is not exactly 'Hello from kiln guest\n'"
    dump_run
fi
expect_stderr_empty "hello"
finish
