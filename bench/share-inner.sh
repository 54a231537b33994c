#!/usr/bin/env bash
# share-inner.sh: bench/share's measuring half, where /dev/kvm is real (the nested L1 here): the
# same guest reads the same share under kiln (--share ...,ro) and QEMU (-virtfs ...,readonly=on)
# and untars a tree into an empty writable one (--share DIR,tag=...; -virtfs without readonly),
# alternating. Usage: harness run bench/share-inner.sh BUILD_DIR DATA_DIR RUNS. Lines
# "RESULT vmm run big_bytes big_cs tree_files tree_bytes tree_cs untar_bytes untar_cs untar_check
# dd_bytes dd_cs" on stdout; untar_check is "ok" when the host sees the whole tree (names, types, modes, sizes,
# contents), so that a broken write path cannot pass for a fast one.
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
wdir=/dev/shm/kiln-bench-share-w
rm -rf "$dir" "$wdir"
cp -a "$data" "$dir"
# What the host sees of an untarred tree: one line per entry, and a hash over all contents.
fingerprint() {
    (cd "$1" && find tree -printf '%y %p %m %s\n' | grep -v '^d' | LC_ALL=C sort &&
        find tree -type d -printf '%p %m\n' | LC_ALL=C sort &&
        find tree -type f -print0 | LC_ALL=C sort -z | xargs -0 cat | sha256sum)
}
want=$(fingerprint "$dir")
cmdline="console=ttyS0 quiet share_mods=$mods"
for n in $(seq "$runs"); do
    for vmm in kiln qemu; do
        case $vmm in
            kiln) cmd=("$build/kiln" run --kernel "$kernel" --initrd "$initrd" --memory 512M
                --cmdline "$cmdline" --share "$dir,tag=hostshare,ro" --share "$wdir,tag=hostwrite"
                --timeout 600) ;;
            qemu) cmd=("$qemu" -enable-kvm -M q35 -cpu host -m 512 -nodefaults -no-user-config
                -nographic -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd"
                -append "$cmdline"
                -virtfs "local,path=$dir,mount_tag=hostshare,security_model=none,readonly=on"
                -virtfs "local,path=$wdir,mount_tag=hostwrite,security_model=none") ;;
        esac
        rm -rf "$wdir" # every run untars into an empty directory
        mkdir "$wdir"
        out=$KILN_E2E_OUT/$vmm-$n.out
        timeout 900 "${cmd[@]}" </dev/null >"$out" 2>"$KILN_E2E_OUT/$vmm-$n.err" || true
        tr -d '\r' <"$out" >"$out.txt"
        big=$(sed -n 's/^BENCH big: \([0-9]*\) bytes in \([0-9]*\) cs$/\1 \2/p' "$out.txt")
        tree=$(sed -n 's/^BENCH tree: \([0-9]*\) files, \([0-9]*\) tar bytes in \([0-9]*\) cs$/\1 \2 \3/p' "$out.txt")
        untar=$(sed -n 's/^BENCH untar: rc 0, \([0-9]*\) tar bytes in \([0-9]*\) cs$/\1 \2/p' "$out.txt")
        check=bad
        [[ $(fingerprint "$wdir" 2>/dev/null) == "$want" ]] && check=ok
        dd=$(sed -n 's/^BENCH dd: \([1-9][0-9]*\) bytes in \([0-9]*\) cs$/\1 \2/p' "$out.txt")
        echo "RESULT $vmm $n ${big:-NA NA} ${tree:-NA NA NA} ${untar:-NA NA} $check ${dd:-NA NA}"
    done
done
rm -rf "$dir" "$wdir"
