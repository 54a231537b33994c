#!/usr/bin/env bash
# api.sh: a Linux guest driven through kiln's API socket: kiln ctl info, pause, resume, stats,
# then stop, which presses the ACPI power button (hardware-reduced ACPI: a Generic Event Device
# and a PNP0C0C button); the guest sees KEY_POWER, powers off, and kiln exits 0. Then SIGTERM does
# the same. Usage (from the host): tests/e2e/run-api.sh BUILD_DIR. Exit 0 when every check passed.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091
. "$here/lib.sh"
build=${1:?usage: api.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init api "$build/kiln" "$kernel"
initrd=$build/e2e/api-guest.cpio.gz
mods=$build/e2e/button-$kver
for f in "$initrd" "$mods/load-order"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-api.sh builds it on the host)"
done
sock=$(mktemp -u /tmp/kiln-e2e-api.XXXXXX)
cmdline="console=ttyS0 quiet kiln_mods=$mods"

# ctl COMMAND: kiln ctl; CRC, COUT, CERR.
ctl() {
    CRC=0
    COUT=$("$E2E_KILN" ctl "$sock" "$@" 2>/tmp/kiln-e2e-ctl.err) || CRC=$?
    CERR=$(cat /tmp/kiln-e2e-ctl.err)
}

check() { # check WHAT CONDITION...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what (ctl: rc $CRC, $COUT $CERR)"; fi
}

# --- kiln ctl stop: the button, the guest powers off, 0.
name=stop
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
    --api-socket "$sock" --stop-timeout 60 --timeout 300
boot_checks_begin
if wait_for_console "$OUT" 'API waiting for the power button' 180 "$KILN_PID"; then
    ok "$name: the guest found the power button: $(grep -a 'API power button' "$OUT" | tr -d '\r')"
    ctl info
    check "$name: info: running" grep -q '"state": "running"' <<<"$COUT"
    check "$name: info: the kernel" grep -qF "\"kernel\": \"$kernel\"" <<<"$COUT"
    ctl pause
    check "$name: pause" [ "$CRC" -eq 0 ]
    ctl info
    check "$name: info: paused" grep -q '"state": "paused"' <<<"$COUT"
    ctl resume
    check "$name: resume" [ "$CRC" -eq 0 ]
    ctl stats
    check "$name: stats: exits counted" grep -qE '"total": [1-9]' <<<"$COUT"
    check "$name: stats: RSS" grep -qE '"rss_bytes": [1-9]' <<<"$COUT"
    ctl stop
    check "$name: stop accepted" [ "$CRC" -eq 0 ]
else
    fail "$name: the guest never waited for the power button"
fi
kiln_wait $name
expect_rc $name 0
expect_console $name '^API event: 1 116$' "the guest read KEY_POWER from the button"
expect_console $name 'reboot: Power down$' "the kernel powered down"
[[ ! -e $sock ]] && ok "$name: socket removed" || fail "$name: $sock left behind"
boot_checks_end $name

# --- SIGTERM to kiln: the same graceful stop.
name=sigterm
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
    --api-socket "$sock" --stop-timeout 60 --timeout 300
boot_checks_begin
if wait_for_console "$OUT" 'API waiting for the power button' 180 "$KILN_PID"; then
    kill -TERM "$KILN_PID"
else
    fail "$name: the guest never waited for the power button"
fi
kiln_wait $name
expect_rc $name 0
expect_console $name '^API event: 1 116$' "the guest read KEY_POWER from the button"
boot_checks_end $name
e2e_finish
