#!/usr/bin/env bash
# run-rootfs.sh: ctest entry e2e.rootfs: build an ext4 root image on the host, run rootfs.sh in KVM.
# Usage: run-rootfs.sh BUILD_DIR   (BUILD_DIR holds the kiln binary; image in BUILD_DIR/e2e)
# The image (BUILD_DIR/e2e/rootfs.img, 32 MiB ext4, made by mkfs.ext4 -d without root or loop
# mounts) holds static busybox as /bin/busybox with its applet links and rootfs-init.sh as
# /sbin/init. rootfs.sh boots it as root=/dev/vda through the distro's own initrd.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
build=$(cd "${1:?usage: run-rootfs.sh BUILD_DIR}" && pwd)

# The kernel version the harness boots as L1 and offers as guest (a skip, 77, if there is none).
ver=$("$here/harness" kernel-version) || {
    rc=$?
    echo "$ver"
    exit "$rc"
}
[[ -r /boot/initrd.img-$ver ]] || {
    echo "SKIP: no /boot/initrd.img-$ver (the distro initrd, from initramfs-tools)"
    exit 77
}
for tool in mke2fs e2fsck debugfs; do
    command -v "$tool" >/dev/null || {
        echo "SKIP: no $tool (install e2fsprogs)"
        exit 77
    }
done
# A static busybox, as the harness looks for it: the root file system has no libraries.
bb=
for b in ${KILN_E2E_BUSYBOX:-} /bin/busybox /usr/bin/busybox; do
    if [[ -x $b ]] && ! ldd "$b" >/dev/null 2>&1; then
        bb=$b
        break
    fi
done
[[ -n $bb ]] || {
    echo "SKIP: no static busybox (install busybox-static)"
    exit 77
}

mkdir -p "$build/e2e"
stage=$(mktemp -d "$build/e2e/.rootfs-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,proc,sys,dev,run,tmp,root,etc}
cp "$bb" "$stage/bin/busybox"
# Every applet as a link in /bin, except init: /sbin/init is the test's own script.
while read -r applet; do
    [[ -n $applet && $applet != init && $applet != busybox ]] || continue
    ln -s busybox "$stage/bin/$applet"
done < <("$stage/bin/busybox" --list)
install -m 755 "$here/rootfs-init.sh" "$stage/sbin/init"
img=$build/e2e/rootfs.img
rm -f "$img"
mke2fs -t ext4 -q -F -L kiln-rootfs -d "$stage" "$img" 32M
echo "run-rootfs.sh: $img: ext4 root with $bb and $(find "$stage/bin" -type l | wc -l) applet links"

exec "$here/harness" run --timeout "${KILN_E2E_TIMEOUT:-600}" "$here/rootfs.sh" "$build"
