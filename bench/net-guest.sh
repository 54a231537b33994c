#!/bin/sh
# net-guest.sh: /test.sh of bench/net's guest (L2): iperf3 over both network back ends, both ways.
# Run by busybox sh from the harness's guest init (which powers off when this returns). The guest
# has two virtio-net devices, found by their MAC: the TAP one (static 10.0.0.2/24, iperf3 server
# at 10.0.0.1:5201 in the host's namespace) and the user-mode one (DHCP from libslirp, server at
# 10.0.2.2:5202, the host's 127.0.0.1). For each back end the guest runs the iperf3 client twice:
# guest to host (plain) and host to guest (-R, the server sends); over TAP also both ways with
# 1 KiB writes and TCP_NODELAY (DIR g2h-1k, h2g-1k). Console lines for
# bench/net-inner.sh: "NETB-RESULT BACKEND DIR MBITS" (the receiver's figure), "NETB-FAIL WHAT".
# Kernel command line: netb_mods=DIR (modules and their load-order file), netb_time=SECONDS,
# netb_mac_tap=MAC, netb_mac_user=MAC.

# arg NAME: the value of NAME= on the kernel command line.
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

# iface MAC: the interface with that MAC.
iface() {
    for d in /sys/class/net/*; do
        [ "$(cat "$d/address")" = "$1" ] && echo "${d##*/}" && return
    done
}

mods=$(arg netb_mods)
while read -r ko; do
    insmod "$mods/$ko" || echo "NETB-FAIL insmod $ko"
done <"$mods/load-order"
i=0
while [ ! -e /sys/class/net/eth1 ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
ip link set lo up
tap=$(iface "$(arg netb_mac_tap)")
user=$(iface "$(arg netb_mac_user)")
echo "NETB interfaces: tap=$tap user=$user ($(cd /sys/class/net && echo *))"
if [ -z "$tap" ] || [ -z "$user" ]; then
    echo "NETB-FAIL interfaces missing"
    exit 1
fi
ip addr add 10.0.0.2/24 dev "$tap"
ip link set "$tap" up
cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case $1 in bound | renew) ifconfig "$interface" "$ip" netmask "$subnet" up ;; esac
EOF
chmod 755 /tmp/udhcpc.sh
ip link set "$user" up
udhcpc -i "$user" -s /tmp/udhcpc.sh -f -q -n -t 10 -T 1 >/dev/null 2>&1 ||
    echo "NETB-FAIL udhcpc on $user"
echo "NETB addresses: $(ip -4 -o addr show | awk '{ printf "%s=%s ", $2, $4 }')"

t=$(arg netb_time)
for backend in tap user; do
    case $backend in
        tap) server=10.0.0.1 port=5201 ;;
        user) server=10.0.2.2 port=5202 ;;
    esac
    # The first packets wait for ARP or slirp's first connect: one short warm-up, not counted.
    iperf3 -c "$server" -p "$port" -t 1 >/dev/null 2>&1
    dirs="g2h h2g"
    # Small packets (1 KiB writes, TCP_NODELAY): per-packet cost rather than bulk copying.
    [ $backend = tap ] && dirs="g2h h2g g2h-1k h2g-1k"
    for dir in $dirs; do
        flags=
        case $dir in h2g*) flags=-R ;; esac
        case $dir in *-1k) flags="$flags -l 1K -N" ;; esac
        # shellcheck disable=SC2086 # flags are words
        res=$(iperf3 -c "$server" -p "$port" -t "$t" -f m $flags 2>&1)
        mbits=$(echo "$res" | awk '/receiver/ {
            for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }' | tail -n 1)
        if [ -n "$mbits" ]; then
            echo "NETB-RESULT $backend $dir $mbits"
        else
            echo "NETB-FAIL $backend $dir: $(echo "$res" | tail -n 3 | tr '\n' ' ')"
        fi
    done
done
echo "NETB-DONE"
