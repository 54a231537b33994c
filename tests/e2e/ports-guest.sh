#!/bin/sh
# ports-guest.sh: /test.sh of the named-ports guest (L2): find kiln's virtio-console ports by name,
# write a payload to "results" (a file on the host), answer over "echo" (a socket on the host).
# Run by busybox sh from the harness's guest init, after KILN-GUEST-INIT; init powers off when
# this returns. Results are "PORTS key: value" console lines for ports.sh.
# Kernel command line: ports_mods=DIR (modules to insmod, in DIR/load-order), ports_token=T.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

say() {
    echo "PORTS $*"
}

mods=$(arg ports_mods)
token=$(arg ports_token)
while read -r ko; do
    if insmod "$mods/$ko"; then say "insmod $ko: ok"; else say "insmod $ko: failed"; fi
done <"$mods/load-order"

# Without udev: wait for both ports' names in sysfs, then make the links udev's rule makes.
i=0
while [ "$(cat /sys/class/virtio-ports/*/name 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
mkdir -p /dev/virtio-ports
for d in /sys/class/virtio-ports/*; do
    [ -e "$d/name" ] || continue
    name=$(cat "$d/name")
    say "port ${d##*/}: $name"
    ln -sf "../${d##*/}" "/dev/virtio-ports/$name"
done

# Guest -> host file: a line, then 512 KiB of random data; its sha256 on the console.
head -c 524288 /dev/urandom >/tmp/payload
{
    echo "results from the guest: $token"
    cat /tmp/payload
} >/dev/virtio-ports/results
say "results sha256: $({ echo "results from the guest: $token"; cat /tmp/payload; } | sha256sum | cut -d' ' -f1)"

# Host <-> guest socket: the host sends "ping TOKEN" and 1 MiB; the guest answers "pong TOKEN"
# and the sha256 of what it got.
exec 3<>/dev/virtio-ports/echo
read -r line <&3
say "echo got: $line"
sum=$(head -c 1048576 <&3 | sha256sum | cut -d' ' -f1)
say "echo h2g sha256: $sum"
echo "pong ${line#ping } $sum" >&3
exec 3>&-
say "done"
