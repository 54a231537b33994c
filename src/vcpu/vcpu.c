/* vcpu.c: vCPU creation, one thread per vCPU running KVM_RUN, run control, exit dispatch. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vcpu/vcpu.h"

void vcpus_init(struct vcpus *s, const struct vcpu_host *host)
{
    memset(s, 0, sizeof(*s));
    s->host = *host;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
}

static int vcpu_create(struct vcpu *v, char *errmsg)
{
    const struct vcpu_host *h = &v->set->host;
    v->fd = ioctl(h->vm_fd, KVM_CREATE_VCPU, (unsigned long)v->index);
    if (v->fd < 0)
        return kiln_fail(errmsg, errno, "KVM_CREATE_VCPU %u: %s", v->index, strerror(errno));
    v->run = mmap(NULL, h->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        return kiln_fail(errmsg, errno, "mmap of vcpu %u run area: %s", v->index, strerror(errno));
    }
    int ret = cpuid_setup(v);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "vcpu %u: KVM_SET_CPUID2: %s", v->index, strerror(-ret));
    ret = regs_setup_common(v);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "vcpu %u: register set-up: %s", v->index, strerror(-ret));
    /* Only the boot CPU gets registers; the others wait for INIT/SIPI in the in-kernel LAPIC. */
    if (v->index == 0) {
        ret = regs_setup_boot(v);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "vcpu 0: boot registers: %s", strerror(-ret));
    }
    return 0;
}

