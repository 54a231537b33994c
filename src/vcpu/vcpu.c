/* vcpu.c: vCPU creation, the per-vCPU thread running KVM_RUN, and exit dispatch to the buses. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vm.h"

int vcpu_create(struct kiln_vm *vm, struct vcpu *v, char *errmsg)
{
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->index);
    if (v->fd < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_VCPU %u: %s", v->index, strerror(errno));
    v->run_size = (size_t)vm->kvm_run_size;
    v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        return kiln_fail(errmsg, errno, "mmap of vcpu %u run area: %s", v->index, strerror(errno));
    }
    int ret = cpuid_setup(vm, v);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "vcpu %u: KVM_SET_CPUID2: %s", v->index, strerror(-ret));
    ret = regs_setup_common(vm, v);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "vcpu %u: register set-up: %s", v->index, strerror(-ret));
    /* Only the boot CPU gets registers; the others wait for INIT/SIPI in the in-kernel LAPIC. */
    if (v->index == 0) {
        ret = regs_setup_boot(vm, v);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "vcpu 0: boot registers: %s", strerror(-ret));
    }
    return 0;
}

void vcpu_destroy(struct vcpu *v)
{
    if (v->run)
        munmap(v->run, v->run_size);
    if (v->fd >= 0)
        close(v->fd);
    v->run = NULL;
    v->fd = -1;
}

/* Port I/O: an exit may carry several items (rep ins/outs); each goes to the bus on its own. */
static void handle_io(struct kiln_vm *vm, struct kvm_run *run)
{
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    /* KVM guarantees the data area fits in the run page; check anyway, the mapping is shared. */
    uint64_t bytes = (uint64_t)run->io.size * run->io.count;
    if (run->io.data_offset > (uint64_t)vm->kvm_run_size ||
        bytes > (uint64_t)vm->kvm_run_size - run->io.data_offset)
        return;
    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        if (bus_access(&vm->pio, run->io.port, data, run->io.size, is_write) < 0 &&
            atomic_fetch_add(&vm->unhandled_pio_logged, 1) < 16)
            klog(&vm->log, KILN_LOG_DEBUG, "unhandled port %s 0x%x size %u",
                 is_write ? "write" : "read", run->io.port, run->io.size);
    }
}

static void handle_mmio(struct kiln_vm *vm, struct kvm_run *run)
{
    uint32_t len = run->mmio.len;
    if (len > sizeof(run->mmio.data))
        return;
    if (bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write) < 0)
        klog(&vm->log, KILN_LOG_DEBUG, "unhandled MMIO %s 0x%llx size %u",
             run->mmio.is_write ? "write" : "read", (unsigned long long)run->mmio.phys_addr, len);
}

static enum vcpu_action handle_system_event(struct kiln_vm *vm, struct kvm_run *run)
{
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_finish(vm, KILN_EXIT_POWEROFF, 0, 0, "guest powered off");
        break;
    case KVM_SYSTEM_EVENT_RESET:
        vm_finish(vm, KILN_EXIT_REBOOT, 0, 0, "guest reset");
        break;
    default:
        vm_finish(vm, KILN_EXIT_CRASH, 0, 0, "guest crash event (type %u)", run->system_event.type);
        break;
    }
    return VCPU_STOP;
}

