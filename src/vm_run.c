/* vm_run.c: a built VM's life: the event loop, run, stop, pause and resume, and its figures. */
#include "vm.h"

#include "devices/acpi_pm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void vm_end(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg)
{
    struct kiln_vm *vm = ctx;
    pthread_mutex_lock(&vm->lock);
    if (!vm->ended) {
        vm->ended = true;
        vm->exit.reason = reason;
        vm->exit.status = status;
        vm->exit.error = error;
        snprintf(vm->exit.message, sizeof(vm->exit.message), "%s", msg);
    }
    pthread_mutex_unlock(&vm->lock);
    vcpus_stop(&vm->cpus);
    if (atomic_load(&vm->wake_ready))
        uv_async_send(&vm->wake);
}

void vm_finish(struct kiln_vm *vm, enum kiln_exit_reason reason, int status, int error,
               const char *fmt, ...)
{
    char msg[KILN_ERRMSG_MAX];
    KILN_VFORMAT(msg, fmt);
    vm_end(vm, reason, status, error, msg);
}

struct loop_call {
    int (*fn)(void *arg);
    void *arg;
    int ret;
    bool taken, done;
};

/* On the loop: the call another thread is waiting for, if any. */
static void run_call(struct kiln_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    struct loop_call *c = vm->call;
    vm->call = NULL;
    if (c)
        c->taken = true;
    pthread_mutex_unlock(&vm->lock);
    if (!c)
        return;
    int ret = c->fn(c->arg);
    pthread_mutex_lock(&vm->lock);
    c->ret = ret;
    c->done = true;
    pthread_cond_broadcast(&vm->call_cond);
    pthread_mutex_unlock(&vm->lock);
}

bool vm_on_loop(const struct kiln_vm *vm)
{
    return atomic_load(&vm->wake_ready) && pthread_equal(pthread_self(), vm->loop_thread);
}

int vm_call_on_loop(struct kiln_vm *vm, int (*fn)(void *arg), void *arg)
{
    if (vm_on_loop(vm))
        return fn(arg);
    struct loop_call c = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&vm->lock);
    if (vm->call || vm->state != VM_RUNNING || vm->ended || !atomic_load(&vm->wake_ready)) {
        int busy = vm->call != NULL;
        pthread_mutex_unlock(&vm->lock);
        return busy ? -EBUSY : -ESHUTDOWN;
    }
    vm->call = &c;
    pthread_mutex_unlock(&vm->lock);
    uv_async_send(&vm->wake);
    pthread_mutex_lock(&vm->lock);
    while (!c.done) {
        if (!c.taken && vm->ended) { /* the loop may be gone: take the call back */
            vm->call = NULL;
            c.ret = -ESHUTDOWN;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 10000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&vm->call_cond, &vm->lock, &until);
    }
    pthread_mutex_unlock(&vm->lock);
    return c.ret;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void grace_cb(uv_timer_t *h)
{
    struct kiln_vm *vm = h->data;
    vm_finish(vm, KILN_EXIT_STOPPED, KILN_STOP_GRACE_EXPIRED, 0,
              "the guest did not power off after the power button; stopped");
}

static void press_button(struct kiln_vm *vm)
{
    if (vm->power)
        acpi_pm_power_button(vm->power);
}

/* kiln_vm_shutdown on the loop: a paused guest could not answer, so it runs again first. */
static void begin_shutdown(struct kiln_vm *vm, uint64_t timeout_ms)
{
    if (timeout_ms == 0) {
        vm_finish(vm, KILN_EXIT_STOPPED, KILN_STOP_GRACE_EXPIRED, 0, "stopped (no grace time)");
        return;
    }
    if (atomic_load(&vm->cpus.pause_req))
        vcpus_resume(&vm->cpus);
    press_button(vm);
    if (!atomic_exchange(&vm->shutting_down, true))
        uv_timer_start(&vm->grace, grace_cb, timeout_ms, 0);
}

static void wake_cb(uv_async_t *h)
{
    struct kiln_vm *vm = h->data;
    run_call(vm);
    uint64_t shutdown = atomic_exchange(&vm->shutdown_req, 0);
    if (shutdown)
        begin_shutdown(vm, shutdown - 1);
    if (atomic_exchange(&vm->button_req, false))
        press_button(vm);
    if (atomic_load(&vm->stop_req))
        vm_finish(vm, KILN_EXIT_STOPPED, 0, 0, "stop requested");
    if (atomic_load(&vm->cpus.stopping))
        uv_stop(&vm->loop);
}

static void timeout_cb(uv_timer_t *h)
{
    struct kiln_vm *vm = h->data;
    vm_finish(vm, KILN_EXIT_TIMEOUT, 0, 0, "timeout of %llu ms reached",
              (unsigned long long)vm->cfg.timeout_ms);
}

