#!/usr/bin/env bash
# run-share.sh: ctest entry e2e.share: build the share guest image on the host, run share.sh.
# Usage: run-share.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci and 9p modules (9pnet_virtio, 9p and their
# dependencies; uncompressed, with a load-order file, in BUILD_DIR/e2e/virtio-9p-VERSION).
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-share.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/virtio-9p-$ver
"$here/harness" guest-modules "$mods" virtio_pci 9pnet_virtio 9p
"$here/harness" guest-initramfs "$build/e2e/share-guest.cpio.gz" "$here/share-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/share.sh" "$build" "$mods"
