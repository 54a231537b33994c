#!/bin/sh
# lifecycle-guest.sh: /test.sh of the lifecycle guest (L2): end the VM as kiln_action= says.
# Run by busybox sh from the harness's guest init, after it printed KILN-GUEST-INIT.
# kiln_action: poweroff | reboot | exitdev (status 7) | pvpanic (load the pvpanic modules listed
# in kiln_mods=DIR/load-order, then panic) | panic (panic without them) | sleep (forever).

# arg NAME: the value of NAME= on the kernel command line.
arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

# exitdev '\NNN': the exit device: one byte (octal NNN) to I/O port 0x5f0 ends the VM with that
# status.
exitdev() {
    printf '%b' "$1" | dd of=/dev/port bs=1 seek=$((0x5f0)) count=1 2>/dev/null
}

action=$(arg kiln_action)
echo "LIFECYCLE action: $action"
case $action in
    poweroff) poweroff -f ;;
    reboot) reboot -f ;;
    exitdev) exitdev '\007' ;;
    pvpanic)
        mods=$(arg kiln_mods)
        while read -r ko; do
            if insmod "$mods/$ko"; then
                echo "LIFECYCLE insmod $ko: ok"
            else
                echo "LIFECYCLE insmod $ko: failed"
            fi
        done <"$mods/load-order"
        # The ACPI device QEMU0001 (kiln's DSDT) becomes platform device QEMU0001:00, which
        # pvpanic-mmio must have bound.
        bound=
        for d in /sys/bus/platform/drivers/pvpanic-mmio/QEMU0001*; do
            [ -e "$d" ] && bound="$bound${d##*/} "
        done
        echo "LIFECYCLE pvpanic-mmio devices: $bound"
        echo "LIFECYCLE pvpanic events: $(cat /sys/bus/platform/devices/QEMU0001:00/events 2>&1)"
        echo c >/proc/sysrq-trigger
        ;;
    panic) echo c >/proc/sysrq-trigger ;;
    sleep)
        echo "LIFECYCLE sleeping"
        sleep 1000
        ;;
    *) echo "LIFECYCLE unknown action '$action'" ;;
esac
# Every action above should have ended the VM. Leave with a status no check expects, rather than
# through init's `poweroff -f`, which would pass for a working poweroff or reboot.
echo "LIFECYCLE still running after '$action'"
exitdev '\143' # 99
sleep 1000
