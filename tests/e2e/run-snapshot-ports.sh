#!/usr/bin/env bash
# run-snapshot-ports.sh: ctest entry e2e.snapshot_ports: build the guest image, run
# snapshot-ports.sh.
# Usage: run-snapshot-ports.sh BUILD_DIR   (BUILD_DIR holds kiln; images go to BUILD_DIR/e2e)
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-snapshot-ports.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/virtio-blk-console-snap-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_blk virtio_console
"$here/harness" guest-initramfs "$build/e2e/snapshot-ports-guest.cpio.gz" \
    "$here/snapshot-ports-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/snapshot-ports.sh" "$build" \
    "$mods"
