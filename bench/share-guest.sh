#!/bin/sh
# share-guest.sh: /test.sh of bench/share's guest (L2): mount the shares, time reading a big file
# and a source tree through the read-only one, and untarring that tree into the writable one.
# Prints "BENCH key: value" lines (times in centiseconds of /proc/uptime; busybox date has no %N).
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}
cs() {
    read -r up _ </proc/uptime
    echo "${up%.*}${up#*.}"
}
mods=$(arg share_mods)
while read -r ko; do insmod "$mods/$ko" || echo "BENCH insmod $ko failed"; done <"$mods/load-order"
# Both VMMs get the same options: msize 512 KiB, no cache (the default), no xattrs asked for.
opts=trans=virtio,version=9p2000.L,msize=524288
mkdir -p /mnt/s /mnt/w /tmp
mount -t 9p -o "$opts" hostshare /mnt/s || echo "BENCH mount failed"
mount -t 9p -o "$opts" hostwrite /mnt/w || echo "BENCH mount w failed"
t0=$(cs)
bytes=$(cat /mnt/s/big.bin | wc -c)
t1=$(cs)
echo "BENCH big: $bytes bytes in $((t1 - t0)) cs"
# The same file in 512 KiB reads to /dev/null: the share alone, without wc's byte-by-byte loop,
# which bounds the pipe above (and makes cat splice it in 4-16 KiB pieces as wc drains it).
t0=$(cs)
dd if=/mnt/s/big.bin of=/dev/null bs=524288 2>/tmp/dd.err
t1=$(cs)
# busybox dd counts records only: whole ones (the file is a multiple of 512 KiB), or 0 bytes.
rec=$(sed -n 's/^\([0-9]*\)+0 records out$/\1/p' /tmp/dd.err)
echo "BENCH dd: $((${rec:-0} * 524288)) bytes in $((t1 - t0)) cs"
t0=$(cs)
tb=$(tar cf - -C /mnt/s tree | wc -c)
t1=$(cs)
echo "BENCH tree: $(find /mnt/s/tree -type f | wc -l) files, $tb tar bytes in $((t1 - t0)) cs"
# The archive comes into the guest's memory first (untimed): only the writes are measured.
cp /mnt/s/tree.tar /tmp/tree.tar
t0=$(cs)
tar xf /tmp/tree.tar -C /mnt/w
rc=$?
t1=$(cs)
echo "BENCH untar: rc $rc, $(wc -c </tmp/tree.tar) tar bytes in $((t1 - t0)) cs"
umount /mnt/s
umount /mnt/w
