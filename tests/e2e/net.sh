#!/usr/bin/env bash
# net.sh: virtio-net under kiln with the distro kernel: a TAP device in a network namespace, and
# libslirp user-mode networking.
# Usage (from the host): tests/e2e/run-net.sh BUILD_DIR, which prepares the guest image and runs
# `harness run tests/e2e/net.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when nested), as
# root. All traffic stays on loopback or inside the namespace this script creates.
# KILN_E2E_NET_VMM=qemu runs the same guests under QEMU (q35, virtio-net-pci, the same -netdev
# back ends) instead of kiln: a reference for the checks and the figures.
# KILN_E2E_NET_MIB: size of each TAP transfer (default 50); KILN_E2E_NET_UP_MIB: size of the
# upload through user-mode networking (default 16).
# Exit: 0 when every check passed; 1 otherwise; 77 when kiln has no --net. Each check prints an
# ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: net.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
vmm=${KILN_E2E_NET_VMM:-kiln}
mib=${KILN_E2E_NET_MIB:-50}
# The upload through libslirp is smaller: it is the slow path (QEMU's too) in the nested L1.
up_mib=${KILN_E2E_NET_UP_MIB:-16}
e2e_init net "$build/kiln" "$kernel"
initrd=$build/e2e/net-guest.cpio.gz
mods=$build/e2e/virtio-net-$kver
for f in "$initrd" "$mods/load-order"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-net.sh builds it on the host)"
done
if [[ $vmm == qemu ]]; then
    qemu=$(command -v qemu-system-x86_64) || e2e_abort "no qemu-system-x86_64"
    echo "net: VMM: $("$qemu" --version | head -n 1) (KILN_E2E_NET_VMM=qemu), q35, virtio-net-pci"
elif ! "$E2E_KILN" run --help 2>&1 | grep -q -- '--net'; then
    echo "SKIP: kiln has no --net yet"
    exit 77
fi
base="console=ttyS0 quiet net_mods=$mods net_mib=$mib"
# Names and ports of our own, so a direct run on a shared host does not collide with others.
ns=kiln-e2e-net-$$
ip_host=10.0.0.1
ip_guest=10.0.0.2
mac_tap=52:54:00:6b:69:01
mac_user2=52:54:00:6b:69:02
port_http=$((20000 + $$ % 10000))
port_up=$((port_http + 1))
port_fwd=$((port_http + 2))
# Background helpers (listeners, the HTTP server) to stop on the way out.
helpers=()
cleanup() {
    local p
    for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$E2E_TMP"
}
trap cleanup EXIT

# L1 comes up with loopback down: the HTTP server and the hostfwd listener need it.
ip link set lo up 2>/dev/null || true

# gv KEY: the value of the guest's "NET KEY: value" console line (empty if none).
gv() {
    awk -v k="NET $1: " 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }' "$OUT"
}

# expect_value NAME KEY WANT WHAT: the guest's "NET KEY: value" line must say WANT.
expect_value() {
    local got
    got=$(gv "$2")
    if [[ $got == "$3" ]]; then
        ok "$1: $4: $2: $got"
    else
        fail "$1: $4: $2: '$got', want '$3'"
    fi
}

# expect_modules NAME: every module loaded in the guest, and eth0 is a virtio_net device.
expect_modules() {
    if grep -q '^NET insmod .*: failed$' "$OUT"; then
        fail "$1: insmod failed: $(grep '^NET insmod .*: failed$' "$OUT" | tr '\n' ' ')"
    else
        ok "$1: modules loaded: $(grep -c '^NET insmod .*: ok$' "$OUT")"
    fi
    expect_value "$1" 'eth0 driver' virtio_net "eth0's driver"
}

# rate BYTES CENTISECONDS: "N MiB/s (M Mbit/s)", or "n/a" without a time.
rate() {
    awk -v b="$1" -v t="$2" 'BEGIN {
        if (t <= 0) { print "n/a"; exit }
        printf "%.1f MiB/s (%.0f Mbit/s)", b / 1048576 / (t / 100), b * 8 / 1e6 / (t / 100) }'
}

