#!/usr/bin/env bash
# guest_api.sh: the API socket driven through kiln ctl: info, stats, pause/resume (the guest's
# exit count stops and goes on), stop (the power button, then a stop: 143), kill (137), SIGTERM,
# bad requests on a live connection, the socket surviving guest reboots, and snapshots into
# --snapshot-dir and into a directory ctl names (files sent with the request), restored.
# Usage: guest_api.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
TICKER=$GUESTS/ticker.elf
need_file "$TICKER" "ticker guest"
require_kvm "$GUESTS/hello.elf"
SOCK=$TEST_TMP/api.sock

# start ARGS...: kiln run ARGS --api-socket $SOCK in the background (PID), once the socket is up.
start() {
    RUN_SEQ=$((RUN_SEQ + 1))
    OUT=$TEST_TMP/run$RUN_SEQ.out
    ERR=$TEST_TMP/run$RUN_SEQ.err
    RUN_ARGS="run $* --api-socket $SOCK"
    timeout -s KILL "$KILN_RUN_LIMIT" "$KILN" run "$@" --api-socket "$SOCK" >"$OUT" 2>"$ERR" &
    PID=$!
    for _ in $(seq 100); do
        [ -S "$SOCK" ] && return 0
        sleep 0.05
    done
    fail "the API socket did not appear"
    dump_run
}

# stopped WANT WHAT: kiln ends with WANT and leaves no socket behind.
stopped() {
    wait "$PID"
    RC=$?
    expect_rc "$1" "$2"
    [ ! -e "$SOCK" ] && ok "$2: socket removed" || fail "$2: $SOCK left behind"
}

# ctl COMMAND [ARG]: kiln ctl; CRC, COUT and CERR hold its status, stdout and stderr.
ctl() {
    COUT=$("$KILN" ctl "$SOCK" "$@" 2>"$TEST_TMP/ctl.err")
    CRC=$?
    CERR=$(cat "$TEST_TMP/ctl.err")
}

# The guest's port I/O exits so far.
io_exits() {
    ctl stats
    python3 -c 'import json, sys; print(json.load(sys.stdin)["exits"]["io"])' <<<"$COUT"
}

# ---- info, stats, pause and resume
start --kernel "$TICKER" --serial none --stop-timeout 1 --timeout 60
[ "$(stat -c %a "$SOCK")" = 600 ] && ok "socket mode 0600" || fail "socket mode $(stat -c %a "$SOCK")"
ctl info
[ $CRC -eq 0 ] && grep -q '"state": "running"' <<<"$COUT" && grep -qF "\"kernel\": \"$TICKER\"" <<<"$COUT" &&
    ok "info: running, the kernel named" || fail "info: rc $CRC: $COUT $CERR"
a=$(io_exits)
sleep 0.3
b=$(io_exits)
[ "$b" -gt "$a" ] && ok "stats: io exits grow while running ($a -> $b)" || fail "io exits $a -> $b"
ctl pause
[ $CRC -eq 0 ] && ok "pause" || fail "pause: rc $CRC $CERR"
ctl info
grep -q '"state": "paused"' <<<"$COUT" && ok "info: paused" || fail "info after pause: $COUT"
a=$(io_exits)
sleep 0.3
b=$(io_exits)
[ "$b" -eq "$a" ] && ok "paused: io exits stay at $a" || fail "paused, yet io exits $a -> $b"
ctl resume
[ $CRC -eq 0 ] && ok "resume" || fail "resume: rc $CRC $CERR"
ctl resume
[ $CRC -eq 1 ] && grep -q "not paused" <<<"$CERR" && ok "resume twice: error, exit 1" ||
    fail "resume twice: rc $CRC $CERR"
sleep 0.3
c=$(io_exits)
[ "$c" -gt "$b" ] && ok "resumed: io exits grow again ($b -> $c)" || fail "resumed: $b -> $c"
ctl snapshot
[ $CRC -eq 1 ] && grep -q "no snapshot directory" <<<"$CERR" &&
    ok "snapshot without --snapshot-dir or DIR: error, exit 1" || fail "snapshot: rc $CRC $CERR"
