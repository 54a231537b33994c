#!/usr/bin/env bash
# console.sh: console input reaches a Linux guest's shell; an idle guest leaves kiln idle.
# Usage (from the host): tests/e2e/run-console.sh BUILD_DIR, which builds the guest image and runs
# `harness run tests/e2e/console.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when nested).
# Exit: 0 when every check passed; 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: console.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init console "$build/kiln" "$kernel"
initrd=$build/e2e/console-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-console.sh builds it on the host)"
hz=$(getconf CLK_TCK)
# An idle guest may cost kiln at most this share of one CPU (timer ticks, KVM's halt polling).
max_pct=25

# cpu_ms PID: CPU time (user + system, all threads) of PID so far, in ms, from /proc/PID/stat.
# A vCPU's time in the guest counts as user time of its thread.
cpu_ms() {
    local stat
    stat=$(cat "/proc/$1/stat") || return 1
    # Fields after "PID (COMM) ": state is the 1st, utime the 12th, stime the 13th.
    stat=${stat##*) }
    read -r -a f <<<"$stat"
    echo $(((f[11] + f[12]) * 1000 / hz))
}

# idle_window NAME BEGIN_ERE END_ERE SLEEP_S: kiln's CPU time and wall time between the console
# lines BEGIN and END, between which the guest only sleeps SLEEP_S seconds. CPU must stay below
# max_pct of wall. Also prints the figures for the boot up to BEGIN.
idle_window() {
    local name=$1 begin=$2 end=$3 sleep_s=$4 t0 c0 t1 c1 wall cpu vm
    if ! wait_for_console "$OUT" "$begin" 240 "$KILN_PID"; then
        fail "$name: no /$begin/ line on the console"
        return 1
    fi
    t0=$(now_ms)
    # The VM's process: kiln's child (its parent only waits, using no CPU).
    vm=$(kiln_vm_pid)
    c0=$(cpu_ms "$vm") || { fail "$name: kiln is gone"; return 1; }
    echo "$name: boot up to the idle phase: wall $((t0 - KILN_START_MS)) ms, kiln CPU $c0 ms"
    if ! wait_for_console "$OUT" "$end" $((sleep_s + 120)) "$KILN_PID"; then
        fail "$name: no /$end/ line on the console"
        return 1
    fi
    t1=$(now_ms)
    c1=$(cpu_ms "$vm") || { fail "$name: kiln is gone"; return 1; }
    wall=$((t1 - t0))
    cpu=$((c1 - c0))
    echo "$name: idle phase (guest sleep $sleep_s): wall $wall ms," \
        "kiln CPU $cpu ms ($((cpu * 100 / wall))%)"
    # The guest's clock must agree roughly with ours, or the window measures something else.
    if ((wall >= sleep_s * 1000 / 2)); then
        ok "$name: the idle phase lasted $wall ms of wall time for a guest sleep of $sleep_s s"
    else
        fail "$name: the idle phase lasted $wall ms of wall time for a guest sleep of $sleep_s s"
    fi
    if ((cpu * 100 < max_pct * wall)); then
        ok "$name: kiln used $cpu ms of CPU in $wall ms while the guest slept (under $max_pct%)"
    else
        fail "$name: kiln used $cpu ms of CPU in $wall ms while the guest slept" \
            "($((cpu * 100 / wall))%, limit $max_pct%)"
    fi
}

# stop_kiln: end a kiln that a failed check left running (by its PID), so the test need not wait
# for its --timeout.
stop_kiln() {
    if [[ -n $KILN_PID ]] && kill -0 "$KILN_PID" 2>/dev/null; then
        echo "stopping kiln (PID $KILN_PID) after a failed check"
        kill -INT "$KILN_PID" 2>/dev/null || true # at once (SIGTERM waits for the guest)
    fi
}

# --- console input through a pipe. Bytes sent before Linux's 8250 driver starts are lost (it
# resets the UART's FIFOs, as on real hardware), so input goes only after the guest's
# CONSOLE-READY. stdin is a FIFO held open by this shell (fd 3) for the whole run.
name=shell
fifo=$E2E_TMP/stdin.fifo
mkfifo "$fifo"
kiln_start $name "$fifo" --kernel "$kernel" --initrd "$initrd" \
    --cmdline "console=ttyS0 quiet kiln_action=shell" --timeout 300
exec 3>"$fifo"
boot_checks_begin
if wait_for_console "$OUT" '^CONSOLE-READY' 240 "$KILN_PID"; then
    ok "$name: the guest is ready for input after $(($(now_ms) - KILN_START_MS)) ms"
    # The shell computes the answer: the echo of the typed line itself has no "42".
    # shellcheck disable=SC2016 # $((...)) is for the guest's shell
    echo 'echo $((6*7))-answer' >&3
    sent=$(now_ms)
    if wait_for_console "$OUT" '^42-answer' 60 "$KILN_PID"; then
        ok "$name: the guest's shell answered '42-answer' $(($(now_ms) - sent)) ms after the input"
        # The same shell then idles with the pipe open and silent: reading stdin must not spin.
        # 5 s after the end marker, for the CPU sample there, before the power-off.
        # shellcheck disable=SC2016
        echo 'echo idle-$((2*3))-begin; sleep 20; echo idle-$((2*3))-end; sleep 5; poweroff -f' >&3
        idle_window $name '^idle-6-begin' '^idle-6-end' 20 || true
    else
        fail "$name: no '42-answer' line within 60 s of sending 'echo \$((6*7))-answer'"
    fi
else
    fail "$name: the guest never printed CONSOLE-READY"
fi
[[ $E2E_FAILURES -eq $E2E_MARK ]] || stop_kiln
exec 3>&-
kiln_wait $name
# Exit 0: the guest powered off on the command typed in; 143 only if a check failed above.
expect_rc $name 0
boot_checks_end $name

# --- an idle guest (2 vCPUs, stdin /dev/null): `sleep 30` must leave kiln idle too.
name=idle
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" \
    --cmdline "console=ttyS0 quiet kiln_action=idle" --cpus 2 --timeout 300
boot_checks_begin
idle_window $name '^IDLE-BEGIN' '^IDLE-END' 30 || true
[[ $E2E_FAILURES -eq $E2E_MARK ]] || stop_kiln
kiln_wait $name
expect_rc $name 0
boot_checks_end $name

e2e_finish
