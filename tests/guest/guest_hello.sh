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

# --stats reads figures after the run, in the thread that ran the loop (seccomp filter and all).
run_kiln run --kernel "$GUESTS/hello.elf" --timeout 30 --stats
expect_rc 0 "hello --stats"
if grep -q '^kiln: stats: first_run_cpu_us=[0-9]* guest_resident_kib=[1-9]' "$ERR"; then
    ok "hello --stats: $(head -n 1 "$ERR")"
else
    fail "hello --stats: no stats line on stderr"
    dump_run
fi

# --config: the same run from a JSON file (printed by config --print from the flags, and one
# written by hand with a flag on top) gives the same result as the flags.
CFG=$TEST_TMP/hello.json
"$KILN" config --print --kernel "$GUESTS/hello.elf" --timeout 30 >"$CFG" ||
    fail "config --print: exit status $?"
run_kiln run --config "$CFG"
expect_rc 0 "hello --config (printed)"
expect_stdout_line "Hello from kiln guest" "hello --config (printed)"
expect_stderr_empty "hello --config (printed)"
printf '{"kernel": "%s", "memory": "64M", "serial": "none"}\n' "$GUESTS/hello.elf" >"$CFG"
run_kiln run --config "$CFG" --serial stdio --timeout 30
expect_rc 0 "hello --config --serial stdio"
expect_stdout_line "Hello from kiln guest" "hello --config --serial stdio"
finish
