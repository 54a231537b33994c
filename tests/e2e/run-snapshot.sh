#!/usr/bin/env bash
# run-snapshot.sh: ctest entry e2e.snapshot: build the snapshot guest image, run snapshot.sh.
# Usage: run-snapshot.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci, virtio_blk and vsock modules (in
# BUILD_DIR/e2e/snapshot-VERSION) and the static helper BUILD_DIR/e2e/vsock_tool.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-snapshot.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
tool=$build/e2e/vsock_tool
[[ -x $tool ]] || {
    echo "FAIL: snapshot: no $tool (built by the kiln_vsock_tool target)"
    exit 1
}
mods=$build/e2e/snapshot-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_blk virtio_net vsock vmw_vsock_virtio_transport_common \
    vmw_vsock_virtio_transport
"$here/harness" guest-initramfs "$build/e2e/snapshot-guest.cpio.gz" "$here/snapshot-guest.sh" "$mods" \
    "$tool"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/snapshot.sh" "$build" "$mods"
