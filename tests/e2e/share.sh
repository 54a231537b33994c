#!/usr/bin/env bash
# share.sh: a read-only virtio-9p share (--share PATH,tag=TAG,ro): a Linux guest mounts it, reads
# files (sha256 checked), lists a directory of 300 entries, reads a symlink as a link, and every
# change is refused (EROFS); a FIFO shows as a FIFO; the host directory is unchanged afterwards.
# Then a writable one: files, directories, renames, links, modes, times, truncation made by the
# guest are on the host; no device node, no setuid bit, nothing outside the share changes.
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
mkdir -p "$rw/removeme/sub"
echo secret-$token >"$E2E_TMP/secret"
ln -s ../secret "$rw/outside"
name=share-rw
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --memory 256M \
    --cmdline "console=ttyS0 quiet share_mods=$mods share_tag=rwshare share_mode=rw" \
    --share "$rw,tag=rwshare" --timeout 240
boot_checks_begin
expect_rc $name 0
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
expect_console $name '^SHARE umount rc: 0' "the guest unmounted the share"
boot_checks_end $name

e2e_finish
