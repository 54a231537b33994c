#!/usr/bin/env bash
# cli_info.sh: `kiln --help` and `kiln --version` succeed without KVM and print to stdout.
# Usage: cli_info.sh KILN VERSION help|version
. "$(dirname "$0")/common.sh"
KILN=$1
VERSION=$2
CASE=$3

case $CASE in
help)
    run_kiln --help
    expect_rc 0 "--help"
    if grep -qi 'usage' "$OUT" && grep -qF -- '--kernel' "$OUT" && grep -qw 'run' "$OUT"; then
        ok "--help: usage with 'run' and '--kernel' on stdout"
    else
        fail "--help: stdout lacks a usage text mentioning 'run' and '--kernel'"
        dump_run
    fi
    expect_stderr_empty "--help"
    ;;
version)
    run_kiln --version
    expect_rc 0 "--version"
    if [ "$(wc -l <"$OUT")" -eq 1 ] && grep -qF -- "$VERSION" "$OUT"; then
        ok "--version: one line with $VERSION"
    else
        fail "--version: stdout is not one line with $VERSION"
        dump_run
    fi
    expect_stderr_empty "--version"
    ;;
*)
    echo "FAIL: unknown case '$CASE'" >&2
    exit 1
    ;;
esac
finish