# vm_start NAME NS CMDLINE NETSPEC...: start the VMM in the background (inside network namespace
# NS unless it is "-"), console to $OUT, stderr to $ERR; sets KILN_PID. NETSPECs use kiln's --net
# syntax; for QEMU they become the equivalent -netdev/-device pairs.
vm_start() {
    local name=$1 netns=$2 cmdline=$3 spec i=0 kind opts o mac fwd
    shift 3
    local -a argv pre=()
    [[ $netns == - ]] || pre=(ip netns exec "$netns")
    if [[ $vmm == qemu ]]; then
        # timeout(1) stands in for kiln's --timeout; 124 as well when it fires.
        argv=(timeout 240 "$qemu" -enable-kvm -M q35 -cpu host -m 512 -nodefaults
            -no-user-config -nographic -serial stdio -no-reboot -kernel "$kernel"
            -initrd "$initrd" -append "$cmdline")
        for spec in "$@"; do
            kind=${spec%%,*}
            opts=
            [[ $spec == *,* ]] && opts=${spec#*,}
            mac='' fwd=''
            IFS=, read -r -a o <<<"$opts"
            for opt in "${o[@]}"; do
                case $opt in
                    mac=*) mac=,$opt ;;
                    hostfwd=*) fwd+=,$opt ;;
                esac
            done
            case $kind in
                tap=*) argv+=(-netdev "tap,id=n$i,ifname=${kind#tap=},script=no,downscript=no") ;;
                user) argv+=(-netdev "user,id=n$i$fwd") ;;
            esac
            argv+=(-device "virtio-net-pci,netdev=n$i$mac")
            i=$((i + 1))
        done
    else
        argv=("$E2E_KILN" run --kernel "$kernel" --initrd "$initrd" --memory 512M
            --cmdline "$cmdline" --timeout 240)
        for spec in "$@"; do argv+=(--net "$spec"); done
    fi
    kiln_files "$name"
    echo "=== $name: ${pre[*]} ${argv[*]}"
    : >"$OUT"
    KILN_START_MS=$(now_ms)
    "${pre[@]}" "${argv[@]}" </dev/null >"$OUT" 2>"$ERR" &
    KILN_PID=$!
}

# --- 1. TAP in a network namespace: static addresses, ping both ways, a file each way over TCP.
# It needs root (a namespace, a TAP device), as in the nested L1; a direct run as another user
# skips it.
if [[ $EUID -ne 0 ]]; then
    echo "SKIP: tap: needs root for ip netns and ip tuntap"
