#!/usr/bin/env bash
# group.sh HARNESS BUILD_DIR RESULTS_DIR: ctest's kvm.group, the setup of every kvm-label test.
#
# Runs all of BUILD_DIR's kvm tests in one go where KVM is real: `harness run` picks the host
# when it has VT-x/AMD-V, else one nested QEMU L1 boot with kvm-amd. Each test's output and
# status land in RESULTS_DIR/run/results for replay.sh; RESULTS_DIR/where says where they ran.
# Only when neither the host nor the harness can run KVM is there RESULTS_DIR/none, with the
# reason: then the kvm tests skip, and `make check` prints that line.
set -u
harness=$1 build=$2 res=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -n ${KILN_KVM_RECORD:-} ]]; then
  echo "kvm.group: already inside the KVM group; nothing to do"
  exit 0
fi
rm -rf "$res"
mkdir -p "$res/run"

# The host's /dev/kvm runs the tiny guests when the hello guest boots there and greets; an
# emulating one (kvm_pvm) can, real VT-x/AMD-V does. Prints why not, or nothing.
host_kvm_problem() {
  local out
  [[ -c /dev/kvm ]] || { echo "no /dev/kvm"; return; }
  out=$(timeout -s KILL 60 "$build/kiln" run --kernel "$build/guests/hello.elf" --timeout 30 \
    </dev/null 2>&1)
  local rc=$?
  [[ $rc -eq 0 && $out == "Hello from kiln guest" ]] ||
    echo "the hello guest did not run there (status $rc: $(head -n 1 <<<"$out"))"
}

# Direct on the host where it can run them, else nested (KILN_E2E_MODE forces either).
if [[ -z ${KILN_E2E_MODE:-} ]]; then
  why=$(host_kvm_problem)
  if [[ -z $why ]]; then
    export KILN_E2E_MODE=direct
    mods=$(ls /sys/module | grep -E '^kvm_' | tr '\n' ' ')
    note="direct on the host (its /dev/kvm, ${mods% }, runs the tiny guests)"
    echo "kvm.group: $note"
  else
    export KILN_E2E_MODE=nested
    echo "kvm.group: not on the host ($why): in the nested harness"
  fi
fi
# 4.5 GiB: guest.e820 gives its guest 3.5 GiB, which L1's KVM backs with L1 RAM.
export KILN_E2E_L1_MEMORY=${KILN_E2E_L1_MEMORY:-4608}
start=$(date +%s)
bash "$harness" run --timeout "${KILN_KVM_GROUP_TIMEOUT:-2400}" --out "$res/run" \
  "$here/in-group.sh" "$build" > >(tee "$res/harness.out") 2> >(tee "$res/harness.err" >&2)
rc=$?
wait
secs=$(($(date +%s) - start))

case $rc in
  0)
    where=${note:-}
    [[ -n $where ]] || where=$(sed -n 's/^harness: \(direct\|nested\)\(.*\)/\1\2/p' "$res/harness.err" | head -n 1)
    echo "${where:-unknown}" >"$res/where"
    pass=0 fail=0 skip=0
    for f in "$res"/run/results/*.rc; do
      case $(cat "$f") in 0) pass=$((pass + 1)) ;; 77) skip=$((skip + 1)) ;; *) fail=$((fail + 1)) ;; esac
    done
    echo "kvm.group: $pass passed, $fail failed, $skip skipped in $secs s ($where)"
    exit 0
    ;;
  77)
    why=$(sed -n 's/^SKIP: harness: //p' "$res/harness.out" "$res/harness.err" 2>/dev/null | head -n 1)
    echo "kvm tests skipped: neither this host's /dev/kvm nor the nested harness can run KVM (${why:-harness skipped})" |
      tee "$res/none"
    exit 0
    ;;
  *)
    echo "kvm.group: the KVM group failed (harness status $rc after $secs s)" >&2
    exit 1
    ;;
esac
