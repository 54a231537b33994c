/* kvm.c: opening /dev/kvm, checking the capabilities kiln relies on, creating the VM. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

#define KVM_PATH "/dev/kvm"

int vm_ioctl_kvm(void *ctx, unsigned long request, void *arg)
{
    int ret = ioctl(*(const int *)ctx, request, arg);
    return ret < 0 ? -errno : ret;
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

static int check_caps(int kvm_fd, char *errmsg)
{
    for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
            return kiln_fail(errmsg, ENOTSUP, "%s: missing capability %s", KVM_PATH,
                             required_caps[i].name);
    }
    return 0;
}

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
    int ret = version == KVM_API_VERSION
                  ? check_caps(fd, errmsg)
                  : kiln_fail(errmsg, ENOTSUP, "%s: KVM API version %d, kiln needs %d", KVM_PATH,
                              version, KVM_API_VERSION);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    return fd;
}

int kvm_max_vcpus(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    return n > 0 ? n : 4; /* KVM's documented default when neither capability answers */
}

int kvm_vcpu_mmap_size(int kvm_fd, char *errmsg)
{
    int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (size < (int)sizeof(struct kvm_run))
        return kiln_fail(errmsg, EIO, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
    return size;
}

static int set_memory(int vm_fd, const struct guest_mem *mem, char *errmsg)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const struct guest_region *r = &mem->regions[i];
        struct kvm_userspace_memory_region region = {
            .slot = i,
            .guest_phys_addr = r->gpa,
            .memory_size = r->size,
            .userspace_addr = (uintptr_t)r->host,
        };
        if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
            return kiln_fail(errmsg, errno, "KVM_SET_USER_MEMORY_REGION (%llu MiB at 0x%llx): %s",
                             (unsigned long long)(r->size >> 20), (unsigned long long)r->gpa,
                             strerror(errno));
    }
    return 0;
}

static int setup_vm(int kvm_fd, int vm_fd, uint64_t tss, uint64_t identity_map,
                    const struct guest_mem *mem, char *errmsg)
{
    /* Intel VMX needs these pages below 4 GiB for real-mode emulation; harmless on AMD. */
    if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)tss) < 0)
        return kiln_fail(errmsg, errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
        ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0)
        return kiln_fail(errmsg, errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
    int ret = set_memory(vm_fd, mem, errmsg);
    if (ret < 0)
        return ret;
    if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
    return 0;
}

int kvm_create_vm(int kvm_fd, uint64_t tss, uint64_t identity_map, const struct guest_mem *mem,
                  char *errmsg)
{
    int vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm_fd < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_VM: %s", strerror(errno));
    int ret = setup_vm(kvm_fd, vm_fd, tss, identity_map, mem, errmsg);
    if (ret < 0) {
        close(vm_fd);
        return ret;
    }
    return vm_fd;
}

int kvm_map_rom(int vm_fd, unsigned slot, uint64_t gpa, void *host, uint64_t size, char *errmsg)
{
    if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
        return kiln_fail(errmsg, ENOTSUP, "KVM lacks KVM_CAP_READONLY_MEM (read-only firmware)");
    struct kvm_userspace_memory_region region = {
        .slot = slot,
        .flags = KVM_MEM_READONLY,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)host,
    };
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return kiln_fail(
            errmsg, errno, "KVM_SET_USER_MEMORY_REGION (read-only, %llu KiB at 0x%llx): %s",
            (unsigned long long)(size >> 10), (unsigned long long)gpa, strerror(errno));
    return 0;
}
