# boot-guest.sh: /test.sh of bench/boot's guest (L2): leave the VM at once through `reboot -f`.
# Run by busybox sh from the harness's guest init, right after it printed KILN-GUEST-INIT, the
# marker bench/boot times. The timed runs do nothing else, so they measure boot and exit only.
# With kiln_bench=split on the command line (bench/boot's two extra runs), first log a marker in
# the kernel's ring buffer and print the kernel-clock timestamps bench/boot splits the boot with.
# `read` is a shell builtin: the timed runs fork nothing before the reboot.
read -r cmdline </proc/cmdline
case " $cmdline " in
    *" kiln_bench=split "*)
        # <6>: info level, kept off the `quiet` console; only its timestamp matters.
        echo "<6>kiln-bench: marker" >/dev/kmsg
        dmesg | grep -e 'Run /init' -e 'kiln-bench: marker' | sed 's/^/BENCH-DMESG /'
        ;;
esac
reboot -f
