#!/usr/bin/env bash
# image.sh: boot a distro disk image through firmware, the way a user would: no --kernel; snapshot
# it while the firmware loads the kernel, stop it, and finish the boot from the snapshot.
# Usage (from the host): tests/e2e/run-image.sh BUILD_DIR, which makes the image and runs
# `harness run tests/e2e/image.sh BUILD_DIR IMAGE`. Runs where /dev/kvm is real (in L1 when
# nested). IMAGE (read-only here) is the backing file of a qcow2 overlay that takes the writes.
# The guest: SeaBIOS, GRUB from the disk, the Debian kernel and systemd; kiln-e2e.service writes
# /root/kiln-was-here after multi-user.target and runs `systemctl poweroff` (make-debian-image).
# The first boot is snapshotted (kiln ctl snapshot) as GRUB starts loading the kernel through
# SeaBIOS's disk services, and killed; `kiln run --restore` goes on from there: the kernel, its
# boot, multi-user.target, the file and the power-off all happen in the restored VM.
# Exit: 0 when every check passed, 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091
. "$here/lib.sh"
build=${1:?usage: image.sh BUILD_DIR IMAGE}
base=${2:?usage: image.sh BUILD_DIR IMAGE}
e2e_init image "$build/kiln" "$base"
ip link set lo up 2>/dev/null || true
disk=$E2E_TMP/debian.qcow2
qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$disk"
sock=$E2E_TMP/api.sock
snap=$E2E_TMP/snap
machine=(--disk "path=$disk" --net user --memory 1G --cpus 2)

kiln_start debian /dev/null "${machine[@]}" --api-socket "$sock" --snapshot-dir "$snap" \
    --timeout 400
boot_checks_begin
# (SeaBIOS and GRUB draw with terminal escapes: no anchors, and GRUB's banner comes in pieces.)
if wait_for_console "$OUT" "Booting .Debian GNU/Linux" 200 "$KILN_PID"; then
    ok "debian: GRUB boots its entry $((($(now_ms) - KILN_START_MS) / 1000)) s after kiln started"
else
    fail "debian: no GRUB menu entry booting on the console"
fi
# A disk read in flight makes the API's snapshot answer "busy" (the loop that would finish it is
# the one taking the snapshot): ask again, as a client should.
t0=$(now_ms)
snapped=0
for try in $(seq 20); do
    if reply=$("$E2E_KILN" ctl "$sock" snapshot 2>&1); then
        snapped=1
        break
    fi
    [[ $reply == *busy* ]] || break
    sleep 0.2
done
if [[ $snapped -eq 1 ]]; then
    ok "debian: snapshot as GRUB loads the kernel, in $(($(now_ms) - t0)) ms (try $try): $reply"
else
    fail "debian: ctl snapshot: $reply"
fi
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait debian
expect_rc debian 137
expect_console debian 'SeaBIOS \(version' "SeaBIOS ran"
expect_console debian 'GRUB loading' "GRUB from the disk"
expect_console debian "Booting .Debian GNU/Linux" "GRUB's menu entry"
refute_console debian 'KILN-E2E' "the snapshot came before Linux had booted"
echo "debian: snapshot state $(stat -c %s "$snap/state") bytes, memory $(du -k "$snap/memory" | cut -f1) KiB on disk"
boot_checks_end debian

# The rest of the boot happens in the restored VM, without running the firmware again.
kiln_start restored /dev/null --restore "$snap" "${machine[@]}" --api-socket "$sock" --timeout 400
boot_checks_begin
for _ in $(seq 100); do # the socket comes up as kiln starts
    info=$("$E2E_KILN" ctl "$sock" info 2>&1) && break
    sleep 0.1
done
grep -q '"firmware": "/' <<<"$info" && ok "restored: a firmware machine (ctl info names its BIOS)" ||
    fail "restored: ctl info: $info"
if wait_for_console "$OUT" 'KILN-E2E: multi-user.target reached' 380 "$KILN_PID"; then
    ok "restored: multi-user.target $((($(now_ms) - KILN_START_MS) / 1000)) s after the restore"
else
    fail "restored: no multi-user.target on the console"
fi
kiln_wait restored
expect_rc restored 0
refute_console restored 'SeaBIOS \(version|GRUB loading' "no second firmware boot"
expect_console restored 'KILN-E2E: multi-user.target reached after [0-9.]+s uptime; net: .*10\.0\.2\.15/24' \
    "multi-user.target with a DHCP address from --net user"
expect_console restored 'KILN-E2E: wrote /root/kiln-was-here; powering off' "the guest wrote its file"
expect_console restored 'reboot: Power down' "systemctl poweroff reached ACPI S5"
refute_console restored 'Kernel panic|BUG:|Oops' "no kernel trouble"
boot_checks_end restored

# The overlay the guest wrote is consistent, and the file is on the disk.
overlay_check "$disk"
got=$(debugfs -R 'cat /root/kiln-was-here' "$PART" 2>/dev/null || true)
if [[ $got == "written by kiln-e2e at uptime "* ]]; then
    ok "the guest's file is on the disk: '$got'"
else
    fail "the guest's file is not on the disk (debugfs read '$got')"
fi
fsck_clean "$PART"
e2e_finish
