#!/bin/sh
# boot-guest.sh: /test.sh of the boot guest (L2): print what the guest sees, for boot.sh to check.
# Run by busybox sh from the harness's guest init (after KILN-GUEST-INIT), which powers off after.
echo "BOOT cmdline: $(cat /proc/cmdline)"
echo "BOOT memtotal_kib: $(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' /proc/meminfo)"
# The kernel's own count of the RAM it was given: "Memory: AVAILABLEK/TOTALK available (...)".
echo "BOOT dmesg memory: $(dmesg | grep -m 1 'Memory: [0-9]*K/[0-9]*K available')"
echo "BOOT nproc: $(nproc)"
# How the kernel was entered, from the boot_params the kernel kept (arch/x86/kernel/ksysfs.c).
# A PVH entry makes the kernel build its own boot_params (arch/x86/platform/pvh/enlighten.c):
# protocol version 2.12 and loader type 0xb0 when not under Xen. A bzImage loaded by kiln keeps
# the image's own protocol version and kiln's loader type (0xff, "undefined").
echo "BOOT boot_params version: $(cat /sys/kernel/boot_params/version)"
loader=$(dd if=/sys/kernel/boot_params/data bs=1 skip=$((0x210)) count=1 2>/dev/null |
    od -An -tx1 | tr -d ' \n')
echo "BOOT type_of_loader: 0x$loader"
