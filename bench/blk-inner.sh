#!/usr/bin/env bash
# blk-inner.sh: bench/blk's measuring half: fio in the guest on virtio-blk, kiln and QEMU alternating.
# Usage: run by bench/blk as `harness run --out DIR bench/blk-inner.sh BUILD_DIR RUNS RUNTIME
# ENGINE`, where /dev/kvm is real (inside the nested L1 on hosts whose /dev/kvm cannot run Linux).
# It only reads BUILD_DIR (the host's root is read-only in L1) and writes to $KILN_E2E_OUT:
#   info        KEY=VALUE lines: where it ran, the image's backing, the tools
#   jobs.tsv    vmm run job io_kib bw_kib iops vmm_ticks total_ticks (one fio job a line; ticks
#               are the VMM process's CPU between the job's BEGIN and END markers, in CLK_TCK)
#   VMM-N.out/.err  console and stderr of each run
# Exit: 0 when every run produced all four results, 1 otherwise.
set -euo pipefail
export LC_ALL=C

build=${1:?usage: blk-inner.sh BUILD_DIR RUNS RUNTIME ENGINE}
runs=${2:?usage: blk-inner.sh BUILD_DIR RUNS RUNTIME ENGINE}
runtime=${3:?usage: blk-inner.sh BUILD_DIR RUNS RUNTIME ENGINE}
engine=${4:?usage: blk-inner.sh BUILD_DIR RUNS RUNTIME ENGINE}
out=${KILN_E2E_OUT:?run me through tests/e2e/harness run}
kiln=$build/kiln
initrd=$build/bench/blk-guest.cpio.gz
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
mods=$(cat "$build/bench/blk-mods.path")
# A run that has not ended by then is killed and counts as a failure (a normal one is ~1 min).
run_limit=${KILN_BENCH_RUN_LIMIT:-300}
tck=$(getconf CLK_TCK)

qemu=$(command -v qemu-system-x86_64) || {
    echo "blk-inner: qemu-system-x86_64 not found (install qemu-system-x86)" >&2
    exit 1
}
for f in "$kiln" "$initrd" "$kernel" "$mods/load-order"; do
    [[ -r $f ]] || {
        echo "blk-inner: missing $f" >&2
        exit 1
    }
done

# One image for every run of both VMMs, on /tmp: in L1 that is an overlay whose upper layer is
# tmpfs, i.e. RAM. Preallocated, so no run pays for allocating blocks the first time.
img=$(mktemp "${TMPDIR:-/tmp}/kiln-bench-blk.XXXXXX")
trap 'rm -f "$img"' EXIT
fallocate -l 256M "$img"

{
    echo "mode=${KILN_E2E_MODE:-direct}"
    echo "where=kernel $(uname -r), $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM"
    # The mount holding the image (its last entry wins, as the kernel's does). In L1 that is the
    # harness's overlay, whose upper layer (/tmpup, outside the chroot, so not listed) is tmpfs.
    mnt=$(df -P "$img" | awk 'NR == 2 { print $6 }')
    echo "image=$img, 256 MiB, fallocate'd, on $(awk -v m="$mnt" '$2 == m { l = $3 " (" $4 ")" } END { print l }' /proc/mounts)"
    echo "kernel=$kernel"
    echo "qemu=$("$qemu" --version | head -n 1)"
    echo "kiln=$("$kiln" --version 2>&1 | head -n 1)"
    echo "clk_tck=$tck"
} >"$out/info"

# The VMM's CPU time from /proc/PID/stat, as "VMM TOTAL" in clock ticks: TOTAL is utime+stime of
# all its threads (dead ones included); VMM leaves out guest_time (field 43), the vCPU's time in
# guest mode, which Linux counts inside utime: that is the guest running fio, not VMM overhead.
cpu_ticks() {
    local -a f
    read -r -a f <"/proc/$1/stat" || return 1
    # comm (field 2) has no spaces for kiln or qemu-system-x86, so the fields split plainly.
    echo "$((f[13] + f[14] - f[42])) $((f[13] + f[14]))"
}

