#!/bin/sh
# disk-guest.sh: /test.sh of the virtio-blk guest (L2): use kiln's disks as kiln_action= says.
# Run by busybox sh from the harness's guest init, after it printed KILN-GUEST-INIT; the init
# powers off when this returns. Every result is a "DISK key: value" console line for disk.sh.
# kiln_action: mkfs (format vda, write files, print their sha256) | ro (vda is read-only: try to
# write it, read the files back) | serial (print serial, size, ro of every vdX) | durable (write
# and sync file A, print DISK-A-SYNCED, then write file B until killed) | mmio (which transport
# and platform device vda sits on; read 1 MiB at 1 MiB, write 1 MiB at 2 MiB, print their sha256).
# kiln_mods=DIR: the modules to insmod, in the order of DIR/load-order. kiln_mke2fs=PATH: the
# host's mke2fs in the image, called by its path: busybox sh runs its own applets (a feeble
# mke2fs without -t ext4) in preference to PATH for bare command names.

# arg NAME: the value of NAME= on the kernel command line.
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

# The distro kernel has virtio_pci, virtio_mmio, virtio_blk and ext4 as modules; load them,
# dependencies first.
load_modules() {
    mods=$(arg kiln_mods)
    while read -r ko; do
        if insmod "$mods/$ko"; then
            echo "DISK insmod $ko: ok"
        else
            echo "DISK insmod $ko: failed"
        fi
    done <"$mods/load-order"
    # virtio_blk registers the disk while probing, but give udev-less devtmpfs a moment.
    i=0
    while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    echo "DISK disks: $(cd /sys/block && echo vd*)"
}

# sums: one "DISK sum PATH: SHA256" line per test file under /mnt (PATH relative to the fs root).
sums() {
    for f in file1 file2 dir/file3 small.txt; do
        echo "DISK sum /$f: $(sha256sum "/mnt/$f" 2>&1 | cut -d' ' -f1)"
    done
}

mkdir -p /mnt /etc
# mke2fs and mount look for mounted file systems in /etc/mtab.
[ -e /etc/mtab ] || ln -s /proc/mounts /etc/mtab
action=$(arg kiln_action)
echo "DISK action: $action"
load_modules
case $action in
    mkfs)
        "$(arg kiln_mke2fs)" -t ext4 -F -q -L kiln-e2e /dev/vda
        echo "DISK mkfs: $?"
        mount -t ext4 /dev/vda /mnt
        echo "DISK mount: $?"
        mkdir /mnt/dir
        # Random data of a few MiB, so a misplaced or lost block shows in the checksums.
        dd if=/dev/urandom of=/mnt/file1 bs=1M count=1 2>/dev/null
        dd if=/dev/urandom of=/mnt/file2 bs=1M count=3 2>/dev/null
        dd if=/dev/urandom of=/mnt/dir/file3 bs=1M count=5 2>/dev/null
        echo "kiln virtio-blk e2e $(date +%s)" >/mnt/small.txt
        sums
        sync
        umount /mnt
        echo "DISK umount: $?"
        ;;
    ro)
        echo "DISK vda ro: $(cat /sys/block/vda/ro)"
        # A raw write to the block device must fail: the kernel honours VIRTIO_BLK_F_RO.
        dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/tmp/dd.err
        echo "DISK raw write rc: $? ($(tr '\n' ' ' </tmp/dd.err))"
        # BLKROSET cannot lift a read-only set by the driver (set_disk_ro); try it all the same,
        # so a write that then reaches kiln would show here (and on the host's checksum).
        blockdev --setrw /dev/vda 2>/dev/null
        dd if=/dev/zero of=/dev/vda bs=4096 count=1 seek=100 conv=fsync 2>/tmp/dd.err
        echo "DISK raw write after setrw rc: $? ($(tr '\n' ' ' </tmp/dd.err))"
        # noload: no journal replay, which would be a write. Read the files back through kiln.
        mount -t ext4 -o ro,noload /dev/vda /mnt
        echo "DISK mount ro: $?"
        sums
        touch /mnt/new-file 2>/tmp/touch.err
        echo "DISK touch rc: $? ($(tr '\n' ' ' </tmp/touch.err))"
        umount /mnt
        ;;
    serial)
        for d in /sys/block/vd*; do
            echo "DISK ${d##*/} serial: $(cat "$d/serial")"
            echo "DISK ${d##*/} size: $(cat "$d/size")"
            echo "DISK ${d##*/} ro: $(cat "$d/ro")"
        done
        ;;
    durable)
        "$(arg kiln_mke2fs)" -t ext4 -F -q /dev/vda
        mount -t ext4 /dev/vda /mnt
        echo "DISK mount: $?"
        dd if=/dev/urandom of=/mnt/A bs=1M count=4 conv=fsync 2>/dev/null
        echo "DISK sum /A: $(sha256sum /mnt/A | cut -d' ' -f1)"
        # sync after the fsync: the directory entry and the journal commit must be on disk too.
        sync
        echo "DISK-A-SYNCED"
        # Keep the disk busy (new blocks, metadata, journal) until the host kills kiln.
        n=0
        while :; do
            dd if=/dev/urandom of=/mnt/B bs=64k count=64 2>/dev/null
            n=$((n + 1))
            [ $((n % 10)) -eq 0 ] && echo "DISK B rewrites: $n"
        done
        ;;
    mmio)
        # /sys/block/vda/device is the virtio device; its parent is the transport's device, a
        # platform device named after its ACPI node (LNRO0005:00) when ACPI described it.
        dev=$(readlink -f /sys/block/vda/device)
        echo "DISK vda device: $dev"
        parent=${dev%/*}
        echo "DISK vda transport: $(basename "$(readlink -f "$parent/driver")") ${parent##*/}"
        echo "DISK virtio-mmio devices: $(cd /sys/bus/platform/drivers/virtio-mmio 2>/dev/null &&
            echo LNRO*)"
        echo "DISK sum read: $(dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | sha256sum |
            cut -d' ' -f1)"
        dd if=/dev/urandom of=/tmp/w bs=1M count=1 2>/dev/null
        # Without the disk, dd would make a plain file of that name on devtmpfs and succeed.
        rc="no block device /dev/vda"
        if [ -b /dev/vda ]; then
            dd if=/tmp/w of=/dev/vda bs=1M seek=2 conv=fsync 2>/tmp/dd.err
            rc=$?
        fi
        echo "DISK write rc: $rc"
        : >>/tmp/dd.err
        [ "$rc" = 0 ] || echo "DISK write error: $(tr '\n' ' ' </tmp/dd.err)"
        echo "DISK sum written: $(sha256sum /tmp/w | cut -d' ' -f1)"
        ;;
    *) echo "DISK unknown action: $action" ;;
esac