else
    name=tap
    modprobe tun 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" ip tuntap add dev tap0 mode tap
    ip -n "$ns" addr add "$ip_host/24" dev tap0
    ip -n "$ns" link set tap0 up
    blob=$E2E_TMP/h2g.bin
    head -c $((mib * 1048576)) /dev/urandom >"$blob"
    blob_sum=$(sha256sum "$blob" | cut -d' ' -f1)
    vm_start $name "$ns" "$base net_mode=tap" "tap=tap0,mac=$mac_tap"
    boot_checks_begin
    # tcp_xfer DIR: in the namespace, with bash's /dev/tcp and coreutils' cat (large buffers): send
    # the blob to the guest's port 7001 (h2g) or fetch the guest's file from port 7002 (g2h) into
    # $E2E_TMP/g2h.bin. Prints the milliseconds it took; fails like cat or the connect, or after
    # 120 s (a guest that stopped reading would leave the sender waiting on TCP retries for minutes).
    tcp_xfer() {
        # shellcheck disable=SC2016 # the inner bash expands them
        timeout 120 ip netns exec "$ns" bash -c '
            t0=$(date +%s%N)
            if [[ $1 == h2g ]]; then
                exec 3<>"/dev/tcp/$2/7001" && cat "$3" >&3 && exec 3>&- || exit 1
            else
                exec 3<>"/dev/tcp/$2/7002" && cat <&3 >"$4" && exec 3<&- || exit 1
            fi
            echo $((($(date +%s%N) - t0) / 1000000))' tcp_xfer "$1" "$ip_guest" "$blob" \
            "$E2E_TMP/g2h.bin" 2>"$E2E_TMP/xfer.err"
    }
    h2g_ms='' g2h_ms=''
    if wait_for_console "$OUT" '^NET-READY' 200 "$KILN_PID"; then
        ok "$name: the guest is up and listens ($((($(now_ms) - KILN_START_MS) / 1000)) s after start)"
        # Host to guest: ping from inside the namespace, then the file to the guest's port 7001.
        if ip netns exec "$ns" busybox ping -c 3 -W 2 "$ip_guest" >"$E2E_TMP/ping.out" 2>&1; then
            ok "$name: host pings guest: $(grep 'packets transmitted' "$E2E_TMP/ping.out")," \
                "$(grep 'round-trip' "$E2E_TMP/ping.out")"
        else
            fail "$name: host pings guest: $(tr '\n' ' ' <"$E2E_TMP/ping.out")"
        fi
        h2g_ms=$(tcp_xfer h2g) || fail "$name: host to guest: $(tr '\n' ' ' <"$E2E_TMP/xfer.err")"
        # Guest to host: the guest makes its file, then serves it on port 7002.
        if wait_for_console "$OUT" '^NET-G2H-READY' 200 "$KILN_PID"; then
            g2h_ms=$(tcp_xfer g2h) || fail "$name: guest to host: $(tr '\n' ' ' <"$E2E_TMP/xfer.err")"
        else
            fail "$name: no NET-G2H-READY from the guest"
        fi
    else
        fail "$name: no NET-READY from the guest"
    fi
    kiln_wait $name
    expect_rc $name 0
    expect_modules $name
    expect_value $name 'eth0 mac' "$mac_tap" "mac= reaches the guest"
    expect_value $name 'eth0 operstate' up "link up"
    expect_value $name 'ping host rc' 0 "guest pings host"
    echo "$name: guest ping: $(gv 'ping host'); $(gv 'ping host rtt')"
    expect_value $name 'h2g bytes' $((mib * 1048576)) "host to guest: size"
    expect_value $name 'h2g sha256' "$blob_sum" "host to guest: sha256"
    h2g_cs=$(gv 'h2g cs')
    ok "$name: host to guest throughput: $(rate $((mib * 1048576)) "${h2g_cs:-0}") ($mib MiB in" \
        "${h2g_cs:-?}0 ms on the guest's clock, from accept to EOF; ${h2g_ms:-?} ms on the host's," \
        "until its last write)"
    expect_value $name 'g2h served' 0 "guest to host: the guest's nc -e cat"
    recv=$E2E_TMP/g2h.bin
    if [[ -s $recv ]]; then
        got=$(sha256sum "$recv" | cut -d' ' -f1)
        want=$(gv 'g2h sha256')
        if [[ -n $want && $got == "$want" ]]; then
            ok "$name: guest to host: $(stat -c %s "$recv") bytes, sha256 $got as the guest made it"
        else
            fail "$name: guest to host: $(stat -c %s "$recv") bytes, sha256 $got; guest: '$want'"
        fi
        ok "$name: guest to host throughput: $(rate "$(stat -c %s "$recv")" $((${g2h_ms:-0} / 10)))" \
            "($mib MiB in ${g2h_ms:-?} ms, the host's clock, connect to EOF)"
    else
        fail "$name: guest to host: the host received nothing"
    fi
    boot_checks_end $name
    ip netns del "$ns"
    rm -f "$blob" "$recv"
fi