/* The VM's own handles, then every device's back end, in the order the devices were made. */
static int start_loop_handles(struct kiln_vm *vm)
{
    vm->loop_thread = pthread_self();
    int ret = uv_async_init(&vm->loop, &vm->wake, wake_cb);
    if (ret < 0)
        return ret;
    vm->wake.data = vm;
    atomic_store(&vm->wake_ready, true);
    ret = uv_timer_init(&vm->loop, &vm->timeout);
    if (ret < 0)
        return ret;
    vm->timeout.data = vm;
    if (vm->cfg.timeout_ms)
        uv_timer_start(&vm->timeout, timeout_cb, vm->cfg.timeout_ms, 0);
    if ((ret = uv_timer_init(&vm->loop, &vm->grace)) < 0)
        return ret;
    vm->grace.data = vm;
    if ((ret = vm_api_start(vm)) < 0)
        return ret;
    for (unsigned i = 0; i < vm->ndevices && ret == 0; i++) {
        struct device *d = vm->devices[i];
        if (d->ops->start)
            ret = d->ops->start(d, &vm->loop);
    }
    return ret;
}

/* libuv's threadpool size, read as libuv 1.x reads it: UV_THREADPOOL_SIZE, default 4, 1..1024. */
static unsigned pool_size(void)
{
    const char *v = getenv("UV_THREADPOOL_SIZE");
    int n = v ? atoi(v) : 4;
    return n == 0 ? 1 : n < 0 || n > 1024 ? 1024 : (unsigned)n;
}

/*
 * One per pool thread: confine this thread, then hold it (up to 2 s) until every pool thread has
 * taken one of these jobs, so that each thread takes exactly one.
 */
static void pool_confine_work(uv_work_t *w)
{
    struct kiln_vm *vm = w->data;
    int ret = sandbox_enter_once(&vm->sandbox, SANDBOX_WORKER);
    if (ret < 0)
        atomic_store(&vm->pool_error, ret);
    atomic_fetch_add(&vm->pool_entered, 1);
    const struct timespec ms = {0, 1000000};
    for (int i = 0; i < 2000 && atomic_load(&vm->pool_entered) < vm->npool; i++)
        nanosleep(&ms, NULL);
}

static void pool_confine_done(uv_work_t *w, int status)
{
    struct kiln_vm *vm = w->data;
    (void)status;
    int err = atomic_exchange(&vm->pool_error, 0);
    if (err < 0)
        vm_finish(vm, KILN_EXIT_ERROR, 0, -err, "seccomp filter of a disk worker: %s",
                  strerror(-err));
}

/*
 * Start libuv's threadpool (shared by the process) and confine each of its threads, before the
 * loop thread is confined: a confined thread cannot create threads.
 */
