#!/usr/bin/env bash
# guest_smp.sh: with --cpus N, the smp guest finds N CPUs in the MP table and starts every AP.
# Usage: guest_smp.sh KILN GUEST_DIR N
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
N=$3
need_file "$GUESTS/smp.elf" "smp guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/smp.elf" --cpus "$N" --timeout 60
what="smp --cpus $N"

# The guest ends with status 3 and this line when the APs do not all check in within its bound:
#   smp: timeout: U of A APs up; reached real mode R, protected mode P, long mode L
timeout_line=$(grep -m1 '^smp: timeout: ' "$OUT")
if [ "$RC" -eq 125 ] && grep -q 'KVM internal error' "$ERR"; then
    # KVM could not execute some trampoline instruction (an emulating host's limitation).
    skip "$what: the host could not run the AP start-up code: $(head -n 1 "$ERR")"
elif [ "$RC" -eq 3 ] && [ -n "$timeout_line" ]; then
    # Its numbers in order: U A R P L.
    read -r _ aps real pmode lmode < <(echo "$timeout_line" | grep -oE '[0-9]+' | tr '\n' ' ')
    # An emulating host may lose concurrent locked increments in real mode, so any stage
    # reached counts as "started".
    started=$((real > pmode ? real : pmode))
    started=$((started > lmode ? started : lmode))
    if [ "$started" -ge 1 ] && [ "$lmode" -lt "$aps" ]; then
        # SIPIs were delivered (APs ran the trampoline) but real/protected mode code was too slow
        # or stalled: a limit of this host, not of kiln's AP start-up. APs that never ran at
        # all, or that reached long mode and then failed to report, are kiln or guest bugs.
        skip "$what: APs started but did not reach long mode in time on this host ($timeout_line)"
    fi
    fail "$what: APs did not check in ($timeout_line)"
    dump_run
    finish
fi

expect_rc 0 "$what" || finish
expect_stdout_line "smp: $N cpus" "$what"
expect_stdout_line "mptable: $N processors" "$what"
# One "cpu K up" per AP, K = 1 .. N-1 (kiln numbers APIC IDs from 0, the BSP).
want=$(seq 1 $((N - 1)) | sed 's/^/cpu /; s/$/ up/')
got=$(grep -E '^cpu [0-9]+ up$' "$OUT" | sort -t' ' -k2,2n)
if [ "$got" = "$want" ]; then
    ok "$what: every AP reported once"
else
    fail "$what: AP lines differ from cpu 1..$((N - 1)) up"
    dump_run
fi
expect_stderr_empty "$what"
finish
