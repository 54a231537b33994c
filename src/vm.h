/* vm.h: the VM object (everything one VM owns) and the internal calls between its parts. */
#ifndef KILN_VM_H
#define KILN_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "kiln.h"
#include "boot/loader.h"
#include "memory.h"
#include "util.h"

struct serial;
struct i8042;
struct exitdev;
struct pvpanic;
struct acpi_pm;
struct irq_routing;
struct pci_bus;
struct virtio_blk;
struct virtio_net;
struct virtio_pci;
struct virtio_mmio;

struct vcpu {
    struct kiln_vm *vm;
    unsigned index; /* also the APIC ID */
    int fd;
    struct kvm_run *run;
    size_t run_size;
    pthread_t thread;
    bool started;
    atomic_uint_fast64_t exits;
};

enum vm_state { VM_CREATED, VM_RUNNING, VM_DONE };

struct kiln_vm {
    struct kiln_log log;
    struct kiln_config cfg; /* copy; strings below are owned */
    char *kernel_path, *initrd_path, *cmdline;

    int kvm_fd;
    int vm_fd;
    int kvm_run_size;
    struct kvm_cpuid2 *supported_cpuid;
    struct guest_mem mem;
    struct bus pio;
    struct bus mmio;
    struct boot_entry boot;

    struct serial *serial;
    struct i8042 *i8042;
    struct exitdev *exitdev;
    struct pvpanic *pvpanic;
    struct acpi_pm *acpi_pm;
    struct irq_routing *irq_routing; /* owns KVM's GSI routing table */
    struct pci_bus *pci;
    struct virtio_blk *blk[KILN_MAX_DISKS];
    struct virtio_pci *blk_pci[KILN_MAX_DISKS];   /* --transport pci */
    struct virtio_mmio *blk_mmio[KILN_MAX_DISKS]; /* --transport mmio */
    unsigned ndisks;
    struct virtio_net *net[KILN_MAX_NETS];
    struct virtio_pci *net_pci[KILN_MAX_NETS];
    struct virtio_mmio *net_mmio[KILN_MAX_NETS];
    unsigned nnets;
    atomic_uint unhandled_pio_logged; /* rate limit for unknown port messages */

    unsigned ncpus;
    struct vcpu *vcpus;

    uv_loop_t loop;
    bool loop_ready;
    uv_async_t wake; /* any thread -> loop: something ended or was requested */
    uv_timer_t timeout;
    atomic_bool wake_ready;

    /* Run state. stop_req is set from signal handlers; the rest under lock. */
    atomic_bool stop_req;
    atomic_bool stopping; /* vCPUs must leave KVM_RUN and not re-enter */
    atomic_bool pause_req;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned paused; /* vCPU threads parked for a pause (or finished) */
    enum vm_state state;
    bool ended;
    struct kiln_exit exit;
    atomic_uint_fast64_t first_run_cpu_ns;
};

/* Record why the VM ends (the first reason wins) and make every vCPU and the loop stop. */
void vm_finish(struct kiln_vm *vm, enum kiln_exit_reason reason, int status, int error,
               const char *fmt, ...) KILN_PRINTF(5, 6);

/* Interrupt every vCPU thread currently in (or about to enter) KVM_RUN. */
void vm_kick_vcpus(struct kiln_vm *vm);

/* kvm.c: /dev/kvm access. */
int kvm_open(char *errmsg);
int kvm_check_caps(int kvm_fd, char *errmsg);
int kvm_max_vcpus(int kvm_fd);
int kvm_create_vm(struct kiln_vm *vm, char *errmsg);
int kvm_irq_line_fd(struct kiln_vm *vm, unsigned gsi, int *fd);

/* vcpu/: per-vCPU setup and threads. */
int vcpu_create(struct kiln_vm *vm, struct vcpu *v, char *errmsg);
void vcpu_destroy(struct vcpu *v);
int cpuid_setup(struct kiln_vm *vm, struct vcpu *v);
int regs_setup_boot(struct kiln_vm *vm, struct vcpu *v);
int regs_setup_common(struct kiln_vm *vm, struct vcpu *v);
int boot_tables_write(const struct guest_mem *gm);
int vcpu_start(struct vcpu *v);
void vcpu_join(struct vcpu *v);

/* What the exit dispatcher decided. */
enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };
enum vcpu_action vcpu_handle_exit(struct kiln_vm *vm, struct vcpu *v);

#endif
