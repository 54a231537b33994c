/* cpuid.c: per-vCPU CPUID from KVM_GET_SUPPORTED_CPUID, adjusted for APIC ID and topology. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu/vcpu.h"

#define CPUID_MAX_ENTRIES 256
#define CPUID_HYPERVISOR_BIT (1u << 31)   /* leaf 1 ECX */
#define CPUID_TSC_DEADLINE_BIT (1u << 24) /* leaf 1 ECX */
#define CPUID_HTT_BIT (1u << 28)          /* leaf 1 EDX */
#define KVM_SIGNATURE_LEAF 0x40000000u

/* Fetch the host's supported CPUID once per VM. */
static int supported_cpuid(struct vcpus *s)
{
    if (s->cpuid)
        return 0;
    size_t size = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, size);
    if (!c)
        return -ENOMEM;
    c->nent = CPUID_MAX_ENTRIES;
    if (ioctl(s->host.kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        int e = errno;
        free(c);
        return -e;
    }
    /* KVM emulates the LAPIC's TSC-deadline mode but leaves it out of the supported list; it
     * says so through a capability instead. Linux guests prefer it to the one-shot count. */
    if (ioctl(s->host.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
        for (unsigned i = 0; i < c->nent; i++)
            if (c->entries[i].function == 1)
                c->entries[i].ecx |= CPUID_TSC_DEADLINE_BIT;
    s->cpuid = c;
    return 0;
}

/* Smallest shift such that (1 << shift) >= n. */
static unsigned bits_for(unsigned n)
{
    unsigned shift = 0;
    while ((1u << shift) < n)
        shift++;
    return shift;
}

/* Extended topology (leaves 0xB and 0x1F): one thread per core, ncpus cores in one package. */
static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned ncpus)
{
    e->edx = apic_id;
    switch (e->index) {
    case 0: /* SMT level */
        e->eax = 0;
        e->ebx = 1;
        e->ecx = (1u << 8) | e->index;
        break;
    case 1: /* core level */
        e->eax = bits_for(ncpus);
        e->ebx = ncpus;
        e->ecx = (2u << 8) | e->index;
        break;
    default: /* invalid level ends the enumeration */
        e->eax = 0;
        e->ebx = 0;
        e->ecx = e->index;
        break;
    }
}

static void adjust_entry(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned ncpus)
{
    switch (e->function) {
    case 1:
        e->ebx = (e->ebx & 0x0000ffffu) | (apic_id << 24) | ((ncpus & 0xff) << 16);
        e->ecx |= CPUID_HYPERVISOR_BIT;
        if (ncpus > 1)
            e->edx |= CPUID_HTT_BIT;
        break;
    case 4: /* deterministic cache parameters (Intel) */
        if ((e->eax & 0x1f) == 0)
            break;
        e->eax &= 0x00003fffu;
        e->eax |= ((ncpus - 1) & 0x3f) << 26;
        /* Caches up to L2 are private to a core; L3 is shared by the package. */
        if (((e->eax >> 5) & 7) >= 3)
            e->eax |= ((ncpus - 1) & 0xfff) << 14;
        break;
    case 0xb:
    case 0x1f:
        topology_leaf(e, apic_id, ncpus);
        break;
    case 0x80000008: /* AMD: number of cores and APIC ID size */
        e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xff) | (bits_for(ncpus) << 12);
        break;
    case 0x8000001e: /* AMD: extended APIC ID, one thread per core, node 0 */
        e->eax = apic_id;
        e->ebx = apic_id & 0xff;
        e->ecx = 0;
        break;
    default:
        break;
    }
}

/* Add the KVM signature leaf if the host list lacks it, so guests detect KVM paravirt. */
static void ensure_signature(struct kvm_cpuid2 *c)
{
    for (unsigned i = 0; i < c->nent; i++)
        if (c->entries[i].function == KVM_SIGNATURE_LEAF)
            return;
    if (c->nent >= CPUID_MAX_ENTRIES)
        return;
    struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];
    memset(e, 0, sizeof(*e));
    e->function = KVM_SIGNATURE_LEAF;
    e->eax = KVM_SIGNATURE_LEAF + 1;
    memcpy(&e->ebx, "KVMK", 4);
    memcpy(&e->ecx, "VMKV", 4);
    memcpy(&e->edx, "M\0\0\0", 4);
}

int cpuid_setup(struct vcpu *v)
{
    int ret = supported_cpuid(v->set);
    if (ret < 0)
        return ret;
    const struct kvm_cpuid2 *src = v->set->cpuid;
    size_t size = sizeof(*src) + CPUID_MAX_ENTRIES * sizeof(src->entries[0]);
    struct kvm_cpuid2 *c = malloc(size);
    if (!c)
        return -ENOMEM;
    memcpy(c, src, sizeof(*src) + src->nent * sizeof(src->entries[0]));
    ensure_signature(c);
    for (unsigned i = 0; i < c->nent; i++)
        adjust_entry(&c->entries[i], v->index, v->set->n);
    ret = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
    free(c);
    return ret;
}
