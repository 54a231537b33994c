#!/usr/bin/env bash
# boot.sh: boot the distro kernel under kiln: bzImage, ELF vmlinux via PVH, with the distro initrd.
# Usage (from the host): tests/e2e/run-boot.sh BUILD_DIR, which prepares the images and runs
# `harness run tests/e2e/boot.sh BUILD_DIR`. Runs where /dev/kvm is real (in L1 when nested).
# Exit: 0 when every check passed; 1 otherwise. Each check prints an ok: or FAIL: line.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
# shellcheck source=lib.sh disable=SC1091 # (found with shellcheck -x)
. "$here/lib.sh"
build=${1:?usage: boot.sh BUILD_DIR}
# The harness exports the kernel it picked; in L1 that is the one L1 itself runs, and the distro
# initrd and the vmlinux extracted on the host have the same version.
kernel=${KILN_E2E_KERNEL:-/boot/vmlinuz-$(uname -r)}
kver=${kernel##*/vmlinuz-}
e2e_init boot "$build/kiln" "$kernel"
initrd=$build/e2e/boot-guest.cpio.gz
vmlinux=$build/e2e/vmlinux-$kver
distro_initrd=/boot/initrd.img-$kver
for f in "$initrd" "$vmlinux" "$distro_initrd"; do
    [[ -r $f ]] || e2e_abort "missing $f (run-boot.sh builds the first two on the host)"
done

# check_memory NAME MIB: the guest got --memory MIB. The kernel's RAM total (its "Memory: A/T
# available" line, counting what the memory map calls usable RAM) must be MIB less at most 1 MiB
# (the legacy hole at 640 KiB-1 MiB and a few reserved pages). MemTotal is that less what the
# kernel keeps for itself, mostly its own image: about 50 MiB for the Debian kernel, so it must
# be between MIB - 80 and MIB. Too much would mean kiln gave more RAM than asked.
check_memory() {
    local name=$1 mib=$2 line total mem_kib
    line=$(guest_value 'BOOT dmesg memory')
    total=$(sed -n 's#.*Memory: [0-9]*K/\([0-9]*\)K available.*#\1#p' <<<"$line")
    if [[ $total =~ ^[0-9]+$ ]] && ((total > (mib - 1) * 1024 && total <= mib * 1024)); then
        ok "$name: the kernel counts ${total}K of RAM for --memory ${mib}M" \
            "(want $(((mib - 1) * 1024))-$((mib * 1024))K)"
    else
        fail "$name: the kernel counts '${total}'K of RAM for --memory ${mib}M (line: '$line')"
    fi
    mem_kib=$(guest_value 'BOOT memtotal_kib')
    if [[ $mem_kib =~ ^[0-9]+$ ]] && ((mem_kib >= (mib - 80) * 1024 && mem_kib <= mib * 1024)); then
        ok "$name: MemTotal $mem_kib KiB ($((mem_kib / 1024)) MiB) for --memory ${mib}M" \
            "(want $((mib - 80))-$mib MiB)"
    else
        fail "$name: MemTotal '$mem_kib' KiB for --memory ${mib}M; want $((mib - 80))-$mib MiB"
    fi
}

# A token no default command line has, so finding it in /proc/cmdline proves --cmdline got there.
token=kiln_e2e_token=$$-$RANDOM$RANDOM

# --- 1. bzImage, busybox initramfs, 2 vCPUs, 300 MiB.
name=bzimage
kiln_boot $name --kernel "$kernel" --initrd "$initrd" --cmdline "console=ttyS0 quiet $token" \
    --cpus 2 --memory 300M --timeout 180
boot_checks_begin
expect_rc $name 0
expect_console $name '^KILN-GUEST-INIT$' "the guest's init ran"
cmdline=$(guest_value 'BOOT cmdline')
if [[ " $cmdline " == *" $token "* ]]; then
    ok "$name: /proc/cmdline has the token: '$cmdline'"
else
    fail "$name: /proc/cmdline is '$cmdline', without '$token'"
fi
check_memory $name 300
nproc_seen=$(guest_value 'BOOT nproc')
if [[ $nproc_seen == 2 ]]; then
    ok "$name: nproc $nproc_seen for --cpus 2"
else
    fail "$name: nproc '$nproc_seen' for --cpus 2"
fi
# The negative of the PVH marker below: a bzImage boot must not look like PVH, else that check
# proves nothing.
loader=$(guest_value 'BOOT type_of_loader')
version=$(guest_value 'BOOT boot_params version')
if [[ $loader == 0xff && $version != 0x020c ]]; then
    ok "$name: entered as bzImage: boot_params type_of_loader $loader (kiln's), protocol $version"
else
    fail "$name: boot_params type_of_loader '$loader', protocol '$version';" \
        "want 0xff and not 0x020c"
fi
boot_checks_end $name

# --- 2. The same kernel as ELF vmlinux: kiln finds the PVH note and enters there.
name=pvh
token2=kiln_e2e_pvh=$$-$RANDOM
kiln_boot $name --kernel "$vmlinux" --initrd "$initrd" --cmdline "console=ttyS0 quiet $token2" \
    --memory 256M --timeout 180
boot_checks_begin
expect_rc $name 0
expect_console $name '^KILN-GUEST-INIT$' "the guest's init ran"
cmdline=$(guest_value 'BOOT cmdline')
if [[ " $cmdline " == *" $token2 "* ]]; then
    ok "$name: /proc/cmdline (from hvm_start_info) has the token: '$cmdline'"
else
    fail "$name: /proc/cmdline is '$cmdline', without '$token2'"
fi
# The PVH marker: the kernel's PVH entry fills boot_params itself, with protocol 2.12 and loader
# type 0xb0 (Documentation/x86/boot.rst: 0xb is Qemu, used by Linux for PVH outside Xen). The
# 64-bit ELF entry (no PVH note found) would show kiln's zero page instead: 0xff.
loader=$(guest_value 'BOOT type_of_loader')
version=$(guest_value 'BOOT boot_params version')
if [[ $loader == 0xb0 && $version == 0x020c ]]; then
    ok "$name: entered through PVH: boot_params type_of_loader $loader, protocol $version"
else
    fail "$name: boot_params type_of_loader '$loader', protocol '$version';" \
        "PVH gives 0xb0 and 0x020c"
fi
check_memory $name 256
boot_checks_end $name

# --- 3. The distro's own initrd (initramfs-tools). There is no disk, so its init gives up on the
# root device. Ending chosen for determinism: with panic=1 on the command line, initramfs-tools'
# panic() prints "Rebooting automatically due to panic= boot argument", sleeps 1 s and runs
# `reboot -f` instead of starting its rescue shell; the kernel resets (no reboot= option) and kiln
# exits 128 (--no-reboot). Its wait for the root device takes max(30, rootdelay) s (scripts/local): 30 s here.
name=distro-initrd
kiln_boot $name --kernel "$kernel" --initrd "$distro_initrd" \
    --cmdline "console=ttyS0 root=/dev/vda panic=1" --memory 512M --timeout 300 --no-reboot
boot_checks_begin
expect_rc $name 128
expect_console $name '\] Run /init as init process$' "the kernel ran the initrd's /init"
expect_console $name 'Begin: Loading essential drivers' "initramfs-tools' init ran"
expect_console $name 'Gave up waiting for root file system device' "it looked for the root device"
expect_console $name '^ALERT! +/dev/vda does not exist' "it found no /dev/vda"
expect_console $name 'Rebooting automatically due to panic= boot argument' "its panic= handling ran"
expect_console $name 'reboot: Restarting system' "the kernel restarted the machine"
boot_checks_end $name

e2e_finish
