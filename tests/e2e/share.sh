#!/usr/bin/env bash
# share.sh: a read-only virtio-9p share (--share PATH,tag=TAG,ro): a Linux guest mounts it, reads
# files (sha256 checked), lists a directory of 300 entries, reads a symlink as a link, and every
# change is refused (EROFS); a FIFO shows as a FIFO; the host directory is unchanged afterwards.
# Then a writable one: files, directories, renames, links, modes, times, truncation made by the
# guest are on the host; no device node, no setuid bit, nothing outside the share changes. With
# files open in the share and its cwd there, that guest is snapshotted (--api-socket, kiln ctl
# SOCKET snapshot DIR), killed and restored (kiln run --restore DIR): it goes on reading and
# writing through the same open files, lists its cwd, sees the host's changes made in between,
# and its writes reach the host; a file it held open and the host removed is stale (ESTALE).
# Usage (from the host): tests/e2e/run-share.sh BUILD_DIR. Runs where /dev/kvm is real.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: share.sh BUILD_DIR MODS}
mods=${2:?usage: share.sh BUILD_DIR MODS}
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
e2e_init share "$build/kiln" "$kernel"
initrd=$build/e2e/share-guest.cpio.gz
[[ -r $initrd ]] || e2e_abort "missing $initrd (run-share.sh builds it on the host)"

dir=$E2E_TMP/share
mkdir -p "$dir/dir"
token=tok$RANDOM$RANDOM
echo "$token" >"$dir/hello.txt"
head -c $((8 * 1048576)) /dev/urandom >"$dir/big.bin"
for i in $(seq 300); do echo "$i" >"$dir/dir/entry-$i"; done
ln -s ../.. "$dir/link"
mkfifo "$dir/fifo"
snapshot() { (cd "$dir" && find . -printf '%p %s %T@\n' | LC_ALL=C sort && cat hello.txt); }
before=$(snapshot)

name=share
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --memory 256M \
    --cmdline "console=ttyS0 quiet share_mods=$mods share_tag=hostshare share_mode=ro" \
    --share "$dir,tag=hostshare,ro" --timeout 240
boot_checks_begin
expect_rc $name 0
expect_console $name '^SHARE mount rc: 0' "the guest mounted the share"
expect_console $name "^SHARE hello: $token" "a small file reads back"
expect_console $name "^SHARE big sha256: $(sha256sum "$dir/big.bin" | cut -d' ' -f1)" \
    "8 MiB read back intact"
expect_console $name '^SHARE dir entries: 300' "a directory of 300 entries is listed whole"
expect_console $name "^SHARE dir sizes: $(cat "$dir"/dir/* | wc -c)" "and every entry reads"
expect_console $name '^SHARE readlink: \.\./\.\.$' "a symlink is a link (the guest resolves it)"
expect_console $name "^SHARE stat hello: $(stat -c '%s %a' "$dir/hello.txt")" "attributes match"
for op in create append mkdir rm; do
    expect_console $name "^SHARE $op: rc [1-9].*Read-only file system" "$op is refused (EROFS)"
done
expect_console $name '^SHARE fifo: fifo$' "a FIFO shows as one"
expect_console $name '^SHARE umount rc: 0' "the guest unmounted the share"
if [[ $(snapshot) == "$before" ]]; then
    ok "$name: the host directory is unchanged (names, sizes, times, content)"
else
    fail "$name: the host directory changed"
fi
boot_checks_end $name

# A writable share: the guest's changes are on the host afterwards, as the guest made them.
rw=$E2E_TMP/rw
mkdir -p "$rw/removeme/sub" "$rw/work"
echo ro-line >"$rw/work/ro.txt"
echo gone >"$rw/work/gone.txt"
: >"$rw/work/held.txt"
sock=$E2E_TMP/api.sock
snap=$E2E_TMP/snap
echo secret-$token >"$E2E_TMP/secret"
ln -s ../secret "$rw/outside"
name=share-rw
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" --memory 256M \
    --cmdline "console=ttyS0 quiet share_mods=$mods share_tag=rwshare share_mode=rw" \
    --share "$rw,tag=rwshare" --api-socket "$sock" --timeout 240
