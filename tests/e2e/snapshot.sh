#!/usr/bin/env bash
# snapshot.sh: a Linux guest counting on its console and its virtio-blk disk is snapshotted
# through the API socket (kiln ctl SOCKET snapshot), stopped, and restored with kiln run
# --restore: it goes on counting from where it was (not from 0), and its disk writes after the
# restore land on the disk. Usage (from the host): tests/e2e/run-snapshot.sh BUILD_DIR. Runs
# where /dev/kvm is real (in L1 when nested). Exit: 0 when every check passed; 1 otherwise.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: snapshot.sh BUILD_DIR MODS}
mods=${2:?usage: snapshot.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init snapshot "$build/kiln" "$kernel"
initrd=$build/e2e/snapshot-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-snapshot.sh builds it on the host)"

disk=$E2E_TMP/disk.img
truncate -s 8M "$disk"
sock=$E2E_TMP/api.sock
snap=$E2E_TMP/snap
machine=(--memory 256M --disk "path=$disk")
# disk_count: the counter the guest last wrote to the disk's first sector.
disk_count() { head -c 14 "$disk" | sed -n 's/^COUNT 0*\([0-9][0-9]*\)$/\1/p'; }
# last_count: the last COUNT line on the console so far.
last_count() { tr -d '\r' <"$OUT" | grep -a '^COUNT [0-9]*$' | tail -n 1 | cut -d' ' -f2; }

name=cold
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" "${machine[@]}" \
    --cmdline "console=ttyS0 quiet kiln_mods=$mods" --api-socket "$sock" --snapshot-dir "$snap" \
    --timeout 300
boot_checks_begin
if wait_for_console "$OUT" '^COUNT 25' 240 "$KILN_PID"; then
    ok "$name: the guest counts ($(($(now_ms) - KILN_START_MS)) ms to COUNT 25)"
else
    fail "$name: no COUNT 25 on the console"
fi
t0=$(now_ms)
reply=$("$E2E_KILN" ctl "$sock" snapshot 2>&1) && ok "$name: snapshot in $(($(now_ms) - t0)) ms: $reply" ||
    fail "$name: ctl snapshot: $reply"
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
at=$(last_count)
expect_rc $name 137
echo "$name: the last count before the kill: $at; state $(stat -c %s "$snap/state") bytes, memory $(du -k "$snap/memory" | cut -f1) KiB on disk"
boot_checks_end $name

# The restored guest goes on: its first count is near where the snapshot was, far from 0.
name=restored
kiln_start $name /dev/null --restore "$snap" "${machine[@]}" --api-socket "$sock" --timeout 300
boot_checks_begin
first=
if wait_for_console "$OUT" '^COUNT [0-9]+' 60 "$KILN_PID"; then
    # Still running: the console has its CRs.
    first=$(tr -d '\r' <"$OUT" | grep -a -m1 '^COUNT [0-9]*$' | cut -d' ' -f2 || true)
    ok "$name: counting again $(($(now_ms) - KILN_START_MS)) ms after kiln run --restore, from $first"
else
    fail "$name: no COUNT on the console after the restore"
fi
if [[ -n $first && $first -ge 20 && $first -le $((at + 1)) ]]; then
    ok "$name: it went on from the snapshot (count $first; 25 <= snapshot <= $at at the kill)"
else
    fail "$name: first count '$first' is not where the snapshot was (between 20 and $((at + 1)))"
fi
target=$((${first:-0} + 15))
if wait_for_console "$OUT" "^COUNT $target"$'\r'"?\$" 60 "$KILN_PID"; then
    ok "$name: 15 more counts after the restore"
else
    fail "$name: no COUNT $target within 60 s of the restore"
fi
info=$("$E2E_KILN" ctl "$sock" info 2>&1) || true
grep -q '"state": "running"' <<<"$info" && ok "$name: the API answers: running" ||
    fail "$name: ctl info: $info"
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
expect_rc $name 137
d=$(disk_count)
if [[ -n $d && $d -ge $target ]]; then
    ok "$name: the disk holds count $d, written after the restore"
else
    fail "$name: the disk holds count '$d', not one written after the restore (>= $target)"
fi
boot_checks_end $name

e2e_finish
