#!/usr/bin/env bash
# guest_irq.sh: interrupts reach the guest: the LAPIC timer, and the PIT on the I/O APIC pin the
# MP table names for ISA IRQ 0 (which checks kiln's table against its interrupt routing).
# Usage: guest_irq.sh KILN GUEST_DIR
. "$(dirname "$0")/common.sh"
KILN=$1
GUESTS=$2
need_file "$GUESTS/irq.elf" "irq guest"
require_kvm "$GUESTS/hello.elf"

run_kiln run --kernel "$GUESTS/irq.elf" --timeout 60
if [ "$RC" -eq 10 ] && grep -q '^irq: lapic timer: 0 ticks$' "$OUT"; then
    # The LAPIC timer is KVM's own: if it never fires, this host's KVM delivers no interrupts.
    skip "the host's KVM delivered no LAPIC timer interrupt within the guest's bound"
fi
expect_rc 0 "irq"
expect_stdout_line "irq: lapic timer: 5 ticks" "irq"
if grep -qE '^irq: pit via ioapic pin [0-9]+: 5 ticks$' "$OUT"; then
    ok "irq: $(grep '^irq: pit' "$OUT")"
else
    fail "irq: no PIT interrupts on the I/O APIC pin the MP table gives for IRQ 0"
    dump_run
fi
expect_stderr_empty "irq"
finish
