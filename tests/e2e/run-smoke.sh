#!/usr/bin/env bash
# run-smoke.sh: ctest entry for the e2e smoke test: build its guest initramfs, then run smoke.sh
# through the harness (in L1 when the host's /dev/kvm cannot boot Linux).
# Usage: run-smoke.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; the image goes to BUILD_DIR/e2e)
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-smoke.sh BUILD_DIR}" && pwd)
# Built here on the host, before L1 starts: L1 sees the host's root read-only.
"$here/harness" guest-initramfs "$build/e2e/smoke-guest.cpio.gz" "$here/smoke-guest.sh"
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/smoke.sh" "$build"
