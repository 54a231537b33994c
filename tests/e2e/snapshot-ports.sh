#!/usr/bin/env bash
# snapshot-ports.sh: a Linux guest counting on its console, its virtio-blk disk and two named
# virtio-console ports (a file and a socket) is snapshotted through the API socket, killed, and
# restored with kiln run --restore: with no new handshake the ports go on (the file gets the
# next counts, the socket, connected anew, answers the next pings) and so does the disk.
# Usage (from the host): tests/e2e/run-snapshot-ports.sh BUILD_DIR. Runs where /dev/kvm is real
# (in L1 when nested). Exit: 0 when every check passed; 1 otherwise.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: snapshot-ports.sh BUILD_DIR MODS}
mods=${2:?usage: snapshot-ports.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init snapshot_ports "$build/kiln" "$kernel"
initrd=$build/e2e/snapshot-ports-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-snapshot-ports.sh builds it on the host)"

disk=$E2E_TMP/disk.img
truncate -s 8M "$disk"
log=$E2E_TMP/log.txt
: >"$log"
echo_sock=$E2E_TMP/echo.sock
sock=$E2E_TMP/api.sock
snap=$E2E_TMP/snap
# The echo port's host end: answers "PING N" with "PONG N", one connection after another (the
# restored kiln connects anew); each connection's pings are logged as "CONN C N".
python3 - "$echo_sock" "$E2E_TMP/echo.log" <<'PY' &
import socket, sys
path, logpath = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(1)
s.settimeout(600)
with open(logpath, "w", buffering=1) as log:
    for conn in range(2):
        c, _ = s.accept()
        buf = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.startswith(b"PING "):
                    n = line[5:].decode(errors="replace")
                    log.write("CONN %d %s\n" % (conn, n))
                    c.sendall(b"PONG " + n.encode() + b"\n")
        c.close()
PY
listener=$!
for _ in $(seq 100); do [[ -S $echo_sock ]] && break; sleep 0.1; done
machine=(--memory 256M --disk "path=$disk" --port "log,path=$log" --port "echo,socket=$echo_sock")
disk_count() { head -c 14 "$disk" | sed -n 's/^COUNT 0*\([0-9][0-9]*\)$/\1/p'; }

name=cold
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" "${machine[@]}" \
    --cmdline "console=ttyS0 quiet kiln_mods=$mods" --api-socket "$sock" --snapshot-dir "$snap" \
    --timeout 300
boot_checks_begin
if wait_for_console "$OUT" '^ECHO 20: PONG 20' 240 "$KILN_PID"; then
    ok "$name: the guest counts, its pings answered ($(($(now_ms) - KILN_START_MS)) ms to 20)"
else
    fail "$name: no 'ECHO 20: PONG 20' on the console"
fi
if reply=$("$E2E_KILN" ctl "$sock" snapshot 2>&1); then
    ok "$name: snapshot: $reply"
else
    fail "$name: ctl snapshot: $reply"
fi
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
at=$(last_count)
expect_rc $name 137
echo "$name: the last count before the kill: $at"
boot_checks_end $name

name=restored
kiln_start $name /dev/null --restore "$snap" "${machine[@]}" --api-socket "$sock" --timeout 300
boot_checks_begin
restored_from $name "$at" 19
first=$FIRST
target=$((${first:-0} + 10))
if wait_for_console "$OUT" "^ECHO $target: PONG $target"$'\r'"?\$" 90 "$KILN_PID"; then
    ok "$name: the echo port answers count $target, over the new connection"
else
    fail "$name: no 'ECHO $target: PONG $target' within 90 s of the restore"
fi
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
expect_rc $name 137
if grep -qx "CONN 1 $target" "$E2E_TMP/echo.log"; then
    ok "$name: the host end's second connection got PING $target"
else
    fail "$name: no 'CONN 1 $target' in the listener's log"
fi
if grep -qx "LOG $target" "$log" && grep -qx "LOG 5" "$log"; then
    ok "$name: the log port's file has counts from before (5) and after ($target) the restore"
else
    fail "$name: the log file lacks 'LOG 5' or 'LOG $target'"
fi
d=$(disk_count)
if [[ -n $d && $d -ge $target ]]; then
    ok "$name: the disk holds count $d, written after the restore"
else
    fail "$name: the disk holds count '$d', not one written after the restore (>= $target)"
fi
boot_checks_end $name
wait "$listener" || true
e2e_finish
