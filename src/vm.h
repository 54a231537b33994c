/* vm.h: the VM object (everything one VM owns) and the calls between the builder and run. */
#ifndef KILN_VM_H
#define KILN_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "api/api_server.h"
#include "boot/firmware.h"
#include "boot/loader.h"
#include "bus.h"
#include "device.h"
#include "kiln.h"
#include "memory.h"
#include "pci/pci.h"
#include "platform/irq_routing.h"
#include "sandbox.h"
#include "state.h"
#include "util.h"
#include "vcpu/vcpu.h"
#include "virtio/virtio_attach.h"

/* Platform devices, the PCI bus, and a virtio device per disk and per network. */
#define VM_MAX_DEVICES (8 + KILN_MAX_DISKS + KILN_MAX_NETS)

enum vm_state { VM_CREATED, VM_RUNNING, VM_DONE };

struct kiln_vm {
    struct kiln_log log;
    struct kiln_config cfg;                                    /* copy; strings below are owned */
    char *kernel_path, *firmware_path, *initrd_path, *cmdline; /* one of the first two */
    char *restore_dir; /* restoring a snapshot instead of booting, else NULL */
    /* The snapshot memory file guest RAM is mapped from (restored VMs; ino 0: none). */
    dev_t mem_file_dev;
    ino_t mem_file_ino;
    /* Its state file, read whole by vm_restore_open, its reader past the firmware part. */
    struct device_state restore_state;

    int kvm_fd;
    int vm_fd;
    struct guest_mem mem;
    struct boot_entry boot;
    struct firmware firmware; /* the BIOS image, when booting through firmware (or restored) */
    struct fw_cfg *fw_cfg;    /* its configuration device (one of devices[]), or NULL */
    struct device *power;     /* the ACPI power device (one of devices[]): the power button */
    /* Strings of cfg's disks, nets, ports and shares, copied (kiln_vm_config hands them out). */
    char **owned;
    unsigned nowned;
    struct bus pio;
    struct bus mmio;
    struct irq_routing *irq_routing; /* owns KVM's GSI routing table */
    struct pci_bus *pci;             /* bus 0, also one of devices[] */
    struct virtio_env virtio;        /* where virtio devices are attached */
    /* Every device, in the order it was made: started and stopped in this order, destroyed in
     * the reverse one. */
    struct device *devices[VM_MAX_DEVICES];
    unsigned ndevices;
    /* What each instance's class prepare made before /dev/kvm, in the order the devices are
     * made; create takes slot next_prepared (obj becomes NULL), destroy discards the rest. */
    struct {
        const struct device_class *cls;
        void *obj;
    } prepared[VM_MAX_DEVICES];
    unsigned nprepared, next_prepared;
    struct vcpus cpus;
    struct sandbox sandbox; /* the threads' seccomp filters */

    uv_loop_t loop;
    bool loop_ready;
    uv_async_t wake; /* any thread -> loop: something ended or was requested */
    uv_timer_t timeout;
    uv_timer_t grace;       /* kiln_vm_shutdown's deadline */
    struct api_server *api; /* cfg.api_fd served on the loop, or NULL */
    int statm_fd;           /* /proc/self/statm for the API's stats (-1: not open) */
    uint64_t start_ns;      /* CLOCK_MONOTONIC when kiln_vm_run started (under lock) */
    /* One job per threadpool thread, each confining its thread (vm_run.c, confine_pool). */
    uv_work_t *pool_works;
    unsigned npool;
    atomic_uint pool_entered;
    atomic_int pool_error;
    atomic_bool wake_ready;

    /* A function another thread asked the loop to run (vm_call_on_loop); under lock. */
    struct loop_call *call;
    pthread_t loop_thread; /* the thread in kiln_vm_run, once running */
    pthread_cond_t call_cond;

    /* Run state. stop_req, button_req and shutdown_req are set from signal handlers (the last
     * holds timeout_ms + 1, 0: none); shutting_down on the loop; the rest under lock. */
    atomic_bool stop_req;
    atomic_bool button_req;
    atomic_uint_fast64_t shutdown_req;
    atomic_bool shutting_down;
    pthread_mutex_t lock;
    enum vm_state state;
    bool ended;
    struct kiln_exit exit;
};

/* vm.c: a VM with its locks, buses and vCPU set ready and nothing else (the builder's first
 * step; tests build partial VMs on it). kiln_vm_destroy frees it. */
struct kiln_vm *vm_alloc(const struct kiln_config *cfg);

/* vm.c: own d from now on and put its ranges on the buses. */
int vm_add_device(struct kiln_vm *vm, struct device *d, char *errmsg);

/* vm_firmware.c, for VMs that boot through firmware: map the BIOS image read-only below
 * 4 GiB; add the fw_cfg device; fill it with the e820 map, machine facts and the ACPI tables ac
 * describes (through firmware's table loader). Each returns 0 or -errno with errmsg. */
struct acpi_config;
int vm_map_firmware(struct kiln_vm *vm, char *errmsg);
int vm_add_fw_cfg(struct kiln_vm *vm, char *errmsg);
int vm_write_fw_cfg(struct kiln_vm *vm, const struct acpi_config *ac, char *errmsg);

/* vm_snapshot.c, when restoring: first the state file, checked against the config, and the
 * firmware it holds (which makes the VM a firmware machine, with firmware_path its old name);
 * guest RAM mapped from the snapshot (instead of fresh RAM); and after the devices and vCPUs
 * exist, their state, the irqchip's, PIT's and clock's. */
int vm_restore_open(struct kiln_vm *vm, char *errmsg);
int vm_restore_memory(struct kiln_vm *vm, char *errmsg);
/* kiln_vm_snapshot into two open files (dir names them in messages): any thread but a vCPU's,
 * the loop's included (the API's snapshot), opening nothing. The files must be regular, open
 * for writing, two different ones, and not the memory file a restored VM runs on. */
int vm_snapshot_fds(struct kiln_vm *vm, int state_fd, int memory_fd, const char *dir, char *errmsg);
/* True on the thread running the VM's loop. */
bool vm_on_loop(const struct kiln_vm *vm);
int vm_restore_state(struct kiln_vm *vm, char *errmsg);

/*
 * vm_run.c: run fn(arg) on the loop thread of a running VM and return what it returned: the
 * loop is the only thread that touches the virtqueues and back ends, so their state is read
 * there. -ESHUTDOWN if the VM ends first, -EBUSY if another call is pending.
 */
struct loop_call;
int vm_call_on_loop(struct kiln_vm *vm, int (*fn)(void *arg), void *arg);

/* vm_run.c: record why the VM ends (the first reason wins) and stop every vCPU and the loop.
 * Any thread. */
void vm_finish(struct kiln_vm *vm, enum kiln_exit_reason reason, int status, int error,
               const char *fmt, ...) KILN_PRINTF(5, 6);
/* The same, as the struct end_vm callback the vCPUs and devices get (ctx: the VM). */
void vm_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg);

/* vm_api.c: serve cfg.api_fd on the loop (before the loop thread is confined), and stop. */
int vm_api_start(struct kiln_vm *vm);
void vm_api_stop(struct kiln_vm *vm);

#endif
