#!/usr/bin/env bash
# run-rootfs-host.sh: ctest entry e2e.rootfs_host: run rootfs-host.sh where /dev/kvm is real.
# Usage: run-rootfs-host.sh BUILD_DIR   (BUILD_DIR holds the kiln binary). Nothing to build on
# the host: kiln makes the guest's initramfs itself from /lib/modules.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-rootfs-host.sh BUILD_DIR}" && pwd)
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/rootfs-host.sh" "$build"
