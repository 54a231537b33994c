#!/usr/bin/env bash
# guest_vpci.sh: a tiny virtio-pci driver (the vpci guest) moves BAR 0, then reads and writes a
# virtio-blk disk with MSI-X and with INTx interrupts; the host then checks the image.
# Usage: guest_vpci.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/vpci.elf" "vpci guest"
require_kvm "$GUESTS/hello.elf"

img=$TEST_TMP/disk.img
printf 'KILNPCI!' >"$img"
truncate -s 1M "$img"
run_kiln run --kernel "$GUESTS/vpci.elf" --disk "path=$img" --timeout 60
expect_rc 0 "vpci"
expect_stdout_line "vpci: msix ok, interrupts 3" "vpci"
if grep -q "^vpci: intx ok, interrupts 3 " "$OUT"; then
    ok "vpci: INTx interrupts"
else
    fail "vpci: INTx round did not finish with 3 interrupts"
    dump_run
fi
# Each round writes its marker to sector 1 and reads it back (the guest checks that); on the host
# sector 1 holds the last round's marker and sector 0 is untouched.
if [ "$(dd if="$img" bs=512 skip=1 count=1 2>/dev/null | head -c 13)" = intx-was-here ]; then
    ok "image sector 1 holds the guest's last write"
else
    fail "image sector 1 lacks 'intx-was-here'"
fi
if [ "$(head -c 8 "$img")" = 'KILNPCI!' ]; then
    ok "image sector 0 unchanged"
else
    fail "image sector 0 changed"
fi
finish
