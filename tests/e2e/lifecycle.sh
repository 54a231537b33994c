#!/usr/bin/env bash
# lifecycle.sh: how a Linux guest ends under kiln: poweroff, reboot, exit device, panic, timeout.
# Usage (from the host): tests/e2e/run-lifecycle.sh BUILD_DIR, which prepares the guest image and
# runs `harness run tests/e2e/lifecycle.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when
# nested). Exit: 0 when every check passed; 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: lifecycle.sh BUILD_DIR}
# The harness exports the kernel it picked; in L1 that is the one L1 itself runs, whose modules
# run-lifecycle.sh put into the guest image.
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init lifecycle "$build/kiln" "$kernel"
initrd=$build/e2e/lifecycle-guest.cpio.gz
mods=$build/e2e/pvpanic-$kver
for f in "$initrd" "$mods/load-order"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-lifecycle.sh builds it on the host)"
done
command -v script >/dev/null || e2e_abort "no script(1) (util-linux) for the terminal check"

# No reboot= anywhere: the reboot case must work with the kernel's default reboot method.
base="console=ttyS0 quiet"

# --- poweroff -f: ACPI S5 (the FADT's sleep control register), kiln exits 0.
name=poweroff
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=poweroff" \
    --timeout 180
boot_checks_begin
expect_rc $name 0
expect_console $name '^LIFECYCLE action: poweroff$' "the guest ran its action"
expect_console $name 'reboot: Power down$' "the kernel powered down"
boot_checks_end $name

# --- reboot -f without reboot=: the kernel's default methods (ACPI reset register, keyboard
# controller, ...); with --no-reboot kiln exits 128 on the reset.
name=reboot
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=reboot" \
    --timeout 180 --no-reboot
boot_checks_begin
expect_rc $name 128
expect_console $name '^LIFECYCLE action: reboot$' "the guest ran its action"
expect_console $name 'reboot: Restarting system$' "the kernel restarted"
refute_console $name 'LIFECYCLE still running' "reboot -f did not return"
if [[ ! -s $ERR ]]; then ok "$name: nothing on kiln's stderr"; else fail "$name: kiln stderr: $(head -c 200 "$ERR")"; fi
boot_checks_end $name

# --- the same without --no-reboot: kiln starts the guest again from power-on after each reset,
# so it boots over and over until --timeout (124); every boot is a whole one (the kernel's
# banner and the guest's action each time), and stderr says each restart.
name=restart
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=reboot" \
    --timeout 25
boot_checks_begin
expect_rc $name 124
boots=$(grep -c '^LIFECYCLE action: reboot' "$OUT" || true)
restarts=$(grep -c '^kiln: the guest rebooted; starting it again$' "$ERR" || true)
if [[ $boots -ge 2 && $restarts -ge 1 && $restarts -ge $((boots - 1)) ]]; then
    ok "$name: $boots boots in 25 s, $restarts restarts on stderr"
else
    fail "$name: $boots boots and $restarts restarts in 25 s; expected at least 2 boots, a restart between each"
fi
if [[ $(tail -n 1 "$ERR") == "kiln: timeout of 25000 ms reached, VM stopped" ]]; then
    ok "$name: one --timeout for all the boots: '$(tail -n 1 "$ERR")'"
else
    fail "$name: kiln's last stderr line is not 'kiln: timeout of 25000 ms reached, VM stopped'"
fi
boot_checks_end $name

# --- exit device from guest user space through /dev/port: status 7.
name=exitdev
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=exitdev" \
    --timeout 180
boot_checks_begin
expect_rc $name 7
expect_console $name '^LIFECYCLE action: exitdev$' "the guest ran its action"
boot_checks_end $name

# --- panic with pvpanic loaded: the panic notifier writes "panicked" to port 0x505, kiln exits 126
# and says why. panic=0 (no reboot after a panic) is the same as in the next case, so the only
# difference between the two is the driver.
name=pvpanic
kiln_boot $name --kernel "$kernel" --initrd "$initrd" \
    --cmdline "$base panic=0 kiln_action=pvpanic kiln_mods=$mods" --timeout 180
boot_checks_begin
expect_rc $name 126
expect_console $name '^LIFECYCLE insmod pvpanic\.ko: ok$' "pvpanic.ko loaded"
expect_console $name '^LIFECYCLE insmod pvpanic-mmio\.ko: ok$' "pvpanic-mmio.ko loaded"
expect_console $name '^LIFECYCLE pvpanic-mmio devices: QEMU0001:00 ' \
    "pvpanic-mmio bound the DSDT's QEMU0001 device"
