#!/usr/bin/env bash
# run-image.sh: ctest entry e2e.image: make (or reuse) the Debian disk image, run image.sh.
# Usage: run-image.sh BUILD_DIR [SCRIPT [FLAVOR]]
#   SCRIPT defaults to image.sh (bench/image passes its own); FLAVOR is make-debian-image's,
#   plain (the default) or cloud (run-cloud-image.sh, e2e.cloud_image, passes cloud-image.sh).
# The image is built on the host by make-debian-image (root, mmdebstrap and the Debian mirror)
# and cached as CACHE/debian-12-HASH.qcow2 (plain) or CACHE/debian-12-FLAVOR-HASH.qcow2, HASH
# naming the script that made it, so a changed recipe makes a new image. CACHE is
# KILN_E2E_CACHE, else ~/.cache/kiln-e2e. Prints the path.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
usage="usage: run-image.sh BUILD_DIR [SCRIPT [plain|cloud]]"
build=$(cd "${1:?$usage}" && pwd)
script=${2:-$here/image.sh}
flavor=${3:-plain}
case $flavor in
    plain) name=debian-12 ;;
    cloud) name=debian-12-cloud ;;
    *)
        echo "run-image.sh: unknown flavor '$flavor'; $usage" >&2
        exit 2
        ;;
esac

# The kernel version the harness boots as L1 (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
cache=${KILN_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-e2e}
mkdir -p "$cache"
hash=$(sha256sum "$here/make-debian-image" | cut -c1-12)
image=$cache/$name-$hash.qcow2
# One build at a time (of either flavor); a second caller waits and reuses it.
exec 9>"$cache/debian-12.lock"
flock 9
if [[ ! -s $image ]]; then
    echo "run-image.sh: building $image"
    "$here/make-debian-image" "$image" "$flavor"
else
    echo "run-image.sh: reusing $image"
fi
flock -u 9
# L1 holds the guest's 1 GiB and, afterwards, the root partition image.sh copies out to check.
export KILN_E2E_L1_MEMORY=${KILN_E2E_L1_MEMORY:-4096}
# KILN_E2E_KEEP=DIR keeps what the script writes to $KILN_E2E_OUT (bench/image's figures).
keep=()
[[ -z ${KILN_E2E_KEEP:-} ]] || keep=(--out "$KILN_E2E_KEEP")
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-900}" "${keep[@]}" "$script" "$build" \
    "$image"