enum vcpu_action vcpu_handle_exit(struct kiln_vm *vm, struct vcpu *v)
{
    struct kvm_run *run = v->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(vm, run);
        return VCPU_CONTINUE;
    case KVM_EXIT_MMIO:
        handle_mmio(vm, run);
        return VCPU_CONTINUE;
    case KVM_EXIT_INTR:
        return VCPU_CONTINUE;
    case KVM_EXIT_SHUTDOWN:
        vm_finish(vm, KILN_EXIT_CRASH, 0, 0, "vcpu %u: triple fault", v->index);
        return VCPU_STOP;
    case KVM_EXIT_SYSTEM_EVENT:
        return handle_system_event(vm, run);
    case KVM_EXIT_HLT:
        /* Only reachable without an in-kernel LAPIC: nothing could ever wake this vCPU. */
        vm_finish(vm, KILN_EXIT_CRASH, 0, 0, "vcpu %u: halted with no way to wake", v->index);
        return VCPU_STOP;
    case KVM_EXIT_FAIL_ENTRY:
        vm_finish(vm, KILN_EXIT_ERROR, 0, EIO, "vcpu %u: KVM entry failed (reason 0x%llx)",
                  v->index, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return VCPU_STOP;
    case KVM_EXIT_INTERNAL_ERROR:
        vm_finish(vm, KILN_EXIT_ERROR, 0, EIO,
                  "vcpu %u: KVM internal error (suberror %u): the host could not run a guest "
                  "instruction",
                  v->index, run->internal.suberror);
        return VCPU_STOP;
    default:
        vm_finish(vm, KILN_EXIT_ERROR, 0, ENOTSUP, "vcpu %u: unexpected KVM exit reason %u",
                  v->index, run->exit_reason);
        return VCPU_STOP;
    }
}

static uint64_t process_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Park this thread while a pause is requested. Returns false if the VM is stopping. */
static bool wait_while_paused(struct kiln_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    vm->paused++;
    pthread_cond_broadcast(&vm->cond);
    while (atomic_load(&vm->pause_req) && !atomic_load(&vm->stopping))
        pthread_cond_wait(&vm->cond, &vm->lock);
    vm->paused--;
    pthread_mutex_unlock(&vm->lock);
    return !atomic_load(&vm->stopping);
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct kiln_vm *vm = v->vm;
    for (;;) {
        /* Clear the kick flag before looking at the requests: a kick after this is not lost. */
        __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (atomic_load(&vm->stopping))
            break;
        if (atomic_load(&vm->pause_req)) {
            if (!wait_while_paused(vm))
                break;
            continue;
        }
        if (v->index == 0 && atomic_load(&vm->first_run_cpu_ns) == 0)
            atomic_store(&vm->first_run_cpu_ns, process_cpu_ns());
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            vm_finish(vm, KILN_EXIT_ERROR, 0, errno, "vcpu %u: KVM_RUN: %s", v->index,
                      strerror(errno));
            break;
        }
        atomic_fetch_add(&v->exits, 1);
        if (vcpu_handle_exit(vm, v) == VCPU_STOP)
            break;
    }
    /* A finished vCPU counts as paused, so a pause request never waits for it. */
    pthread_mutex_lock(&vm->lock);
    vm->paused++;
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return NULL;
}

static void kick_handler(int sig)
{
    (void)sig; /* its only job is to make KVM_RUN return with EINTR */
}

/* The kick signal: a real-time signal with a handler that does nothing. */
static int kick_signal(void)
{
    return SIGRTMIN + 1;
}

static void install_kick_handler(void)
{
    struct sigaction old;
    sigaction(kick_signal(), NULL, &old);
    /* An ignored or default signal would not interrupt KVM_RUN the way kiln needs. */
    if (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN) {
        struct sigaction sa = {.sa_handler = kick_handler};
        sigemptyset(&sa.sa_mask);
        sigaction(kick_signal(), &sa, NULL);
    }
}

int vcpu_start(struct vcpu *v)
{
    install_kick_handler();
    /* vCPU threads leave process signals (SIGINT, SIGTERM...) to the thread running the loop. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, kick_signal());
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int ret = pthread_create(&v->thread, &attr, vcpu_thread, v);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0)
        return -ret;
    v->started = true;
    char name[16];
    snprintf(name, sizeof(name), "kiln-vcpu%u", v->index);
    pthread_setname_np(v->thread, name);
    return 0;
}

void vcpu_join(struct vcpu *v)
{
    if (v->started)
        pthread_join(v->thread, NULL);
    v->started = false;
}

void vm_kick_vcpus(struct kiln_vm *vm)
{
    for (unsigned i = 0; i < vm->ncpus; i++) {
        struct vcpu *v = &vm->vcpus[i];
        if (!v->run)
            continue;
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (v->started && !pthread_equal(v->thread, pthread_self()))
            pthread_kill(v->thread, kick_signal());
    }
}
