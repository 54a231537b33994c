#!/usr/bin/env bash
# in-group.sh BUILD_DIR: run BUILD_DIR's kvm-label tests here, where /dev/kvm is real (the host,
# or the nested harness's L1), recording each in $KILN_E2E_OUT/results (see replay.sh).
set -u
build=$1
# In L1 the host's root is read-only, and ctest writes its logs into the build tree: put a
# writable in-memory layer over it (a build under /tmp already has one).
if [[ ! -w $build ]]; then
  up=$(mktemp -d /dev/shm/kiln-kvm-tree.XXXXXX)
  mkdir -p "$up/upper" "$up/work" "$up/out"
  # The results dir is a writable share mounted inside the build tree: the overlay would hide
  # it (an overlay's lower layer leaves out the mounts below it), so hold on to it and put it
  # back on top. L1's init writes the command's status there after we exit.
  inside=0
  case $KILN_E2E_OUT/ in "$build"/*) inside=1 ;; esac
  [[ $inside -eq 0 ]] || mount --bind "$KILN_E2E_OUT" "$up/out" || exit 125
  mount -t overlay overlay -o "lowerdir=$build,upperdir=$up/upper,workdir=$up/work" "$build" || {
    echo "in-group: cannot make $build writable (overlayfs)" >&2
    exit 125
  }
  if [[ $inside -eq 1 ]]; then
    mount --bind "$up/out" "$KILN_E2E_OUT" || {
      echo "in-group: cannot put the results dir $KILN_E2E_OUT back over the build tree" >&2
      exit 125
    }
  fi
fi
echo "kvm group: $(uname -r), /dev/kvm $(stat -c %a /dev/kvm 2>/dev/null), $(nproc) CPU(s)"
export KILN_KVM_RECORD=$KILN_E2E_OUT/results
# The group's own test is excluded twice over: by name, and as the setup of the fixture.
ctest --test-dir "$build" -L '^kvm$' -E '^kvm\.group$' -FS kiln_kvm_group --output-on-failure
status=$?
ls "$KILN_KVM_RECORD"/*.rc >/dev/null 2>&1 || {
  echo "in-group: no test recorded a result (ctest status $status)" >&2
  exit 125
}
exit 0
