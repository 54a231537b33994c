#!/bin/sh
# rootfs-init.sh: /sbin/init of the e2e.rootfs disk image: show what was mounted as /, power off.
# Started by the distro initrd's init (initramfs-tools) after it mounted root=/dev/vda.
export PATH=/bin:/sbin
# initramfs-tools moves its /proc, /sys and /dev onto the new root; mount them if it did not.
[ -e /proc/mounts ] || mount -t proc proc /proc
echo KILN-ROOTFS-INIT
echo "ROOTFS cmdline: $(cat /proc/cmdline)"
echo "ROOTFS root: $(grep ' / ' /proc/mounts)"
# A file written through the root file system, for the host to find in the image afterwards.
if echo "written by rootfs-init $(cat /proc/sys/kernel/random/boot_id)" >/rootfs-write-test; then
    echo "ROOTFS write: 0"
else
    echo "ROOTFS write: failed"
fi
echo "ROOTFS boot_id: $(cat /proc/sys/kernel/random/boot_id)"
sync
# Unmounting / is not possible; remount it read-only so the host sees a clean file system.
mount -o remount,ro /
echo "ROOTFS remount ro: $?"
poweroff -f
