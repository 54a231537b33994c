#!/usr/bin/env bash
# ports.sh: named virtio-console ports: a guest finds them by name (as /dev/virtio-ports/NAME),
# streams to a host file (--port NAME,path=FILE) and talks both ways over a unix socket the host
# listens on (--port NAME,socket=PATH), while the serial console stays separate.
# Usage (from the host): tests/e2e/run-ports.sh BUILD_DIR. Runs where /dev/kvm is real.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: ports.sh BUILD_DIR MODS}
mods=${2:?usage: ports.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init ports "$build/kiln" "$kernel"
initrd=$build/e2e/ports-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-ports.sh builds it on the host)"

token=tok$RANDOM$RANDOM
results=$E2E_TMP/results.bin
sock=$E2E_TMP/echo.sock
# A file of the user's that the port appends to: what was there stays.
echo "kept line" >"$results"
# The host end of "echo": listen, send "ping TOKEN" and 1 MiB, read the answer line.
python3 - "$sock" "$token" "$E2E_TMP" <<'PY' &
import hashlib, os, socket, sys
path, token, tmp = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(1)
open(os.path.join(tmp, "listening"), "w").close()
s.settimeout(300)
c, _ = s.accept()
data = os.urandom(1 << 20)
c.sendall(b"ping " + token.encode() + b"\n" + data)
buf = b""
while not buf.endswith(b"\n"):
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
with open(os.path.join(tmp, "answer"), "w") as f:
    f.write(buf.decode(errors="replace").strip() + "\n")
    f.write(hashlib.sha256(data).hexdigest() + "\n")
PY
listener=$!
for _ in $(seq 100); do [[ -e $E2E_TMP/listening ]] && break; sleep 0.1; done

name=ports
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --memory 256M \
    --cmdline "console=ttyS0 quiet ports_mods=$mods ports_token=$token" \
    --port "results,path=$results" --port "echo,socket=$sock" --timeout 240
wait "$listener" || true
boot_checks_begin
expect_rc $name 0
expect_console $name '^PORTS insmod virtio_console\.ko: ok' "virtio_console loaded"
expect_console $name '^PORTS port vport[0-9]+p1: results$' "port 1 is named results"
expect_console $name '^PORTS port vport[0-9]+p2: echo$' "port 2 is named echo"
want=$(sed -n 's/^PORTS results sha256: //p' "$OUT" | tr -d '\r')
got=$(tail -c +11 "$results" | sha256sum | cut -d' ' -f1)
if [[ $(head -n 1 "$results") == "kept line" && -n $want && $got == "$want" ]]; then
    ok "$name: results file: the user's line kept, then $(($(stat -c %s "$results") - 10)) bytes from the guest, sha256 $got as the guest sent"
else
    fail "$name: results file: first line '$(head -n 1 "$results")', sha256 $got, guest sent '$want'"
fi
expect_console $name "^PORTS echo got: ping $token" "the guest read the host's line"
h2g=$(sed -n 2p "$E2E_TMP/answer" 2>/dev/null || true)
expect_console $name "^PORTS echo h2g sha256: $h2g" "the guest got the host's 1 MiB intact"
if [[ $(head -n 1 "$E2E_TMP/answer" 2>/dev/null) == "pong $token $h2g" ]]; then
    ok "$name: the host read the guest's answer 'pong $token <sha256>'"
else
    fail "$name: the host's answer file: '$(head -n 1 "$E2E_TMP/answer" 2>/dev/null)'"
fi
refute_console $name "results from the guest" "port data stays off the serial console"
boot_checks_end $name

e2e_finish
