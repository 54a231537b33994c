# shellcheck shell=bash
# lib.sh: helpers for the e2e scripts that boot Linux guests under kiln where /dev/kvm is real.
# Sourced by the e2e scripts (they run in L1 when nested, so nothing here writes outside
# mktemp's /tmp and $KILN_E2E_OUT). Each boot leaves these globals behind:
#   RC (kiln's exit status), MS (wall time in ms), OUT (console file, CR stripped), ERR (stderr).

E2E_FAILURES=0
E2E_NAME=
E2E_KILN=
E2E_LIB_DIR=$(dirname "${BASH_SOURCE[0]}")
E2E_TMP=
RC=0
MS=0
OUT=
ERR=

# e2e_init NAME KILN KERNEL: check the binary and the kernel, make E2E_TMP, say where we run.
e2e_init() {
    E2E_NAME=$1
    E2E_KILN=$2
    E2E_TMP=$(mktemp -d)
    trap 'rm -rf "$E2E_TMP"' EXIT
    [[ -x $2 ]] || e2e_abort "no kiln binary at $2"
    [[ -r $3 ]] || e2e_abort "no kernel at $3"
    echo "$E2E_NAME: kernel $3"
    echo "$E2E_NAME: where: ${KILN_E2E_MODE:-direct}, running $(uname -r) with $(nproc) CPU(s)"
}

# A precondition the test cannot do without (an image the host side should have built).
e2e_abort() {
    echo "FAIL: $E2E_NAME: $*"
    exit 1
}

fail() {
    echo "FAIL: $*"
    E2E_FAILURES=$((E2E_FAILURES + 1))
}

