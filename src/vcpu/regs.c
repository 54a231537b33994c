/* regs.c: boot-time CPU state: GDT and identity page tables, segment/control registers, MSRs. */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "platform/layout.h"
#include "vcpu/vcpu.h"

/* GDT slots, shared by both entry modes. Linux's 64-bit boot protocol wants CS 0x10, DS 0x18. */
#define SEL_CODE32 0x08
#define SEL_CODE64 0x10
#define SEL_DATA 0x18
#define SEL_TSS 0x20
#define GDT_ENTRIES 5

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P 1ULL
#define PTE_RW 2ULL
#define PTE_PS 0x80ULL

/* A GDT descriptor from base, limit and the 12 flag bits (access byte + granularity nibble). */
static uint64_t gdt_entry(uint32_t base, uint32_t limit, uint16_t flags)
{
    return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
           ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
           (limit & 0xffffu);
}

/*
 * There is no BIOS, but Linux's last-resort reboot (and its choice when hardware-reduced ACPI
 * makes it prefer EFI, which is absent) jumps to the real-mode reset vector. Answer it the way
 * a BIOS would end up doing: mov al, 0xfe; out 0x64, al (i8042 reset); then cli; hlt forever.
 */
static const uint8_t reset_stub[] = {0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfc};

int boot_tables_write(const struct guest_mem *gm)
{
    if (guest_write(gm, LAYOUT_RESET_VECTOR, reset_stub, sizeof(reset_stub)) < 0)
        return -EFAULT;
    const uint64_t gdt[GDT_ENTRIES] = {
        0,
        gdt_entry(0, 0xfffff, 0xc09b), /* 32-bit code, PVH entry */
        gdt_entry(0, 0xfffff, 0xa09b), /* 64-bit code */
        gdt_entry(0, 0xfffff, 0xc093), /* data */
        gdt_entry(0, 0x67, 0x008b),    /* busy TSS */
    };
    if (guest_write(gm, LAYOUT_GDT, gdt, sizeof(gdt)) < 0)
        return -EFAULT;
    uint64_t *pml4 = gpa_to_host(gm, LAYOUT_PML4, 4096);
    uint64_t *pdpt = gpa_to_host(gm, LAYOUT_PDPT, 4096);
    uint64_t *pd = gpa_to_host(gm, LAYOUT_PD, 4096 * LAYOUT_PD_COUNT);
    if (!pml4 || !pdpt || !pd)
        return -EFAULT;
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = LAYOUT_PDPT | PTE_P | PTE_RW;
    /* Identity-map the first 4 GiB with 2 MiB pages: RAM, the PCI hole and the APICs. */
    for (uint64_t i = 0; i < LAYOUT_PD_COUNT; i++)
        pdpt[i] = (LAYOUT_PD + i * 4096) | PTE_P | PTE_RW;
    for (uint64_t i = 0; i < 512 * LAYOUT_PD_COUNT; i++)
        pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
    return 0;
}

static struct kvm_segment segment(uint16_t selector, uint8_t type, bool code64)
{
    struct kvm_segment s = {
        .base = 0,
        .limit = 0xffffffff,
        .selector = selector,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = code64 ? 0 : 1,
        .s = 1,
        .l = code64 ? 1 : 0,
        .g = 1,
    };
    return s;
}

static void set_boot_sregs(struct kvm_sregs *s, enum boot_mode mode)
{
    bool long_mode = mode == BOOT_MODE_LONG64;
    s->cs = segment(long_mode ? SEL_CODE64 : SEL_CODE32, 0xb, long_mode);
    s->ds = s->es = s->fs = s->gs = s->ss = segment(SEL_DATA, 0x3, false);
    s->tr = (struct kvm_segment){.selector = SEL_TSS, .limit = 0x67, .type = 0xb, .present = 1};
    s->gdt.base = LAYOUT_GDT;
    s->gdt.limit = GDT_ENTRIES * 8 - 1;
    /* An empty IDT: any exception before the guest installs its own is a triple fault. */
    s->idt.base = LAYOUT_IDT;
    s->idt.limit = 0;
    s->cr0 = CR0_PE | CR0_ET | CR0_NE;
    s->cr4 = 0;
    s->efer = 0;
    if (long_mode) {
        s->cr0 |= CR0_PG;
        s->cr3 = LAYOUT_PML4;
        s->cr4 = CR4_PAE;
        s->efer = EFER_LME | EFER_LMA;
    }
}