ctl frobnicate
[ $CRC -eq 1 ] && grep -q "unknown command" <<<"$CERR" && ok "unknown command: exit 1" ||
    fail "unknown command: rc $CRC $CERR"

# Bad requests on one connection, which stays usable; a client gone mid-request changes nothing.
python3 - "$SOCK" >"$TEST_TMP/raw.out" <<'PY' || fail "raw protocol: $(cat "$TEST_TMP/raw.out")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
def ask(line):
    s.sendall(line)
    return json.loads(f.readline())
assert "bad JSON" in ask(b"{nonsense\n")["error"]
assert "unknown command" in ask(b'{"cmd":"reboot"}\n')["error"]
assert "no \"cmd\"" in ask(b'{"command":"info"}\n')["error"]
assert "longer than 4096" in ask(b"x" * 10000 + b"\n")["error"]
assert ask(b'{"cmd":"info"}\n')["state"] == "running"
g = socket.socket(socket.AF_UNIX)
g.connect(sys.argv[1])
g.sendall(b'{"cmd":"kill"')  # no newline: never a request
g.close()
assert ask(b'{"cmd":"info"}\n')["state"] == "running"
# File descriptors: announced and missing, sent with a request that takes none, a file that is
# no place for a snapshot; each an error, the descriptors closed, the connection usable.
def ask_fds(line, fds):
    socket.send_fds(s, [line], fds)
    return json.loads(f.readline())
import os
assert "0 file descriptors came" in ask(b'{"cmd":"snapshot","fds":2}\n')["error"]
r, w = os.pipe()
assert "no \"fds\"" in ask_fds(b'{"cmd":"info"}\n', [w, w])["error"]
assert "not a regular file" in ask_fds(b'{"cmd":"snapshot","fds":2}\n', [w, w])["error"]
ro = os.open("/dev/null", os.O_RDONLY)
assert "takes 2 file descriptors" in ask_fds(b'{"cmd":"snapshot","fds":1}\n', [ro])["error"]
os.close(w)
assert os.read(r, 1) == b"", "kiln kept a file descriptor sent to it"
assert ask(b'{"cmd":"info"}\n')["state"] == "running"
print("ok")
PY
grep -qx ok "$TEST_TMP/raw.out" &&
    ok "bad JSON, unknown cmd, oversize line, fds missing or astray: errors, connection usable"

# stop: the tiny guest ignores the power button, so kiln stops it after --stop-timeout: 143.
ctl stop
[ $CRC -eq 0 ] && ok "stop: accepted" || fail "stop: rc $CRC $CERR"
ctl info
grep -q '"state": "stopping"' <<<"$COUT" && grep -q '"power_button_presses": 1' <<<"$COUT" &&
    ok "info: stopping, the button pressed once" || fail "info after stop: $COUT"
stopped 143 "stop, the guest not powering off"

# kill: at once, 137.
start --kernel "$TICKER" --serial none --timeout 60
ctl kill
[ $CRC -eq 0 ] && ok "kill: accepted" || fail "kill: rc $CRC $CERR"
stopped 137 "kill"

# SIGTERM: a graceful stop as well (143 after the timeout), here with --no-reboot (in-process).
start --kernel "$TICKER" --serial none --stop-timeout 0.5 --no-reboot --timeout 60
# To kiln itself: timeout(1), which PID is, may exit at a TERM before the command it runs.
kill -TERM "$(pgrep -P "$PID" -x kiln)"
stopped 143 "SIGTERM, --no-reboot"
ctl info
[ $CRC -eq 125 ] && grep -q "cannot connect" <<<"$CERR" && ok "ctl after the end: exit 125" ||
    fail "ctl after the end: rc $CRC $CERR"

