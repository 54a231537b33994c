#!/usr/bin/env bash
# run-ports.sh: ctest entry e2e.ports: build the named-ports guest image on the host, run ports.sh.
# Usage: run-ports.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci and virtio_console modules (uncompressed, with
# a load-order file, in BUILD_DIR/e2e/virtio-console-VERSION).
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-ports.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/virtio-console-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_console
"$here/harness" guest-initramfs "$build/e2e/ports-guest.cpio.gz" "$here/ports-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/ports.sh" "$build" "$mods"
