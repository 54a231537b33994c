#!/usr/bin/env bash
# cli_config.sh: `kiln config --print` and --config through the kiln binary, without KVM: the
# printed JSON fed back gives the same text, flags override the file, a list flag replaces.
# Usage: cli_config.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
HELLO=$GUESTS/hello.elf
need_file "$HELLO" "hello guest"
D=$TEST_TMP
truncate -s 1M "$D/a.img" "$D/b.img"
mkdir -p "$D/share"
cd "$D" || exit 1

cat >vm.json <<JSON
{
  "kernel": "$HELLO",
  "cmdline": "console=ttyS0 quiet",
  "cpus": 2,
  "memory": 100663296,
  "serial": {"file": "console.log"},
  "timeout": 1.25,
  "disks": [{"path": "a.img", "ro": true, "serial": "A"}, {"path": "b.img", "format": "raw"}],
  "nets": [{"type": "user", "hostfwd": ["tcp::2222-:22"], "mac": "02:00:00:00:00:09"}],
  "ports": [{"name": "results", "path": "results.out"}],
  "shares": [{"path": "share", "tag": "data", "ro": false}],
  "debug_exit": {"iobase": 244},
  "no_reboot": true
}
JSON

run_kiln config --print --config vm.json
expect_rc 0 "config --print"
expect_stderr_empty "config --print"
cp "$OUT" printed.json
run_kiln config --print --config printed.json
expect_rc 0 "config --print of its own output"
if cmp -s "$OUT" printed.json; then
    ok "round trip: the printed configuration prints the same text again"
else
    fail "round trip: the printed configuration prints differently"
    diff printed.json "$OUT" >&2
fi
if grep -qF '"memory": "96M"' printed.json && grep -qF '"timeout": 1.25' printed.json &&
    grep -qF '"iosize": 2' printed.json; then
    ok "config --print: sizes, seconds and defaults written out"
else
    fail "config --print: memory, timeout or debug_exit not as expected"
    cat printed.json >&2
fi

# Flags override: a scalar replaces, a list flag replaces the file's list of its kind only.
run_kiln config --print --config vm.json --cpus 3 --disk path=b.img,serial=B
expect_rc 0 "config --print with flags"
if grep -qF '"cpus": 3' "$OUT" && grep -qF '"serial": "B"' "$OUT" &&
    ! grep -qF 'a.img' "$OUT" && grep -qF '"tag": "data"' "$OUT"; then
    ok "flags override the file; --disk replaces its disks, its shares stay"
else
    fail "flags did not override the file as documented"
    dump_run
fi
# Nothing of the run happened: no console file, no results file.
if [ ! -e console.log ] && [ ! -e results.out ]; then
    ok "config --print creates no file"
else
    fail "config --print created the run's files"
fi
finish
