# common.sh: helpers sourced by kiln's guest and CLI test scripts (run, check, skip, probe KVM).
# shellcheck shell=bash
#
# Conventions: a script exits 0 on success, 1 on failure and 77 (ctest SKIP_RETURN_CODE) when the
# host cannot run the test; it prints "SKIP: reason" before skipping. Every check failure is
# reported, and the script fails at the end, so one run shows everything that is wrong.

set -u

# Longest a single kiln run may take before the harness kills it (kiln's own --timeout is the
# first line of defence; this catches a kiln that ignores it).
KILN_RUN_LIMIT=${KILN_RUN_LIMIT:-90}

FAILURES=0
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/kiln-test.XXXXXX") || exit 1
trap 'rm -rf "$TEST_TMP"' EXIT
# Cores land in the working directory (with the default core_pattern), where the CLI tests look.
cd "$TEST_TMP" || exit 1
ulimit -c unlimited 2>/dev/null || true
# kiln reads the console from stdin: nothing unless a test pipes input in.
exec </dev/null

skip() {
    echo "SKIP: $*"
    exit 77
}

fail() {
    echo "FAIL: $*" >&2
    FAILURES=$((FAILURES + 1))
}

ok() {
    echo "ok: $*"
}

# Exit with the verdict; call last.
finish() {
    if [ "$FAILURES" -ne 0 ]; then
        echo "$FAILURES check(s) failed" >&2
        exit 1
    fi
    exit 0
}

# Show what the last run produced, to explain a failure.
dump_run() {
    echo "  command: kiln $RUN_ARGS" >&2
    echo "  exit status: $RC, ${ELAPSED_MS} ms" >&2
    echo "  --- stdout:" >&2
    head -c 4000 "$OUT" | sed 's/^/  | /' >&2
    echo "  --- stderr:" >&2
    head -c 4000 "$ERR" | sed 's/^/  | /' >&2
}

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# run_kiln ARGS...: run "$KILN" ARGS with the caller's stdin. Sets RC, OUT and ERR (files with
# stdout and stderr), ELAPSED_MS and RUN_ARGS. A kiln that outlives KILN_RUN_LIMIT is killed
# (RC 137), which no test accepts.
RUN_SEQ=0
run_kiln() {
    RUN_SEQ=$((RUN_SEQ + 1))
    OUT=$TEST_TMP/run$RUN_SEQ.out
    ERR=$TEST_TMP/run$RUN_SEQ.err
    RUN_ARGS="$*"
    local start
    start=$(now_ms)
    timeout -s KILL "$KILN_RUN_LIMIT" "$KILN" "$@" >"$OUT" 2>"$ERR"
    RC=$?
    ELAPSED_MS=$(($(now_ms) - start))
}

# expect_rc WANT WHAT: check the last run's exit status.
expect_rc() {
    if [ "$RC" -eq "$1" ]; then
        ok "$2: exit status $RC"
        return 0
    fi
    fail "$2: exit status $RC, expected $1"
    dump_run
    return 1
}

# expect_stdout_line LINE WHAT: the last run's stdout has LINE as a whole line.
expect_stdout_line() {
    if grep -qxF -- "$1" "$OUT"; then
        ok "$2: printed '$1'"
        return 0
    fi
    fail "$2: stdout lacks the line '$1'"
    dump_run
    return 1
}

# expect_stderr_empty WHAT
expect_stderr_empty() {
    if [ ! -s "$ERR" ]; then
        return 0
    fi
    fail "$1: unexpected output on stderr"
    dump_run
    return 1
}

# True if the last run failed because KVM itself is unusable here (not because of kiln or the
# guest): kiln's own failure (125) with a message about /dev/kvm or the KVM API.
run_failed_for_kvm() {
    [ "$RC" -eq 125 ] && grep -qiE '/dev/kvm|kvm api|kvm_create|KVM_[A-Z_]+|kvm module' "$ERR"
}

# Why the host cannot run tiny guests, or nothing if it can. Opens /dev/kvm, then boots the
# hello guest ($1) once; only failures that point at KVM count, so a kiln bug still fails tests.
kvm_unusable_reason() {
    if [ ! -e /dev/kvm ]; then
        echo "/dev/kvm does not exist (no KVM on this host)"
        return
    fi
    if ! { : <>/dev/kvm; } 2>/dev/null; then
        echo "/dev/kvm cannot be opened read-write by $(id -un 2>/dev/null || id -u)"
        return
    fi
    # Called through $(...), so this run does not disturb the caller's RC, OUT and ERR.
    run_kiln run --kernel "$1" --timeout 30
    if run_failed_for_kvm; then
        echo "kiln cannot run a VM on this host: $(head -n 1 "$ERR")"
    fi
}

# require_kvm HELLO_ELF: skip the test unless this host can run tiny guests.
require_kvm() {
    local why
    why=$(kvm_unusable_reason "$1")
    [ -z "$why" ] || skip "$why"
}

# need_file PATH WHAT: a test input built by CMake must exist (a missing one is a build bug).
need_file() {
    if [ ! -f "$1" ]; then
        echo "FAIL: $2 not found at $1" >&2
        exit 1
    fi
}
