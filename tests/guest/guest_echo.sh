#!/usr/bin/env bash
# guest_echo.sh: bytes piped into kiln's stdin reach the guest's UART receiver.
# Usage: guest_echo.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/echo.elf" "echo guest"
require_kvm "$GUESTS/hello.elf"

# Input already waiting when the guest starts.
run_kiln run --kernel "$GUESTS/echo.elf" --timeout 30 < <(printf 'ping from a pipe\n')
expect_rc 0 "echo (input ready at start)" &&
    expect_stdout_line 'echo: got "ping from a pipe"' "echo (input ready at start)"

# Input that arrives while the guest polls, in pieces.
run_kiln run --kernel "$GUESTS/echo.elf" --timeout 30 < <(
    sleep 0.5
    printf 'late '
    sleep 0.2
    printf 'line\n'
)
expect_rc 0 "echo (input arriving later)" &&
    expect_stdout_line 'echo: got "late line"' "echo (input arriving later)"
finish
