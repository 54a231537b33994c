#!/bin/sh
# snapshot-guest.sh: /test.sh of the snapshot guest (L2): a vsock echo server, and a count on the
# console and on the disk. Run by busybox sh from the harness's guest init. Kernel command line:
# kiln_mods=DIR (modules to insmod, in DIR/load-order), kiln_vsock_tool=PATH (vsock_tool: with
# it, an echo server on vsock port 1234, its messages on the console: "listening on 1234", and
# "echo: read: ..." for a connection that fails, as one open at a snapshot does after the
# restore), kiln_http=PORT (with it, eth0 gets libslirp's 10.0.2.15/24 and every fifth count
# fetches http://10.0.2.2:PORT/count/N in the background, so the host sees the network work go
# on after a restore). Every 0.2 s: "COUNT N" on the console, and "COUNT N" written to the first
# sector of /dev/vda (synced), so the host sees the disk work go on after a restore.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

mods=$(arg kiln_mods)
tool=$(arg kiln_vsock_tool)
http=$(arg kiln_http)
while read -r ko; do
    insmod "$mods/$ko" || echo "SNAP insmod $ko: failed"
done <"$mods/load-order"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
echo "SNAP disk: $(cat /sys/block/vda/size 2>/dev/null) sectors"
if [ -n "$tool" ]; then
    i=0
    while [ ! -e /dev/vsock ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    "$tool" listen 1234 &
fi
if [ -n "$http" ]; then
    i=0
    while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    ip link set lo up
    ip link set eth0 up
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
    echo "SNAP net: $(ip -4 -o addr show dev eth0 | awk '{ print $4 }'); $(ip route | tr '\n' ';')"
fi
n=0
while true; do
    echo "COUNT $n"
    if [ -n "$http" ] && [ $((n % 5)) -eq 0 ]; then
        # (No -T: Debian 12's busybox wget crashes with it.)
        (out=$(wget -q -O /dev/null "http://10.0.2.2:$http/count/$n" 2>&1) ||
            echo "SNAP wget $n: ${out:-failed}") &
    fi
    printf 'COUNT %08d\n' "$n" | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null
    n=$((n + 1))
    sleep 0.2
done
