#!/usr/bin/env bash
# disk.sh: virtio-blk under kiln with the distro kernel: over virtio-mmio (found through ACPI),
# then ext4 round trip, ro, serials, SIGKILL over virtio-pci.
# Usage (from the host): tests/e2e/run-disk.sh BUILD_DIR, which prepares the guest image and runs
# `harness run tests/e2e/disk.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when nested).
# Exit: 0 when every check passed; 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: disk.sh BUILD_DIR}
# The harness exports the kernel it picked; in L1 that is the one L1 itself runs, whose modules
# run-disk.sh put into the guest image.
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init disk "$build/kiln" "$kernel"
initrd=$build/e2e/disk-guest.cpio.gz
mods=$build/e2e/virtio-blk-$kver
for f in "$initrd" "$mods/load-order"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-disk.sh builds it on the host)"
done
# Disk images live in E2E_TMP (L1's /tmp, writable), since L1 sees the host's root read-only.
img=$E2E_TMP/fs.img
# The guest runs the host's mke2fs, which run-disk.sh put into its image at the same path.
mke2fs=$(readlink -f "$(command -v mke2fs)")
base="console=ttyS0 quiet kiln_mods=$mods kiln_mke2fs=$mke2fs"

# gv KEY: the value of the guest's "KEY: value" console line (empty if none). KEY is matched as
# plain text, unlike lib.sh's guest_value (a sed pattern): keys here hold paths with slashes.
gv() {
    awk -v k="$1: " 'index($0, k) == 1 { print substr($0, length(k) + 1); exit }' "$OUT"
}

# sha FILE: the sha256 of FILE.
sha() {
    sha256sum "$1" | cut -d' ' -f1
}

# expect_value NAME KEY WANT WHAT: the guest's "KEY: value" line must say WANT.
expect_value() {
    local got
    got=$(gv "$2")
    if [[ $got == "$3" ]]; then
        ok "$1: $4: $2: $got"
    else
        fail "$1: $4: $2: '$got', want '$3'"
    fi
}

# expect_nonzero NAME KEY WHAT: the guest's "KEY: STATUS (...)" line must have a non-zero STATUS.
expect_nonzero() {
    local got
    got=$(gv "$2")
    if [[ $got =~ ^[1-9][0-9]*\  ]]; then
        ok "$1: $3: $2: $got"
    else
        fail "$1: $3: $2: '$got', want a non-zero status"
    fi
}

# expect_modules NAME: every module loaded in the guest.
expect_modules() {
    if grep -q '^DISK insmod .*: failed$' "$OUT"; then
        fail "$1: insmod failed: $(grep '^DISK insmod .*: failed$' "$OUT" | tr '\n' ' ')"
    else
        ok "$1: modules loaded: $(grep -c '^DISK insmod .*: ok$' "$OUT")"
    fi
}

# dump_sum NAME IMAGE PATH WANT: PATH read out of the ext4 IMAGE with debugfs has sha256 WANT.
dump_sum() {
    local name=$1 image=$2 path=$3 want=$4 got
    rm -f "$E2E_TMP/dump"
    debugfs -R "dump $path $E2E_TMP/dump" "$image" 2>"$E2E_TMP/debugfs.err" || true
    if [[ ! -f $E2E_TMP/dump ]]; then
        fail "$name: debugfs could not dump $path: $(tr '\n' ' ' <"$E2E_TMP/debugfs.err")"
        return
    fi
    got=$(sha "$E2E_TMP/dump")
    if [[ -n $want && $got == "$want" ]]; then
        ok "$name: host reads $path ($(stat -c %s "$E2E_TMP/dump") bytes) with sha256 $got," \
            "as the guest wrote"
    else
        fail "$name: host reads $path with sha256 $got; the guest printed '$want'"
    fi
}

# --- 0. --transport mmio with the distro kernel: Debian's has no virtio_mmio.device= support
# (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is off), so it can only find the disk through the DSDT's
# LNRO0005 entry, and must then read what the host wrote and write what the host reads.
name=mmio
m=$E2E_TMP/mmio.img
truncate -s 16M "$m"
head -c 1M /dev/urandom >"$E2E_TMP/pattern"
dd if="$E2E_TMP/pattern" of="$m" bs=1M seek=1 conv=notrunc status=none
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=mmio" \
    --transport mmio --disk "path=$m" --timeout 240
