/* vcpu.h: a VM's vCPUs: KVM vCPU fds, one thread each, run control (pause, stop), exit dispatch. */
#ifndef KILN_VCPU_H
#define KILN_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/loader.h"
#include "bus.h"
#include "memory.h"
#include "sandbox.h"
#include "util.h"

/*
 * What the vCPUs need from their VM; the builder (vm.c) fills it in. This layer sits below the
 * VM and knows nothing else of it.
 */
struct vcpu_host {
    int kvm_fd, vm_fd;
    size_t run_size;               /* KVM_GET_VCPU_MMAP_SIZE */
    const struct boot_entry *boot; /* where vCPU 0 starts */
    const struct bus *pio, *mmio;  /* where port and MMIO exits go */
    const struct kiln_log *log;
    struct end_vm end;             /* a vCPU ends the VM through it (KVM exits, failures) */
    const struct sandbox *sandbox; /* each vCPU thread enters SANDBOX_VCPU first */
};

struct vcpus;

struct vcpu {
    struct vcpus *set;
    unsigned index; /* also the APIC ID */
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool started;
    atomic_uint_fast64_t exits;
    atomic_uint_fast64_t exit_kinds[4]; /* enum vcpu_exit_kind */
};

/* Exits counted by kind. */
enum vcpu_exit_kind { VCPU_EXIT_IO, VCPU_EXIT_MMIO, VCPU_EXIT_INTR, VCPU_EXIT_OTHER };

/* All vCPUs of a VM and their run control. */
struct vcpus {
    struct vcpu_host host;
    unsigned n;
    struct vcpu *v;
    struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, fetched once */
    /* stopping may be set from any thread; pause_req and paused change under lock. */
    atomic_bool stopping; /* vCPUs leave KVM_RUN and do not enter it again */
    atomic_bool pause_req;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned paused;                       /* threads parked for a pause, or finished */
    atomic_uint unhandled_pio_logged;      /* rate limit for unknown port messages */
    atomic_uint_fast64_t first_run_cpu_ns; /* process CPU time at vCPU 0's first KVM_RUN */
};

/* An empty set bound to its VM (no vCPU yet): vcpus_destroy is safe from here on. */
void vcpus_init(struct vcpus *s, const struct vcpu_host *host);
/*
 * Create n vCPUs: KVM_CREATE_VCPU, the run area, CPUID, MSRs, FPU and LAPIC, and vCPU 0's boot
 * registers (the others wait for INIT/SIPI). Returns 0 or -errno with a message in errmsg.
 */
int vcpus_create(struct vcpus *s, unsigned n, char *errmsg);
/* Start one thread per vCPU; a failure ends the VM through host.end. */
void vcpus_start(struct vcpus *s);
/* Make every vCPU leave KVM_RUN and not enter it again (any thread, not a signal handler). */
void vcpus_stop(struct vcpus *s);
/* Wait for the threads to finish (after vcpus_stop). */
void vcpus_join(struct vcpus *s);
/*
 * Park every vCPU outside KVM_RUN, returning once all are parked (or the VM is stopping), each
 * with the instruction of its last I/O or MMIO exit completed, so its state can be saved;
 * vcpus_resume lets them run again. vcpus_resume returns -EINVAL if no pause was requested.
 */
void vcpus_pause(struct vcpus *s);
int vcpus_resume(struct vcpus *s);
/* Exits handled so far, over all vCPUs. */
uint64_t vcpus_exits(const struct vcpus *s);
/* The same by kind, summed over all vCPUs into kinds (indexed by enum vcpu_exit_kind). */
void vcpus_exit_kinds(const struct vcpus *s, uint64_t kinds[4]);
void vcpus_destroy(struct vcpus *s);

/*
 * vcpu_state.c: append vCPU v's whole state (registers, FPU/XSAVE, XCRs, MSRs, LAPIC, debug
 * registers, MP state, pending events) to st, and set it back. v's thread must be parked.
 */
struct device_state;
int vcpu_save(const struct vcpu *v, struct device_state *st);
int vcpu_restore(struct vcpu *v, struct device_state *st);

/* What the exit dispatcher decided (exposed for tests). */
enum vcpu_action { VCPU_CONTINUE, VCPU_STOP };
enum vcpu_action vcpu_handle_exit(struct vcpu *v);

/* cpuid.c and regs.c: per-vCPU set-up. */
int cpuid_setup(struct vcpu *v);
int regs_setup_common(struct vcpu *v);
int regs_setup_boot(struct vcpu *v);

/* Write the reset-vector stub, the GDT and the identity page tables the boot modes rely on. */
int boot_tables_write(const struct guest_mem *gm);

#endif
