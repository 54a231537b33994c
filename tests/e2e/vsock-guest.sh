#!/bin/sh
# vsock-guest.sh: /test.sh of the vsock guest (L2): an echo server on vsock port 1234 for the
# host's connections through kiln's socket, a connection to a host port nobody listens on, then
# 1 MiB sent to the host's echo server on host port 5000 and read back.
# Run by busybox sh from the harness's guest init; init powers off when this returns. Results are
# "VSOCK key: value" console lines for vsock.sh.
# Kernel command line: vsock_mods=DIR (modules, in DIR/load-order), vsock_tool=PATH.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

say() {
    echo "VSOCK $*"
}

mods=$(arg vsock_mods)
tool=$(arg vsock_tool)
while read -r ko; do
    if insmod "$mods/$ko"; then say "insmod $ko: ok"; else say "insmod $ko: failed"; fi
done <"$mods/load-order"
i=0
while [ ! -e /dev/vsock ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
say "cid: $($tool cid 2>&1)"

# The host's 16 connections arrive here (each echoed by a child of its own).
$tool listen 1234 >/tmp/listen.log 2>&1 &
sleep 0.2
say "listen: $(cat /tmp/listen.log)"

# Nobody listens on host port 5999: the connection is reset.
$tool connect 2 5999 </dev/null >/dev/null 2>/tmp/err
say "no listener: rc=$? $(cat /tmp/err)"

# The host listens on port 5000 once its own connections are done: retry until then.
head -c 1048576 /dev/urandom >/tmp/payload
say "g2h sha256: $(sha256sum </tmp/payload | cut -d' ' -f1)"
i=0
start=$(date +%s)
until $tool connect 2 5000 </tmp/payload >/tmp/echoed 2>/tmp/err; do
    i=$((i + 1))
    [ $i -ge 1200 ] && break
    sleep 0.5
done
say "g2h tries: $i ($(cat /tmp/err)), $(($(date +%s) - start)) s"
say "g2h echo sha256: $(sha256sum </tmp/echoed | cut -d' ' -f1)"
say "done"
