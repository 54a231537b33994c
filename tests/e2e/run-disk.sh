#!/usr/bin/env bash
# run-disk.sh: ctest entry e2e.disk: build the virtio-blk guest image on the host, run disk.sh.
# Usage: run-disk.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; images go to BUILD_DIR/e2e)
# The guest image carries the distro's virtio-pci, virtio-mmio, virtio-blk and ext4 modules (uncompressed for
# busybox insmod, with a load-order file, in BUILD_DIR/e2e/virtio-blk-VERSION) and the host's
# mkfs.ext4 (mke2fs) with its libraries: busybox has no mkfs.ext4.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-disk.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}

# The host checks the guest's file systems with e2fsprogs (e2fsck, debugfs), and the guest
# formats with the host's mke2fs: without them there is no test.
for tool in mke2fs e2fsck debugfs; do
    command -v "$tool" >/dev/null || {
        echo "SKIP: no $tool (install e2fsprogs)"
        exit 77
    }
done
mke2fs=$(readlink -f "$(command -v mke2fs)")

# The modules, dependencies first (see harness guest-modules).
mods=$build/e2e/virtio-blk-$ver
"$here/harness" guest-modules "$mods" virtio_pci virtio_mmio virtio_blk ext4

# mke2fs goes in as /sbin/mkfs.ext4 would resolve (the real file), with /etc/mke2fs.conf so the
# guest makes the same ext4 flavour as the host's e2fsck expects.
"$here/harness" guest-initramfs "$build/e2e/disk-guest.cpio.gz" "$here/disk-guest.sh" \
    "$mods" "$mke2fs" /etc/mke2fs.conf
exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/disk.sh" "$build"