/* Registers of the boot vCPU: where the loader said to enter, in the mode it asked for. */
int regs_setup_boot(struct vcpu *v)
{
    const struct boot_entry *boot = v->set->host.boot;
    if (boot->mode == BOOT_MODE_RESET)
        return 0; /* KVM creates vCPUs in the power-on state firmware starts from */
    struct kvm_sregs sregs;
    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
        return -errno;
    set_boot_sregs(&sregs, boot->mode);
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
        return -errno;
    struct kvm_regs regs = {.rflags = 2, .rip = boot->entry};
    if (boot->mode == BOOT_MODE_LONG64) {
        regs.rsi = boot->boot_info;
        regs.rsp = regs.rbp = LAYOUT_BOOT_STACK;
    } else {
        regs.rbx = boot->boot_info;
    }
    if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
        return -errno;
    return 0;
}

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

static int set_boot_msrs(struct vcpu *v)
{
    static const struct {
        uint32_t index;
        uint64_t value;
    } boot_msrs[] = {
        {MSR_IA32_SYSENTER_CS, 0},
        {MSR_IA32_SYSENTER_ESP, 0},
        {MSR_IA32_SYSENTER_EIP, 0},
        {MSR_STAR, 0},
        {MSR_LSTAR, 0},
        {MSR_CSTAR, 0},
        {MSR_SYSCALL_MASK, 0},
        {MSR_KERNEL_GS_BASE, 0},
        {MSR_IA32_TSC, 0},
        {MSR_IA32_MISC_ENABLE, 1},           /* fast string operations */
        {MSR_MTRR_DEF_TYPE, (1u << 11) | 6}, /* MTRRs on, default write-back */
    };
    /* struct kvm_msrs ends in a flexible array: the entries follow it in one buffer. */
    union {
        struct kvm_msrs hdr;
        uint8_t
            bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry) * ARRAY_SIZE(boot_msrs)];
    } msrs;
    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = ARRAY_SIZE(boot_msrs);
    for (size_t i = 0; i < ARRAY_SIZE(boot_msrs); i++) {
        msrs.hdr.entries[i].index = boot_msrs[i].index;
        msrs.hdr.entries[i].data = boot_msrs[i].value;
    }
    int n = ioctl(v->fd, KVM_SET_MSRS, &msrs);
    if (n < 0)
        return -errno;
    /* KVM stops at the first MSR it refuses; the rest are optional niceties. */
    if (n < (int)ARRAY_SIZE(boot_msrs))
        klog(v->set->host.log, KILN_LOG_DEBUG, "vcpu %u: KVM refused MSR 0x%x", v->index,
             boot_msrs[n].index);
    return 0;
}

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static void lapic_set_lvt(struct kvm_lapic_state *l, unsigned reg, unsigned mode)
{
    uint32_t val;
    memcpy(&val, &l->regs[reg], 4);
    val = (val & ~0x700u) | (mode << 8);
    memcpy(&l->regs[reg], &val, 4);
}

/* LINT0 takes the 8259's ExtINT and LINT1 takes NMI, as firmware leaves them on a PC. */
static int set_lapic(struct vcpu *v)
{
    struct kvm_lapic_state lapic;
    if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
        return -errno;
    lapic_set_lvt(&lapic, APIC_LVT_LINT0, APIC_MODE_EXTINT);
    lapic_set_lvt(&lapic, APIC_LVT_LINT1, APIC_MODE_NMI);
    if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
        return -errno;
    return 0;
}

static int set_fpu(struct vcpu *v)
{
    struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
    return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

/* State every vCPU gets, boot CPU or not. */
int regs_setup_common(struct vcpu *v)
{
    int ret = set_boot_msrs(v);
    if (ret == 0)
        ret = set_fpu(v);
    if (ret == 0)
        ret = set_lapic(v);
    return ret;
}
