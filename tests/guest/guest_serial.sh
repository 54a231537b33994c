#!/usr/bin/env bash
# guest_serial.sh: --serial file=PATH sends the console to PATH only; --serial none drops it.
# Usage: guest_serial.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/hello.elf" "hello guest"
require_kvm "$GUESTS/hello.elf"

log=$TEST_TMP/console.log
run_kiln run --kernel "$GUESTS/hello.elf" --serial "file=$log" --timeout 30
expect_rc 0 "--serial file"
if [ -s "$OUT" ]; then
    fail "--serial file: something was printed on stdout"
    dump_run
fi
if [ -f "$log" ] && [ "$(cat "$log")" = "Hello from kiln guest" ] &&
    [ "$(wc -c <"$log")" -eq 22 ]; then
    ok "--serial file: the console went to the file"
else
    fail "--serial file: $log does not hold exactly the greeting"
    dump_run
fi

# An existing file is replaced, not appended to.
echo "stale content" >"$log"
run_kiln run --kernel "$GUESTS/hello.elf" --serial "file=$log" --timeout 30
expect_rc 0 "--serial file (existing file)"
if [ "$(cat "$log")" = "Hello from kiln guest" ]; then
    ok "--serial file: an existing file was truncated"
else
    fail "--serial file: $log holds '$(head -c 200 "$log")' after a second run"
fi

run_kiln run --kernel "$GUESTS/hello.elf" --serial none --timeout 30
expect_rc 0 "--serial none"
if [ -s "$OUT" ]; then
    fail "--serial none: something was printed on stdout"
    dump_run
fi
expect_stderr_empty "--serial none"

# A console file kiln cannot create is kiln's failure, named in one line.
bad=$TEST_TMP/no-such-dir/console.log
run_kiln run --kernel "$GUESTS/hello.elf" --serial "file=$bad" --timeout 30
expect_rc 125 "--serial file in a missing directory"
if [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "^kiln: .*no-such-dir/console.log" "$ERR"; then
    ok "--serial file in a missing directory: one line naming the path"
else
    fail "--serial file in a missing directory: expected one 'kiln: ' line naming $bad"
    dump_run
fi
finish
