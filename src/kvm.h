/* kvm.h: /dev/kvm access: the capabilities kiln needs, the VM fd, its RAM slots and irqchip. */
#ifndef KILN_KVM_H
#define KILN_KVM_H

#include <stdint.h>

#include "memory.h"

/*
 * How libkiln issues VM ioctls (KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IOEVENTFD): through fn, so
 * unit tests can record them instead. Returns 0 (or the ioctl's non-negative result) or -errno.
 */
struct vm_ioctl {
    int (*fn)(void *ctx, unsigned long request, void *arg);
    void *ctx;
};

/* The real one: ctx points at the VM fd (an int, e.g. &vm->vm_fd). */
int vm_ioctl_kvm(void *ctx, unsigned long request, void *arg);

/*
 * Every call below returns the fd or 0, or -errno with a one-line message naming what failed
 * in errmsg (KILN_ERRMSG_MAX bytes).
 */

/* Open /dev/kvm and check its API version and the capabilities kiln relies on. */
int kvm_open(char *errmsg);
/* The most vCPUs one VM may have on this host. */
int kvm_max_vcpus(int kvm_fd);
/* Bytes of a vCPU's shared run area. */
int kvm_vcpu_mmap_size(int kvm_fd, char *errmsg);

/*
 * A new VM: tss and identity_map are the guest-physical pages Intel's real-mode emulation needs
 * below 4 GiB (3 and 1 pages, outside RAM and MMIO); mem's regions become its memory slots;
 * then the in-kernel irqchip (PIC, I/O APIC, LAPICs) and PIT. Returns the VM fd.
 */
int kvm_create_vm(int kvm_fd, uint64_t tss, uint64_t identity_map, const struct guest_mem *mem,
                  char *errmsg);

/*
 * Map size bytes at host (page-aligned) read-only at gpa as memory slot slot: the guest reads
 * it as memory, and its writes exit as MMIO. Needs KVM_CAP_READONLY_MEM.
 */
int kvm_map_rom(int vm_fd, unsigned slot, uint64_t gpa, void *host, uint64_t size, char *errmsg);

#endif