boot_checks_begin
expect_rc $name 0
expect_modules $name
expect_value $name 'DISK disks' vda "one disk"
expect_value $name 'DISK vda transport' 'virtio-mmio LNRO0005:00' \
    "vda's device is the virtio-mmio driver's, from ACPI"
expect_value $name 'DISK virtio-mmio devices' 'LNRO0005:00' "the driver's devices"
expect_value $name 'DISK sum read' "$(sha "$E2E_TMP/pattern")" "the guest reads what the host wrote"
expect_value $name 'DISK write rc' 0 "the guest writes 1 MiB at 2 MiB"
dd if="$m" of="$E2E_TMP/written" bs=1M skip=2 count=1 status=none
expect_value $name 'DISK sum written' "$(sha "$E2E_TMP/written")" "the host reads what the guest wrote"
boot_checks_end $name

# --- 1. The guest formats vda as ext4, writes files and prints their sha256; the host checks the
# file system with e2fsck and reads the files back with debugfs.
name=mkfs
truncate -s 64M "$img"
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=mkfs" \
    --disk "path=$img" --timeout 240
boot_checks_begin
expect_rc $name 0
expect_modules $name
expect_value $name 'DISK disks' vda "one disk"
expect_value $name 'DISK mkfs' 0 "mkfs.ext4 in the guest"
expect_value $name 'DISK mount' 0 "mount in the guest"
expect_value $name 'DISK umount' 0 "umount after sync"
if e2fsck -fn "$img" >"$E2E_TMP/fsck.out" 2>&1; then
    ok "$name: e2fsck -fn on the host: clean ($(tail -n 1 "$E2E_TMP/fsck.out"))"
else
    fail "$name: e2fsck -fn on the host: status $?: $(tr '\n' ' ' <"$E2E_TMP/fsck.out")"
fi
declare -A want_sum
for p in /file1 /file2 /dir/file3 /small.txt; do
    want_sum[$p]=$(gv "DISK sum $p")
    dump_sum $name "$img" "$p" "${want_sum[$p]}"
done
boot_checks_end $name

# --- 2. The same image read-only: the guest sees ro=1, writes fail, the files read back right
# (kiln's read path), and the image is bit for bit the same afterwards.
name=ro
before=$(sha "$img")
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=ro" \
    --disk "path=$img,ro" --timeout 240
boot_checks_begin
expect_rc $name 0
expect_modules $name
expect_value $name 'DISK vda ro' 1 "/sys/block/vda/ro"
expect_nonzero $name 'DISK raw write rc' "dd to /dev/vda fails"
expect_nonzero $name 'DISK raw write after setrw rc' "dd to /dev/vda after blockdev --setrw fails"
expect_value $name 'DISK mount ro' 0 "mount -o ro,noload"
for p in /file1 /file2 /dir/file3 /small.txt; do
    expect_value $name "DISK sum $p" "${want_sum[$p]}" "the guest reads back what it wrote"
done
expect_nonzero $name 'DISK touch rc' "creating a file fails"
after=$(sha "$img")
if [[ $before == "$after" ]]; then
    ok "$name: the image is unchanged: sha256 $after"
else
    fail "$name: the image changed: sha256 $before before, $after after"
fi
boot_checks_end $name

# --- 3. Two disks with serials: vda and vdb in --disk order, serials and sizes (512-byte
# sectors) as given, both writable. Odd sizes, so a rounding or mixed-up capacity shows.
name=serial
a=$E2E_TMP/a.img
b=$E2E_TMP/b.img
truncate -s $((81920 * 512)) "$a"
truncate -s $((12345 * 512)) "$b"
serial_a=kiln-e2e-serial-A01
serial_b=B2
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=serial" \
    --disk "path=$a,serial=$serial_a" --disk "path=$b,serial=$serial_b" --timeout 240
boot_checks_begin
expect_rc $name 0
expect_modules $name
expect_value $name 'DISK disks' 'vda vdb' "two disks"
expect_value $name 'DISK vda serial' "$serial_a" "vda's serial"
expect_value $name 'DISK vdb serial' "$serial_b" "vdb's serial"
expect_value $name 'DISK vda size' $(($(stat -c %s "$a") / 512)) "vda's size in sectors"
expect_value $name 'DISK vdb size' $(($(stat -c %s "$b") / 512)) "vdb's size in sectors"
expect_value $name 'DISK vda ro' 0 "vda is writable"
expect_value $name 'DISK vdb ro' 0 "vdb is writable"
boot_checks_end $name

