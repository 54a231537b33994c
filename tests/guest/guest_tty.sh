#!/usr/bin/env bash
# guest_tty.sh: on a terminal kiln uses raw mode, Ctrl-A x stops the VM, and the terminal's
# settings are restored after a timeout, the escape, SIGTERM, and the VM's process being killed.
# Usage: guest_tty.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/spin.elf" "spin guest"
command -v script >/dev/null || skip "script(1) from util-linux is not installed"
require_kvm "$GUESTS/hello.elf"

# Runs inside the pseudo-terminal that script(1) creates: records the terminal settings before,
# during (from a second process while kiln runs) and after kiln, and kiln's exit status.
cat >"$TEST_TMP/inner.sh" <<'INNER'
kiln=$1; guest=$2; dir=$3; shift 3
stty -g >"$dir/before"
"$kiln" run --kernel "$guest" "$@" </dev/tty >"$dir/out" 2>"$dir/err" &
pid=$!
# Sample the settings once kiln has changed them (up to 1 s; a slow host, such as the nested
# harness, may take longer than a fixed sleep to start kiln), or after 1 s when it has not.
for _ in 1 2 3 4 5 6 7 8 9 10; do
    sleep 0.1
    stty -g >"$dir/during"
    cmp -s "$dir/before" "$dir/during" || break
done
if [ "${SEND_TERM:-0}" = 1 ]; then kill -TERM "$pid"; fi
# The boot runs in kiln's child: killed outright, it cannot restore the terminal; kiln must.
if [ "${KILL_CHILD:-0}" = 1 ]; then kill -KILL "$(cat "/proc/$pid/task/$pid/children")"; fi
wait "$pid"
echo $? >"$dir/rc"
stty -g >"$dir/after"
INNER

# in_pty NAME INPUT_DELAY INPUT ARGS...: run kiln in a pty, feeding INPUT after INPUT_DELAY s.
in_pty() {
    local name=$1 delay=$2 input=$3
    shift 3
    local dir=$TEST_TMP/$name
    mkdir -p "$dir"
    { sleep "$delay"; printf '%b' "$input"; sleep 5; } |
        timeout -s KILL "$KILN_RUN_LIMIT" script -qfec \
            "bash $TEST_TMP/inner.sh $KILN $GUESTS/spin.elf $dir $*" /dev/null >/dev/null 2>&1
    RC=$(cat "$dir/rc" 2>/dev/null || echo missing)
    DIR=$dir
}

check_restored() {
    local what=$1
    if [ ! -s "$DIR/before" ] || ! cmp -s "$DIR/before" "$DIR/after"; then
        fail "$what: terminal settings not restored"
        return
    fi
    if cmp -s "$DIR/before" "$DIR/during"; then
        fail "$what: terminal was not in raw mode while kiln ran"
        return
    fi
    ok "$what: raw mode while running, settings restored afterwards"
}

in_pty timeout 0 "" --timeout 2
expect_code() {
    if [ "$RC" = "$1" ]; then ok "$2: exit $RC"; else fail "$2: exit $RC, want $1"; fi
}

expect_code 124 "timeout on a tty"
check_restored "timeout"

in_pty escape 1.5 '\001x' --timeout 20
expect_code 130 "Ctrl-A x"
check_restored "Ctrl-A x"
if grep -q "Ctrl-A x" "$DIR/err"; then ok "escape hint on stderr"; else fail "no escape hint"; fi

# SIGTERM is a graceful stop: the power button, which this guest ignores, then a stop after
# --stop-timeout (143).
SEND_TERM=1 in_pty sigterm 0 "" --timeout 20 --stop-timeout 0.5
expect_code 143 "SIGTERM"
check_restored "SIGTERM"

KILL_CHILD=1 in_pty killed 0 "" --timeout 20
expect_code 137 "the VM's process killed by SIGKILL"
check_restored "the VM's process killed by SIGKILL"
finish
