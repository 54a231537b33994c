#!/usr/bin/env bash
# guest_initrd.sh: --initrd is loaded intact and its address and size reach the zero page.
# Usage: guest_initrd.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/initrd.elf" "initrd guest"
require_kvm "$GUESTS/hello.elf"

# A small initrd (the guest sums it byte by byte) with a known first line and varied bytes.
initrd=$TEST_TMP/initrd.img
{
    echo "kiln-initrd-payload"
    i=0
    while [ $i -lt 64 ]; do
        printf 'line %02d: the quick brown fox jumps over the lazy dog\n' $i
        i=$((i + 1))
    done
    printf '\001\002\003\377\376\375'
} >"$initrd"
size=$(wc -c <"$initrd")
sum=$(od -An -v -tu1 "$initrd" | tr -s ' ' '\n' | awk '{ s += $1 } END { print s % 4294967296 }')

run_kiln run --kernel "$GUESTS/initrd.elf" --initrd "$initrd" --timeout 30
if expect_rc 0 "initrd"; then
    if grep -qE "^initrd: at 0x[0-9a-f]+ size=$size\$" "$OUT"; then
        ok "initrd: size $size reported"
    else
        fail "initrd: size $size not reported"
        dump_run
    fi
    expect_stdout_line "initrd: sum=$sum" "initrd"
    expect_stdout_line "initrd: first line: kiln-initrd-payload" "initrd"
fi

# Without --initrd the zero page must say there is none.
run_kiln run --kernel "$GUESTS/initrd.elf" --timeout 30
expect_rc 0 "no initrd" && expect_stdout_line "initrd: none" "no initrd"

# A missing initrd file is kiln's failure, named in one line.
run_kiln run --kernel "$GUESTS/initrd.elf" --initrd "$TEST_TMP/missing.img" --timeout 30
expect_rc 125 "missing initrd"
if [ "$(wc -l <"$ERR")" -eq 1 ] && grep -q "^kiln: .*missing.img" "$ERR"; then
    ok "missing initrd: one line naming the file"
else
    fail "missing initrd: expected one 'kiln: ' line naming $TEST_TMP/missing.img"
    dump_run
fi
finish
