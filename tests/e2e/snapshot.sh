#!/usr/bin/env bash
# snapshot.sh: a Linux guest counting on its console and its virtio-blk disk, with a vsock echo
# server on port 1234, is snapshotted through the API socket (kiln ctl SOCKET snapshot) while a
# host program holds a vsock connection to it, stopped, and restored with kiln run --restore: it
# goes on counting from where it was (not from 0), its disk writes after the restore land on the
# disk, the connection held at the snapshot is reset in the guest (the transport-reset event),
# and a new host connection through the vsock socket reaches the listener from before the
# snapshot and gets its echo. Its network (--net user, libslirp) works on too: the guest's
# periodic HTTP fetches from a server on L1's loopback go on after the restore. Usage (from the host): tests/e2e/run-snapshot.sh BUILD_DIR. Runs
# where /dev/kvm is real (in L1 when nested). Exit: 0 when every check passed; 1 otherwise.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: snapshot.sh BUILD_DIR MODS}
mods=${2:?usage: snapshot.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init snapshot "$build/kiln" "$kernel"
initrd=$build/e2e/snapshot-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-snapshot.sh builds it on the host)"

disk=$E2E_TMP/disk.img
truncate -s 8M "$disk"
sock=$E2E_TMP/api.sock
snap=$E2E_TMP/snap
vsk=$E2E_TMP/v.sock
tool=$build/e2e/vsock_tool
machine=(--memory 256M --disk "path=$disk" --vsock "cid=5,socket=$vsk" --net user)
# The guest fetches /count/N from this server (10.0.2.2 is the host's loopback through libslirp;
# L1 starts with lo down).
ip link set lo up 2>/dev/null || true
http_port=18080
http_log=$E2E_TMP/http.log
: >"$http_log"
# shellcheck disable=SC2016 # Python
python3 -c '
import http.server, sys
class Count(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
        with open(sys.argv[2], "a") as log:
            log.write(self.path + "\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Count).serve_forever()
' "$http_port" "$http_log" 2>"$E2E_TMP/http.err" &
http_pid=$!
trap 'kill "$http_pid" 2>/dev/null || true; rm -rf "$E2E_TMP"' EXIT
# http_counts: the counts the server was asked for, in order.
http_counts() { sed -n 's|^/count/\([0-9]*\)$|\1|p' "$http_log"; }
# vecho WORD: WORD through a new host connection to the guest's port 1234 and back (empty if not).
vecho() { echo "$1" | "$tool" host "$vsk" 1234 30 2>&1 || true; }
# disk_count: the counter the guest last wrote to the disk's first sector.
disk_count() { head -c 14 "$disk" | sed -n 's/^COUNT 0*\([0-9][0-9]*\)$/\1/p'; }

name=cold
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" "${machine[@]}" \
    --cmdline "console=ttyS0 quiet kiln_mods=$mods kiln_vsock_tool=$tool kiln_http=$http_port" \
    --api-socket "$sock" \
    --snapshot-dir "$snap" --timeout 300
boot_checks_begin
if wait_for_console "$OUT" '^COUNT 25' 240 "$KILN_PID"; then
    ok "$name: the guest counts ($(($(now_ms) - KILN_START_MS)) ms to COUNT 25)"
else
    fail "$name: no COUNT 25 on the console"
fi
n=$(http_counts | tail -n 1)
[[ -n $n ]] && ok "$name: the guest fetches over --net user (last /count/$n)" ||
    fail "$name: no HTTP fetch from the guest reached L1's server ($(cat "$E2E_TMP/http.err"))"
got=$(vecho before)
[[ $got == before ]] && ok "$name: a host connection through $vsk gets its echo from guest port 1234" ||
    fail "$name: vsock echo before the snapshot: '$got'"
# A connection open across the snapshot: its stdin a FIFO held open on fd 7 until after the kill.
mkfifo "$E2E_TMP/held.in"
"$tool" host "$vsk" 1234 30 <"$E2E_TMP/held.in" >"$E2E_TMP/held.out" 2>&1 &
held=$!
exec 7>"$E2E_TMP/held.in"
echo held >&7
for ((i = 0; i < 100; i++)); do
    [[ $(cat "$E2E_TMP/held.out") == held ]] && break
    sleep 0.1
done
[[ $(cat "$E2E_TMP/held.out") == held ]] && ok "$name: a host connection is open (echoed) at the snapshot" ||
    fail "$name: the held connection got '$(cat "$E2E_TMP/held.out")'"
t0=$(now_ms)
reply=$("$E2E_KILN" ctl "$sock" snapshot 2>&1) && ok "$name: snapshot in $(($(now_ms) - t0)) ms: $reply" ||
    fail "$name: ctl snapshot: $reply"
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
exec 7>&-
wait "$held" || true
at=$(last_count)
expect_rc $name 137
echo "$name: the last count before the kill: $at; state $(stat -c %s "$snap/state") bytes, memory $(du -k "$snap/memory" | cut -f1) KiB on disk"
boot_checks_end $name

# The restored guest goes on: its first count is near where the snapshot was, far from 0.
name=restored
kiln_start $name /dev/null --restore "$snap" "${machine[@]}" --api-socket "$sock" --timeout 300
boot_checks_begin
restored_from $name "$at" 20
first=$FIRST
target=$((${first:-0} + 15))
if wait_for_console "$OUT" "^COUNT $target"$'\r'"?\$" 60 "$KILN_PID"; then
    ok "$name: 15 more counts after the restore"
else
    fail "$name: no COUNT $target within 60 s of the restore"
fi
# The guest dropped the connection it had at the snapshot (kiln's transport-reset event): its
# echo child's read fails. Its listener, from before the snapshot, takes a new connection.
if wait_for_console "$OUT" '^echo: read: ' 30 "$KILN_PID"; then
    ok "$name: the guest reset the connection open at the snapshot ($(tr -d '\r' <"$OUT" | grep -a -m1 '^echo: read: '))"
else
    fail "$name: the connection open at the snapshot was not reset in the guest (no transport reset?)"
fi
t0=$(now_ms)
got=$(vecho after)
[[ $got == after ]] &&
    ok "$name: a new host connection reaches the guest's listener from before the snapshot: echo in $(($(now_ms) - t0)) ms" ||
    fail "$name: vsock echo after the restore: '$got'"
# Its network goes on: a fetch of a count made after the restore reached the server.
for ((i = 0; i < 100; i++)); do
    n=$(http_counts | tail -n 1)
    [[ -n $n && $n -ge $target ]] && break
    sleep 0.1
done
if [[ -n $n && $n -ge $target ]]; then
    ok "$name: the guest's network works on: it fetched /count/$n (>= $target) through libslirp"
else
    fail "$name: no HTTP fetch of a count after the restore (last '$n', wanted >= $target)"
fi
info=$("$E2E_KILN" ctl "$sock" info 2>&1) || true
grep -q '"state": "running"' <<<"$info" && ok "$name: the API answers: running" ||
    fail "$name: ctl info: $info"
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
expect_rc $name 137
d=$(disk_count)
if [[ -n $d && $d -ge $target ]]; then
    ok "$name: the disk holds count $d, written after the restore"
else
    fail "$name: the disk holds count '$d', not one written after the restore (>= $target)"
fi
boot_checks_end $name

e2e_finish