# --- 4. Durability: the guest writes and syncs file A, then rewrites file B without end; kiln
# dies by SIGKILL mid-write. A copy of the image, after e2fsck's journal replay and repair, must
# be clean and hold A as the guest wrote it. Meanwhile, a second kiln on the same image must be
# refused (the OFD lock on writable images).
name=durable
d=$E2E_TMP/durable.img
truncate -s 64M "$d"
kiln_start $name /dev/null --kernel "$kernel" --initrd "$initrd" \
    --cmdline "$base kiln_action=durable" --disk "path=$d" --timeout 300
boot_checks_begin
if wait_for_console "$OUT" '^DISK-A-SYNCED' 240 "$KILN_PID"; then
    ok "$name: the guest synced file A"
    # Let B's writes run for a while, so the kill lands in the middle of them.
    wait_for_console "$OUT" '^DISK B rewrites: 20' 60 "$KILN_PID" || true
    second_ms=$(now_ms)
    second_rc=0
    "$E2E_KILN" run --kernel "$kernel" --initrd "$initrd" --cmdline "$base kiln_action=none" \
        --disk "path=$d" --timeout 30 </dev/null >"$E2E_TMP/second.out" 2>"$E2E_TMP/second.err" ||
        second_rc=$?
    second_ms=$(($(now_ms) - second_ms))
    if [[ $second_rc -eq 125 ]] && ! grep -q KILN-GUEST-INIT "$E2E_TMP/second.out"; then
        ok "$name: a second kiln on the busy image fails at once: status $second_rc in" \
            "$second_ms ms: $(tr '\n' ' ' <"$E2E_TMP/second.err")"
    else
        fail "$name: a second kiln on the busy image: status $second_rc after $second_ms ms;" \
            "want 125 without a boot; stderr: $(tr '\n' ' ' <"$E2E_TMP/second.err")"
    fi
    # The process doing the guest's I/O is kiln's child (one per boot); kiln reports its death.
    kill -KILL "$(kiln_vm_pid)"
    echo "$name: SIGKILL sent to kiln's VM process" \
        "($(grep -c '^DISK B rewrites' "$OUT" || true) progress lines of B)"
else
    fail "$name: no DISK-A-SYNCED from the guest"
    kill -KILL "$KILN_PID" 2>/dev/null || true
fi
kiln_wait $name
expect_rc $name 137
cp "$d" "$d.copy"
fix_rc=0
e2fsck -fy "$d.copy" >"$E2E_TMP/fsck.out" 2>&1 || fix_rc=$?
# 0: clean; 1: errors corrected (journal replay counts). Anything more is damage.
if ((fix_rc <= 1)); then
    ok "$name: e2fsck -fy on a copy: status $fix_rc ($(grep -ciE 'journal|recover' \
        "$E2E_TMP/fsck.out" || true) journal lines)"
else
    fail "$name: e2fsck -fy on a copy: status $fix_rc: $(tr '\n' ' ' <"$E2E_TMP/fsck.out")"
fi
# After a crash, ext4 leaves the superblock's free block and inode counts stale (they are not
# journalled; the kernel recomputes them at mount) and may leave orphans to clean up: e2fsck
# fixing those is expected. Anything else it says is shown (not failed: the -fn check decides).
if grep -vE '^(e2fsck |Pass [1-5]|[^ ]+: recovering journal|[^ ]+: [0-9]+/[0-9]+ files|$)' \
    "$E2E_TMP/fsck.out" |
    grep -vE '^(Free (blocks|inodes) count wrong|Fix\? yes|Clearing orphaned|Setting free)' |
    grep -qvE 'FILE SYSTEM WAS MODIFIED'; then
    echo "$name: e2fsck -fy said more than a journal replay and summary counts:"
    sed 's/^/  | /' "$E2E_TMP/fsck.out"
fi
if e2fsck -fn "$d.copy" >"$E2E_TMP/fsck2.out" 2>&1; then
    ok "$name: e2fsck -fn after that: clean"
else
    fail "$name: e2fsck -fn after that: status $?: $(tr '\n' ' ' <"$E2E_TMP/fsck2.out")"
fi
dump_sum $name "$d.copy" /A "$(gv 'DISK sum /A')"
boot_checks_end $name

e2e_finish
