#!/usr/bin/env bash
# replay.sh NAME COMMAND...: the ctest entry of every kvm-label test; runs COMMAND in the KVM group
# and replays its recorded result everywhere else.
#
# kvm.group (group.sh) runs all kvm tests at once where KVM is real: on the host when it has
# VT-x/AMD-V, else in one nested L1 boot. There this script runs COMMAND and records its output
# and status (KILN_KVM_RECORD=DIR). Called by ctest afterwards, it prints the recorded output and
# exits with the recorded status, so each test passes or fails under its own name.
# KILN_KVM_DIRECT=1 runs COMMAND here and now (a developer on a host with real KVM).
set -u
name=$1
shift

if [[ -n ${KILN_KVM_RECORD:-} ]]; then
  mkdir -p "$KILN_KVM_RECORD"
  "$@" 2>&1 | tee "$KILN_KVM_RECORD/$name.log"
  rc=${PIPESTATUS[0]}
  echo "$rc" >"$KILN_KVM_RECORD/$name.rc"
  exit "$rc"
fi
if [[ ${KILN_KVM_DIRECT:-0} == 1 ]]; then
  exec "$@"
fi

res=${KILN_KVM_RESULTS:?KILN_KVM_RESULTS must name kvm.group\'s results dir}
if [[ -f $res/none ]]; then
  echo "SKIP: $(cat "$res/none")"
  exit 77
fi
if [[ ! -f $res/where ]]; then
  echo "FAIL: kvm.group left no results in $res (it runs first when ctest selects a kvm test)" >&2
  exit 1
fi
rcf=$res/run/results/$name.rc
if [[ ! -f $rcf ]]; then
  echo "FAIL: $name did not run in the KVM group ($(cat "$res/where")); see kvm.group's output" >&2
  exit 1
fi
echo "kvm group: ran $(cat "$res/where")"
cat "$res/run/results/$name.log"
rc=$(cat "$rcf")
# The group runs only where KVM is real: a test that skipped there hid untested code.
if [[ $rc == 77 ]]; then
  echo "FAIL: $name skipped inside the KVM group, where KVM is real" >&2
  exit 1
fi
exit "$rc"
