/* smp.c: finds the MP table, starts every AP with INIT-SIPI-SIPI and waits until all check in. */
#include "apic.h"
#include "guest.h"
#include "mptable.h"
#include "smp.h"

/*
 * How long the BSP waits for the APs, in TSC ticks (several seconds at any plausible TSC rate).
 * On hardware or a normal KVM host they arrive in microseconds; an emulating host is far slower.
 */
#define AP_WAIT_TSC 20000000000ULL
#define ICR_POLLS 100000

/* Exit statuses (besides 0 and GUEST_EXIT_ASSERT). */
#define EXIT_MPTABLE 2 /* no usable MP table */
#define EXIT_TIMEOUT 3 /* some AP did not check in */
#define EXIT_APIC 8    /* the local APIC did not take an IPI, or IDs disagree */

extern const char smp_trampoline_start[], smp_trampoline_end[], smp_trampoline_real_count[];

/* Read by the trampoline, so not static. */
uint32_t smp_ap_cr3;
volatile uint32_t smp_ap_pmode_count;

static volatile uint32_t ap_long_count, ap_up_count, ap_id_mismatch;
static spinlock_t print_lock;

/* Fills ap_ids with the APs the MP table lists; returns the number of processors, or 0. */
static unsigned mp_processors(unsigned bsp_id, unsigned *ap_ids, unsigned *naps)
{
    uint64_t cfg = mp_config_table();
    unsigned ncpus = 0, nbsp = 0;

    *naps = 0;
    if (!cfg)
        return 0;
    for (uint64_t e = mp_entries_start(cfg); e < mp_entries_end(cfg); e = mp_entry_next(e)) {
        if (phys_read8(e) != MP_ENTRY_PROCESSOR)
            continue;
        unsigned id = phys_read8(e + 1), flags = phys_read8(e + 3);
        if (!(flags & MP_CPU_ENABLED))
            continue;
        ncpus++;
        if (flags & MP_CPU_BSP) {
            nbsp++;
            GUEST_ASSERT(id == bsp_id);
        } else {
            /* ap_start64 has stacks for APIC IDs below SMP_MAX_CPUS only. */
            GUEST_ASSERT(id < SMP_MAX_CPUS);
            ap_ids[(*naps)++] = id;
        }
    }
    GUEST_ASSERT(nbsp == 1);
    return ncpus;
}

static bool icr_send(unsigned apic_id, uint32_t cmd)
{
    mmio_write32(LAPIC_BASE + LAPIC_ICR_HI, apic_id << 24);
    mmio_write32(LAPIC_BASE + LAPIC_ICR_LO, cmd);
    for (unsigned i = 0; i < ICR_POLLS; i++)
        if (!(mmio_read32(LAPIC_BASE + LAPIC_ICR_LO) & ICR_BUSY))
            return true;
    return false;
}

static uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

/* Each AP lands here in long mode on its own stack; it reports in and halts. */
__attribute__((noreturn, used)) void ap_main(unsigned lapic_id)
{
    unsigned cpuid_id = cpu_apic_id();

    __atomic_fetch_add(&ap_long_count, 1, __ATOMIC_SEQ_CST);
    spin_lock(&print_lock);
    serial_puts("cpu ");
    serial_put_dec(cpuid_id);
    serial_puts(" up\n");
    if (cpuid_id != lapic_id) {
        serial_puts("smp: CPUID APIC ID differs from LAPIC ID ");
        serial_put_dec(lapic_id);
        serial_putc('\n');
        __atomic_fetch_add(&ap_id_mismatch, 1, __ATOMIC_SEQ_CST);
    }
    spin_unlock(&print_lock);
    /* Counted only after the lock is dropped, so the BSP's summary line comes last. */
    __atomic_fetch_add(&ap_up_count, 1, __ATOMIC_SEQ_CST);
    cpu_halt_forever();
}

int guest_main(void *boot_info)
{
    static unsigned ap_ids[SMP_MAX_CPUS];
    unsigned naps, bsp_id = cpu_apic_id();
    (void)boot_info;

    GUEST_ASSERT(bsp_id == mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24);
    unsigned ncpus = mp_processors(bsp_id, ap_ids, &naps);
    if (!ncpus)
        return EXIT_MPTABLE;
    serial_puts("mptable: ");
    serial_put_dec(ncpus);
    serial_puts(" processors\n");

    memcpy((void *)SMP_TRAMPOLINE_BASE, smp_trampoline_start,
           (size_t)(smp_trampoline_end - smp_trampoline_start));
    smp_ap_cr3 = (uint32_t)read_cr3();
    GUEST_ASSERT(smp_ap_cr3 == read_cr3()); /* the trampoline loads CR3 in 32-bit mode */
    /* A software-enabled local APIC, as operating systems set it up before sending IPIs. */
    mmio_write32(LAPIC_BASE + LAPIC_SVR, mmio_read32(LAPIC_BASE + LAPIC_SVR) | SVR_ENABLE | 0xff);

    /*
     * INIT then two STARTUPs per AP, as the MP specification describes. KVM needs none of the
     * specification's delays: it handles INIT before a pending SIPI and drops a SIPI that reaches
     * an AP already running.
     */
    for (unsigned i = 0; i < naps; i++) {
        uint32_t sipi = ICR_STARTUP | ICR_LEVEL_ASSERT | (SMP_TRAMPOLINE_BASE >> 12);
        if (!icr_send(ap_ids[i], ICR_INIT | ICR_LEVEL_ASSERT) || !icr_send(ap_ids[i], sipi) ||
            !icr_send(ap_ids[i], sipi)) {
            serial_puts("smp: ICR stayed busy\n");
            return EXIT_APIC;
        }
    }

    uint64_t t0 = rdtsc();
    while (ap_up_count < naps && rdtsc() - t0 < AP_WAIT_TSC)
        cpu_relax();

    const volatile uint32_t *real_count =
        (const volatile uint32_t *)(SMP_TRAMPOLINE_BASE +
                                    (smp_trampoline_real_count - smp_trampoline_start));
    spin_lock(&print_lock);
    if (ap_up_count < naps) {
        /* The test script reads this line to tell a slow host from a broken VMM. */
        serial_puts("smp: timeout: ");
        serial_put_dec(ap_up_count);
        serial_puts(" of ");
        serial_put_dec(naps);
        serial_puts(" APs up; reached real mode ");
        serial_put_dec(*real_count);
        serial_puts(", protected mode ");
        serial_put_dec(smp_ap_pmode_count);
        serial_puts(", long mode ");
        serial_put_dec(ap_long_count);
        serial_putc('\n');
        return EXIT_TIMEOUT;
    }
    if (ap_id_mismatch)
        return EXIT_APIC;
    serial_puts("smp: ");
    serial_put_dec(ncpus);
    serial_puts(" cpus\n");
    return 0;
}
