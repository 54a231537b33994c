#!/bin/sh
# snapshot-ports-guest.sh: /test.sh of the snapshot-ports guest (L2): count on the console, the
# disk and two named virtio-console ports. Kernel command line: kiln_mods=DIR (modules to insmod,
# in DIR/load-order). Every 0.2 s, count N: "COUNT N" on the console and in /dev/vda's first
# sector; "LOG N" to the port "log" (a file on the host); "PING N" to the port "echo" (a socket
# on the host), whose answer line is awaited for up to 3 s and shown as "ECHO N: <answer>".
# The ports are opened once, before counting: after a restore they are used as they were.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

mods=$(arg kiln_mods)
while read -r ko; do
    insmod "$mods/$ko" || echo "SNAP insmod $ko: failed"
done <"$mods/load-order"
i=0
while { [ ! -b /dev/vda ] || [ "$(cat /sys/class/virtio-ports/*/name 2>/dev/null | wc -l)" -lt 2 ]; } &&
    [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
for d in /sys/class/virtio-ports/*; do
    [ -e "$d/name" ] && ln -sf "/dev/${d##*/}" "/dev/port-$(cat "$d/name")"
done
echo "SNAP disk: $(cat /sys/block/vda/size 2>/dev/null) sectors; ports: $(echo /dev/port-*)"
exec 4>/dev/port-log 3<>/dev/port-echo
n=0
while true; do
    echo "COUNT $n"
    printf 'COUNT %08d\n' "$n" | dd of=/dev/vda bs=512 count=1 conv=sync,fsync 2>/dev/null
    echo "LOG $n" >&4
    echo "PING $n" >&3
    line=
    # shellcheck disable=SC3045 # busybox ash has read -t
    read -r -t 3 line <&3
    echo "ECHO $n: $line"
    n=$((n + 1))
    sleep 0.2
done
