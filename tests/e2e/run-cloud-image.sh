#!/usr/bin/env bash
# run-cloud-image.sh: ctest entry e2e.cloud_image: make (or reuse) the Debian cloud image
# (make-debian-image OUT cloud, cached as run-image.sh says) and run cloud-image.sh on it in L1.
# Usage: run-cloud-image.sh BUILD_DIR
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=${1:?usage: run-cloud-image.sh BUILD_DIR}
# The NoCloud seed is made in L1 from the host's tools: a skip (77) where they are missing.
for tool in cloud-localds genisoimage ssh-keygen; do
    command -v "$tool" >/dev/null || {
        echo "SKIP: run-cloud-image.sh: $tool is missing (scripts/install-deps installs it)"
        exit 77
    }
done
exec "$here/run-image.sh" "$build" "$here/cloud-image.sh" cloud