# The socket survives reboots: a guest resetting itself every few thousand writes is served by
# every boot's process (ctl may meet a boot that ends first: try again).
start --kernel "$TICKER" --serial none --cmdline reset_after=20000 --timeout 60
served=0
for _ in $(seq 50); do
    ctl info
    [ $CRC -eq 0 ] && served=$((served + 1))
    sleep 0.05
done
boots=$(grep -c "starting it again" "$ERR")
[ "$served" -ge 10 ] && [ "$boots" -ge 2 ] && ok "across $boots reboots: $served of 50 info served" ||
    fail "across $boots reboots: $served of 50 info served"
for _ in $(seq 20); do
    ctl kill
    [ $CRC -eq 0 ] && break
done
stopped 137 "kill after reboots"

# Snapshot through the socket, then a new kiln restores it: the ticker runs on (its exits grow).
SNAP=$TEST_TMP/snap
start --kernel "$TICKER" --serial none --timeout 60 --snapshot-dir "$SNAP"
sleep 0.3
ctl snapshot
[ $CRC -eq 0 ] && grep -q '"resumed": *true' <<<"$COUT" && ok "snapshot: written, the VM resumed" ||
    fail "snapshot: rc $CRC $COUT $CERR"
# ctl snapshot into the same directory renames new files over the ones kiln holds open: a later
# plain snapshot would write the unlinked old ones, so it is refused instead.
ctl snapshot "$SNAP"
[ $CRC -eq 0 ] && ok "ctl snapshot into the --snapshot-dir" || fail "into --snapshot-dir: rc $CRC $CERR"
ctl snapshot
[ $CRC -eq 1 ] && grep -q "were replaced or removed" <<<"$CERR" &&
    ok "then a plain snapshot: refused, its files were replaced" ||
    fail "plain snapshot after ctl's into the same DIR: rc $CRC $COUT $CERR"
ctl kill
stopped 137 "kill after the snapshot"
[ -s "$SNAP/state" ] && [ -s "$SNAP/memory" ] && ok "snapshot: state and memory files" ||
    fail "snapshot: files missing in $SNAP"
start --restore "$SNAP" --serial none --timeout 60
a=$(io_exits)
sleep 0.3
b=$(io_exits)
[ "$b" -gt "$a" ] && ok "restored: the ticker runs on (io exits $a -> $b)" ||
    fail "restored: io exits $a -> $b"
ctl kill
stopped 137 "kill of the restored VM"

# kiln ctl SOCKET snapshot DIR: any directory, per request, with no --snapshot-dir; the files
# are sent with the request, and renamed into place only after the VM's success.
CSNAP=$TEST_TMP/ctl-snap/a
mkdir -p "$TEST_TMP/ctl-snap"
start --kernel "$TICKER" --serial none --timeout 60
sleep 0.3
ctl snapshot "$CSNAP"
[ $CRC -eq 0 ] && grep -q '"resumed": *true' <<<"$COUT" && ok "ctl snapshot DIR: written, resumed" ||
    fail "ctl snapshot DIR: rc $CRC $COUT $CERR"
[ "$(stat -c %a "$CSNAP")" = 700 ] && [ "$(stat -c %a "$CSNAP/state")" = 600 ] &&
    [ "$(stat -c %a "$CSNAP/memory")" = 600 ] && [ "$(ls "$CSNAP" | tr '\n' ' ')" = "memory state " ] &&
    ok "ctl snapshot DIR: made 0700, state and memory 0600, nothing else" ||
    fail "ctl snapshot DIR: $(ls -la "$CSNAP")"
: >"$TEST_TMP/ctl-snap/file"
ctl snapshot "$TEST_TMP/ctl-snap/file"
[ $CRC -eq 125 ] && [ "$(wc -l <<<"$CERR")" -eq 1 ] && grep -q "Not a directory" <<<"$CERR" &&
    ok "ctl snapshot FILE: one line, exit 125" || fail "ctl snapshot FILE: rc $CRC $CERR"
