#!/usr/bin/env bash
# boot-inner.sh: bench/boot's measuring half: boot the guest under kiln and QEMU, alternating.
# Usage: run by bench/boot as `harness run --out DIR bench/boot-inner.sh BUILD_DIR RUNS`, where
# /dev/kvm is real (inside the nested L1 on hosts whose /dev/kvm cannot run Linux). It only reads
# BUILD_DIR (the host's root is read-only in L1) and writes raw figures to $KILN_E2E_OUT:
#   info          one KEY=VALUE a line: where it ran, the kernel, the tools
#   runs.tsv      vmm run rc booted wall_us marker_us cpu_s rss_kib stats (one timed run a line)
#   split.tsv     vmm wall_us marker_us first_out_us run_init_us kmsg_marker_us stats (one split
#                 run each: with earlyprintk, and the guest prints kernel-clock times)
#   VMM-N.out/.err  console (each line prefixed with its arrival time, us since VMM start), stderr
# bench/boot turns them into the table. Exit: 0 when every run booted, 1 otherwise.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME and printf use the locale's decimal point; ours needs a dot

build=${1:?usage: boot-inner.sh BUILD_DIR RUNS}
runs=${2:?usage: boot-inner.sh BUILD_DIR RUNS}
out=${KILN_E2E_OUT:?run me through tests/e2e/harness run}
kiln=$build/kiln
initrd=$build/bench/boot-guest.cpio.gz
# The harness exports the kernel it picked; in L1 that is the one L1 itself runs.
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
marker=KILN-GUEST-INIT
# A run that has not ended by then is killed and counts as a failure (a normal one takes ~10 s).
run_limit=${KILN_BENCH_RUN_LIMIT:-180}
# GNU time gives CPU time and peak RSS of the VMM alone; KILN_BENCH_GNU_TIME=none tries the
# fallback (bash's `times` for CPU, kiln's own --stats for RSS, none for QEMU).
gnu_time=${KILN_BENCH_GNU_TIME:-/usr/bin/time}
[[ -x $gnu_time ]] || gnu_time=

qemu=$(command -v qemu-system-x86_64) || {
    echo "boot-inner: qemu-system-x86_64 not found (install qemu-system-x86)" >&2
    exit 1
}
for f in "$kiln" "$initrd" "$kernel"; do
    [[ -r $f ]] || {
        echo "boot-inner: missing $f" >&2
        exit 1
    }
done

# Copy stdin to stdout with each line prefixed by its arrival time in us since $1 (the VMM's
# start), and the serial console's CR removed. The bash builtin `read` takes no CPU worth
# noting: a quiet boot prints a handful of lines, and L1 has a single CPU to share with the VMM.
stamp() {
    local start=$1 line t
    while IFS= read -r line || [[ -n $line ]]; do
        # No $(...) here: each would fork a subshell, slow in L1.
        t=${EPOCHREALTIME/./}
        printf '%s %s\n' "$((t - start))" "${line%$'\r'}"
    done
}

# The kernel-clock timestamp (us) of the first console line with BENCH-DMESG and $2, from file $1.
dmesg_us() {
    awk -v pat="$2" '$2 == "BENCH-DMESG" && index($0, pat) {
        s = $0; sub(/^[^[]*\[ */, "", s); sub(/\].*/, "", s); printf "%d\n", s * 1e6; exit }' "$1"
}

# measure NAME RUN CMD...: run one VMM process under the timers, console to NAME-RUN.out,
# stderr to NAME-RUN.err. Sets rc booted wall_us marker_us cpu_s rss_kib stats.
measure() {
    local name=$1 run=$2
    shift 2
    local o=$out/$name-$run.out e=$out/$name-$run.err tf=$out/.$name-$run.time start end
    local -a timed st
    if [[ -n $gnu_time ]]; then
        timed=("$gnu_time" -f '%U %S %M' -o "$tf" "$@")
    else
        # bash's `times` after the VMM ends: its second line is the CPU of this shell's children.
        # shellcheck disable=SC2016 # the inner bash expands these, not this one
        timed=(bash -c 't=$1; shift; rc=0; "$@" || rc=$?; times >"$t"; exit "$rc"' _ "$tf" "$@")
    fi
    start=${EPOCHREALTIME/./}
    # timeout(1) also kills the VMM (it signals its whole process group); the pipe's end at the
    # stamper comes when the VMM (and the timers, which exit with it) close their stdout.
    set +e
    timeout -k 5 "$run_limit" "${timed[@]}" </dev/null 2>"$e" | stamp "$start" >"$o"
    st=("${PIPESTATUS[@]}")
    set -e
    end=${EPOCHREALTIME/./}
    rc=${st[0]}
    wall_us=$((end - start))
    # index(): a kernel message may share the marker's line on the console.
    marker_us=$(awk -v m="$marker" 'index($0, m) { print $1; exit }' "$o")
    booted=0
    # kiln's --no-reboot ends with 128 on the guest's reboot; QEMU's -no-reboot with 0.
    [[ -n $marker_us && ($rc -eq 0 || ($rc -eq 128 && $name == kiln*)) ]] && booted=1
    [[ -n $marker_us ]] || marker_us=NA
    stats=$(sed -n 's/^kiln: stats: //p' "$e" | tr ' ' ',')
    [[ -n $stats ]] || stats=NA
    cpu_s=NA rss_kib=NA
    if [[ -s $tf ]]; then
        if [[ -n $gnu_time ]]; then
            # The last line: GNU time puts "Command exited with non-zero status N" above it.
            # A here-string, not < <(...): L1's chroot has no /dev/fd for process substitution.
            read -r cpu_s rss_kib <<<"$(tail -n 1 "$tf" | awk '{ print $1 + $2, $3 }')"
        else
            cpu_s=$(sed -n 2p "$tf" | awk '{ n = 0; for (i = 1; i <= 2; i++) {
                split($i, p, /[ms]/); n += p[1] * 60 + p[2] } print n }')
            rss_kib=$(sed -n 's/.*max_rss_kib=\([0-9]*\).*/\1/p' "$e")
            [[ -n $rss_kib ]] || rss_kib=NA
        fi
    fi
    rm -f "$tf"
}