boot_checks_begin
if wait_for_console "$OUT" '^SHARE snap ready' 200 "$KILN_PID"; then
    t0=$(now_ms)
    if reply=$("$E2E_KILN" ctl "$sock" snapshot "$snap" 2>&1); then
        ok "$name: snapshot with the share in use, in $(($(now_ms) - t0)) ms: $reply"
    else
        fail "$name: ctl snapshot: $reply"
    fi
else
    fail "$name: the guest never said 'SHARE snap ready'"
fi
"$E2E_KILN" ctl "$sock" kill >/dev/null 2>&1 || true
kiln_wait $name
expect_rc $name 137
expect_console $name '^SHARE mount rc: 0' "the guest mounted the share"
# host_is WHAT GOT WANT: one comparison of what the host sees.
host_is() {
    if [[ $2 == "$3" ]]; then ok "$name: $1: '$2'"; else fail "$name: $1: '$2', expected '$3'"; fi
}
host_is "created file" "$(cat "$rw/created.txt" | tr '\n' ' ')" "line1 line2 "
host_is "3 MB file" "$(sha256sum "$rw/big.bin" | cut -d' ' -f1)" "$(guest_value 'SHARE big sha256')"
host_is "nested directories, renamed" "$(cat "$rw/tree/c/b/file") $(ls "$rw/tree")" "deep c"
host_is "renamed file" "$(cat "$rw/after.txt") $(ls "$rw" | grep -c before)" "moved 0"
host_is "unlinked and removed" "$(ls -A "$rw" | grep -cE '^(doomed.txt|removeme)$')" "0"
host_is "mode" "$(stat -c %a "$rw/created.txt")" "640"
host_is "mtime" "$(stat -c %Y "$rw/created.txt")" "981173106"
host_is "symlink" "$(readlink "$rw/link.txt")" "created.txt"
host_is "hard link" "$(stat -c '%h %i' "$rw/hard.txt")" "$(stat -c '%h %i' "$rw/created.txt")"
host_is "truncated" "$(cat "$rw/trunc.txt")" "0123"
host_is "FIFO" "$(stat -c %F "$rw/pipe")" "fifo"
host_is "setuid bit dropped" "$(stat -c %a "$rw/suid.txt")" "755"
host_is "owner is kiln's user" "$(stat -c %u "$rw/created.txt")" "$(id -u)"
expect_console $name '^SHARE mknod dev: rc [1-9].*Operation not permitted' \
    "a device node is refused"
host_is "no device node" "$(ls "$rw" | grep -c '^dev$')" "0"
expect_console $name '^SHARE read outside: rc [1-9]' \
    "a symlink out of the share leads into the guest's own tree, not the host's"
host_is "the file outside the share" "$(cat "$E2E_TMP/secret")" "secret-$token"
host_is "the symlink out" "$(readlink "$rw/outside")" "../secret"
expect_console $name '^SHARE fsync: rc 0' "fsync works"
host_is "held.txt at the snapshot" "$(cat "$rw/work/held.txt")" "before"
refute_console $name '^SHARE snap go' "the guest waited for the restore"
boot_checks_end $name

# In between, on the host: a file the guest holds open removed, a file made, the go signal.
rm "$rw/work/gone.txt"
echo host-made >"$rw/work/from-host.txt"
touch "$rw/go"
name=share-restored
kiln_boot $name --restore "$snap" --memory 256M --share "$rw,tag=rwshare" --timeout 60
boot_checks_begin
expect_rc $name 0
expect_console $name '^SHARE snap go' "the restored guest goes on"
expect_console $name '^SHARE snap write held: rc 0' "a file open for writing writes on"
expect_console $name '^SHARE snap create: rc 0' "a new file in the cwd"
expect_console $name '^SHARE snap ls: from-host.txt held.txt ro.txt $' \
    "its cwd in the share lists, with the host's changes"
host_is "held.txt: written through one open file before and after" \
    "$(tr '\n' ' ' <"$rw/work/held.txt")" "before after "
expect_console $name '^SHARE snap read: ro-line$' "a file open for reading reads on"
expect_console $name '^SHARE snap removed: rc [1-9].*Stale file handle' \
    "a file open when the host removed it is stale"
host_is "a file made after the restore" "$(cat "$rw/work/new.txt")" "new"
expect_console $name '^SHARE snap host file: host-made$' "a file the host made reads"
expect_console $name '^SHARE umount rc: 0' "the guest unmounted the share"
boot_checks_end $name

e2e_finish