# --- 2. User mode (libslirp), no namespace: DHCP gives 10.0.2.15, HTTP from the host's
# 127.0.0.1 as 10.0.2.2, an upload to a listener there, and hostfwd to a server in the guest.
# A second --net user device must show up as eth1 with its MAC.
name=user
www=$E2E_TMP/www
mkdir -p "$www"
head -c $((4 * 1048576)) /dev/urandom >"$www/blob"
www_sum=$(sha256sum "$www/blob" | cut -d' ' -f1)
busybox httpd -f -p "127.0.0.1:$port_http" -h "$www" &
helpers+=($!)
recv=$E2E_TMP/up
# busybox nc runs sh as busybox's own sh, whose date has no %N: call coreutils' by its path.
date=$(command -v date)
busybox nc -l -p "$port_up" -e sh -c "$date +%s%N >$recv.t0; cat >$recv.bin; $date +%s%N >$recv.t1" \
    </dev/null &
helpers+=($!)
token=kiln-net-$RANDOM$RANDOM
vm_start $name - "$base net_mode=user net_http=$port_http net_up=$port_up net_up_mib=$up_mib net_token=$token" \
    "user,hostfwd=tcp::$port_fwd-:7000" "user,mac=$mac_user2"
boot_checks_begin
if wait_for_console "$OUT" '^NET-HOSTFWD-READY' 200 "$KILN_PID"; then
    # An empty HOSTADDR is 127.0.0.1 for kiln (QEMU listens on every address).
    lst=$(ss -Hltn "sport = :$port_fwd" | awk '{ print $4 }' | tr '\n' ' ')
    if [[ $vmm == qemu ]]; then
        echo "$name: hostfwd listener (QEMU): $lst"
    elif [[ $lst == "127.0.0.1:$port_fwd " ]]; then
        ok "$name: hostfwd=tcp::$port_fwd-:7000 listens on 127.0.0.1 only: $lst"
    else
        fail "$name: hostfwd=tcp::$port_fwd-:7000 listens on '$lst', want 127.0.0.1:$port_fwd only"
    fi
    got=
    if exec 3<>"/dev/tcp/127.0.0.1/$port_fwd"; then
        got=$(timeout 20 cat <&3 | tr -d '\r\n') || true
        exec 3<&-
    fi
    if [[ $got == "$token" ]]; then
        ok "$name: hostfwd: 127.0.0.1:$port_fwd reaches the guest's port 7000: '$got'"
    else
        fail "$name: hostfwd: 127.0.0.1:$port_fwd gave '$got', want '$token'"
    fi
else
    fail "$name: no NET-HOSTFWD-READY from the guest"
fi
kiln_wait $name
expect_rc $name 0
expect_modules $name
expect_value $name ifaces 'eth0 eth1 lo' "two devices"
expect_value $name 'eth1 mac' "$mac_user2" "mac= of the second device"
expect_value $name 'udhcpc rc' 0 "udhcpc got a lease"
echo "$name: lease: $(gv lease) in $(gv 'udhcpc cs')0 ms"
expect_value $name 'eth0 inet' 10.0.2.15/24 "guest address"
expect_value $name 'default route' 'default via 10.0.2.2 dev eth0' "default route"
expect_value $name 'wget rc' 0 "wget http://10.0.2.2:$port_http/blob"
expect_value $name 'wget sha256' "$www_sum" "HTTP from the host's 127.0.0.1: sha256"
ok "$name: HTTP throughput: $(rate "$(gv 'wget bytes')" "$(gv 'wget cs')") (4 MiB)"
expect_value $name 'up nc rc' 0 "guest to host's 127.0.0.1: nc"
if [[ -s $recv.bin ]]; then
    got=$(sha256sum "$recv.bin" | cut -d' ' -f1)
    expect_value $name 'up sha256' "$got" "guest to host's 127.0.0.1: sha256 of what arrived"
    up_ms=0
    [[ -s $recv.t1 ]] && up_ms=$((($(cat "$recv.t1") - $(cat "$recv.t0")) / 1000000))
    ok "$name: guest to host throughput: $(rate "$(stat -c %s "$recv.bin")" $((up_ms / 10)))" \
        "($up_mib MiB in $up_ms ms, the host's clock, accept to EOF)"
else
    fail "$name: guest to host: nothing arrived on 127.0.0.1:$port_up"
fi
boot_checks_end $name

e2e_finish