# vmm_argv VMM EXTRA_CMDLINE: set argv to the command line of VMM. QEMU microvm exactly as in
# shared/ENVIRONMENT.md and the issue; each VMM gets the reboot= its way out needs (kiln: i8042
# reset, which --no-reboot turns into kiln's exit; microvm has no i8042, so a triple fault,
# which -no-reboot turns into QEMU's exit).
vmm_argv() {
    case $1 in
        kiln) argv=("$kiln" run --kernel "$kernel" --initrd "$initrd" --memory 256M
            --cmdline "console=ttyS0 quiet reboot=k$2" --no-reboot --stats) ;;
        qemu) argv=("$qemu" -enable-kvm -M microvm -cpu host -m 256 -nodefaults -no-user-config
            -nographic -serial stdio -no-reboot -kernel "$kernel" -initrd "$initrd"
            -append "console=ttyS0 quiet reboot=t$2") ;;
    esac
}

failures=0
report_failure() {
    local name=$1 run=$2
    failures=$((failures + 1))
    echo "FAIL: $name run $run: exit status $rc, marker $([[ $marker_us == NA ]] && echo missing || echo seen)"
    echo "--- $name run $run: stderr"
    sed 's/^/  | /' "$out/$name-$run.err"
    echo "--- $name run $run: console (last 20 lines)"
    tail -n 20 "$out/$name-$run.out" | sed 's/^/  | /'
}

{
    echo "mode=${KILN_E2E_MODE:-direct}"
    echo "where=kernel $(uname -r), $(nproc) CPU(s), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM"
    echo "kernel=$kernel"
    echo "qemu=$("$qemu" --version | head -n 1)"
    echo "kiln=$("$kiln" --version 2>&1 | head -n 1)"
    echo "gnu_time=${gnu_time:-none}"
} >"$out/info"

declare -a argv
# Split runs first, one per VMM, not timed in the table: they also warm L1's page cache with
# both VMMs' binaries (read over 9p the first time), so the timed runs all start warm.
printf 'vmm\twall_us\tmarker_us\tfirst_out_us\trun_init_us\tkmsg_marker_us\tstats\n' >"$out/split.tsv"
for vmm in kiln qemu; do
    # earlyprintk: the kernel's first early-console line (early in setup_arch; this kernel's
    # decompressor prints nothing) dates the end of VMM start-up, firmware and decompression.
    vmm_argv "$vmm" " earlyprintk=serial kiln_bench=split"
    measure "$vmm" split "${argv[@]}"
    if [[ $booted -ne 1 ]]; then
        report_failure "$vmm" split
        continue
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$vmm" "$wall_us" "$marker_us" \
        "$(awk 'NF > 1 { print $1; exit }' "$out/$vmm-split.out")" "$(dmesg_us "$out/$vmm-split.out" 'Run /init')" \
        "$(dmesg_us "$out/$vmm-split.out" 'kiln-bench: marker')" "$stats" >>"$out/split.tsv"
    echo "$vmm split run: exit $rc, $((wall_us / 1000)) ms wall, marker at $((marker_us / 1000)) ms"
done

printf 'vmm\trun\trc\tbooted\twall_us\tmarker_us\tcpu_s\trss_kib\tstats\n' >"$out/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    # Alternating, so that drift in the machine's load hits both VMMs alike.
    for vmm in kiln qemu; do
        vmm_argv "$vmm" ""
        measure "$vmm" "$i" "${argv[@]}"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$vmm" "$i" "$rc" "$booted" "$wall_us" \
            "$marker_us" "$cpu_s" "$rss_kib" "$stats" >>"$out/runs.tsv"
        echo "$vmm run $i: exit $rc, $((wall_us / 1000)) ms wall, marker at $([[ $marker_us == NA ]] && echo NA || echo $((marker_us / 1000))) ms, CPU $cpu_s s, peak RSS $rss_kib KiB"
        [[ $booted -eq 1 ]] || report_failure "$vmm" "$i"
    done
done

if [[ $failures -ne 0 ]]; then
    echo "boot-inner: $failures run(s) did not boot to the marker and exit 0"
    exit 1
fi
