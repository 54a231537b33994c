#!/usr/bin/env bash
# guest_debug_exit.sh: --debug-exit behaves as QEMU's isa-debug-exit: a guest write of V to the
# port (any width, anywhere in the range) exits kiln with (V << 1) | 1, truncated to 8 bits.
# Usage: guest_debug_exit.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/debugexit.elf" "debugexit guest"
require_kvm "$GUESTS/hello.elf"

# --debug-exit value : guest port value width : kiln's exit status
for c in "iobase=0xf4,iosize=4:244:0:1:1" "iobase=0xf4,iosize=4:244:16:1:33" \
    "iobase=0xf4,iosize=4:247:1:1:3" "iobase=0xf4,iosize=4:244:62:4:125" \
    "iobase=0xf4,iosize=4:244:127:2:255" "iobase=0xf4,iosize=4:244:128:2:1" \
    "iobase=0xf4,iosize=4:244:4294967295:4:255" "iobase=0x501:1281:49:2:99" \
    "iobase=0x501:1282:5:1:11"; do
    IFS=: read -r opt port value width want <<<"$c"
    name="--debug-exit $opt, out$width $value to port $port"
    run_kiln run --kernel "$GUESTS/debugexit.elf" --debug-exit "$opt" \
        --cmdline "port=$port value=$value width=$width" --timeout 30
    expect_rc "$want" "$name" || continue
    expect_stdout_line "debugexit: writing $value to port $port" "$name"
    expect_stderr_empty "$name"
done

# Beside the range, or without --debug-exit, the write goes nowhere and the guest runs on.
run_kiln run --kernel "$GUESTS/debugexit.elf" --debug-exit iobase=0x501 \
    --cmdline "port=1283 value=5 width=1" --timeout 30
expect_rc 42 "a write beside the range (0x503 with iobase=0x501, iosize=2)" &&
    expect_stdout_line "debugexit: still running" "a write beside the range"
run_kiln run --kernel "$GUESTS/debugexit.elf" --cmdline "port=244 value=5 width=1" --timeout 30
expect_rc 42 "no --debug-exit: a write to 0xf4" &&
    expect_stdout_line "debugexit: still running" "no --debug-exit"

# A range on another device's ports is refused before the guest runs.
run_kiln run --kernel "$GUESTS/debugexit.elf" --debug-exit iobase=0x3f8 --timeout 30
if expect_rc 125 "--debug-exit iobase=0x3f8 (COM1)"; then
    want="kiln: debug exit device at port 0x3f8: overlaps another device"
    if [ "$(cat "$ERR")" = "$want" ]; then
        ok "--debug-exit iobase=0x3f8: stderr is the one line '$want'"
    else
        fail "--debug-exit iobase=0x3f8: stderr is not the one line '$want'"
        dump_run
    fi
fi
finish
