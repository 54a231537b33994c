#!/usr/bin/env bash
# rootfs.sh: the distro kernel and the distro initrd boot a root file system from a virtio-blk disk.
# Usage (from the host): tests/e2e/run-rootfs.sh BUILD_DIR, which builds BUILD_DIR/e2e/rootfs.img
# and runs `harness run tests/e2e/rootfs.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when
# nested). Exit: 0 when every check passed; 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: rootfs.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init rootfs "$build/kiln" "$kernel"
distro_initrd=/boot/initrd.img-$kver
for f in "$build/e2e/rootfs.img" "$distro_initrd"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-rootfs.sh builds the image on the host)"
done
# A writable copy: L1 sees the host's root (and the build tree) read-only.
img=$E2E_TMP/rootfs.img
cp "$build/e2e/rootfs.img" "$img"

# No quiet, so initramfs-tools' "Begin: ..." lines show; loglevel=4 keeps the kernel's own info
# messages off the console, so the output stays short. panic=1: a failed mount ends in a reset
# (initramfs-tools' panic(), see boot.sh), not a shell that waits for --timeout.
name=distro-initrd-root
kiln_boot $name --kernel "$kernel" --initrd "$distro_initrd" \
    --cmdline "console=ttyS0 root=/dev/vda rw panic=1 loglevel=4" --memory 512M \
    --disk "path=$img,serial=kiln-rootfs" --timeout 300
boot_checks_begin
expect_rc $name 0
expect_console $name 'Begin: Mounting root file system' "initramfs-tools' init mounted the root"
expect_console $name '^KILN-ROOTFS-INIT$' "the disk's /sbin/init ran"
refute_console $name 'ALERT!|Gave up waiting|Rebooting automatically' "no trouble finding the root"
cmdline=$(guest_value 'ROOTFS cmdline')
if [[ " $cmdline " == *" root=/dev/vda "* ]]; then
    ok "$name: /proc/cmdline: '$cmdline'"
else
    fail "$name: /proc/cmdline '$cmdline' lacks root=/dev/vda"
fi
root=$(guest_value 'ROOTFS root')
if [[ $root =~ ^/dev/vda\ /\ ext4\ rw[,\ ] ]]; then
    ok "$name: / is /dev/vda, ext4, read-write: '$root'"
else
    fail "$name: / in /proc/mounts is '$root'; want /dev/vda / ext4 rw"
fi
expect_console $name '^ROOTFS write: 0$' "init wrote a file on /"
expect_console $name '^ROOTFS remount ro: 0$' "init remounted / read-only before the poweroff"
expect_console $name 'reboot: Power down$' "the kernel powered down"
# The host side: a clean file system with the file the guest wrote.
if e2fsck -fn "$img" >"$E2E_TMP/fsck.out" 2>&1; then
    ok "$name: e2fsck -fn on the host: clean ($(tail -n 1 "$E2E_TMP/fsck.out"))"
else
    fail "$name: e2fsck -fn on the host: status $?: $(tr '\n' ' ' <"$E2E_TMP/fsck.out")"
fi
boot_id=$(guest_value 'ROOTFS boot_id')
written=$(debugfs -R 'cat /rootfs-write-test' "$img" 2>/dev/null || true)
if [[ -n $boot_id && $written == "written by rootfs-init $boot_id" ]]; then
    ok "$name: the host reads the guest's /rootfs-write-test: '$written'"
else
    fail "$name: /rootfs-write-test in the image is '$written'; want boot_id '$boot_id'"
fi
boot_checks_end $name

e2e_finish
