/* vm.c: the VM builder: kiln_vm_create wires a VM top to bottom, kiln_vm_destroy undoes it. */
#include "vm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/acpi_pm.h"
#include "devices/devices.h"
#include "devices/debug_exit.h"
#include "devices/exitdev.h"
#include "devices/virtio_9p.h"
#include "devices/virtio_console.h"
#include "devices/virtio_vsock.h"
#include "devices/i8042.h"
#include "devices/pvpanic.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio_blk.h"
#include "devices/virtio_net.h"
#include "kvm.h"
#include "platform/acpi.h"
#include "platform/layout.h"
#include "platform/mptable.h"
#include "virtio/virtio_mmio.h"

#define DEFAULT_MEMORY (256ULL << 20)

/* The platform devices, in the order they are made (and appear in the DSDT). */
static const struct device_class *const platform_devices[] = {
    &serial_class, /* COM1 */
    &i8042_class,      &exitdev_class, &pvpanic_class,
    &acpi_pm_class,    &rtc_class, /* only with firmware: the clock and CMOS memory it reads */
    &debug_exit_class,             /* only when asked for */
};

/* The devices on the virtio transport, after PCI bus 0: disks (vda, ...), then networks. */
static const struct device_class *const virtio_devices[] = {
    &virtio_blk_class, &virtio_net_class,   &virtio_console_class,
    &virtio_9p_class,  &virtio_vsock_class,
};

void kiln_config_init(struct kiln_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cpus = 1;
    cfg->memory_bytes = DEFAULT_MEMORY;
    cfg->serial_in_fd = -1;
    cfg->serial_out_fd = -1;
    cfg->log_level = KILN_LOG_WARN;
    cfg->api_fd = -1;
    cfg->snapshot_state_fd = cfg->snapshot_memory_fd = -1;
}

const char *kiln_version(void)
{
    return KILN_VERSION_STRING;
}

/* ---- The user's input: configuration, RAM, the kernel. */

/* strdup of s, NULL for NULL; false if out of memory. */
static bool copy_string(const char *s, char **out)
{
    *out = s ? strdup(s) : NULL;
    return !s || *out;
}

/* Point *field at a copy the VM owns (NULL stays NULL). */
static bool own(struct kiln_vm *vm, const char **field)
{
    if (!*field)
        return true;
    char **grown = realloc(vm->owned, (vm->nowned + 1) * sizeof(*grown));
    if (!grown)
        return false;
    vm->owned = grown;
    char *copy = strdup(*field);
    if (!copy)
        return false;
    vm->owned[vm->nowned++] = copy;
    *field = copy;
    return true;
}

/* The devices' strings, so that the configuration the VM keeps stands on its own. */
static bool copy_device_strings(struct kiln_vm *vm)
{
    struct kiln_config *c = &vm->cfg;
    bool ok = true;
    for (unsigned i = 0; i < c->ndisks && i < KILN_MAX_DISKS; i++)
        ok = ok && own(vm, &c->disks[i].path) && own(vm, &c->disks[i].serial);
    for (unsigned i = 0; i < c->nnets && i < KILN_MAX_NETS; i++) {
        ok = ok && own(vm, &c->nets[i].tap_name);
        for (unsigned j = 0; j < c->nets[i].nhostfwd && j < KILN_MAX_HOSTFWD; j++)
            ok = ok && own(vm, &c->nets[i].hostfwd[j].host_addr) &&
                 own(vm, &c->nets[i].hostfwd[j].guest_addr);
    }
    for (unsigned i = 0; i < c->nports && i < KILN_MAX_PORTS; i++)
        ok = ok && own(vm, &c->ports[i].name) && own(vm, &c->ports[i].path);
    for (unsigned i = 0; i < c->nshares && i < KILN_MAX_SHARES; i++)
        ok = ok && own(vm, &c->shares[i].path) && own(vm, &c->shares[i].tag);
    /* Also the vsock device's path, which it removes at the end (see sandbox.c). */
    return ok && own(vm, &c->vsock.uds_path);
}

