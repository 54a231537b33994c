#!/usr/bin/env bash
# seccomp.sh: a stock Linux guest with a disk and user-mode networking under kiln's seccomp
# filters (the default): every thread of kiln is confined while the guest works, and the work
# is right. Then the same boot with --seccomp off, where no thread is.
# Usage (from the host): tests/e2e/run-seccomp.sh BUILD_DIR. Runs where /dev/kvm is real (in L1
# when nested). Guest traffic goes only to this machine's loopback.
# Exit: 0 when every check passed, 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091
. "$here/lib.sh"
build=${1:?usage: seccomp.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init seccomp "$build/kiln" "$kernel"
initrd=$build/e2e/seccomp-guest.cpio.gz
mods=$build/e2e/virtio-blk-net-$kver
for f in "$initrd" "$mods/load-order"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-seccomp.sh builds it on the host)"
done
port=$((20000 + $$ % 10000))
helpers=()
cleanup() {
    local p
    for p in "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$E2E_TMP"
}
trap cleanup EXIT
ip link set lo up 2>/dev/null || true
www=$E2E_TMP/www
mkdir -p "$www"
head -c $((2 * 1048576)) /dev/urandom >"$www/blob"
www_sum=$(sha256sum "$www/blob" | cut -d' ' -f1)
busybox httpd -f -p "127.0.0.1:$port" -h "$www" &
helpers+=($!)

# threads PID: one "TID COMM SECCOMP FILTERS NO_NEW_PRIVS" line per thread of PID.
threads() {
    local t
    for t in /proc/"$1"/task/*; do
        awk -v tid="${t##*/}" -v comm="$(cat "$t/comm" 2>/dev/null)" '
            /^Seccomp:/ { s = $2 } /^Seccomp_filters:/ { f = $2 } /^NoNewPrivs:/ { n = $2 }
            END { print tid, comm, s, f, n }' "$t/status" 2>/dev/null
    done
}

# boot NAME SECCOMP WANT_MODE: one boot; while the guest works, every thread of kiln must be in
# seccomp mode WANT_MODE (2: filtered, 0: none).
boot() {
    local name=$1 mode=$2 want=$3 disk=$E2E_TMP/$1.img
    truncate -s 64M "$disk"
    kiln_start "$name" /dev/null --kernel "$kernel" --initrd "$initrd" --memory 512M --cpus 2 \
        --cmdline "console=ttyS0 quiet secc_mods=$mods secc_http=$port" --timeout 300 \
        --disk "path=$disk" --net user --seccomp "$mode"
    boot_checks_begin
    if wait_for_console "$OUT" '^SECC-READY' 240 "$KILN_PID"; then
        # kiln runs each boot in a child (a reboot starts a fresh one); the parent only waits.
        local vm_pid parent_threads
        vm_pid=$(kiln_vm_pid)
        parent_threads=$(ls "/proc/$KILN_PID/task" | wc -l)
        if [[ $vm_pid != "$KILN_PID" && $parent_threads -eq 1 ]]; then
            ok "$name: the VM runs in kiln's child $vm_pid; the parent $KILN_PID has 1 thread"
        else
            fail "$name: no child of kiln $KILN_PID runs the VM (parent threads: $parent_threads)"
            vm_pid=$KILN_PID
        fi
        threads "$vm_pid" >"$E2E_TMP/$name.threads"
        sed "s/^/$name: thread /" "$E2E_TMP/$name.threads"
        local n bad
        n=$(wc -l <"$E2E_TMP/$name.threads")
        bad=$(awk -v w="$want" '$3 != w' "$E2E_TMP/$name.threads" | tr '\n' ';')
        # The main thread (the loop), 2 vCPUs, and libuv's disk workers (4 unless told).
        if [[ $n -ge 4 && -z $bad ]]; then
            ok "$name: all $n threads of kiln in seccomp mode $want while the guest works"
        else
            fail "$name: $n threads; not in seccomp mode $want: ${bad:-none}"
        fi
        [[ $(grep -c ' kiln-vcpu[01] ' "$E2E_TMP/$name.threads") -eq 2 ]] ||
            fail "$name: the 2 vCPU threads are not among kiln's threads"
    else
        fail "$name: no SECC-READY from the guest"
    fi
    kiln_wait "$name"
    expect_rc "$name" 0
    refute_console "$name" '^SECC insmod .*: failed' "modules load"
    expect_console "$name" '^SECC DONE' "the guest finished"
    local wrote read host
    wrote=$(sed -n 's/^SECC disk written sha256: //p' "$OUT")
    read=$(sed -n 's/^SECC disk read sha256: //p' "$OUT")
    host=$(head -c $((8 * 1048576)) "$disk" | sha256sum | cut -d' ' -f1)
    if [[ -n $wrote && $wrote == "$read" && $wrote == "$host" ]]; then
        ok "$name: 8 MiB written by the guest, read back and on the image: sha256 $host"
    else
        fail "$name: disk: guest wrote '$wrote', read back '$read', image has '$host'"
    fi
    expect_console "$name" '^SECC udhcpc rc: 0$' "DHCP over --net user"
    expect_console "$name" "^SECC wget sha256: $www_sum\$" "HTTP from the host's 127.0.0.1"
    if grep -q 'seccomp' "$ERR"; then
        fail "$name: kiln's stderr mentions seccomp: $(head -n 1 "$ERR")"
    fi
    boot_checks_end "$name"
}

boot on on 2
boot off off 0
e2e_finish
