#!/usr/bin/env bash
# run-snapshot.sh: ctest entry e2e.snapshot: build the snapshot guest image, run snapshot.sh.
# Usage: run-snapshot.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-snapshot.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/virtio-blk-snap-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_blk
"$here/harness" guest-initramfs "$build/e2e/snapshot-guest.cpio.gz" "$here/snapshot-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/snapshot.sh" "$build" "$mods"
