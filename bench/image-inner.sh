#!/usr/bin/env bash
# image-inner.sh BUILD_DIR IMAGE: bench/image's part where KVM is real (see bench/image).
set -euo pipefail
build=$1 base=$2
runs=${KILN_BENCH_RUNS:-3}
out=$KILN_E2E_OUT # kept by the harness (bench/image sets KILN_E2E_KEEP)
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ip link set lo up 2>/dev/null || true
qemu=$(command -v qemu-system-x86_64)
marker='KILN-E2E: multi-user.target reached'
echo "bench/image: $(uname -r), $(nproc) CPU(s), kiln $("$build/kiln" --version | head -n 1)," \
    "$("$qemu" --version | head -n 1)"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# boot VMM N: one boot from a fresh overlay; appends "vmm n to_marker_ms total_ms uptime_s
# cpu_s rss_kib status" to $out/runs.
boot() {
    local vmm=$1 n=$2 disk=$tmp/$1-$2.qcow2 con=$out/$1-$2.console
    qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$disk"
    local -a cmd
    if [[ $vmm == kiln ]]; then
        cmd=("$build/kiln" run --disk "path=$disk" --net user --memory 1G --cpus 2 --timeout 600)
    else
        cmd=(timeout 600 "$qemu" -M q35 -enable-kvm -cpu host -m 1G -smp 2 -nodefaults
            -no-user-config -nographic -vga none -serial stdio -no-reboot
            -drive "file=$disk,if=none,id=d0,format=qcow2" -device virtio-blk-pci,drive=d0
            -netdev user,id=n0 -device virtio-net-pci,netdev=n0)
    fi
    : >"$con"
    local start=$(now_ms) marker_ms=0
    /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "${cmd[@]}" </dev/null >"$con" 2>"$out/$vmm-$n.stderr" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ $marker_ms -eq 0 ]] && grep -q "$marker" "$con"; then
            marker_ms=$(($(now_ms) - start))
        fi
        sleep 0.05
    done
    local status=0
    wait "$pid" || status=$?
    local total=$(($(now_ms) - start))
    [[ $marker_ms -ne 0 ]] || ! grep -q "$marker" "$con" || marker_ms=$total
    local up cpu rss
    up=$(tr -d '\r' <"$con" | sed -n "s/.*$marker after \([0-9.]*\)s uptime.*/\1/p" | head -n 1)
    read -r _ u s rss <"$tmp/time"
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    echo "$vmm $n $marker_ms $total ${up:-0} $cpu $rss $status" | tee -a "$out/runs"
    rm -f "$disk"
    [[ $marker_ms -ne 0 && $status -eq 0 ]]
}

: >"$out/runs"
failed=0
for n in $(seq "$runs"); do
    boot kiln "$n" || failed=1
    boot qemu "$n" || failed=1
done

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v v="$1" -v c="$2" '$1 == v { print $c }' "$out/runs" | median; }
echo
printf '%-6s %14s %14s %12s %10s %12s\n' VMM "to multi-user" "whole run" "guest uptime" "CPU s" "peak RSS"
for v in kiln qemu; do
    printf '%-6s %12.2f s %12.2f s %10.2f s %10.2f %9.1f MiB\n' "$v" \
        "$(col "$v" 3 | awk '{ print $1 / 1000 }')" "$(col "$v" 4 | awk '{ print $1 / 1000 }')" \
        "$(col "$v" 5)" "$(col "$v" 6)" "$(col "$v" 7 | awk '{ print $1 / 1024 }')"
done
k=$(col kiln 3)
q=$(col qemu 3)
echo "bench/image: kiln/QEMU time to multi-user.target (medians of $runs): $(awk -v k="$k" -v q="$q" 'BEGIN { printf "%.2f", k / q }') (goal <= 0.8)"
exit "$failed"
