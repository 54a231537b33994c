#!/usr/bin/env bash
# run-net.sh: ctest entry e2e.net: build the virtio-net guest image on the host, run net.sh.
# Usage: run-net.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio_pci and virtio_net modules (with their dependencies
# failover and net_failover; uncompressed for busybox insmod, with a load-order file, in
# BUILD_DIR/e2e/virtio-net-VERSION). Everything else the guest uses is busybox: ip, ping, nc,
# udhcpc, wget, sha256sum.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-net.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}

# L1 (or the host, in direct mode) needs iproute2 for the namespace and the TAP device.
command -v ip >/dev/null || {
    echo "SKIP: no ip (install iproute2)"
    exit 77
}

# The modules, dependencies first (see harness guest-modules).
mods=$build/e2e/virtio-net-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_net

"$here/harness" guest-initramfs "$build/e2e/net-guest.cpio.gz" "$here/net-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/net.sh" "$build"