/* A restored VM's firmware, if any, is the snapshot's (vm_restore_open), never the config's. */
static int copy_strings(struct kiln_vm *vm, const struct kiln_config *cfg, char *errmsg)
{
    bool firmware = !cfg->restore_dir && boot_via_firmware(cfg);
    const char *fw = cfg->firmware_path ? cfg->firmware_path : KILN_DEFAULT_FIRMWARE;
    if (!copy_string(firmware ? NULL : cfg->kernel_path, &vm->kernel_path) ||
        !copy_string(firmware ? fw : NULL, &vm->firmware_path) ||
        !copy_string(cfg->initrd_path, &vm->initrd_path) ||
        !copy_string(cfg->cmdline ? cfg->cmdline : "", &vm->cmdline) ||
        !copy_string(cfg->restore_dir, &vm->restore_dir) || !copy_device_strings(vm))
        return kiln_fail(errmsg, ENOMEM, "out of memory");
    vm->cfg.restore_dir = vm->restore_dir;
    vm->cfg.kernel_path = vm->kernel_path;
    vm->cfg.firmware_path = vm->firmware_path;
    vm->cfg.initrd_path = vm->initrd_path;
    vm->cfg.cmdline = vm->cmdline;
    return 0;
}

/* Instances of every virtio device class: each takes a virtio-mmio slot. */
static unsigned virtio_count(const struct kiln_config *cfg)
{
    unsigned n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(virtio_devices); i++)
        n += device_class_count(virtio_devices[i], cfg);
    return n;
}

/* Firmware boots the first disk it finds on PCI: there is no kernel to give an initrd to. */
static int check_firmware_config(const struct kiln_config *cfg, char *errmsg)
{
    if (!boot_via_firmware(cfg))
        return 0;
    if (cfg->ndisks == 0)
        return kiln_fail(errmsg, EINVAL, "nothing to boot: no kernel and no disk");
    if (cfg->initrd_path)
        return kiln_fail(errmsg, EINVAL, "initrd '%s': needs a kernel (firmware boots a disk)",
                         cfg->initrd_path);
    if (cfg->transport != KILN_TRANSPORT_PCI)
        return kiln_fail(errmsg, EINVAL,
                         "transport mmio: needs a kernel (firmware finds disks on PCI)");
    return 0;
}

static int check_classes(const struct kiln_config *cfg, const struct device_class *const *c,
                         size_t n, char *errmsg)
{
    for (size_t i = 0; i < n; i++) {
        int ret = c[i]->check ? c[i]->check(cfg, errmsg) : 0;
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* max_vcpus: KILN_MAX_CPUS before /dev/kvm is open, KVM's own limit after. */
static int check_config(const struct kiln_config *cfg, int max_vcpus, char *errmsg)
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
    if (cfg->seccomp != KILN_SECCOMP_THREADS && cfg->seccomp != KILN_SECCOMP_ALL &&
        cfg->seccomp != KILN_SECCOMP_OFF)
        return kiln_fail(errmsg, EINVAL, "seccomp %d: not threads, all or off", (int)cfg->seccomp);
    if (cfg->transport != KILN_TRANSPORT_PCI && cfg->transport != KILN_TRANSPORT_MMIO)
        return kiln_fail(errmsg, EINVAL, "transport %d: not pci or mmio", (int)cfg->transport);
    if (cfg->ndisks > KILN_MAX_DISKS || cfg->nnets > KILN_MAX_NETS)
        return kiln_fail(errmsg, EINVAL, "%u disks and %u networks: at most %d and %d", cfg->ndisks,
                         cfg->nnets, KILN_MAX_DISKS, KILN_MAX_NETS);
    if (cfg->transport == KILN_TRANSPORT_MMIO && virtio_count(cfg) > VIRTIO_MMIO_MAX_DEVICES)
        return kiln_fail(errmsg, EINVAL, "%u disks and %u networks: virtio-mmio has room for %d",
                         cfg->ndisks, cfg->nnets, VIRTIO_MMIO_MAX_DEVICES);
    int ret = check_firmware_config(cfg, errmsg);
    if (ret == 0)
        ret = check_classes(cfg, platform_devices, ARRAY_SIZE(platform_devices), errmsg);
    return ret < 0 ? ret : check_classes(cfg, virtio_devices, ARRAY_SIZE(virtio_devices), errmsg);
}

static int check_user_config(struct kiln_vm *vm, char *errmsg)
{
    return check_config(&vm->cfg, KILN_MAX_CPUS, errmsg);
}

/* Bytes one virtio_mmio.device= entry takes at most (" virtio_mmio.device=512@0x...:15"). */
#define MMIO_CMDLINE_ENTRY_MAX 48

/*
 * With virtio-mmio the guest learns where the devices are from two places, each for one kind of
 * kernel: these virtio_mmio.device= entries (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: minimal kernels,
 * often without ACPI) and the DSDT (each transport's describe hook: ACPI kernels such as the
 * distros'). A kernel with both finds each device twice; the second probe fails with -EBUSY on
 * the window the first one holds, which costs a log line and nothing else.
 */
static int add_mmio_cmdline(struct kiln_vm *vm, char *errmsg)
{
    unsigned n = virtio_count(&vm->cfg);
    if (vm->cfg.transport != KILN_TRANSPORT_MMIO || n == 0)
        return 0;
    size_t size = strlen(vm->cmdline) + 1 + n * MMIO_CMDLINE_ENTRY_MAX;
    char *s = realloc(vm->cmdline, size);
    if (!s)
        return kiln_fail(errmsg, ENOMEM, "kernel command line: %s", strerror(ENOMEM));
    vm->cmdline = s;
    vm->cfg.cmdline = s;
    int ret = virtio_mmio_cmdline(s, size, n);
    return ret < 0 ? kiln_fail(errmsg, -ret, "kernel command line: %s", strerror(-ret)) : 0;
}

/* A snapshot's header and its firmware, which decide the machine, before anything checks it. */
static int open_snapshot(struct kiln_vm *vm, char *errmsg)
{
    return vm->restore_dir ? vm_restore_open(vm, errmsg) : 0;
}

static int create_memory(struct kiln_vm *vm, char *errmsg)
{
    if (vm->restore_dir)
        return vm_restore_memory(vm, errmsg);
    int ret = guest_mem_init(&vm->mem, vm->cfg.memory_bytes);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "memory %llu MiB: cannot allocate guest RAM: %s",
                         (unsigned long long)(vm->cfg.memory_bytes >> 20), strerror(-ret));
    return 0;
}

