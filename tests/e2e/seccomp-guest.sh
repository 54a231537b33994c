#!/bin/sh
# seccomp-guest.sh: /test.sh of the seccomp guest (L2): disk and user-mode network work while
# seccomp.sh looks at kiln's threads. Every result is a "SECC key: value" console line.
# Kernel command line: secc_mods=DIR (modules to insmod, in the order of DIR/load-order),
# secc_http=PORT (the host's HTTP server on its 127.0.0.1, reached as 10.0.2.2).

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

say() {
    echo "SECC $*"
}

sum() {
    sha256sum "$1" | cut -d' ' -f1
}

mods=$(arg secc_mods)
while read -r ko; do
    insmod "$mods/$ko" || say "insmod $ko: failed"
done <"$mods/load-order"
i=0
while { [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; } && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
mkdir -p /etc

# Disk: 8 MiB of random data through the page cache to the disk, flushed, then read back from
# the disk (caches dropped). seccomp.sh compares with the image on the host.
dd if=/dev/urandom of=/tmp/disk.bin bs=1M count=8 2>/dev/null
say "disk written sha256: $(sum /tmp/disk.bin)"
dd if=/tmp/disk.bin of=/dev/vda bs=1M conv=fsync 2>/dev/null
say "disk write rc: $?"
sync
echo 3 >/proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/back.bin bs=1M count=8 2>/dev/null
say "disk read sha256: $(sum /tmp/back.bin)"
rm -f /tmp/disk.bin /tmp/back.bin

# Network: DHCP from libslirp, then HTTP from the host's loopback.
cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case $1 in
    bound | renew)
        ifconfig "$interface" "$ip" netmask "$subnet" up
        for r in $router; do
            ip route add default via "$r" dev "$interface"
            break
        done
        ;;
esac
EOF
chmod 755 /tmp/udhcpc.sh
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /tmp/udhcpc.sh -f -q -n -t 10 -T 1 >/dev/null 2>&1
say "udhcpc rc: $?"
wget -q -O /tmp/http.bin "http://10.0.2.2:$(arg secc_http)/blob"
say "wget rc: $?"
say "wget sha256: $(sum /tmp/http.bin)"

# seccomp.sh reads kiln's threads now; keep the disk and the network busy meanwhile.
echo SECC-READY
i=0
while [ $i -lt 4 ]; do
    dd if=/dev/vda of=/dev/null bs=1M count=8 iflag=direct 2>/dev/null ||
        dd if=/dev/vda of=/dev/null bs=1M count=8 2>/dev/null
    wget -q -O /dev/null "http://10.0.2.2:$(arg secc_http)/blob"
    sleep 1
    i=$((i + 1))
done
say "DONE"
