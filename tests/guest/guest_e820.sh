#!/usr/bin/env bash
# guest_e820.sh: the e820 map in the zero page is sane and its RAM adds up to --memory.
# Usage: guest_e820.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/e820.elf" "e820 guest"
require_kvm "$GUESTS/hello.elf"

# --memory value : RAM in KiB. 3584M crosses the 32-bit PCI hole, so part of it sits above 4 GiB.
# Guest RAM is reserved lazily (MAP_NORESERVE), so large sizes cost the host nothing here.
for pair in default:262144 64M:65536 3584M:3670016; do
    mem=${pair%%:*}
    kib=${pair##*:}
    if [ "$mem" = default ]; then
        run_kiln run --kernel "$GUESTS/e820.elf" --timeout 30
    else
        run_kiln run --kernel "$GUESTS/e820.elf" --memory "$mem" --timeout 30
    fi
    expect_rc 0 "e820 --memory $mem" || continue
    usable=$(sed -n 's/^e820: usable_kib=\([0-9]*\)$/\1/p' "$OUT")
    # All of it usable except the legacy hole below 1 MiB (EBDA, VGA, BIOS: under 1 MiB) and a
    # little room for other reservations.
    if [ -n "$usable" ] && [ "$usable" -le "$kib" ] && [ "$usable" -ge $((kib - 2048)) ]; then
        ok "e820 --memory $mem: $usable KiB usable"
    else
        fail "e820 --memory $mem: ${usable:-no} KiB usable, expected a little under $kib"
        dump_run
    fi
    if [ "$mem" = 3584M ] && ! grep -q '^e820: 0x100000000 ' "$OUT"; then
        fail "e820 --memory $mem: no RAM range starting at 4 GiB"
        dump_run
    fi
done
finish
