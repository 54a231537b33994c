#!/usr/bin/env bash
# run-lifecycle.sh: ctest entry e2e.lifecycle: build the guest image, run lifecycle.sh in KVM.
# Usage: run-lifecycle.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's pvpanic modules (pvpanic-mmio and what it depends on),
# uncompressed for busybox insmod, in BUILD_DIR/e2e/pvpanic-VERSION with a load-order file.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-lifecycle.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}

# The modules, dependencies first (see harness guest-modules).
mods=$build/e2e/pvpanic-$ver
"$here/harness" guest-modules "$mods" pvpanic-mmio

"$here/harness" guest-initramfs "$build/e2e/lifecycle-guest.cpio.gz" "$here/lifecycle-guest.sh" \
    "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/lifecycle.sh" "$build"
