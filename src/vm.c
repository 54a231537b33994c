/* vm.c: the VM builder (kiln_vm_create, wired top to bottom) and the VM's life cycle. */
#include "vm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "platform/acpi.h"
#include "devices/acpi_pm.h"
#include "devices/exitdev.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "platform/irq_routing.h"
#include "net/net_tap.h"
#include "net/net_user.h"
#include "pci/pci.h"
#include "virtio/virtio_mmio.h"
#include "virtio/virtio_pci.h"
#include "platform/layout.h"

#define DEFAULT_MEMORY (256ULL << 20)
#define SERIAL_FLUSH_MS 2000

void kiln_config_init(struct kiln_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cpus = 1;
    cfg->memory_bytes = DEFAULT_MEMORY;
    cfg->serial_in_fd = -1;
    cfg->serial_out_fd = -1;
    cfg->log_level = KILN_LOG_WARN;
}

const char *kiln_version(void)
{
    return KILN_VERSION_STRING;
}

void vm_finish(struct kiln_vm *vm, enum kiln_exit_reason reason, int status, int error,
               const char *fmt, ...)
{
    pthread_mutex_lock(&vm->lock);
    if (!vm->ended) {
        vm->ended = true;
        vm->exit.reason = reason;
        vm->exit.status = status;
        vm->exit.error = error;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(vm->exit.message, sizeof(vm->exit.message), fmt, ap);
        va_end(ap);
    }
    atomic_store(&vm->stopping, true);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    vm_kick_vcpus(vm);
    if (atomic_load(&vm->wake_ready))
        uv_async_send(&vm->wake);
}

/* Device callbacks that end the VM. */
static void on_exit_device(void *ctx, uint8_t status)
{
    vm_finish(ctx, KILN_EXIT_STATUS, status, 0, "guest wrote %u to the exit device", status);
}

static void on_i8042_reset(void *ctx)
{
    vm_finish(ctx, KILN_EXIT_REBOOT, 0, 0, "guest reset through the i8042 controller");
}

static void on_acpi_poweroff(void *ctx)
{
    vm_finish(ctx, KILN_EXIT_POWEROFF, 0, 0, "guest powered off (ACPI S5)");
}

static void on_acpi_reset(void *ctx)
{
    vm_finish(ctx, KILN_EXIT_REBOOT, 0, 0, "guest reset through the ACPI reset register");
}

static void on_pvpanic(void *ctx, uint8_t events)
{
    struct kiln_vm *vm = ctx;
    if (events & PVPANIC_PANICKED)
        vm_finish(vm, KILN_EXIT_CRASH, 0, 0, "guest kernel panicked (pvpanic)");
    else
        klog(&vm->log, KILN_LOG_INFO, "guest reports a crash kernel is loaded (pvpanic)");
}

static void on_serial_escape(void *ctx)
{
    vm_finish(ctx, KILN_EXIT_STOPPED, 0, 0, "stopped from the console (Ctrl-A x)");
}

