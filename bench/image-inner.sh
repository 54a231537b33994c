#!/usr/bin/env bash
# image-inner.sh BUILD_DIR IMAGE: one boot of bench/image where KVM is real: KILN_BENCH_VMM
# (kiln or qemu) boots a fresh overlay on IMAGE; one line "vmm run to_marker_ms total_ms
# uptime_s cpu_s rss_kib status disk_ms grub_ms" is appended to $KILN_E2E_OUT/runs (see
# bench/image); disk_ms and grub_ms are when the firmware's "Booting from Hard Disk" and GRUB's
# "Booting `...'" lines passed on the console (0 if they did not).
set -euo pipefail
build=$1 base=$2
vmm=${KILN_BENCH_VMM:?} n=${KILN_BENCH_RUN:-1}
out=$KILN_E2E_OUT # kept by the harness (bench/image sets KILN_E2E_KEEP)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ip link set lo up 2>/dev/null || true
qemu=$(command -v qemu-system-x86_64)
marker='KILN-E2E: multi-user.target reached'
now_ms() { echo $(($(date +%s%N) / 1000000)); }

disk=$tmp/disk.qcow2 con=$out/$vmm-$n.console
qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$disk"
if [[ $vmm == kiln ]]; then
    cmd=("$build/kiln" run --disk "path=$disk" --net user --memory 1G --cpus 2 --timeout 600)
    echo "bench/image: run $n: kiln $("$build/kiln" --version | head -n 1), L1 $(uname -r)"
else
    cmd=(timeout 600 "$qemu" -M q35 -enable-kvm -cpu host -m 1G -smp 2 -nodefaults
        -no-user-config -nographic -vga none -serial stdio -no-reboot
        -drive "file=$disk,if=none,id=d0,format=qcow2" -device virtio-blk-pci,drive=d0
        -netdev user,id=n0 -device virtio-net-pci,netdev=n0)
    echo "bench/image: run $n: $("$qemu" --version | head -n 1)"
fi
: >"$con"
# The console goes through one perl process that notes when the marker passes: a shell loop of
# grep and sleep would fork twice every 50 ms, on the one CPU of a nested L1, and slow the very
# boot it times (both VMMs alike, which pulled the ratio towards 1).
start=$(now_ms)
{
    /usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "${cmd[@]}" </dev/null 2>"$out/$vmm-$n.stderr" &&
        echo 0 >"$tmp/rc" || echo $? >"$tmp/rc"
} | perl -MTime::HiRes=time -e '
    my ($start, $dir, @marks) = @ARGV;
    $| = 1;
    my %seen;
    while (my $line = <STDIN>) {
        print $line;
        for my $i (0 .. $#marks) {
            next if $seen{$i} || index($line, $marks[$i]) < 0;
            $seen{$i} = 1;
            open(my $f, ">", "$dir/mark$i") or die "$dir/mark$i: $!";
            printf $f "%d\n", time * 1000 - $start;
            close $f;
        }
    }' "$start" "$tmp" "$marker" 'Booting from Hard Disk' 'Booting `' >"$con"
status=$(cat "$tmp/rc")
mark() { cat "$tmp/mark$1" 2>/dev/null || echo 0; }
marker_ms=$(mark 0)
total=$(($(now_ms) - start))
up=$(tr -d '\r' <"$con" | sed -n "s/.*$marker after \([0-9.]*\)s uptime.*/\1/p" | head -n 1)
read -r _ u s rss <"$tmp/time"
cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
[[ $marker_ms -ne 0 ]] || status=${status/#0/1}
echo "$vmm $n $marker_ms $total ${up:-0} $cpu $rss $status $(mark 1) $(mark 2)" | tee -a "$out/runs"
[[ $status -eq 0 ]]
