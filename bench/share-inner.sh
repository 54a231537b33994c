#!/usr/bin/env bash
# share-inner.sh: bench/share's measuring half, where /dev/kvm is real (the nested L1 here): the
# same guest reads the same share under kiln (--share ...,ro) and QEMU (-virtfs ...,readonly=on),
# alternating. Usage: harness run bench/share-inner.sh BUILD_DIR DATA_DIR RUNS. Lines
# "RESULT vmm run big_bytes big_cs tree_files tree_bytes tree_cs" on stdout.
set -euo pipefail
build=${1:?}
data=${2:?}
runs=${3:?}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
initrd=$build/bench/share-guest.cpio.gz
mods=$(cat "$build/bench/share-mods.path")
qemu=$(command -v qemu-system-x86_64)
# The data on a tmpfs of this machine, so that both VMMs read from memory.
dir=/dev/shm/kiln-bench-share
rm -rf "$dir"
cp -a "$data" "$dir"
cmdline="console=ttyS0 quiet share_mods=$mods"
for n in $(seq "$runs"); do
    for vmm in kiln qemu; do
        case $vmm in
            kiln) cmd=("$build/kiln" run --kernel "$kernel" --initrd "$initrd" --memory 512M
                --cmdline "$cmdline" --share "$dir,tag=hostshare,ro" --timeout 600) ;;
            qemu) cmd=("$qemu" -enable-kvm -M q35 -cpu host -m 512 -nodefaults -no-user-config
                -nographic -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd"
                -append "$cmdline"
                -virtfs "local,path=$dir,mount_tag=hostshare,security_model=none,readonly=on") ;;
        esac
        out=$KILN_E2E_OUT/$vmm-$n.out
        timeout 900 "${cmd[@]}" </dev/null >"$out" 2>"$KILN_E2E_OUT/$vmm-$n.err" || true
        tr -d '\r' <"$out" >"$out.txt"
        big=$(sed -n 's/^BENCH big: \([0-9]*\) bytes in \([0-9]*\) cs$/\1 \2/p' "$out.txt")
        tree=$(sed -n 's/^BENCH tree: \([0-9]*\) files, \([0-9]*\) tar bytes in \([0-9]*\) cs$/\1 \2 \3/p' "$out.txt")
        echo "RESULT $vmm $n ${big:-NA NA} ${tree:-NA NA NA}"
    done
done
rm -rf "$dir"
