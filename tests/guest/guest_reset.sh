#!/usr/bin/env bash
# guest_reset.sh: a reset through the i8042 (out 0x64, 0xfe) starts the guest again from power-on
# (each boot a fresh VM) until --timeout; with --no-reboot it ends kiln with exit status 128.
# Usage: guest_reset.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/reset.elf" "reset guest"
require_kvm "$GUESTS/hello.elf"

banner="reset: pulsing the reset line through the i8042"
run_kiln run --kernel "$GUESTS/reset.elf" --timeout 30 --no-reboot
expect_rc 128 "reset with --no-reboot"
expect_stdout_line "$banner" "reset with --no-reboot"
expect_stderr_empty "reset with --no-reboot"
if grep -q "still running" "$OUT"; then
    fail "reset: the guest kept running after the reset command"
    dump_run
fi

# Without --no-reboot: boot after boot within the one --timeout, a restart line for each.
run_kiln run --kernel "$GUESTS/reset.elf" --timeout 2
expect_rc 124 "reset, restarted until --timeout 2"
boots=$(grep -cxF "$banner" "$OUT")
restarts=$(grep -cxF "kiln: the guest rebooted; starting it again" "$ERR")
if [ "$boots" -ge 3 ] && [ "$restarts" -ge $((boots - 1)) ] && [ "$restarts" -le "$boots" ]; then
    ok "reset, restarted: $boots boots and $restarts restarts in 2 s"
else
    fail "reset, restarted: $boots boots and $restarts restarts in 2 s (want 3 or more, one apart)"
    dump_run
fi
if [ "$(tail -n 1 "$ERR")" = "kiln: timeout of 2000 ms reached, VM stopped" ]; then
    ok "reset, restarted: the one --timeout covered every boot"
else
    fail "reset, restarted: last stderr line '$(tail -n 1 "$ERR")'"
fi
# --serial file=PATH: one file for all the boots, each boot's output after the last.
run_kiln run --kernel "$GUESTS/reset.elf" --timeout 1 --serial "file=$TEST_TMP/serial.log"
n=$(grep -cxF "$banner" "$TEST_TMP/serial.log" || true)
if [ "$RC" -eq 124 ] && [ "$n" -ge 2 ]; then
    ok "reset, --serial file: $n boots' output in one file"
else
    fail "reset, --serial file: exit $RC and $n boots in the file (want 124 and 2 or more)"
fi

# The boot runs in kiln's child; a SIGKILL to kiln (the pid a user or CI knows) must end it too.
need_file "$GUESTS/spin.elf" "spin guest"
"$KILN" run --kernel "$GUESTS/spin.elf" --timeout 60 </dev/null >/dev/null 2>&1 &
parent=$!
child=
for _ in $(seq 50); do
    child=$(awk '{ print $1 }' "/proc/$parent/task/$parent/children" 2>/dev/null)
    [ -n "$child" ] && break
    sleep 0.1
done
kill -KILL "$parent"
wait "$parent" 2>/dev/null
state=
for _ in $(seq 50); do
    state=$(awk '/^State:/ { print $2 }' "/proc/$child/status" 2>/dev/null)
    case $state in "" | Z | X) break ;; esac
    sleep 0.1
done
if [ -n "$child" ] && case $state in "" | Z | X) true ;; *) false ;; esac; then
    ok "SIGKILL to kiln: its VM process $child ended too (state '${state:-gone}')"
else
    fail "SIGKILL to kiln: VM process '${child}' still there (state '$state')"
    [ -n "$child" ] && kill -KILL "$child" 2>/dev/null
fi
finish