# Copy the console through, and at each BLK-BEGIN/BLK-END line note the VMM's CPU time then
# ("CPU BEGIN|END JOB VMM TOTAL" lines to $2). $1 holds the VMM's PID once it started.
watch_console() {
    local pidf=$1 cpuf=$2 pid='' line tag job
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        printf '%s\n' "$line"
        case $line in
            *BLK-BEGIN* | *BLK-END*)
                [[ -n $pid ]] || read -r pid <"$pidf"
                tag=${line#*BLK-}
                job=${tag#* }
                tag=${tag%% *}
                echo "CPU $tag ${job%% *} $(cpu_ticks "$pid" || echo NA NA)" >>"$cpuf"
                ;;
        esac
    done
}

vmm_argv() {
    local cmdline="console=ttyS0 quiet blk_mods=$mods blk_runtime=$runtime blk_engine=$engine"
    case $1 in
        kiln) argv=("$kiln" run --kernel "$kernel" --initrd "$initrd" --memory 512M
            --cmdline "$cmdline" --disk "path=$img" --stats) ;;
        # q35 with virtio-blk-pci: the same transport as kiln (modern virtio-pci). cache=writeback
        # (QEMU's default), not cache=none: O_DIRECT fails on tmpfs (Linux < 6.6), and kiln uses
        # the page cache too (plain preadv/pwritev). aio=threads: a thread pool, as kiln's libuv.
        qemu) argv=("$qemu" -enable-kvm -M q35 -cpu host -m 512 -nodefaults -no-user-config
            -nographic -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd"
            -append "$cmdline"
            -drive "file=$img,format=raw,if=none,id=d0,cache=writeback,aio=threads"
            -device 'virtio-blk-pci,drive=d0') ;;
    esac
}

failures=0
declare -a argv
printf 'vmm\trun\tjob\tio_kib\tbw_kib\tiops\tvmm_ticks\ttotal_ticks\n' >"$out/jobs.tsv"
for ((run = 1; run <= runs; run++)); do
    for vmm in kiln qemu; do
        vmm_argv "$vmm"
        o=$out/$vmm-$run.out e=$out/$vmm-$run.err pidf=$out/.$vmm-$run.pid cpuf=$out/.$vmm-$run.cpu
        : >"$cpuf"
        echo "blk-inner: $vmm run $run" >&2
        set +e
        # The subshell writes its PID, then exec makes that the VMM's PID. timeout(1) would put
        # its own PID there, so a hung run is instead caught by the watchdog below.
        ( echo "$BASHPID" >"$pidf"; exec "${argv[@]}" ) </dev/null 2>"$e" | watch_console "$pidf" "$cpuf" >"$o" &
        pipe=$!
        # The watchdog kills its sleep when it is itself told to stop, so none is left behind.
        (
            trap 'kill "$s"; exit 0' TERM
            sleep "$run_limit" &
            s=$!
            wait "$s"
            kill "$(cat "$pidf")"
        ) 2>/dev/null &
        dog=$!
        wait "$pipe"
        kill "$dog" 2>/dev/null
        wait "$dog" 2>/dev/null
        set -e
        n=0
        for job in seqread seqwrite randread randwrite; do
            # Terse v3: field 6/7/8 read KiB, KiB/s, IOPS; 47/48/49 the same for writes. The
            # result line is "BLK-RESULT JOB 3;...", so the terse fields start after 2 words.
            res=$(awk -v j="$job" '{ i = index($0, "BLK-RESULT " j " 3;") }
                i { split(substr($0, i + length("BLK-RESULT " j " ")), f, ";")
                    if (f[6] + f[47] > 0) print f[6] + f[47], f[7] + f[48], f[8] + f[49]; exit }' "$o")
            cpu=$(awk -v j="$job" '$3 == j && $2 == "BEGIN" { b1 = $4; b2 = $5 }
                $3 == j && $2 == "END" && b1 != "NA" && $4 != "NA" { print $4 - b1, $5 - b2 }' "$cpuf")
            if [[ -z $res || -z $cpu ]]; then
                echo "FAIL: $vmm run $run: no result for $job" >&2
                continue
            fi
            n=$((n + 1))
            printf '%s\t%s\t%s\t%s\t%s\n' "$vmm" "$run" "$job" "${res// /$'\t'}" "${cpu// /$'\t'}" >>"$out/jobs.tsv"
        done
        if [[ $n -ne 4 ]]; then
            failures=$((failures + 1))
            echo "--- $vmm run $run: stderr" >&2
            sed 's/^/  | /' "$e" >&2
            echo "--- $vmm run $run: console (last 20 lines)" >&2
            tail -n 20 "$o" | sed 's/^/  | /' >&2
        fi
        rm -f "$pidf" "$cpuf"
    done
done
[[ $failures -eq 0 ]]