ok() {
    echo "ok: $*"
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# kiln_files NAME: point OUT and ERR at the files of boot NAME.
kiln_files() {
    OUT=$E2E_TMP/$1.out
    ERR=$E2E_TMP/$1.err
}

# kiln_done NAME: after kiln ended: drop the serial console's CRs, keep copies in $KILN_E2E_OUT
# (harness run --out DIR keeps them), and report the status and time.
kiln_done() {
    local name=$1
    tr -d '\r' <"$OUT" >"$OUT.txt"
    mv "$OUT.txt" "$OUT"
    if [[ -n ${KILN_E2E_OUT:-} ]]; then
        cp "$OUT" "$KILN_E2E_OUT/$E2E_NAME-$name.console"
        cp "$ERR" "$KILN_E2E_OUT/$E2E_NAME-$name.stderr"
    fi
    echo "$name: kiln exit status $RC after $MS ms"
}

# kiln_start NAME STDIN KILN_RUN_ARGS...: start `kiln run` in the background with stdin from
# STDIN (a file or FIFO; never a TTY here), console to $OUT, stderr to $ERR. Sets KILN_PID.
KILN_PID=
KILN_START_MS=0
kiln_start() {
    local name=$1 stdin=$2
    shift 2
    kiln_files "$name"
    echo "=== $name: kiln run $*"
    : >"$OUT"
    KILN_START_MS=$(now_ms)
    "$E2E_KILN" run "$@" <"$stdin" >"$OUT" 2>"$ERR" &
    KILN_PID=$!
}

# kiln_vm_pid: the process running the VM that kiln_start started: kiln's child (each boot runs
# in one, so that a reboot starts afresh), or kiln itself with --no-reboot.
kiln_vm_pid() {
    local child
    child=$(awk '{ print $1 }' "/proc/$KILN_PID/task/$KILN_PID/children" 2>/dev/null)
    echo "${child:-$KILN_PID}"
}

# kiln_wait NAME: wait for the kiln started by kiln_start; sets RC and MS, then kiln_done.
kiln_wait() {
    RC=0
    wait "$KILN_PID" || RC=$?
    MS=$(($(now_ms) - KILN_START_MS))
    KILN_PID=
    kiln_done "$1"
}

# kiln_boot NAME KILN_RUN_ARGS...: one `kiln run` with stdin from /dev/null, waited for. Every
# boot has a --timeout from the caller, so a hung guest costs time but never the whole test.
kiln_boot() {
    local name=$1
    shift
    kiln_start "$name" /dev/null "$@"
    kiln_wait "$name"
}

# kiln_run_in_pty NAME DIR KILN_RUN_ARGS...: one `kiln run` with stdin, stdout and stderr on a
# pseudo-terminal (script(1) from util-linux makes it; in-pty.sh records the terminal's settings
# into DIR). The console and kiln's stderr both land in $OUT; $ERR gets script's own complaints.
kiln_run_in_pty() {
    local name=$1 dir=$2 start
    shift 2
    kiln_files "$name"
    echo "=== $name: script -qfec 'in-pty.sh DIR kiln run $*' /dev/null"
    start=$(now_ms)
    RC=0
    script -qfec "$(printf '%q ' "$E2E_LIB_DIR/in-pty.sh" "$dir" "$E2E_KILN" run "$@")" /dev/null \
        </dev/null >"$OUT" 2>"$ERR" || RC=$?
    MS=$(($(now_ms) - start))
    kiln_done "$name"
}

# boot_checks_begin / boot_checks_end NAME: on any failure in between, show kiln's stderr and
# the tail of the guest console, so the log says what the guest did.
E2E_MARK=0
boot_checks_begin() {
    E2E_MARK=$E2E_FAILURES
}
boot_checks_end() {
    local name=$1
    if [[ $E2E_FAILURES -ne $E2E_MARK ]]; then
        echo "--- $name: kiln stderr"
        sed 's/^/  | /' "$ERR"
        echo "--- $name: guest console (last 40 lines)"
        tail -n 40 "$OUT" | sed 's/^/  | /'
    fi
}

# expect_rc NAME WANT: kiln's exit status must be WANT.
expect_rc() {
    if [[ $RC -eq $2 ]]; then
        ok "$1: kiln exit status $RC"
    else
        fail "$1: kiln exit status $RC, expected $2"
    fi
}

# expect_console NAME ERE WHAT: some console line must match ERE.
expect_console() {
    local line
    if line=$(grep -m 1 -E -- "$2" "$OUT"); then
        ok "$1: $3: '$line'"
    else
        fail "$1: $3: no console line matches /$2/"
    fi
}

# refute_console NAME ERE WHAT: no console line may match ERE.
refute_console() {
    local line
    if line=$(grep -m 1 -E -- "$2" "$OUT"); then
        fail "$1: $3: console has '$line'"
    else
        ok "$1: $3"
    fi
}

# guest_value KEY: the value of the guest's "KEY: value" console line (empty if none).
guest_value() {
    sed -n "s/^$1: //p" "$OUT" | head -n 1
}

# wait_for_console FILE ERE SECONDS PID: wait until FILE has a line matching ERE (returns 0),
# PID exits or SECONDS pass (returns 1). The console has CRs: ERE must allow for them.
wait_for_console() {
    local file=$1 ere=$2 limit=$(($3 * 10)) pid=$4 i
    for ((i = 0; i < limit; i++)); do
        grep -qE -- "$ere" "$file" && return 0
        kill -0 "$pid" 2>/dev/null || {
            # The last output may have landed just before the exit.
            grep -qE -- "$ere" "$file" && return 0
            return 1
        }
        sleep 0.1
    done
    return 1
}

# last_count: the last "COUNT n" line of the console OUT, for guests that count aloud.
last_count() { tr -d '\r' <"$OUT" | grep -a '^COUNT [0-9]*$' | tail -n 1 | cut -d' ' -f2; }

# restored_from NAME AT LOW: after `kiln run --restore` of a counting guest (AT: its last count
# before the snapshotted VM was killed): the first count (left in FIRST) comes within 60 s and
# lies between LOW and AT + 1, i.e. the guest went on from the snapshot instead of booting again.
restored_from() {
    local name=$1 at=$2 low=$3
    FIRST=
    if wait_for_console "$OUT" '^COUNT [0-9]+' 60 "$KILN_PID"; then
        # Still running: the console has its CRs.
        FIRST=$(tr -d '\r' <"$OUT" | grep -a -m1 '^COUNT [0-9]*$' | cut -d' ' -f2 || true)
        ok "$name: counting again $(($(now_ms) - KILN_START_MS)) ms after kiln run --restore, from $FIRST"
    else
        fail "$name: no COUNT on the console after the restore"
    fi
    if [[ -n $FIRST && $FIRST -ge $low && $FIRST -le $((at + 1)) ]]; then
        ok "$name: it went on from the snapshot (count $FIRST; $low <= first <= $((at + 1)))"
    else
        fail "$name: first count '$FIRST' is not where the snapshot was (between $low and $((at + 1)))"
    fi
}

# overlay_check DISK: after a guest wrote to the qcow2 overlay DISK: `qemu-img check` (an ok: or
# FAIL: line), then the disk as sparse raw bytes in the file RAW; PART names its partition 1
# (from 1 MiB, as make-debian-image lays it out) for e2fsprogs (debugfs, e2fsck, dumpe2fs).
overlay_check() {
    if qemu-img check -q "$1" >"$E2E_TMP/check.out" 2>&1; then
        ok "qemu-img check: the overlay is clean"
    else
        fail "qemu-img check: $(tr '\n' ' ' <"$E2E_TMP/check.out")"
    fi
    RAW=$E2E_TMP/disk.raw
    qemu-img convert -f qcow2 -O raw "$1" "$RAW"
    PART="$RAW?offset=1048576"
}

# fsck_clean FS: e2fsck -fn on FS (a path, or PART), an ok: or FAIL: line.
fsck_clean() {
    if e2fsck -fn "$1" >"$E2E_TMP/fsck.out" 2>&1; then
        ok "e2fsck -fn: the guest's file system is clean"
    else
        fail "e2fsck -fn: $(tail -n 3 "$E2E_TMP/fsck.out" | tr '\n' ' ')"
    fi
}

# e2e_finish: the summary line and the exit status (0 only when every check passed).
e2e_finish() {
    if [[ $E2E_FAILURES -ne 0 ]]; then
        echo "$E2E_NAME: $E2E_FAILURES check(s) failed"
        exit 1
    fi
    echo "$E2E_NAME: ok"
}
