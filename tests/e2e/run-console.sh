#!/usr/bin/env bash
# run-console.sh: ctest entry e2e.console: build the guest image, run console.sh where KVM is real.
# Usage: run-console.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-console.sh BUILD_DIR}" && pwd)
# Built here on the host, before L1 starts: L1 sees the host's root read-only.
"$here/harness" guest-initramfs "$build/e2e/console-guest.cpio.gz" "$here/console-guest.sh"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/console.sh" "$build"
