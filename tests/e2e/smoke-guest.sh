# smoke-guest.sh: /test.sh of the smoke guest (L2): print a few facts, then leave the VM.
# Run by busybox sh from the harness's guest init, after it printed KILN-GUEST-INIT.
echo "SMOKE uname -r: $(uname -r)"
echo "SMOKE cmdline: $(cat /proc/cmdline)"
echo "SMOKE nproc: $(nproc)"
# The host picks the way out through the command line: with reboot=k the kernel resets through
# the i8042 (kiln exits 0); otherwise power off, which needs ACPI (or, lacking it, halts).
case " $(cat /proc/cmdline) " in
    *" reboot="*) echo "SMOKE leaving: reboot -f"; reboot -f ;;
    *) echo "SMOKE leaving: poweroff -f"; poweroff -f ;;
esac
