#!/usr/bin/env bash
# vsock.sh: virtio-vsock (--vsock cid=N,socket=PATH): 16 host programs at once connect through
# PATH ("CONNECT 1234") to a guest echo server and get their data back intact, then 64 open at
# once echo 64 KiB each; a guest connection to host port 5000 reaches the host program listening
# on PATH_5000; one to a port nobody listens on is reset; PATH is gone after kiln exits.
# Usage (from the host): tests/e2e/run-vsock.sh BUILD_DIR. Runs where /dev/kvm is real.
# KILN_E2E_VSOCK_BYTES: bytes each host connection sends (default 1 MiB).
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: vsock.sh BUILD_DIR MODS}
mods=${2:?usage: vsock.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init vsock "$build/kiln" "$kernel"
initrd=$build/e2e/vsock-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-vsock.sh builds it on the host)"

sock=$E2E_TMP/v.sock
cid=7
bytes=${KILN_E2E_VSOCK_BYTES:-1048576}
# The host programs: wait for the guest's listener, 16 connections at once, then the echo
# server on PATH_5000 for the guest's connection. Results go to files in E2E_TMP.
python3 - "$sock" "$E2E_TMP" "$bytes" <<'PY' &
import hashlib, os, socket, sys, threading, time
path, tmp, size = sys.argv[1], sys.argv[2], int(sys.argv[3])

def connect_guest(port):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(300)
    s.connect(path)
    s.sendall(b"CONNECT %d\n" % port)
    line = b""
    while not line.endswith(b"\n"):
        c = s.recv(1)
        if not c:
            s.close()
            raise ConnectionError("closed before OK")
        line += c
    return s, line.decode().strip()

def note(name, text):
    with open(os.path.join(tmp, name), "a") as f:
        f.write(text + "\n")

deadline = time.time() + 400
while True:
    try:
        s, line = connect_guest(1234)
        s.close()
        note("h2g", "first: %s" % line)
        break
    except OSError as e:
        if time.time() > deadline:
            note("h2g", "gave up: %r" % e)
            sys.exit(1)
        time.sleep(0.5)

results = [None] * 16
def worker(i):
    try:
        s, line = connect_guest(1234)
        data = os.urandom(size)
        rx = bytearray()
        def reader():
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rx.extend(b)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join()
        s.close()
        results[i] = "%s %s %d" % (line, "same" if bytes(rx) == data else "DIFFERENT", len(rx))
    except Exception as e:
        results[i] = "error %r" % e

t0 = time.time()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
dt = time.time() - t0
for r in results:
    note("h2g", "conn: %s" % r)
note("h2g", "time: %.2f s for 16 x %d bytes each way: %.2f MiB/s each way"
     % (dt, size, 16 * size / dt / 1048576))

# 64 connections open at once (all connected before any data moves), 64 KiB each way on each.
socks, errors = [], []
for i in range(64):
    try:
        socks.append(connect_guest(1234))
    except OSError as e:
        errors.append(repr(e))
note("many", "open: %d of 64 %s" % (len(socks), " ".join(errors[:3])))
same = [0]
lock = threading.Lock()
def pump(s):
    try:
        data = os.urandom(65536)
        rx = bytearray()
        def reader():
            while True:
                b = s.recv(65536)
                if not b:
                    break
                rx.extend(b)
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join()
        s.close()
        if bytes(rx) == data:
            with lock:
                same[0] += 1
    except OSError:
        pass
t0 = time.time()
threads = [threading.Thread(target=pump, args=(s,)) for s, _ in socks]
for t in threads:
    t.start()
for t in threads:
    t.join()
note("many", "same: %d in %.2f s" % (same[0], time.time() - t0))

ls = socket.socket(socket.AF_UNIX)
ls.bind(path + "_5000")
ls.listen(4)
ls.settimeout(300)
c, _ = ls.accept()
got = hashlib.sha256()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    got.update(b)
    n += len(b)
    c.sendall(b)
c.shutdown(socket.SHUT_WR)
c.close()
note("g2h", "%d %s" % (n, got.hexdigest()))
PY
hostprog=$!

name=vsock
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --memory 256M \
    --cmdline "console=ttyS0 quiet vsock_mods=$mods vsock_tool=$build/e2e/vsock_tool" \
    --vsock "cid=$cid,socket=$sock" --timeout 600
wait "$hostprog" || true
boot_checks_begin
expect_rc $name 0
expect_console $name '^VSOCK insmod vmw_vsock_virtio_transport\.ko: ok' "the vsock driver loaded"
expect_console $name "^VSOCK cid: $cid\$" "the guest reads its CID from the device"
expect_console $name '^VSOCK listen: listening on 1234' "the guest listens on port 1234"
sed 's/^/  h2g | /' "$E2E_TMP/h2g" 2>/dev/null || true
same=$(grep -c "^conn: OK [0-9]* same $bytes\$" "$E2E_TMP/h2g" 2>/dev/null || true)
ports=$(sed -n 's/^conn: OK \([0-9]*\) .*/\1/p' "$E2E_TMP/h2g" 2>/dev/null | sort -u | wc -l)
if [[ $same -eq 16 && $ports -eq 16 ]]; then
    ok "$name: 16 parallel host connections, each its own host port, $bytes bytes echoed intact"
else
    fail "$name: $same of 16 host connections echoed intact ($ports host ports)"
fi
sed 's/^/  many | /' "$E2E_TMP/many" 2>/dev/null || true
if grep -q '^open: 64 of 64' "$E2E_TMP/many" 2>/dev/null && grep -q '^same: 64 ' "$E2E_TMP/many"; then
    ok "$name: 64 host connections open at once, 64 KiB echoed intact on each"
else
    fail "$name: 64 connections at once: $(tr '\n' ' ' <"$E2E_TMP/many" 2>/dev/null)"
fi
expect_console $name '^VSOCK no listener: rc=1 connect: Connection reset by peer' \
    "a guest connection to a host port nobody listens on is reset"
want=$(sed -n 's/^VSOCK g2h sha256: //p' "$OUT" | tr -d '\r')
expect_console $name "^VSOCK g2h echo sha256: $want" "the guest got its 1 MiB back from the host"
if [[ $(cat "$E2E_TMP/g2h" 2>/dev/null) == "1048576 $want" ]]; then
    ok "$name: the host program on PATH_5000 got the guest's 1 MiB, sha256 $want"
else
    fail "$name: the host program on PATH_5000 got '$(cat "$E2E_TMP/g2h" 2>/dev/null)', guest sent $want"
fi
if [[ ! -e $sock ]]; then
    ok "$name: $sock is gone after kiln exited"
else
    fail "$name: $sock is still there after kiln exited"
fi
boot_checks_end $name

e2e_finish