static int confine_pool(struct kiln_vm *vm)
{
    vm->npool = pool_size();
    vm->pool_works = calloc(vm->npool, sizeof(*vm->pool_works));
    if (!vm->pool_works)
        return -ENOMEM;
    for (unsigned i = 0; i < vm->npool; i++) {
        vm->pool_works[i].data = vm;
        int ret =
            uv_queue_work(&vm->loop, &vm->pool_works[i], pool_confine_work, pool_confine_done);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Confine the disk workers (with disks) and the thread running the loop (KILN_SECCOMP_ALL). */
static int confine_loop(struct kiln_vm *vm)
{
    int ret = 0;
    if (vm->cfg.ndisks && sandbox_confines(&vm->sandbox, SANDBOX_WORKER))
        ret = confine_pool(vm);
    return ret < 0 ? ret : sandbox_enter(&vm->sandbox, SANDBOX_LOOP);
}

/* Every device's stop (safe after a failed or no start), then a last turn for the closes. */
static void close_loop_handles(struct kiln_vm *vm)
{
    atomic_store(&vm->wake_ready, false);
    for (unsigned i = 0; i < vm->ndevices; i++) {
        struct device *d = vm->devices[i];
        if (d->ops->stop)
            d->ops->stop(d);
    }
    vm_api_stop(vm);
    uv_close((uv_handle_t *)&vm->timeout, NULL);
    if (vm->grace.data) /* set once initialised */
        uv_close((uv_handle_t *)&vm->grace, NULL);
    uv_close((uv_handle_t *)&vm->wake, NULL);
    uv_run(&vm->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
}

int kiln_vm_run(struct kiln_vm *vm, struct kiln_exit *exit)
{
    pthread_mutex_lock(&vm->lock);
    bool created = vm->state == VM_CREATED;
    if (created) {
        vm->state = VM_RUNNING;
        vm->start_ns = monotonic_ns();
    }
    pthread_mutex_unlock(&vm->lock);
    if (!created)
        return -EINVAL;
    int ret = start_loop_handles(vm);
    if (ret < 0) {
        vm_finish(vm, KILN_EXIT_ERROR, 0, -ret, "event loop: %s", uv_strerror(ret));
    } else {
        vcpus_start(&vm->cpus); /* before confine_loop: the filter forbids new threads */
        if ((ret = confine_loop(vm)) < 0)
            vm_finish(vm, KILN_EXIT_ERROR, 0, -ret, "seccomp filters: %s", strerror(-ret));
        /* A request made before the loop existed only set its flag. */
        if (atomic_load(&vm->stop_req) || atomic_load(&vm->button_req) ||
            atomic_load(&vm->shutdown_req))
            uv_async_send(&vm->wake);
        if (!atomic_load(&vm->cpus.stopping))
            uv_run(&vm->loop, UV_RUN_DEFAULT);
    }
    vcpus_stop(&vm->cpus);
    vcpus_join(&vm->cpus);
    close_loop_handles(vm);
    pthread_mutex_lock(&vm->lock);
    vm->state = VM_DONE;
    *exit = vm->exit;
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

void kiln_vm_stop(struct kiln_vm *vm)
{
    /* Only async-signal-safe steps here: an atomic store and uv_async_send. */
    atomic_store(&vm->stop_req, true);
    if (atomic_load(&vm->wake_ready))
        uv_async_send(&vm->wake);
}

/* The VM has ended (or is ending): requests are too late. Async-signal-safe. */
static bool ended(struct kiln_vm *vm)
{
    return atomic_load(&vm->cpus.stopping);
}

int kiln_vm_power_button(struct kiln_vm *vm)
{
    if (ended(vm))
        return -EINVAL;
    atomic_store(&vm->button_req, true);
    if (atomic_load(&vm->wake_ready))
        uv_async_send(&vm->wake);
    return 0;
}

int kiln_vm_shutdown(struct kiln_vm *vm, uint64_t timeout_ms)
{
    if (ended(vm))
        return -EINVAL;
    if (timeout_ms == UINT64_MAX)
        timeout_ms--; /* stored plus one */
    atomic_store(&vm->shutdown_req, timeout_ms + 1);
    if (atomic_load(&vm->wake_ready))
        uv_async_send(&vm->wake);
    return 0;
}

void kiln_vm_info(struct kiln_vm *vm, struct kiln_vm_info *info)
{
    memset(info, 0, sizeof(*info));
    pthread_mutex_lock(&vm->lock);
    enum vm_state st = vm->state;
    bool done = vm->ended;
    uint64_t start = vm->start_ns;
    pthread_mutex_unlock(&vm->lock);
    if (st == VM_CREATED)
        info->state = KILN_VM_CREATED;
    else if (st == VM_DONE || done)
        info->state = KILN_VM_ENDED;
    else if (atomic_load(&vm->shutting_down))
        info->state = KILN_VM_STOPPING;
    else if (atomic_load(&vm->cpus.pause_req))
        info->state = KILN_VM_PAUSED;
    else
        info->state = KILN_VM_RUNNING;
    info->uptime_ns = start ? monotonic_ns() - start : 0;
    info->power_button_presses = vm->power ? acpi_pm_presses(vm->power) : 0;
}

const struct kiln_config *kiln_vm_config(const struct kiln_vm *vm)
{
    return &vm->cfg;
}

int kiln_vm_pause(struct kiln_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool running = vm->state == VM_RUNNING && !vm->ended;
    pthread_mutex_unlock(&vm->lock);
    if (!running)
        return -EINVAL;
    vcpus_pause(&vm->cpus);
    return 0;
}

int kiln_vm_resume(struct kiln_vm *vm)
{
    return vcpus_resume(&vm->cpus);
}

void kiln_vm_stats(const struct kiln_vm *vm, struct kiln_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->first_run_cpu_ns = atomic_load(&vm->cpus.first_run_cpu_ns);
    stats->guest_resident_bytes = guest_resident_bytes(&vm->mem);
    stats->vcpu_exits = vcpus_exits(&vm->cpus);
    uint64_t kinds[4];
    vcpus_exit_kinds(&vm->cpus, kinds);
    stats->exits_io = kinds[VCPU_EXIT_IO];
    stats->exits_mmio = kinds[VCPU_EXIT_MMIO];
    stats->exits_intr = kinds[VCPU_EXIT_INTR];
    stats->exits_other = kinds[VCPU_EXIT_OTHER];
    for (unsigned i = 0; i < vm->ndevices; i++) {
        const struct device *d = vm->devices[i];
        if (d->ops->stats)
            d->ops->stats(d, stats);
    }
}
