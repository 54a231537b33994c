/* kvm.c: opening /dev/kvm, checking the capabilities kiln relies on, creating the VM. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "platform/layout.h"
#include "vm.h"

#define KVM_PATH "/dev/kvm"

int kvm_open(char *errmsg)
{
    int fd = open(KVM_PATH, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return kiln_fail(errmsg, e, "%s: %s%s", KVM_PATH, strerror(e),
                         e == ENOENT   ? " (is the kvm module loaded and virtualization on?)"
                         : e == EACCES ? " (is the user in the kvm group?)"
                                       : "");
    }
    int version = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        close(fd);
        return kiln_fail(errmsg, ENOTSUP, "%s: KVM API version %d, kiln needs %d", KVM_PATH,
                         version, KVM_API_VERSION);
    }
    return fd;
}

static const struct {
    int cap;
    const char *name;
} required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_IRQFD_RESAMPLE, "KVM_CAP_IRQFD_RESAMPLE"},
};

int kvm_check_caps(int kvm_fd, char *errmsg)
{
    for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
            return kiln_fail(errmsg, ENOTSUP, "%s: missing capability %s", KVM_PATH,
                             required_caps[i].name);
    }
    return 0;
}

int kvm_max_vcpus(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    return n > 0 ? n : 4; /* KVM's documented default when neither capability answers */
}

static int set_memory(struct kiln_vm *vm, char *errmsg)
{
    for (unsigned i = 0; i < vm->mem.nregions; i++) {
        const struct guest_region *r = &vm->mem.regions[i];
        struct kvm_userspace_memory_region region = {
            .slot = i,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->host,
        };
        if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
            return kiln_fail(errmsg, errno, "KVM_SET_USER_MEMORY_REGION (%llu MiB at 0x%llx): %s",
                             (unsigned long long)(r->size >> 20), (unsigned long long)r->gpa,
                             strerror(errno));
    }
    return 0;
}

/* Create the VM with its RAM, in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT. */
int kvm_create_vm(struct kiln_vm *vm, char *errmsg)
{
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_VM: %s", strerror(errno));
    /* Intel VMX needs these two pages below 4 GiB for real-mode emulation; harmless on AMD. */
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS) < 0)
        return kiln_fail(errmsg, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
    uint64_t ident = LAYOUT_IDENTITY_MAP;
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
        ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
        return kiln_fail(errmsg, errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
    int ret = set_memory(vm, errmsg);
    if (ret < 0)
        return ret;
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
    return 0;
}

/* An eventfd that, when written, pulses interrupt line gsi (an edge for ISA devices). */
int kvm_irq_line_fd(struct kiln_vm *vm, unsigned gsi, int *fd)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -errno;
    struct kvm_irqfd irqfd = {.fd = (uint32_t)efd, .gsi = gsi};
    if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        int e = errno;
        close(efd);
        return -e;
    }
    *fd = efd;
    return 0;
}
