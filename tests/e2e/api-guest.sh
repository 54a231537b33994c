#!/bin/sh
# api-guest.sh: /test.sh of the API guest (L2): wait for the ACPI power button, then power off.
# Loads the modules in kiln_mods=DIR/load-order (button, evdev), finds the "Power Button" input
# device the button driver made for kiln's PNP0C0C device, and blocks reading one input event
# from it: nothing but a press of kiln's button (GED interrupt, _EVT, Notify 0x80) makes one.
# This stands in for what systemd-logind or acpid do on a real system.

arg() {
    read -r cmdline </proc/cmdline
    for w in $cmdline; do
        case $w in "$1"=*) echo "${w#*=}" ;; esac
    done
}

mods=$(arg kiln_mods)
while read -r ko; do
    insmod "$mods/$ko" || echo "API insmod $ko: failed"
done <"$mods/load-order"
dev=
for d in /sys/class/input/input*; do
    [ "$(cat "$d/name" 2>/dev/null)" = "Power Button" ] || continue
    for e in "$d"/event*; do
        [ -e "$e" ] && dev=/dev/input/${e##*/}
    done
done
echo "API power button: ${dev:-none} ($(cat /sys/bus/acpi/devices/PNP0C0C:00/path 2>/dev/null))"
[ -n "$dev" ] || exec sleep 1000
echo "API waiting for the power button"
# struct input_event on x86-64: 16 bytes of time, then type and code (u16 each): EV_KEY (1),
# KEY_POWER (116).
# shellcheck disable=SC2046 # the two numbers od prints
set -- $(dd if="$dev" bs=24 count=1 2>/dev/null | od -An -tu2 -j16 -N4)
echo "API event: $1 $2"
echo "API powering off"
poweroff -f
