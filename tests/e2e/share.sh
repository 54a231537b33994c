#!/usr/bin/env bash
# share.sh: a read-only virtio-9p share (--share PATH,tag=TAG,ro): a Linux guest mounts it, reads
# files (sha256 checked), lists a directory of 300 entries, reads a symlink as a link, and every
# change is refused (EROFS); a FIFO shows as a FIFO; the host directory is unchanged afterwards.
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
    --cmdline "console=ttyS0 quiet share_mods=$mods share_tag=hostshare" \
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

e2e_finish