/* Kernel, initrd and command line into RAM, with the boot parameters that point at them. */
/* The kernel (and initrd, and boot parameters), or the firmware that will boot a disk. */
static int load_guest(struct kiln_vm *vm, char *errmsg)
{
    if (vm->restore_dir)
        return 0; /* RAM holds the guest already, and the firmware came with the snapshot */
    if (vm->firmware_path)
        return firmware_load(&vm->mem, vm->firmware_path, &vm->firmware, &vm->boot, errmsg);
    const struct boot_request req = {
        .kernel_path = vm->kernel_path,
        .initrd_path = vm->initrd_path,
        .cmdline = vm->cmdline,
        .rsdp_addr = ACPI_RSDP_ADDR, /* the tables themselves follow the devices */
    };
    return load_kernel(&vm->mem, &req, &vm->boot, errmsg);
}

/* ---- The host: KVM, the interrupt routing, the event loop. */

/* /dev/kvm, the VM with its RAM slots, the in-kernel irqchip and PIT. */
static int create_kvm_vm(struct kiln_vm *vm, char *errmsg)
{
    vm->kvm_fd = kvm_open(errmsg);
    if (vm->kvm_fd < 0)
        return vm->kvm_fd;
    int run_size = kvm_vcpu_mmap_size(vm->kvm_fd, errmsg);
    if (run_size < 0)
        return run_size;
    vm->cpus.host.kvm_fd = vm->kvm_fd;
    vm->cpus.host.run_size = (size_t)run_size;
    int ret = check_config(&vm->cfg, kvm_max_vcpus(vm->kvm_fd), errmsg);
    if (ret < 0)
        return ret;
    vm->vm_fd = kvm_create_vm(vm->kvm_fd, LAYOUT_TSS, LAYOUT_IDENTITY_MAP, &vm->mem, errmsg);
    vm->cpus.host.vm_fd = vm->vm_fd;
    if (vm->vm_fd < 0)
        return vm->vm_fd;
    return vm->firmware_path ? vm_map_firmware(vm, errmsg) : 0;
}

static int create_irq_routing(struct kiln_vm *vm, char *errmsg)
{
    const struct vm_ioctl vmi = {vm_ioctl_kvm, &vm->vm_fd};
    int ret = irq_routing_create(&vmi, &vm->log, &vm->irq_routing);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "IRQ routing: %s", strerror(-ret));
    vm->virtio.irqs = vm->irq_routing;
    return 0;
}

static int create_loop(struct kiln_vm *vm, char *errmsg)
{
    int ret = uv_loop_init(&vm->loop);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "event loop: %s", uv_strerror(ret));
    vm->loop_ready = true;
    return 0;
}

