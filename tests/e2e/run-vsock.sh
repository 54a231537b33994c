#!/usr/bin/env bash
# run-vsock.sh: ctest entry e2e.vsock: build the vsock guest image on the host, run vsock.sh.
# Usage: run-vsock.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci and vsock modules (vsock,
# vmw_vsock_virtio_transport_common, vmw_vsock_virtio_transport; uncompressed, with a load-order
# file, in BUILD_DIR/e2e/virtio-vsock-VERSION) and the static helper BUILD_DIR/e2e/vsock_tool.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-vsock.sh BUILD_DIR}" && pwd)
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
tool=$build/e2e/vsock_tool
[[ -x $tool ]] || {
    echo "FAIL: vsock: no $tool (built by the kiln_vsock_tool target)"
    exit 1
}
mods=$build/e2e/virtio-vsock-$ver
"$here/harness" guest-modules "$mods" virtio_pci vsock vmw_vsock_virtio_transport_common \
    vmw_vsock_virtio_transport
"$here/harness" guest-initramfs "$build/e2e/vsock-guest.cpio.gz" "$here/vsock-guest.sh" "$mods" \
    "$tool"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-900}" "$here/vsock.sh" "$build" "$mods"
