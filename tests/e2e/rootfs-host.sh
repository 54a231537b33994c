#!/usr/bin/env bash
# rootfs-host.sh: --rootfs-host: the distro kernel boots with this machine's / as its root (9p,
# read-only, under a tmpfs overlay) and runs a command; kiln exits with the command's status.
# Usage (from the host): tests/e2e/run-rootfs-host.sh BUILD_DIR. Runs where /dev/kvm is real
# (in L1 when nested, where / is the host's). Exit: 0 when every check passed; 1 otherwise.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: rootfs-host.sh BUILD_DIR}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init rootfs-host "$build/kiln" "$kernel"

# A directory of this machine's, shared writable on top (under /tmp, which the guest has fresh):
# where a CI job's command would leave its results.
work=$E2E_TMP/work
mkdir -p "$work"
token=tok$RANDOM$RANDOM
echo "$token" >"$work/marker"
probe=/etc/kiln-rootfs-host-$token
# The command: what the guest sees, a change to its root, then a status of its own (3).
script='echo "RH uname: $(uname -r)"; echo "RH pwd: $(pwd)"; echo "RH marker: $(cat marker)"
echo "RH os: $(. /etc/os-release; echo "$ID $VERSION_ID")"
echo "RH etc: $(grep " /etc " /proc/mounts)"
msg=$( { echo changed >'"$probe"'; } 2>&1); echo "RH etc write: rc $? $msg"
echo "RH tmp: $(ls -A /tmp)"; echo scratch >/tmp/s && echo "RH tmp write: $(cat /tmp/s)"
echo "result $(cat marker)" >result.txt; exit 3'

name=command-status
cd "$work"
kiln_boot $name --kernel "$kernel" --rootfs-host --memory 512M --no-reboot \
    --share "$work,tag=work" --timeout 240 -- sh -c "$script"
cd /
boot_checks_begin
expect_rc $name 3
expect_console $name "^RH uname: $kver\$" "the guest runs the kernel given"
expect_console $name "^RH pwd: $work\$" "the command starts in kiln's working directory"
expect_console $name "^RH marker: $token\$" "the --share is mounted at its host path"
expect_console $name "^RH etc: [^ ]+ /etc 9p ro," "the host's /etc is there, read-only, over 9p"
expect_console $name "^RH os: $(. /etc/os-release; echo "$ID $VERSION_ID")\$" \
    "the root is this machine's"
expect_console $name '^RH etc write: rc [1-9].*Read-only file system' \
    "a change to the host's files is refused (EROFS)"
# Only the way to the share, made by kiln's init; none of this machine's /tmp.
expect_console $name "^RH tmp: ${E2E_TMP#/tmp/}\$" "/tmp is the guest's own"
expect_console $name '^RH tmp write: scratch$' "and writable"
if [[ $(cat "$work/result.txt" 2>&1) == "result $token" ]]; then
    ok "$name: the command's result file is on this machine"
else
    fail "$name: no result file from the command in $work"
fi
if [[ -e $probe ]]; then
    fail "$name: the guest's write reached this machine ($probe)"
else
    ok "$name: nothing was written on this machine"
fi
boot_checks_end $name

name=command-true
kiln_boot $name --kernel "$kernel" --rootfs-host --memory 512M --no-reboot --timeout 240 -- true
boot_checks_begin
expect_rc $name 0
boot_checks_end $name

name=command-missing
kiln_boot $name --kernel "$kernel" --rootfs-host --memory 512M --no-reboot --timeout 240 \
    -- /no/such/command
boot_checks_begin
# 127 (not found) is above the statuses kiln passes on as they are: 123, and a warning.
expect_rc $name 123
if grep -q 'status 127' "$ERR"; then ok "$name: kiln warns of status 127"; else
    fail "$name: no warning of status 127 on stderr"; fi
expect_console $name 'kiln-init: /no/such/command: No such file or directory' \
    "init says why the command did not start"
boot_checks_end $name

# No command: an interactive shell on the console, with its exit status kiln's. Input only after
# the prompt (bytes sent before the guest's serial driver starts are lost, see console.sh).
name=shell
fifo=$E2E_TMP/stdin.fifo
mkfifo "$fifo"
kiln_start $name "$fifo" --kernel "$kernel" --rootfs-host --memory 512M --no-reboot --timeout 240
exec 3>"$fifo"
boot_checks_begin
if wait_for_console "$OUT" '^# ' 200 "$KILN_PID"; then
    ok "$name: the shell prompts after $(($(now_ms) - KILN_START_MS)) ms"
    # shellcheck disable=SC2016 # $((...)) is for the guest's shell
    echo 'echo $((6*7))-answer; tty; exit 5' >&3
else
    fail "$name: no shell prompt"
fi
kiln_wait $name
exec 3>&-
expect_rc $name 5
expect_console $name '^42-answer' "the shell ran what was typed"
expect_console $name '^/dev/ttyS0' "the console is the shell's terminal"
boot_checks_end $name

e2e_finish
