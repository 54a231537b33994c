#!/usr/bin/env bash
# smoke.sh: boot the distro kernel under kiln to a busybox init and out again (poweroff, reboot).
# Usage (from the host): tests/e2e/run-smoke.sh BUILD_DIR, which builds the guest initramfs and
# then runs `harness run tests/e2e/smoke.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when
# nested), so it only reads BUILD_DIR: the host's root is read-only in L1.
# Exit: 0 when both boots reached the guest's init, printed its facts and exited 0; 1 otherwise.
set -euo pipefail

build=${1:?usage: smoke.sh BUILD_DIR}
kiln=$build/kiln
initrd=$build/e2e/smoke-guest.cpio.gz
# The harness exports the kernel it picked; in L1 that is the one L1 itself runs.
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

for f in "$kiln" "$initrd" "$kernel"; do
    [[ -r $f ]] || { echo "FAIL: missing $f" >&2; exit 1; }
done
echo "kernel: $kernel"
echo "where: ${KILN_E2E_MODE:-direct}, running $(uname -r), /dev/kvm $(stat -c %A /dev/kvm)"

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# boot NAME EXPECTED_RCS CMDLINE: boot the smoke guest once, report status, time and console.
boot() {
    local name=$1 want=$2 cmdline=$3 start end rc=0 out=$tmp/$1.out err=$tmp/$1.err
    echo "=== $name: kiln run --cmdline \"$cmdline\""
    start=$(date +%s%N)
    # --timeout: a kernel that hangs (say, halting for lack of ACPI power-off) ends as exit 124.
    "$kiln" run --kernel "$kernel" --initrd "$initrd" --cmdline "$cmdline" \
        --memory 256M --timeout 120 --no-reboot </dev/null >"$out" 2>"$err" || rc=$?
    end=$(date +%s%N)
    # The serial console ends lines with CR LF.
    tr -d '\r' <"$out" >"$out.txt"
    mv "$out.txt" "$out"
    # Keep the full console where the harness caller can read it (harness run --out DIR).
    if [[ -n ${KILN_E2E_OUT:-} ]]; then cp "$out" "$err" "$KILN_E2E_OUT/"; fi
    echo "$name: kiln exit status $rc after $(((end - start) / 1000000)) ms"
    echo "--- $name: kiln stderr"
    sed 's/^/  | /' "$err"
    echo "--- $name: guest console (last 40 lines)"
    tail -n 40 "$out" | sed 's/^/  | /'
    grep -q '^KILN-GUEST-INIT' "$out" || fail "$name: the guest never reached its init"
    grep -qxF "SMOKE uname -r: $(basename "$kernel" | sed 's/^vmlinuz-//')" "$out" ||
        fail "$name: no 'SMOKE uname -r' line naming the booted kernel"
    grep -qxF "SMOKE nproc: 1" "$out" || fail "$name: no 'SMOKE nproc: 1' line"
    case " $want " in
        *" $rc "*) ;;
        *) fail "$name: kiln exit status $rc, expected one of: $want" ;;
    esac
}

# poweroff: ACPI S5 through kiln's power device; kiln exits 0.
boot poweroff "0" "console=ttyS0 quiet"
# reboot=k: reset through the i8042, which --no-reboot turns into exit 128: the full round trip.
boot reboot "128" "console=ttyS0 reboot=k"

if [[ $failures -ne 0 ]]; then
    echo "smoke: $failures check(s) failed"
    exit 1
fi
echo "smoke: ok"
