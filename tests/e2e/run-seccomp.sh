#!/usr/bin/env bash
# run-seccomp.sh: ctest entry e2e.seccomp: build the guest image on the host, run seccomp.sh.
# Usage: run-seccomp.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci, virtio_blk and virtio_net modules.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-seccomp.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/virtio-blk-net-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_blk virtio_net
"$here/harness" guest-initramfs "$build/e2e/seccomp-guest.cpio.gz" "$here/seccomp-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/seccomp.sh" "$build"
