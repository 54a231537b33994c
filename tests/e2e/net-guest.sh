#!/bin/sh
# net-guest.sh: /test.sh of the virtio-net guest (L2): bring up eth0 and move data as net.sh asks.
# Run by busybox sh from the harness's guest init, after it printed KILN-GUEST-INIT; the init
# powers off when this returns. Every result is a "NET key: value" console line for net.sh;
# NET-READY, NET-G2H-READY and NET-HOSTFWD-READY tell net.sh that the guest listens.
# Kernel command line:
#   net_mods=DIR     the modules to insmod, in the order of DIR/load-order
#   net_mode=tap     static 10.0.0.2/24 on eth0; ping the host 10.0.0.1; receive a file on TCP
#                    port 7001 (net.sh sends it), then serve net_mib MiB of random data on
#                    port 7002 (net.sh fetches it)
#   net_mode=user    DHCP on eth0 (libslirp: 10.0.2.15); fetch http://10.0.2.2:net_http/blob;
#                    send net_up_mib MiB to 10.0.2.2:net_up; serve net_token on TCP port 7000
#                    (reached from the host through hostfwd)
# Times are centiseconds of /proc/uptime (busybox date has no %N).

# arg NAME: the value of NAME= on the kernel command line.
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

say() {
    echo "NET $*"
}

# cs: /proc/uptime in centiseconds.
cs() {
    read -r up _ </proc/uptime
    echo "${up%.*}${up#*.}"
}

# sum FILE: its sha256.
sum() {
    sha256sum "$1" | cut -d' ' -f1
}

# wait_up IFACE: wait up to 10 s for the link to report carrier (virtio-net's STATUS feature).
wait_up() {
    i=0
    while [ "$(cat "/sys/class/net/$1/operstate" 2>/dev/null)" != up ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    say "$1 operstate: $(cat "/sys/class/net/$1/operstate" 2>/dev/null)"
}

mods=$(arg net_mods)
mode=$(arg net_mode)
mib=$(arg net_mib)
say "mode: $mode"
while read -r ko; do
    if insmod "$mods/$ko"; then
        say "insmod $ko: ok"
    else
        say "insmod $ko: failed"
    fi
done <"$mods/load-order"
# virtio_net registers eth0 while probing; without udev, poll sysfs for a moment.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
say "ifaces: $(cd /sys/class/net && echo *)"
for d in /sys/class/net/eth*; do
    [ -e "$d" ] || continue
    say "${d##*/} mac: $(cat "$d/address")"
    say "${d##*/} driver: $(basename "$(readlink "$d/device/driver")")"
done
ip link set lo up
mkdir -p /etc

case $mode in
    tap)
        ip addr add 10.0.0.2/24 dev eth0
        ip link set eth0 up
        wait_up eth0
        # The first echo may wait for ARP: allow 5 tries, ask for 3 answers.
        ping -c 3 -W 2 10.0.0.1 >/tmp/ping.out 2>&1
        say "ping host rc: $?"
        say "ping host: $(grep 'packets transmitted' /tmp/ping.out)"
        say "ping host rtt: $(grep 'round-trip' /tmp/ping.out)"
        # Host to guest: net.sh connects to port 7001 once it has seen NET-READY.
        # shellcheck disable=SC2016 # for the sh that nc runs
        nc -l -p 7001 -e sh -c 'cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
            cs >/tmp/h2g.t0; cat >/tmp/h2g.bin; cs >/tmp/h2g.t1' &
        listener=$!
        echo NET-READY
        wait $listener
        say "h2g bytes: $(wc -c </tmp/h2g.bin)"
        say "h2g cs: $(($(cat /tmp/h2g.t1) - $(cat /tmp/h2g.t0)))"
        t0=$(cs)
        say "h2g sha256: $(sum /tmp/h2g.bin)"
        say "h2g sha256 cs: $(($(cs) - t0))"
        rm -f /tmp/h2g.bin
        # Guest to host: fresh random data, so nothing of the first file can pass for it. The
        # guest serves it and net.sh pulls it: busybox nc as a client writes what it reads from
        # stdin in small pieces (about 1 MiB/s in the nested L1), while -e cat hands the socket
        # to cat, which moves the file in large chunks.
        t0=$(cs)
        dd if=/dev/urandom of=/tmp/g2h.bin bs=1M count="$mib" 2>/dev/null
        say "g2h dd cs: $(($(cs) - t0))"
        say "g2h sha256: $(sum /tmp/g2h.bin)"
        say "g2h dd+sha256 cs: $(($(cs) - t0))"
        nc -l -p 7002 -e cat /tmp/g2h.bin &
        listener=$!
        echo NET-G2H-READY
        wait $listener
        say "g2h served: $?"
        ;;
    user)
        # udhcpc only talks DHCP; the script it calls applies the lease.
        cat >/tmp/udhcpc.sh <<'EOF'
#!/bin/sh
case $1 in
    bound | renew)
        ip addr flush dev "$interface"
        ifconfig "$interface" "$ip" netmask "$subnet" up
        for r in $router; do
            ip route add default via "$r" dev "$interface"
            break
        done
        for d in $dns; do echo "nameserver $d"; done >/etc/resolv.conf
        echo "NET lease: ip $ip subnet $subnet router $router dns $dns"
        ;;
esac
EOF
        chmod 755 /tmp/udhcpc.sh
        ip link set eth0 up
        wait_up eth0
        t0=$(cs)
        udhcpc -i eth0 -s /tmp/udhcpc.sh -f -q -n -t 10 -T 1 >/tmp/udhcpc.out 2>&1
        say "udhcpc rc: $?"
        say "udhcpc cs: $(($(cs) - t0))"
        say "eth0 inet: $(ip -4 -o addr show dev eth0 | awk '{ print $4 }')"
        # busybox ip ignores "show default" and ends the line with a blank.
        say "default route: $(ip route | grep '^default' | sed 's/ *$//')"
        say "lease: $(sed -n 's/^NET lease: //p' /tmp/udhcpc.out)"
        # Host to guest: an HTTP GET through libslirp to the host's 127.0.0.1.
        t0=$(cs)
        wget -q -O /tmp/http.bin "http://10.0.2.2:$(arg net_http)/blob"
        say "wget rc: $?"
        say "wget cs: $(($(cs) - t0))"
        say "wget bytes: $(wc -c </tmp/http.bin)"
        say "wget sha256: $(sum /tmp/http.bin)"
        rm -f /tmp/http.bin
        # Guest to host: random data to a listener on the host's 127.0.0.1.
        dd if=/dev/urandom of=/tmp/up.bin bs=1M count="$(arg net_up_mib)" 2>/dev/null
        say "up sha256: $(sum /tmp/up.bin)"
        # -e cat: cat writes to the socket in large chunks (busybox nc's own copy loop is slow).
        nc 10.0.2.2 "$(arg net_up)" -e cat /tmp/up.bin
        say "up nc rc: $?"
        rm -f /tmp/up.bin
        # hostfwd: the host connects to its forwarded port and must read the token.
        nc -l -p 7000 -e echo "$(arg net_token)" &
        listener=$!
        echo NET-HOSTFWD-READY
        wait $listener
        say "hostfwd served: $?"
        ;;
    *) say "unknown mode: $mode" ;;
esac
say "DONE"
