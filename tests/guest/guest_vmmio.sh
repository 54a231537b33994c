#!/usr/bin/env bash
# guest_vmmio.sh: --transport mmio: a tiny virtio-mmio driver (the vmmio guest) finds the disk
# through the virtio_mmio.device= entry kiln appends to the command line, reads and writes it
# with the level interrupt line; the host then checks the image.
# Usage: guest_vmmio.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/vmmio.elf" "vmmio guest"
require_kvm "$GUESTS/hello.elf"

img=$TEST_TMP/disk.img
printf 'KILNMMIO' >"$img"
truncate -s 1M "$img"
run_kiln run --kernel "$GUESTS/vmmio.elf" --transport mmio --disk "path=$img" --timeout 60
expect_rc 0 "vmmio"
expect_stdout_line "vmmio: device 512@0xd0000000:5" "vmmio"
expect_stdout_line "vmmio: capacity 2048" "vmmio"
# An occasional interrupt with InterruptStatus 0 is KVM's (virtio-pci INTx sees the same).
if grep -q "^vmmio: ok, interrupts 3 " "$OUT"; then
    ok "vmmio: 3 interrupts on the level line"
else
    fail "vmmio: the I/O round did not finish with 3 interrupts"
    dump_run
fi
if [ "$(dd if="$img" bs=512 skip=1 count=1 2>/dev/null | head -c 13)" = mmio-was-here ]; then
    ok "image sector 1 holds the guest's write"
else
    fail "image sector 1 lacks 'mmio-was-here'"
fi
if [ "$(head -c 8 "$img")" = 'KILNMMIO' ]; then
    ok "image sector 0 unchanged"
else
    fail "image sector 0 changed"
fi
finish
