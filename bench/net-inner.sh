#!/usr/bin/env bash
# net-inner.sh: bench/net's measuring half: iperf3 in the guest over virtio-net, kiln and QEMU
# alternating. Usage: run by bench/net as `harness run --out DIR bench/net-inner.sh BUILD_DIR RUNS
# SECONDS`, where /dev/kvm is real (inside the nested L1 on hosts whose /dev/kvm cannot run
# Linux), as root. Every boot has two virtio-net devices: a TAP device in a network namespace this
# script creates (host side 10.0.0.1, iperf3 server on port 5201) and user-mode networking
# (libslirp; iperf3 server on the namespace's 127.0.0.1:5202, the guest's 10.0.2.2). It only reads BUILD_DIR and
# writes to $KILN_E2E_OUT:
#   info          KEY=VALUE lines: where it ran, the tools
#   results.tsv   vmm run backend dir mbits (one iperf3 result a line)
#   vmms.tsv      vmm run status rss_kib wall_s cpu_s (one boot a line, from GNU time)
#   VMM-N.out/.err  console and stderr of each run
# Exit: 0 when every run produced all six results, 1 otherwise.
set -euo pipefail
export LC_ALL=C

build=${1:?usage: net-inner.sh BUILD_DIR RUNS SECONDS}
runs=${2:?usage: net-inner.sh BUILD_DIR RUNS SECONDS}
secs=${3:?usage: net-inner.sh BUILD_DIR RUNS SECONDS}
out=${KILN_E2E_OUT:?run me through tests/e2e/harness run}
kiln=$build/kiln
initrd=$build/bench/net-guest.cpio.gz
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
mods=$(cat "$build/bench/net-mods.path")
# A run that has not ended by then is killed and counts as a failure (a normal one is 35-45 s).
run_limit=${KILN_BENCH_RUN_LIMIT:-300}
ns=kiln-bench-net-$$
mac_tap=52:54:00:6b:69:11
mac_user=52:54:00:6b:69:12

die() {
    echo "net-inner: $*" >&2
    exit 1
}
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (install qemu-system-x86)"
iperf3=$(command -v iperf3) || die "iperf3 not found (install iperf3)"
[[ -x /usr/bin/time ]] || die "no GNU time (install time)"
for f in "$kiln" "$initrd" "$kernel" "$mods/load-order"; do
    [[ -r $f ]] || die "missing $f"
done

servers=()
cleanup() {
    local p
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

# Loopback (down in a fresh L1) and the namespace with the TAP device, both VMMs' back end.
ip link set lo up
modprobe tun 2>/dev/null || true
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" ip tuntap add dev tap0 mode tap
ip -n "$ns" addr add 10.0.0.1/24 dev tap0
ip -n "$ns" link set tap0 up
# The servers live for the whole bench; each serves one test at a time, which is all we run.
ip netns exec "$ns" "$iperf3" -s -B 10.0.0.1 -p 5201 >"$out/iperf3-tap.log" 2>&1 &
servers+=($!)
# The VMM runs inside the namespace (a TAP device is opened by name in the caller's namespace),
# so libslirp's connections to "the host's 127.0.0.1" reach the namespace's own loopback: the
# user-mode server listens there.
ip netns exec "$ns" "$iperf3" -s -B 127.0.0.1 -p 5202 >"$out/iperf3-user.log" 2>&1 &
servers+=($!)
sleep 1

{
    echo "mode=${KILN_E2E_MODE:-direct}"
    echo "where=kernel $(uname -r), $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM"
    echo "kernel=$kernel"
    echo "qemu=$("$qemu" --version | head -n 1)"
    echo "kiln=$("$kiln" --version 2>&1 | head -n 1)"
    echo "iperf3=$("$iperf3" --version | head -n 1)"
} >"$out/info"

vmm_argv() {
    local cmdline="console=ttyS0 quiet netb_mods=$mods netb_time=$secs netb_mac_tap=$mac_tap"
    cmdline+=" netb_mac_user=$mac_user"
    case $1 in
        kiln) argv=("$kiln" run --kernel "$kernel" --initrd "$initrd" --memory 512M
            --cmdline "$cmdline" --net "tap=tap0,mac=$mac_tap" --net "user,mac=$mac_user") ;;
        # q35 with virtio-net-pci: the same transport as kiln's (virtio-pci on PCI bus 0);
        # modern only (disable-legacy), as kiln's. The tap back end uses IFF_VNET_HDR and
        # offloads by default, as kiln's.
        qemu) argv=("$qemu" -enable-kvm -M q35 -cpu host -m 512 -nodefaults -no-user-config
            -nographic -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd"
            -append "$cmdline"
            -netdev 'tap,id=n0,ifname=tap0,script=no,downscript=no'
            -device "virtio-net-pci,netdev=n0,mac=$mac_tap,disable-legacy=on"
            -netdev 'user,id=n1'
            -device "virtio-net-pci,netdev=n1,mac=$mac_user,disable-legacy=on") ;;
    esac
}

failures=0
declare -a argv
printf 'vmm\trun\tbackend\tdir\tmbits\n' >"$out/results.tsv"
printf 'vmm\trun\tstatus\trss_kib\twall_s\tcpu_s\n' >"$out/vmms.tsv"
for ((run = 1; run <= runs; run++)); do
    # Alternate which VMM goes first, so a drift over the bench does not favour one.
    order=(kiln qemu)
    [[ $((run % 2)) -eq 0 ]] && order=(qemu kiln)
    for vmm in "${order[@]}"; do
        vmm_argv "$vmm"
        o=$out/$vmm-$run.out e=$out/$vmm-$run.err tf=$out/.$vmm-$run.time
        echo "net-inner: $vmm run $run" >&2
        status=0
        timeout -k 5 "$run_limit" ip netns exec "$ns" /usr/bin/time -o "$tf" -f '%M %e %U %S' \
            "${argv[@]}" </dev/null >"$o" 2>"$e" || status=$?
        tr -d '\r' <"$o" >"$o.txt" && mv "$o.txt" "$o"
        read -r rss wall us ss <"$tf" 2>/dev/null || rss=NA wall=NA us=0 ss=0
        rm -f "$tf"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$vmm" "$run" "$status" "$rss" "$wall" \
            "$(awk -v u="$us" -v s="$ss" 'BEGIN { print u + s }')" >>"$out/vmms.tsv"
        n=$(awk -v v="$vmm" -v r="$run" '$1 == "NETB-RESULT" { print v "\t" r "\t" $2 "\t" $3 "\t" $4; n++ }
            END { exit n == 0 }' "$o" | tee -a "$out/results.tsv" | wc -l) || n=0
        if [[ $n -ne 6 ]]; then
            failures=$((failures + 1))
            echo "--- $vmm run $run: status $status, $n of 6 results; stderr" >&2
            sed 's/^/  | /' "$e" >&2
            echo "--- $vmm run $run: console (last 20 lines)" >&2
            tail -n 20 "$o" | sed 's/^/  | /' >&2
        fi
    done
done
[[ $failures -eq 0 ]]
