#!/usr/bin/env bash
# run-api.sh: ctest entry e2e.api: build the guest image, run api.sh where KVM is real.
# Usage: run-api.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's ACPI button driver and evdev (uncompressed, with a
# load-order file), so the guest can see the power button as an input device.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-api.sh BUILD_DIR}" && pwd)

ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
mods=$build/e2e/button-$ver
"$here/harness" guest-modules "$mods" button evdev
"$here/harness" guest-initramfs "$build/e2e/api-guest.cpio.gz" "$here/api-guest.sh" "$mods"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/api.sh" "$build"