/* The seccomp filters of the threads the configuration confines (see enum kiln_seccomp). */
static int build_sandbox(struct kiln_vm *vm, char *errmsg)
{
    const struct kiln_config *c = &vm->cfg;
    struct sandbox_spec spec = {.roles[SANDBOX_VCPU] = c->seccomp != KILN_SECCOMP_OFF};
    spec.roles[SANDBOX_LOOP] = spec.roles[SANDBOX_WORKER] = c->seccomp == KILN_SECCOMP_ALL;
    for (unsigned i = 0; i < c->nnets; i++)
        spec.user_net |= c->nets[i].kind == KILN_NET_USER;
    spec.disks = c->ndisks > 0;
    spec.shares = c->nshares > 0;
    spec.vsock_path = c->vsock.uds_path;
    spec.api = c->api_fd >= 0;
    spec.snapshot = c->api_fd >= 0; /* into files a request sends, or --snapshot-dir's */
    return sandbox_build(&vm->sandbox, &spec, errmsg);
}

/* ---- Devices. */

int vm_add_device(struct kiln_vm *vm, struct device *d, char *errmsg)
{
    if (vm->ndevices == VM_MAX_DEVICES) {
        if (d->ops->destroy)
            d->ops->destroy(d);
        return kiln_fail(errmsg, ENOSPC, "%s: more than %d devices", d->name, VM_MAX_DEVICES);
    }
    vm->devices[vm->ndevices++] = d;
    unsigned bad = 0;
    int ret = bus_add_device(&vm->pio, &vm->mmio, d, &bad);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "%s at %s 0x%llx: %s", d->name,
                         d->ranges[bad].space == DEVICE_PIO ? "port" : "address",
                         (unsigned long long)d->ranges[bad].base,
                         ret == -EEXIST ? "overlaps another device" : strerror(-ret));
    return 0;
}

/* The environment every device is made in. */
static struct device_env device_env(struct kiln_vm *vm)
{
    return (struct device_env){
        .cfg = &vm->cfg,
        .log = &vm->log,
        .loop = &vm->loop,
        .mem = &vm->mem,
        .irqs = vm->irq_routing,
        .virtio = &vm->virtio,
        .end = {vm_end, vm},
        .sandbox = &vm->sandbox,
    };
}