int vcpus_create(struct vcpus *s, unsigned n, char *errmsg)
{
    s->v = calloc(n, sizeof(*s->v));
    if (!s->v)
        return kiln_fail(errmsg, ENOMEM, "out of memory for %u vCPUs", n);
    s->n = n;
    for (unsigned i = 0; i < n; i++)
        s->v[i] = (struct vcpu){.set = s, .index = i, .fd = -1};
    for (unsigned i = 0; i < n; i++) {
        int ret = vcpu_create(&s->v[i], errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static void vcpu_destroy(struct vcpu *v)
{
    if (v->run)
        munmap(v->run, v->set->host.run_size);
    if (v->fd >= 0)
        close(v->fd);
    v->run = NULL;
    v->fd = -1;
}

void vcpus_destroy(struct vcpus *s)
{
    for (unsigned i = 0; s->v && i < s->n; i++)
        vcpu_destroy(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
    free(s->cpuid);
    s->cpuid = NULL;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

void vcpus_exit_kinds(const struct vcpus *s, uint64_t kinds[4])
{
    for (unsigned k = 0; k < 4; k++)
        kinds[k] = 0;
    for (unsigned i = 0; i < s->n; i++)
        for (unsigned k = 0; k < 4; k++)
            kinds[k] += atomic_load(&s->v[i].exit_kinds[k]);
}

static enum vcpu_exit_kind exit_kind(uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_IO:
        return VCPU_EXIT_IO;
    case KVM_EXIT_MMIO:
        return VCPU_EXIT_MMIO;
    case KVM_EXIT_INTR:
        return VCPU_EXIT_INTR;
    default:
        return VCPU_EXIT_OTHER;
    }
}

uint64_t vcpus_exits(const struct vcpus *s)
{
    uint64_t n = 0;
    for (unsigned i = 0; s->v && i < s->n; i++)
        n += atomic_load(&s->v[i].exits);
    return n;
}

/* Port I/O: an exit may carry several items (rep ins/outs); each goes to the bus on its own. */
static void handle_io(struct vcpus *s, struct kvm_run *run)
{
    const struct vcpu_host *h = &s->host;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
    /* KVM guarantees the data area fits in the run page; check anyway, the mapping is shared. */
    uint64_t bytes = (uint64_t)run->io.size * run->io.count;
    if (run->io.data_offset > (uint64_t)h->run_size ||
        bytes > (uint64_t)h->run_size - run->io.data_offset)
        return;
    for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        if (bus_access(h->pio, run->io.port, data, run->io.size, is_write) < 0 &&
            atomic_fetch_add(&s->unhandled_pio_logged, 1) < 16)
            klog(h->log, KILN_LOG_DEBUG, "unhandled port %s 0x%x size %u",
                 is_write ? "write" : "read", run->io.port, run->io.size);
    }
}

static void handle_mmio(struct vcpus *s, struct kvm_run *run)
{
    uint32_t len = run->mmio.len;
    if (len > sizeof(run->mmio.data))
        return;
    if (bus_access(s->host.mmio, run->mmio.phys_addr, run->mmio.data, len, run->mmio.is_write) < 0)
        klog(s->host.log, KILN_LOG_DEBUG, "unhandled MMIO %s 0x%llx size %u",
             run->mmio.is_write ? "write" : "read", (unsigned long long)run->mmio.phys_addr, len);
}

static enum vcpu_action handle_system_event(struct vcpus *s, struct kvm_run *run)
{
    const struct end_vm *end = &s->host.end;
    switch (run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        end_vm(end, KILN_EXIT_POWEROFF, 0, 0, "guest powered off");
        break;
    case KVM_SYSTEM_EVENT_RESET:
        end_vm(end, KILN_EXIT_REBOOT, 0, 0, "guest reset");
        break;
    default:
        end_vm(end, KILN_EXIT_CRASH, 0, 0, "guest crash event (type %u)", run->system_event.type);
        break;
    }
    return VCPU_STOP;
}

enum vcpu_action vcpu_handle_exit(struct vcpu *v)
{
    struct vcpus *s = v->set;
    const struct end_vm *end = &s->host.end;
    struct kvm_run *run = v->run;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(s, run);
        return VCPU_CONTINUE;
    case KVM_EXIT_MMIO:
        handle_mmio(s, run);
        return VCPU_CONTINUE;
    case KVM_EXIT_INTR:
        return VCPU_CONTINUE;
    case KVM_EXIT_SHUTDOWN:
        end_vm(end, KILN_EXIT_CRASH, 0, 0, "vcpu %u: triple fault", v->index);
        return VCPU_STOP;
    case KVM_EXIT_SYSTEM_EVENT:
        return handle_system_event(s, run);
    case KVM_EXIT_HLT:
        /* Only reachable without an in-kernel LAPIC: nothing could ever wake this vCPU. */
        end_vm(end, KILN_EXIT_CRASH, 0, 0, "vcpu %u: halted with no way to wake", v->index);
        return VCPU_STOP;
    case KVM_EXIT_FAIL_ENTRY:
        end_vm(end, KILN_EXIT_ERROR, 0, EIO, "vcpu %u: KVM entry failed (reason 0x%llx)", v->index,
               (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return VCPU_STOP;
    case KVM_EXIT_INTERNAL_ERROR:
        end_vm(end, KILN_EXIT_ERROR, 0, EIO,
               "vcpu %u: KVM internal error (suberror %u): the host could not run a guest "
               "instruction",
               v->index, run->internal.suberror);
        return VCPU_STOP;
    default:
        end_vm(end, KILN_EXIT_ERROR, 0, ENOTSUP, "vcpu %u: unexpected KVM exit reason %u", v->index,
               run->exit_reason);
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
static bool wait_while_paused(struct vcpus *s)
{
    pthread_mutex_lock(&s->lock);
    s->paused++;
    pthread_cond_broadcast(&s->cond);
    while (atomic_load(&s->pause_req) && !atomic_load(&s->stopping))
        pthread_cond_wait(&s->cond, &s->lock);
    s->paused--;
    pthread_mutex_unlock(&s->lock);
    return !atomic_load(&s->stopping);
}

/*
 * Before parking for a pause: KVM finishes the instruction of an I/O or MMIO exit (an OUT's
 * RIP, an IN's or an MMIO read's register) only on the next KVM_RUN, so the state a snapshot
 * reads now would replay the access after a restore. KVM_RUN with immediate_exit set completes
 * it and returns at once (EINTR); a string I/O's next round exits again and is handled here.
 * Returns false if the vCPU must stop.
 */
static bool finish_exit(struct vcpu *v)
{
    for (;;) {
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                return true;
            end_vm(&v->set->host.end, KILN_EXIT_ERROR, 0, errno, "vcpu %u: KVM_RUN: %s", v->index,
                   strerror(errno));
            return false;
        }
        atomic_fetch_add(&v->exits, 1);
        atomic_fetch_add(&v->exit_kinds[exit_kind(v->run->exit_reason)], 1);
        if (vcpu_handle_exit(v) == VCPU_STOP)
            return false;
    }
}

static void *vcpu_thread(void *arg)
{
    struct vcpu *v = arg;
    struct vcpus *s = v->set;
    int ret = sandbox_enter(s->host.sandbox, SANDBOX_VCPU);
    if (ret < 0)
        end_vm(&s->host.end, KILN_EXIT_ERROR, 0, -ret, "vcpu %u: seccomp filter: %s", v->index,
               strerror(-ret));
    for (; ret == 0;) {
        /* Clear the kick flag before looking at the requests: a kick after this is not lost. */
        __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (atomic_load(&s->stopping))
            break;
        if (atomic_load(&s->pause_req)) {
            if (!finish_exit(v) || !wait_while_paused(s))
                break;
            continue;
        }
        if (v->index == 0 && atomic_load(&s->first_run_cpu_ns) == 0)
            atomic_store(&s->first_run_cpu_ns, process_cpu_ns());
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            end_vm(&s->host.end, KILN_EXIT_ERROR, 0, errno, "vcpu %u: KVM_RUN: %s", v->index,
                   strerror(errno));
            break;
        }
        atomic_fetch_add(&v->exits, 1);
        atomic_fetch_add(&v->exit_kinds[exit_kind(v->run->exit_reason)], 1);
        if (vcpu_handle_exit(v) == VCPU_STOP)
            break;
    }
    /* A finished vCPU counts as paused, so a pause request never waits for it. */
    pthread_mutex_lock(&s->lock);
    s->paused++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
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

static int vcpu_start(struct vcpu *v)
{
    install_kick_handler();
    /* vCPU threads leave process signals (SIGINT, SIGTERM...) to the thread running the loop. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, kick_signal());
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGSYS); /* a forbidden call must reach the handler, not kill (sandbox.h) */
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

void vcpus_start(struct vcpus *s)
{
    for (unsigned i = 0; i < s->n && !atomic_load(&s->stopping); i++) {
        int ret = vcpu_start(&s->v[i]);
        if (ret < 0)
            end_vm(&s->host.end, KILN_EXIT_ERROR, 0, -ret, "starting vcpu %u: %s", i,
                   strerror(-ret));
    }
}

void vcpus_join(struct vcpus *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        struct vcpu *v = &s->v[i];
        if (v->started)
            pthread_join(v->thread, NULL);
        v->started = false;
    }
}

/* Interrupt every vCPU thread currently in (or about to enter) KVM_RUN. */
static void kick(struct vcpus *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        struct vcpu *v = &s->v[i];
        if (!v->run)
            continue;
        __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
        if (v->started && !pthread_equal(v->thread, pthread_self()))
            pthread_kill(v->thread, kick_signal());
    }
}

void vcpus_stop(struct vcpus *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->stopping, true);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    kick(s);
}

void vcpus_pause(struct vcpus *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->pause_req, true);
    pthread_mutex_unlock(&s->lock);
    kick(s);
    pthread_mutex_lock(&s->lock);
    while (s->paused < s->n && !atomic_load(&s->stopping))
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

int vcpus_resume(struct vcpus *s)
{
    pthread_mutex_lock(&s->lock);
    bool paused = atomic_load(&s->pause_req);
    atomic_store(&s->pause_req, false);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return paused ? 0 : -EINVAL;
}