ctl snapshot "$CSNAP" # again over the first: replaced
[ $CRC -eq 0 ] && ok "ctl snapshot DIR again: replaced" || fail "again: rc $CRC $CERR"
ctl info
grep -q '"state": "running"' <<<"$COUT" && ok "running after the snapshots" || fail "info: $COUT"
ctl kill
stopped 137 "kill after ctl snapshot DIR"
start --restore "$CSNAP" --serial none --timeout 60
a=$(io_exits)
sleep 0.3
b=$(io_exits)
[ "$b" -gt "$a" ] && ok "restored from ctl's DIR: the ticker runs on (io exits $a -> $b)" ||
    fail "restored from ctl's DIR: io exits $a -> $b"
# The restored VM snapshots into the directory its memory is mapped from: new files renamed in,
# the mapped one untouched.
ctl snapshot "$CSNAP"
[ $CRC -eq 0 ] && ok "ctl snapshot into the --restore DIR" || fail "into --restore DIR: rc $CRC $CERR"
a=$(io_exits)
sleep 0.2
b=$(io_exits)
[ "$b" -gt "$a" ] && ok "the restored VM runs on after it" || fail "after: io exits $a -> $b"
ctl kill
stopped 137 "kill of the VM restored from ctl's DIR"

# A snapshot that fails (its files' file system fills up: a 64 KiB tmpfs in a mount namespace
# of ctl's own, which kiln writes through the descriptors ctl sends) leaves DIR's snapshot as it
# was, and a DIR ctl made is removed. Needs root for the mount, as CI has.
start --kernel "$TICKER" --serial none --timeout 60
if [ "$(id -u)" -ne 0 ]; then
    fail "the failed-snapshot checks need root (a tmpfs mount); run as root, as CI does"
else
    FULL=$TEST_TMP/full
    mkdir -p "$FULL"
    # shellcheck disable=SC2016 # expanded by the inner sh
    unshare -m sh -c '
        mount -t tmpfs -o size=64k none "$1" && mkdir "$1/snap" &&
        printf old-state >"$1/snap/state" && printf old-memory >"$1/snap/memory" &&
        (head -c 56k /dev/zero >"$1/filler" || true)
        "$2" ctl "$3" snapshot "$1/snap" 2>"$1/../full-1.err"; echo $? >"$1/../full-1.rc"
        "$2" ctl "$3" snapshot "$1/new" 2>"$1/../full-2.err"; echo $? >"$1/../full-2.rc"
        ls "$1/snap" | tr "\n" " " >"$1/../full-ls"; cat "$1/snap/state" "$1/snap/memory" >"$1/../full-old"
        [ -e "$1/new" ] && echo yes >"$1/../full-new" || echo no >"$1/../full-new"' \
        sh "$FULL" "$KILN" "$SOCK"
    [ "$(cat "$TEST_TMP/full-1.rc")" -eq 1 ] && grep -q "No space left" "$TEST_TMP/full-1.err" &&
        ok "failed snapshot (file system full): error, exit 1" ||
        fail "failed snapshot: rc $(cat "$TEST_TMP/full-1.rc") $(cat "$TEST_TMP/full-1.err")"
    [ "$(cat "$TEST_TMP/full-ls")" = "memory state " ] && [ "$(cat "$TEST_TMP/full-old")" = old-stateold-memory ] &&
        ok "failed snapshot: DIR's snapshot unchanged, no files left" ||
        fail "failed snapshot: DIR holds '$(cat "$TEST_TMP/full-ls")': $(cat "$TEST_TMP/full-old")"
    [ "$(cat "$TEST_TMP/full-2.rc")" -eq 1 ] && [ "$(cat "$TEST_TMP/full-new")" = no ] &&
        ok "failed snapshot: the DIR ctl made is gone" ||
        fail "failed snapshot into a new DIR: rc $(cat "$TEST_TMP/full-2.rc"), left: $(cat "$TEST_TMP/full-new")"
fi
ctl info
grep -q '"state": "running"' <<<"$COUT" && ok "running after the failed snapshots" || fail "info: $COUT"
ctl kill
stopped 137 "kill after the refused snapshot"
finish
