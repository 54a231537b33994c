#!/usr/bin/env bash
# restore-inner.sh: bench/restore's runs, where /dev/kvm is real. Prints one line per run:
# "RESULT cold|restore MS_TO_READY PEAK_RSS_MIB". Usage: restore-inner.sh BUILD_DIR MODS RUNS
set -euo pipefail
build=$1 mods=$2 runs=$3
kiln=$build/kiln
tool=$build/e2e/vsock_tool
kernel=/boot/vmlinuz-$(uname -r)
initrd=$build/e2e/snapshot-guest.cpio.gz
tmp=$(mktemp -d)
trap 'pkill -9 -f "$tmp/api.sock" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# stamp VAR: the time in ms into VAR, from bash itself: no fork of date or of a subshell (tens of
# ms each in L1, which would count in the figures, the restore's most).
stamp() {
    local t=${EPOCHREALTIME/./}
    printf -v "$1" '%s' $((t / 1000))
}
# wait_echo SECONDS: until a host program gets its echo from the guest's vsock port 1234 through
# kiln's socket (vsock_tool tries every 20 ms; a connection the guest accepted and then dropped
# is tried again too).
wait_echo() {
    local now end
    stamp now
    end=$((now + $1 * 1000))
    while ((now < end)); do
        [[ $(echo ping | "$tool" host "$tmp/v.sock" 1234 "$1" 2>/dev/null) == ping ]] && return 0
        stamp now
    done
    return 1
}
rss_mib() { "$kiln" ctl "$tmp/api.sock" stats | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["max_rss_bytes"] / 1048576, 1))'; }
truncate -s 8M "$tmp/disk.img"
machine=(--memory 256M --disk "path=$tmp/disk.img" --vsock "cid=5,socket=$tmp/v.sock"
    --api-socket "$tmp/api.sock")
for ((r = 1; r <= runs; r++)); do
    rm -rf "$tmp/snap"
    stamp t0
    "$kiln" run --kernel "$kernel" --initrd "$initrd" "${machine[@]}" --snapshot-dir "$tmp/snap" \
        --cmdline "console=ttyS0 quiet kiln_mods=$mods kiln_vsock_tool=$tool" --timeout 300 \
        >"$tmp/cold.out" 2>&1 &
    pid=$!
    wait_echo 240 || { echo "run $r: the cold-booted guest never answered on vsock"; exit 1; }
    stamp t1
    cold=$((t1 - t0))
    cold_rss=$(rss_mib)
    sleep 1
    "$kiln" ctl "$tmp/api.sock" snapshot >/dev/null
    "$kiln" ctl "$tmp/api.sock" kill >/dev/null || true
    wait "$pid" || true
    cp "$tmp/cold.out" "${KILN_E2E_OUT:-$tmp}/restore-cold-$r.console" 2>/dev/null || true
    stamp t0
    "$kiln" run --restore "$tmp/snap" "${machine[@]}" --timeout 300 >"$tmp/restore.out" 2>&1 &
    pid=$!
    wait_echo 60 || { echo "run $r: the restored guest never answered on vsock"; exit 1; }
    stamp t1
    restore=$((t1 - t0))
    restore_rss=$(rss_mib)
    "$kiln" ctl "$tmp/api.sock" kill >/dev/null || true
    wait "$pid" || true
    echo "RESULT cold $cold $cold_rss"
    echo "RESULT restore $restore $restore_rss"
done