expect_console $name 'Kernel panic - not syncing: sysrq triggered crash' "the kernel panicked"
if grep -qxF 'kiln: guest crashed: guest kernel panicked (pvpanic)' "$ERR"; then
    ok "$name: kiln stderr: '$(cat "$ERR")'"
else
    fail "$name: kiln stderr lacks 'kiln: guest crashed: guest kernel panicked (pvpanic)'"
fi
boot_checks_end $name

# --- the same panic without pvpanic: nothing tells kiln, the kernel (panic=0) spins forever, and
# only --timeout ends the VM: 124. So the 126 above comes from pvpanic, not from the console.
# kiln must keep running well after the panic (the pvpanic run ends at once).
name=panic-no-pvpanic
limit=60
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" \
    --cmdline "$base panic=0 kiln_action=panic" --timeout $limit
panic_ms=
if wait_for_console "$OUT" 'Kernel panic - not syncing' $((limit + 30)) "$KILN_PID"; then
    panic_ms=$(($(now_ms) - KILN_START_MS))
fi
kiln_wait $name
boot_checks_begin
expect_rc $name 124
expect_console $name '^LIFECYCLE action: panic$' "the guest ran its action"
expect_console $name 'Kernel panic - not syncing: sysrq triggered crash' "the kernel panicked"
if [[ -n $panic_ms ]] && ((MS - panic_ms >= 10000)); then
    ok "$name: the panic showed at $panic_ms ms; kiln ran on until --timeout at $MS ms"
else
    fail "$name: the panic showed at '${panic_ms:-never}' ms, kiln ended at $MS ms:" \
        "want 10 s or more in between"
fi
if grep -qi pvpanic "$ERR"; then
    fail "$name: kiln stderr mentions pvpanic without the driver: '$(cat "$ERR")'"
else
    ok "$name: kiln stderr does not mention pvpanic: '$(cat "$ERR")'"
fi
boot_checks_end $name

# --- --timeout 5 on a guest that never stops: 124, on time. (Linux takes longer than 5 s to boot
# here, so this guest is still booting; the next case times out a guest that sleeps.)
name=timeout
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=sleep" \
    --timeout 5
boot_checks_begin
expect_rc $name 124
if ((MS >= 5000 && MS <= 15000)); then
    ok "$name: kiln stopped after $MS ms for --timeout 5 (want 5000-15000 ms)"
else
    fail "$name: kiln stopped after $MS ms for --timeout 5 (want 5000-15000 ms)"
fi
if grep -qx 'kiln: timeout of 5000 ms reached, VM stopped' "$ERR"; then
    ok "$name: kiln stderr: '$(cat "$ERR")'"
else
    fail "$name: kiln stderr lacks 'kiln: timeout of 5000 ms reached, VM stopped'"
fi
boot_checks_end $name

# --- the same guest sleeping, with kiln on a terminal (a pty from script(1)): 124 again, and the
# terminal's settings are the same after as before. in-pty.sh also samples them while kiln runs:
# they must differ then (raw mode), or the before/after comparison would prove nothing.
name=timeout-tty
limit=60
pty=$E2E_TMP/pty
mkdir -p "$pty"
kiln_run_in_pty $name "$pty" --kernel "$kernel" --initrd "$initrd" \
    --cmdline "$base kiln_action=sleep" --timeout $limit
boot_checks_begin
expect_rc $name 124
expect_console $name '^LIFECYCLE sleeping$' "the guest was sleeping when the time ran out"
expect_console $name "^kiln: timeout of $((limit * 1000)) ms reached, VM stopped$" \
    "kiln said why it stopped"
if [[ -f $pty/stty.during ]]; then
    ok "$name: while kiln ran, the terminal was changed: stty -g $(cat "$pty/stty.during")"
else
    fail "$name: the terminal never changed while kiln ran (no raw mode?)"
fi
if [[ -f $pty/stty.before && -f $pty/stty.after ]] &&
    [[ $(cat "$pty/stty.before") == "$(cat "$pty/stty.after")" ]]; then
    ok "$name: terminal settings after kiln equal those before: stty -g $(cat "$pty/stty.after")"
else
    fail "$name: terminal settings differ after kiln; stty -a before and after:"
    diff "$pty/stty.before.txt" "$pty/stty.after.txt" | sed 's/^/  | /' || true
fi
boot_checks_end $name

e2e_finish
