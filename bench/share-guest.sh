#!/bin/sh
# share-guest.sh: /test.sh of bench/share's guest (L2): mount the share, time reading a big file
# and a source tree through it. Prints "BENCH key: value" lines (times in centiseconds of
# /proc/uptime; busybox date has no %N).
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
mkdir -p /mnt/s
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 hostshare /mnt/s || echo "BENCH mount failed"
t0=$(cs)
bytes=$(cat /mnt/s/big.bin | wc -c)
t1=$(cs)
echo "BENCH big: $bytes bytes in $((t1 - t0)) cs"
t0=$(cs)
tb=$(tar cf - -C /mnt/s tree | wc -c)
t1=$(cs)
echo "BENCH tree: $(find /mnt/s/tree -type f | wc -l) files, $tb tar bytes in $((t1 - t0)) cs"
umount /mnt/s