/* Run prepare for every instance of every class in classes, in order (see prepare_devices). */
static int prepare_classes(struct kiln_vm *vm, const struct device_class *const *classes, size_t n,
                           char *errmsg)
{
    const struct device_env env = device_env(vm);
    for (size_t c = 0; c < n; c++) {
        unsigned count = device_class_count(classes[c], &vm->cfg);
        for (unsigned i = 0; i < count; i++) {
            if (vm->nprepared == VM_MAX_DEVICES)
                return kiln_fail(errmsg, ENOSPC, "more than %d devices", VM_MAX_DEVICES);
            vm->prepared[vm->nprepared].cls = classes[c];
            void **slot = &vm->prepared[vm->nprepared++].obj;
            int ret = classes[c]->prepare ? classes[c]->prepare(&env, i, slot, errmsg) : 0;
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/* Every instance of every class in classes, in order, from what prepare made. */
static int add_devices(struct kiln_vm *vm, const struct device_class *const *classes, size_t n,
                       char *errmsg)
{
    const struct device_env env = device_env(vm);
    for (size_t c = 0; c < n; c++) {
        unsigned count = device_class_count(classes[c], &vm->cfg);
        for (unsigned i = 0; i < count; i++) {
            void *prepared = NULL;
            if (vm->next_prepared < vm->nprepared) {
                prepared = vm->prepared[vm->next_prepared].obj;
                vm->prepared[vm->next_prepared++].obj = NULL; /* create owns it now */
            }
            struct device *d;
            int ret = classes[c]->create(&env, i, prepared, &d, errmsg);
            if (ret == 0)
                ret = vm_add_device(vm, d, errmsg);
            if (ret == 0 && classes[c] == &acpi_pm_class)
                vm->power = d; /* the power button */
            if (ret < 0)
                return ret;
        }
    }
    return 0;
}

/*
 * What the devices take from the host, opened while only the user's input has been used: a
 * missing or locked disk, a bad TAP or a busy port forward is reported as such even on a host
 * without /dev/kvm. Same order as add_platform_devices then add_virtio_devices.
 */
static int prepare_devices(struct kiln_vm *vm, char *errmsg)
{
    int ret = prepare_classes(vm, platform_devices, ARRAY_SIZE(platform_devices), errmsg);
    return ret < 0 ? ret : prepare_classes(vm, virtio_devices, ARRAY_SIZE(virtio_devices), errmsg);
}

/* Free what prepare made for devices never created (the build stopped before them). */
static void discard_prepared(struct kiln_vm *vm)
{
    for (unsigned k = 0; k < vm->nprepared; k++)
        if (vm->prepared[k].obj && vm->prepared[k].cls->discard)
            vm->prepared[k].cls->discard(vm->prepared[k].obj);
}

static int add_platform_devices(struct kiln_vm *vm, char *errmsg)
{
    return add_devices(vm, platform_devices, ARRAY_SIZE(platform_devices), errmsg);
}

/* PCI bus 0: the conf1 ports, the BAR window at the top of the PCI hole, the host bridge. */
static int add_pci_bus(struct kiln_vm *vm, char *errmsg)
{
    int ret = pci_bus_create(PCI_MMIO_WINDOW_BASE, PCI_MMIO_WINDOW_SIZE, &vm->log, &vm->pci);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "PCI bus: %s", strerror(-ret));
    vm->virtio.pci = vm->pci;
    return vm_add_device(vm, pci_bus_device(vm->pci), errmsg);
}

static int add_virtio_devices(struct kiln_vm *vm, char *errmsg)
{
    return add_devices(vm, virtio_devices, ARRAY_SIZE(virtio_devices), errmsg);
}

/* ---- What the guest finds at boot besides its kernel. */

/* The firmware's configuration device, which carries everything below to it. */
static int add_fw_cfg(struct kiln_vm *vm, char *errmsg)
{
    return vm->firmware_path ? vm_add_fw_cfg(vm, errmsg) : 0;
}

/*
 * ACPI tables describing the devices: for a kernel, in RAM with the MP table and the boot GDT
 * and page tables; for firmware, through fw_cfg with the memory map (it makes the rest).
 */
static int write_tables(struct kiln_vm *vm, char *errmsg)
{
    if (vm->restore_dir && !vm->firmware_path)
        return 0; /* in the snapshot's RAM; fw_cfg's files are made again (and checked) */
    unsigned n = vm->cfg.transport == KILN_TRANSPORT_MMIO ? virtio_count(&vm->cfg) : 0;
    bool full = vm->firmware_path != NULL;
    const struct acpi_config ac = {
        .cpus = vm->cfg.cpus,
        .level_irqs = (uint16_t)(virtio_mmio_level_irqs(n) | (full ? 1u << ACPI_SCI_IRQ : 0)),
        .devices = vm->devices,
        .ndevices = vm->ndevices,
        .full_hardware = full,
    };
    if (vm->firmware_path)
        return vm_write_fw_cfg(vm, &ac, errmsg);
    uint64_t rsdp;
    int ret = acpi_write(&vm->mem, &ac, &rsdp);
    if (ret == 0 && rsdp != ACPI_RSDP_ADDR)
        ret = -EFAULT; /* the kernel was told ACPI_RSDP_ADDR */
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "writing ACPI tables for %u CPUs: %s", vm->cfg.cpus,
                         strerror(-ret));
    if ((ret = mptable_write(&vm->mem, vm->cfg.cpus)) < 0)
        return kiln_fail(errmsg, -ret, "writing the MP table for %u CPUs: %s", vm->cfg.cpus,
                         strerror(-ret));
    if ((ret = boot_tables_write(&vm->mem)) < 0)
        return kiln_fail(errmsg, -ret, "writing boot page tables: %s", strerror(-ret));
    return 0;
}

static int create_vcpus(struct kiln_vm *vm, char *errmsg)
{
    return vcpus_create(&vm->cpus, vm->cfg.cpus, errmsg);
}

/* A snapshot's state over what the steps before made: vCPUs, interrupt controllers, devices. */
static int restore_state(struct kiln_vm *vm, char *errmsg)
{
    return vm->restore_dir ? vm_restore_state(vm, errmsg) : 0;
}

/* ---- The builder. */

struct kiln_vm *vm_alloc(const struct kiln_config *cfg)
{
    struct kiln_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    vm->cfg = *cfg;
    vm->log = (struct kiln_log){cfg->log_fn, cfg->log_ctx, cfg->log_level};
    vm->kvm_fd = vm->vm_fd = vm->statm_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    pthread_cond_init(&vm->call_cond, NULL);
    bus_init(&vm->pio);
    bus_init(&vm->mmio);
    vm->virtio = (struct virtio_env){.transport = cfg->transport, .log = &vm->log};
    const struct vcpu_host host = {
        .kvm_fd = -1,
        .vm_fd = -1,
        .boot = &vm->boot,
        .pio = &vm->pio,
        .mmio = &vm->mmio,
        .log = &vm->log,
        .end = {vm_end, vm},
        .sandbox = &vm->sandbox,
    };
    vcpus_init(&vm->cpus, &host);
    return vm;
}

/*
 * Every step of making a VM, in the order it happens. The user's own input comes before the
 * host, so a bad option or image is reported as such even where /dev/kvm is missing.
 */
int kiln_vm_create(const struct kiln_config *cfg, struct kiln_vm **out,
                   char errmsg[KILN_ERRMSG_MAX])
{
    *out = NULL;
    errmsg[0] = '\0';
    struct kiln_vm *vm = vm_alloc(cfg);
    if (!vm)
        return kiln_fail(errmsg, ENOMEM, "out of memory");
    int ret;
    if ((ret = copy_strings(vm, cfg, errmsg)) < 0 ||    /* kernel or firmware, command line */
        (ret = open_snapshot(vm, errmsg)) < 0 ||        /* or a snapshot's machine and firmware */
        (ret = check_user_config(vm, errmsg)) < 0 ||    /* sizes, counts, each device's own */
        (ret = add_mmio_cmdline(vm, errmsg)) < 0 ||     /* where virtio-mmio devices will be */
        (ret = create_memory(vm, errmsg)) < 0 ||        /* guest RAM around the PCI hole */
        (ret = load_guest(vm, errmsg)) < 0 ||           /* kernel and initrd, or firmware */
        (ret = create_loop(vm, errmsg)) < 0 ||          /* the loop the back ends run on */
        (ret = prepare_devices(vm, errmsg)) < 0 ||      /* disk images, TAPs, user networks */
        (ret = build_sandbox(vm, errmsg)) < 0 ||        /* the threads' seccomp filters */
        (ret = create_kvm_vm(vm, errmsg)) < 0 ||        /* /dev/kvm, RAM and ROM, irqchip, PIT */
        (ret = create_irq_routing(vm, errmsg)) < 0 ||   /* GSI routes and interrupt lines */
        (ret = add_platform_devices(vm, errmsg)) < 0 || /* COM1, i8042, exit, pvpanic, ACPI, RTC */
        (ret = add_pci_bus(vm, errmsg)) < 0 ||          /* PCI bus 0 and its host bridge */
        (ret = add_virtio_devices(vm, errmsg)) < 0 ||   /* disks, then networks */
        (ret = add_fw_cfg(vm, errmsg)) < 0 ||           /* firmware's configuration device */
        (ret = write_tables(vm, errmsg)) < 0 ||         /* ACPI and the rest the guest reads */
        (ret = create_vcpus(vm, errmsg)) < 0 ||         /* CPUID, registers; vCPU 0 boots */
        (ret = restore_state(vm, errmsg)) < 0) {        /* or a snapshot's state instead */
        kiln_vm_destroy(vm);
        return ret;
    }
    vm->state = VM_CREATED;
    *out = vm;
    return 0;
}

void kiln_vm_destroy(struct kiln_vm *vm)
{
    if (!vm)
        return;
    vcpus_destroy(&vm->cpus);
    /* Newest first: virtio transports (which drop their ioeventfds) before the PCI bus. */
    for (unsigned i = vm->ndevices; i-- > 0;)
        if (vm->devices[i]->ops->destroy)
            vm->devices[i]->ops->destroy(vm->devices[i]);
    discard_prepared(vm);
    irq_routing_destroy(vm->irq_routing);
    if (vm->loop_ready)
        uv_loop_close(&vm->loop);
    bus_free(&vm->pio);
    bus_free(&vm->mmio);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    guest_mem_free(&vm->mem);
    firmware_free(&vm->firmware);
    sandbox_free(&vm->sandbox);
    free(vm->pool_works);
    free(vm->kernel_path);
    free(vm->firmware_path);
    free(vm->initrd_path);
    free(vm->cmdline);
    free(vm->restore_dir);
    state_free(&vm->restore_state);
    pthread_cond_destroy(&vm->call_cond);
    for (unsigned i = 0; i < vm->nowned; i++)
        free(vm->owned[i]);
    free(vm->owned);
    api_server_free(vm->api);
    if (vm->statm_fd >= 0)
        close(vm->statm_fd);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}