static int validate_net(const struct kiln_net *n, unsigned i, char *errmsg)
{
    if (n->kind == KILN_NET_TAP && (!n->tap_name || !n->tap_name[0]))
        return kiln_fail(errmsg, EINVAL, "net %u: a TAP device needs an interface name", i);
    if (n->kind != KILN_NET_TAP && n->kind != KILN_NET_USER)
        return kiln_fail(errmsg, EINVAL, "net %u: kind %d is not tap or user", i, (int)n->kind);
    if (n->kind == KILN_NET_TAP && n->nhostfwd)
        return kiln_fail(errmsg, EINVAL, "--net tap=%s: hostfwd is for user-mode networking",
                         n->tap_name);
    if (n->nhostfwd > KILN_MAX_HOSTFWD)
        return kiln_fail(errmsg, EINVAL, "net %u: %u port forwards (at most %d)", i, n->nhostfwd,
                         KILN_MAX_HOSTFWD);
    if (n->mac_set && (n->mac[0] & 1))
        return kiln_fail(errmsg, EINVAL, "net %u: MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast",
                         i, n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
    return 0;
}

static int validate_nets(const struct kiln_config *cfg, char *errmsg)
{
    for (unsigned i = 0; i < cfg->nnets; i++) {
        int ret = validate_net(&cfg->nets[i], i, errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int validate_config(const struct kiln_config *cfg, int max_vcpus, char *errmsg)
{
    if (cfg->cpus == 0)
        return kiln_fail(errmsg, EINVAL, "cpus 0: a VM needs at least one vCPU");
    if (cfg->cpus > KILN_MAX_CPUS || (int)cfg->cpus > max_vcpus)
        return kiln_fail(errmsg, EINVAL, "cpus %u: above the maximum of %d vCPUs", cfg->cpus,
                         max_vcpus < KILN_MAX_CPUS ? max_vcpus : KILN_MAX_CPUS);
    if (cfg->memory_bytes < KILN_MIN_MEMORY)
        return kiln_fail(errmsg, EINVAL, "memory %llu bytes: below the minimum of %llu MiB",
                         (unsigned long long)cfg->memory_bytes,
                         (unsigned long long)(KILN_MIN_MEMORY >> 20));
    if (cfg->memory_bytes % 4096)
        return kiln_fail(errmsg, EINVAL, "memory %llu bytes: not a multiple of 4 KiB",
                         (unsigned long long)cfg->memory_bytes);
    if (cfg->transport != KILN_TRANSPORT_PCI && cfg->transport != KILN_TRANSPORT_MMIO)
        return kiln_fail(errmsg, EINVAL, "transport %d: not pci or mmio", (int)cfg->transport);
    if (cfg->ndisks > KILN_MAX_DISKS || cfg->nnets > KILN_MAX_NETS)
        return kiln_fail(errmsg, EINVAL, "%u disks and %u networks: at most %d and %d", cfg->ndisks,
                         cfg->nnets, KILN_MAX_DISKS, KILN_MAX_NETS);
    if (cfg->transport == KILN_TRANSPORT_MMIO && cfg->ndisks + cfg->nnets > VIRTIO_MMIO_MAX_DEVICES)
        return kiln_fail(errmsg, EINVAL, "%u disks and %u networks: virtio-mmio has room for %d",
                         cfg->ndisks, cfg->nnets, VIRTIO_MMIO_MAX_DEVICES);
    return validate_nets(cfg, errmsg);
}

/* Bytes one virtio_mmio.device= entry takes at most (" virtio_mmio.device=512@0x...:15"). */
#define MMIO_CMDLINE_ENTRY_MAX 48

/* With virtio-mmio the guest learns where the devices are from its command line. */
static int add_mmio_cmdline(struct kiln_vm *vm)
{
    unsigned ndev = vm->cfg.ndisks + vm->cfg.nnets;
    if (vm->cfg.transport != KILN_TRANSPORT_MMIO || ndev == 0)
        return 0;
    size_t size = strlen(vm->cmdline) + 1 + ndev * MMIO_CMDLINE_ENTRY_MAX;
    char *s = realloc(vm->cmdline, size);
    if (!s)
        return -ENOMEM;
    vm->cmdline = s;
    vm->cfg.cmdline = s;
    for (unsigned i = 0; i < ndev; i++) {
        uint64_t base;
        unsigned gsi;
        int ret = virtio_mmio_slot(i, &base, &gsi);
        if (ret == 0)
            ret = virtio_mmio_cmdline_append(s, size, base, gsi);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ISA IRQs the virtio-mmio devices use: level-triggered, which ACPI must tell the guest. */
static uint16_t mmio_level_irqs(const struct kiln_vm *vm)
{
    uint16_t irqs = 0;
    unsigned ndev = vm->cfg.ndisks + vm->cfg.nnets;
    for (unsigned i = 0; vm->cfg.transport == KILN_TRANSPORT_MMIO && i < ndev; i++) {
        uint64_t base;
        unsigned gsi;
        if (virtio_mmio_slot(i, &base, &gsi) == 0 && gsi < 16)
            irqs |= (uint16_t)(1u << gsi);
    }
    return irqs;
}

static int copy_strings(struct kiln_vm *vm, const struct kiln_config *cfg)
{
    vm->kernel_path = strdup(cfg->kernel_path);
    vm->initrd_path = cfg->initrd_path ? strdup(cfg->initrd_path) : NULL;
    vm->cmdline = strdup(cfg->cmdline ? cfg->cmdline : "");
    if (!vm->kernel_path || !vm->cmdline || (cfg->initrd_path && !vm->initrd_path))
        return -ENOMEM;
    vm->cfg.kernel_path = vm->kernel_path;
    vm->cfg.initrd_path = vm->initrd_path;
    vm->cfg.cmdline = vm->cmdline;
    return 0;
}

static struct kiln_vm *vm_alloc(const struct kiln_config *cfg)
{
    struct kiln_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    vm->cfg = *cfg;
    vm->log = (struct kiln_log){cfg->log_fn, cfg->log_ctx, cfg->log_level};
    vm->kvm_fd = vm->vm_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->cond, NULL);
    bus_init(&vm->pio);
    bus_init(&vm->mmio);
    return vm;
}

static int add_pio(struct kiln_vm *vm, uint64_t base, uint64_t len, bus_io_fn io, void *dev,
                   const char *name, char *errmsg)
{
    int ret = bus_insert(&vm->pio, base, len, io, dev, name);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "%s at port 0x%llx: %s", name, (unsigned long long)base,
                         strerror(-ret));
    return 0;
}

/* The platform devices: COM1, i8042 (reset), exit device, pvpanic, ACPI power registers. */
static int create_devices(struct kiln_vm *vm, char *errmsg)
{
    int irq_fd = -1;
    int ret = kvm_irq_line_fd(vm, SERIAL_COM1_IRQ, &irq_fd);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "KVM_IRQFD for COM1: %s", strerror(-ret));
    struct serial_config sc = {
        .in_fd = vm->cfg.serial_in_fd,
        .out_fd = vm->cfg.serial_out_fd,
        .irq_fd = irq_fd,
        .escape = vm->cfg.serial_escape,
        .on_escape = on_serial_escape,
        .ctx = vm,
        .log = &vm->log,
    };
    ret = serial_create(&sc, &vm->serial);
    if (ret < 0) {
        close(irq_fd);
        return kiln_fail(errmsg, -ret, "serial: %s", strerror(-ret));
    }
    vm->i8042 = malloc(sizeof(*vm->i8042));
    vm->exitdev = malloc(sizeof(*vm->exitdev));
    vm->pvpanic = malloc(sizeof(*vm->pvpanic));
    vm->acpi_pm = malloc(sizeof(*vm->acpi_pm));
    if (!vm->i8042 || !vm->exitdev || !vm->pvpanic || !vm->acpi_pm)
        return kiln_fail(errmsg, ENOMEM, "out of memory for devices");
    i8042_init(vm->i8042, on_i8042_reset, vm);
    *vm->exitdev = (struct exitdev){.on_exit = on_exit_device, .ctx = vm};
    *vm->pvpanic = (struct pvpanic){.on_event = on_pvpanic, .ctx = vm};
    *vm->acpi_pm =
        (struct acpi_pm){.on_poweroff = on_acpi_poweroff, .on_reset = on_acpi_reset, .ctx = vm};
    const struct {
        uint64_t port, len;
        bus_io_fn io;
        void *dev;
        const char *name;
    } pio[] = {
        {SERIAL_COM1_PORT, SERIAL_PORT_LEN, serial_io, vm->serial, "COM1"},
        {I8042_DATA_PORT, 1, i8042_data_io, vm->i8042, "i8042 data"},
        {I8042_CMD_PORT, 1, i8042_cmd_io, vm->i8042, "i8042 command"},
        {EXITDEV_PORT, EXITDEV_LEN, exitdev_io, vm->exitdev, "exit device"},
        {PORT_PVPANIC, 1, pvpanic_io, vm->pvpanic, "pvpanic"},
        {PORT_ACPI_SLEEP_CONTROL, ACPI_PM_LEN, acpi_pm_io, vm->acpi_pm, "ACPI power"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(pio); i++) {
        ret = add_pio(vm, pio[i].port, pio[i].len, pio[i].io, pio[i].dev, pio[i].name, errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The VM's GSI routing table and PCI bus 0 (conf1 ports, BAR window). */
static int create_pci(struct kiln_vm *vm, char *errmsg)
{
    const struct vm_ioctl vmi = {vm_ioctl_kvm, &vm->vm_fd};
    int ret = irq_routing_create(&vmi, &vm->log, &vm->irq_routing);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "IRQ routing: %s", strerror(-ret));
    ret = pci_bus_create(&vm->pio, &vm->mmio, PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, &vm->log,
                         &vm->pci);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "PCI bus: %s", strerror(-ret));
    return 0;
}

/*
 * A virtio device's transport: the next PCI slot (vda = slot 1, then the other disks, then the
 * network devices), or virtio-mmio slot `slot` (its window and IRQ).
 */
static int attach_virtio(struct kiln_vm *vm, struct virtio_device *vd, unsigned slot,
                         struct virtio_pci **pci, struct virtio_mmio **mmio)
{
    if (vm->cfg.transport == KILN_TRANSPORT_PCI) {
        const struct virtio_pci_config pc = {
            .bus = vm->pci, .irqs = vm->irq_routing, .log = &vm->log};
        return virtio_pci_create(vd, &pc, pci);
    }
    struct virtio_mmio_config mc = {.mmio = &vm->mmio, .irqs = vm->irq_routing, .log = &vm->log};
    int ret = virtio_mmio_slot(slot, &mc.base, &mc.gsi);
    return ret < 0 ? ret : virtio_mmio_create(vd, &mc, mmio);
}

static const char *transport_name(const struct kiln_vm *vm)
{
    return vm->cfg.transport == KILN_TRANSPORT_PCI ? "virtio-pci" : "virtio-mmio";
}

/* One virtio-blk device per configured disk, in order (vda first). */
static int create_disks(struct kiln_vm *vm, char *errmsg)
{
    for (unsigned i = 0; i < vm->cfg.ndisks; i++) {
        const struct kiln_disk *d = &vm->cfg.disks[i];
        const struct virtio_blk_config bc = {
            .path = d->path, .read_only = d->read_only, .serial = d->serial};
        int ret = virtio_blk_create(&bc, &vm->loop, &vm->mem, &vm->log, &vm->blk[i], errmsg);
        if (ret < 0)
            return ret;
        vm->ndisks = i + 1;
        ret =
            attach_virtio(vm, virtio_blk_device(vm->blk[i]), i, &vm->blk_pci[i], &vm->blk_mmio[i]);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "disk %s: %s: %s", d->path, transport_name(vm),
                             strerror(-ret));
    }
    return 0;
}

/*
 * The default MAC: locally administered 02:6b:6c ("kl") and three bytes of an FNV-1a hash of
 * the device's kind, TAP name and index, so it is the same every run and two VMs on different
 * TAPs of one bridge differ.
 */
static void default_mac(const struct kiln_net *n, unsigned index, uint8_t mac[6])
{
    char key[64];
    snprintf(key, sizeof(key), "%s/%s/%u", n->kind == KILN_NET_TAP ? "tap" : "user",
             n->kind == KILN_NET_TAP ? n->tap_name : "", index);
    uint32_t h = 2166136261u;
    for (const char *c = key; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    const uint8_t m[6] = {0x02, 0x6b, 0x6c, (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h};
    memcpy(mac, m, 6);
}

/* One virtio-net device per configured network, in order (eth0 first), after the disks. */
static int create_nets(struct kiln_vm *vm, char *errmsg)
{
    for (unsigned i = 0; i < vm->cfg.nnets; i++) {
        const struct kiln_net *cn = &vm->cfg.nets[i];
        struct virtio_net_config nc = {0};
        int ret = cn->kind == KILN_NET_TAP
                      ? net_tap_open(cn->tap_name, &vm->log, &nc.port, errmsg)
                      : net_user_create(cn, i, &vm->loop, &vm->log, &nc.port, errmsg);
        if (ret < 0)
            return ret;
        if (cn->mac_set)
            memcpy(nc.mac, cn->mac, 6);
        else
            default_mac(cn, i, nc.mac);
        ret = virtio_net_create(&nc, &vm->loop, &vm->mem, &vm->log, &vm->net[i], errmsg);
        if (ret < 0)
            return ret;
        vm->nnets = i + 1;
        ret = attach_virtio(vm, virtio_net_device(vm->net[i]), vm->cfg.ndisks + i, &vm->net_pci[i],
                            &vm->net_mmio[i]);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "net %u (%s): %s: %s", i, nc.port->name,
                             transport_name(vm), strerror(-ret));
    }
    return 0;
}

/* ACPI and MP tables, kernel, initrd, command line, and the boot page tables. */
static int load_guest(struct kiln_vm *vm, char *errmsg)
{
    struct boot_request req = {
        .kernel_path = vm->kernel_path,
        .initrd_path = vm->initrd_path,
        .cmdline = vm->cmdline,
    };
    int ret = acpi_write_level_irqs(&vm->mem, vm->ncpus, mmio_level_irqs(vm), &req.rsdp_addr);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "writing ACPI tables for %u CPUs: %s", vm->ncpus,
                         strerror(-ret));
    if ((ret = mptable_write(&vm->mem, vm->ncpus)) < 0)
        return kiln_fail(errmsg, -ret, "writing the MP table for %u CPUs: %s", vm->ncpus,
                         strerror(-ret));
    if ((ret = load_kernel(&vm->mem, &req, &vm->boot, errmsg)) < 0)
        return ret;
    if ((ret = boot_tables_write(&vm->mem)) < 0)
        return kiln_fail(errmsg, -ret, "writing boot page tables: %s", strerror(-ret));
    return 0;
}

static int create_vcpus(struct kiln_vm *vm, char *errmsg)
{
    vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
    if (!vm->vcpus)
        return kiln_fail(errmsg, ENOMEM, "out of memory for %u vCPUs", vm->ncpus);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vm->vcpus[i] = (struct vcpu){.vm = vm, .index = i, .fd = -1};
    for (unsigned i = 0; i < vm->ncpus; i++) {
        int ret = vcpu_create(vm, &vm->vcpus[i], errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int open_kvm(struct kiln_vm *vm, char *errmsg)
{
    vm->kvm_fd = kvm_open(errmsg);
    if (vm->kvm_fd < 0)
        return vm->kvm_fd;
    int ret = kvm_check_caps(vm->kvm_fd, errmsg);
    if (ret < 0)
        return ret;
    vm->kvm_run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->kvm_run_size < (int)sizeof(struct kvm_run))
        return kiln_fail(errmsg, EIO, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
    return 0;
}

/* The builder: every step of making a VM, in the order it happens. */
int kiln_vm_create(const struct kiln_config *cfg, struct kiln_vm **out,
                   char errmsg[KILN_ERRMSG_MAX])
{
    *out = NULL;
    errmsg[0] = '\0';
    if (!cfg->kernel_path || !cfg->kernel_path[0])
        return kiln_fail(errmsg, EINVAL, "no kernel given");
    struct kiln_vm *vm = vm_alloc(cfg);
    if (!vm)
        return kiln_fail(errmsg, ENOMEM, "out of memory");
    int ret;
    if ((ret = copy_strings(vm, cfg)) < 0) {
        kiln_fail(errmsg, ENOMEM, "out of memory");
        goto fail;
    }
    if ((ret = validate_config(&vm->cfg, KILN_MAX_CPUS, errmsg)) < 0)
        goto fail;
    if ((ret = add_mmio_cmdline(vm)) < 0) {
        kiln_fail(errmsg, -ret, "kernel command line: %s", strerror(-ret));
        goto fail;
    }
    vm->ncpus = vm->cfg.cpus;
    if ((ret = guest_mem_init(&vm->mem, vm->cfg.memory_bytes)) < 0) {
        kiln_fail(errmsg, -ret, "memory %llu MiB: cannot allocate guest RAM: %s",
                  (unsigned long long)(vm->cfg.memory_bytes >> 20), strerror(-ret));
        goto fail;
    }
    /* The user's files are checked before the host: a bad image is reported as such anywhere. */
    if ((ret = load_guest(vm, errmsg)) < 0)
        goto fail;
    if ((ret = open_kvm(vm, errmsg)) < 0)
        goto fail;
    if ((ret = validate_config(&vm->cfg, kvm_max_vcpus(vm->kvm_fd), errmsg)) < 0)
        goto fail;
    if ((ret = kvm_create_vm(vm, errmsg)) < 0)
        goto fail;
    if ((ret = uv_loop_init(&vm->loop)) < 0) {
        kiln_fail(errmsg, -ret, "event loop: %s", uv_strerror(ret));
        goto fail;
    }
    vm->loop_ready = true;
    if ((ret = create_devices(vm, errmsg)) < 0)
        goto fail;
    if ((ret = create_pci(vm, errmsg)) < 0 || (ret = create_disks(vm, errmsg)) < 0 ||
        (ret = create_nets(vm, errmsg)) < 0)
        goto fail;
    if ((ret = create_vcpus(vm, errmsg)) < 0)
        goto fail;
    vm->state = VM_CREATED;
    *out = vm;
    return 0;
fail:
    kiln_vm_destroy(vm);
    return ret;
}

static void wake_cb(uv_async_t *h)
{
    struct kiln_vm *vm = h->data;
    if (atomic_load(&vm->stop_req))
        vm_finish(vm, KILN_EXIT_STOPPED, 0, 0, "stop requested");
    if (atomic_load(&vm->stopping))
        uv_stop(&vm->loop);
}

static void timeout_cb(uv_timer_t *h)
{
    struct kiln_vm *vm = h->data;
    vm_finish(vm, KILN_EXIT_TIMEOUT, 0, 0, "timeout of %llu ms reached",
              (unsigned long long)vm->cfg.timeout_ms);
}

static int start_loop_handles(struct kiln_vm *vm)
{
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
    ret = serial_start(vm->serial, &vm->loop);
    for (unsigned i = 0; i < vm->ndisks && ret == 0; i++)
        ret = vm->blk_pci[i] ? virtio_pci_start(vm->blk_pci[i], &vm->loop)
                             : virtio_mmio_start(vm->blk_mmio[i], &vm->loop);
    for (unsigned i = 0; i < vm->nnets && ret == 0; i++) {
        /* The device's own handles first: the transport may activate it from the next turn. */
        ret = virtio_net_start(vm->net[i]);
        if (ret == 0)
            ret = vm->net_pci[i] ? virtio_pci_start(vm->net_pci[i], &vm->loop)
                                 : virtio_mmio_start(vm->net_mmio[i], &vm->loop);
    }
    return ret;
}

static void close_loop_handles(struct kiln_vm *vm)
{
    atomic_store(&vm->wake_ready, false);
    serial_stop(vm->serial);
    for (unsigned i = 0; i < vm->ndisks; i++)
        if (vm->blk_pci[i])
            virtio_pci_stop(vm->blk_pci[i]);
        else if (vm->blk_mmio[i])
            virtio_mmio_stop(vm->blk_mmio[i]);
    for (unsigned i = 0; i < vm->nnets; i++) {
        if (vm->net_pci[i])
            virtio_pci_stop(vm->net_pci[i]);
        else if (vm->net_mmio[i])
            virtio_mmio_stop(vm->net_mmio[i]);
        virtio_net_stop(vm->net[i]);
    }
    uv_close((uv_handle_t *)&vm->timeout, NULL);
    uv_close((uv_handle_t *)&vm->wake, NULL);
    uv_run(&vm->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
}

int kiln_vm_run(struct kiln_vm *vm, struct kiln_exit *exit)
{
    pthread_mutex_lock(&vm->lock);
    bool created = vm->state == VM_CREATED;
    if (created)
        vm->state = VM_RUNNING;
    pthread_mutex_unlock(&vm->lock);
    if (!created)
        return -EINVAL;
    int ret = start_loop_handles(vm);
    if (ret < 0) {
        vm_finish(vm, KILN_EXIT_ERROR, 0, -ret, "event loop: %s", uv_strerror(ret));
    } else {
        for (unsigned i = 0; i < vm->ncpus && !atomic_load(&vm->stopping); i++) {
            ret = vcpu_start(&vm->vcpus[i]);
            if (ret < 0)
                vm_finish(vm, KILN_EXIT_ERROR, 0, -ret, "starting vcpu %u: %s", i, strerror(-ret));
        }
        /* A stop requested before the loop existed only set stop_req. */
        if (atomic_load(&vm->stop_req))
            uv_async_send(&vm->wake);
        if (!atomic_load(&vm->stopping))
            uv_run(&vm->loop, UV_RUN_DEFAULT);
    }
    vm_kick_vcpus(vm);
    for (unsigned i = 0; i < vm->ncpus; i++)
        vcpu_join(&vm->vcpus[i]);
    serial_flush(vm->serial, SERIAL_FLUSH_MS);
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

int kiln_vm_pause(struct kiln_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    if (vm->state != VM_RUNNING || vm->ended) {
        pthread_mutex_unlock(&vm->lock);
        return -EINVAL;
    }
    atomic_store(&vm->pause_req, true);
    pthread_mutex_unlock(&vm->lock);
    vm_kick_vcpus(vm);
    pthread_mutex_lock(&vm->lock);
    while (vm->paused < vm->ncpus && !vm->ended)
        pthread_cond_wait(&vm->cond, &vm->lock);
    pthread_mutex_unlock(&vm->lock);
    return 0;
}

int kiln_vm_resume(struct kiln_vm *vm)
{
    pthread_mutex_lock(&vm->lock);
    bool paused = atomic_load(&vm->pause_req);
    atomic_store(&vm->pause_req, false);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
    return paused ? 0 : -EINVAL;
}

void kiln_vm_stats(const struct kiln_vm *vm, struct kiln_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    stats->first_run_cpu_ns = atomic_load(&vm->first_run_cpu_ns);
    stats->guest_resident_bytes = guest_resident_bytes(&vm->mem);
    for (unsigned i = 0; i < vm->ncpus && vm->vcpus; i++)
        stats->vcpu_exits += atomic_load(&vm->vcpus[i].exits);
    for (unsigned i = 0; i < vm->nnets; i++) {
        struct virtio_net_stats ns;
        virtio_net_get_stats(vm->net[i], &ns);
        stats->net_rx_frames += ns.rx_frames;
        stats->net_tx_frames += ns.tx_frames;
        stats->net_rx_dropped += ns.rx_dropped;
        stats->net_tx_dropped += ns.tx_dropped;
    }
}

void kiln_vm_destroy(struct kiln_vm *vm)
{
    if (!vm)
        return;
    for (unsigned i = 0; vm->vcpus && i < vm->ncpus; i++)
        vcpu_destroy(&vm->vcpus[i]);
    free(vm->vcpus);
    /* Transports first (they unplug and drop their ioeventfds), then the devices, bus, routes. */
    for (unsigned i = 0; i < vm->ndisks; i++) {
        virtio_pci_destroy(vm->blk_pci[i]);
        virtio_mmio_destroy(vm->blk_mmio[i]); /* its bus range goes with vm->mmio below */
        virtio_blk_destroy(vm->blk[i]);
    }
    for (unsigned i = 0; i < vm->nnets; i++) {
        virtio_pci_destroy(vm->net_pci[i]);
        virtio_mmio_destroy(vm->net_mmio[i]);
        virtio_net_destroy(vm->net[i]);
    }
    pci_bus_destroy(vm->pci);
    irq_routing_destroy(vm->irq_routing);
    if (vm->loop_ready)
        uv_loop_close(&vm->loop);
    serial_destroy(vm->serial);
    if (vm->i8042)
        i8042_destroy(vm->i8042);
    free(vm->i8042);
    free(vm->exitdev);
    free(vm->pvpanic);
    free(vm->acpi_pm);
    bus_free(&vm->pio);
    bus_free(&vm->mmio);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    guest_mem_free(&vm->mem);
    free(vm->supported_cpuid);
    free(vm->kernel_path);
    free(vm->initrd_path);
    free(vm->cmdline);
    pthread_cond_destroy(&vm->cond);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}
