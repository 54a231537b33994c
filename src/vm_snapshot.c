/* vm_snapshot.c: a paused VM's whole state into a directory, and a new VM started from one. */
/*
 * DIR/memory is guest RAM as one file (the regions back to back, as guest_mem lays them out),
 * with holes where pages are zero. DIR/state is a header (magic, format, kiln version, machine
 * shape, CRC-32 of the rest) and then, in order: the firmware (its path and the whole image; empty
 * for a VM that booted a kernel); the in-kernel PIC pair, IOAPIC, PIT and clock; each vCPU's
 * state; each device's name and state. Every part is length-prefixed, and a restore
 * must consume each exactly. A snapshot is only restored by the kiln version that wrote it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "state.h"
#include "vm.h"

#define SNAP_MAGIC "KILNSNAP"
#define SNAP_FORMAT 2
#define SNAP_STATE_MAX (256u << 20)
#define PAGE 4096
#define SNAP_PATH_MAX 4096

struct snap_header {
    char magic[8];
    uint32_t format;
    uint32_t cpus;
    char version[32];
    uint64_t memory;
    uint64_t payload_len;
    uint32_t crc;
    uint32_t ndevices;
};

static int snap_fail(char *errmsg, int err, const char *dir, const char *what)
{
    return kiln_fail(errmsg, err, "snapshot %s: %s: %s", dir, what, strerror(err));
}

/* ---- The parts. */

/* The interrupt controllers, the PIT and the clock, which live in KVM. */
static int save_platform(const struct kiln_vm *vm, struct device_state *st)
{
    for (uint32_t chip = 0; chip < 3; chip++) { /* PIC master, PIC slave, IOAPIC */
        struct kvm_irqchip c = {.chip_id = chip};
        if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &c) < 0)
            return -errno;
        state_put(st, &c, sizeof(c));
    }
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock = {0};
    if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
        return -errno;
    state_put(st, &pit, sizeof(pit));
    state_put_u64(st, clock.clock);
    return st->err ? -st->err : 0;
}

static int restore_platform(struct kiln_vm *vm, struct device_state *st)
{
    for (uint32_t chip = 0; chip < 3; chip++) {
        struct kvm_irqchip c;
        state_get(st, &c, sizeof(c));
        if (st->err || c.chip_id != chip)
            return -EINVAL;
        if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c) < 0)
            return -errno;
    }
    struct kvm_pit_state2 pit;
    state_get(st, &pit, sizeof(pit));
    /* The guest's clock goes on from where it stood: no time passed for it in between. */
    struct kvm_clock_data clock = {.clock = state_get_u64(st)};
    if (st->err)
        return -EINVAL;
    if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0 || ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
        return -errno;
    return 0;
}

/*
 * The BIOS image the VM booted (or was restored with): the guest may jump to its reset vector,
 * and its old path, for kiln_vm_config. Below 1 MiB it is guest RAM, in the memory file.
 */
static int save_firmware(const struct kiln_vm *vm, struct device_state *st)
{
    const char *path = vm->firmware_path ? vm->firmware_path : "";
    state_put_u32(st, (uint32_t)strlen(path));
    state_put(st, path, strlen(path));
    if (vm->firmware_path) {
        state_put_u64(st, vm->firmware.size);
        state_put(st, vm->firmware.image, vm->firmware.size);
    }
    return st->err ? -st->err : 0;
}

/* The firmware part: a machine with firmware gets its image (checked) and path. */
static int restore_firmware(struct kiln_vm *vm, struct device_state *st)
{
    uint32_t n = state_get_u32(st);
    if (st->err || n >= SNAP_PATH_MAX || n > st->len - st->off)
        return -EINVAL;
    if (n == 0)
        return 0; /* a kernel booted: no firmware */
    char *path = calloc(1, n + 1);
    if (!path)
        return -ENOMEM;
    state_get(st, path, n);
    uint64_t size = state_get_u64(st);
    int ret = st->err || strlen(path) != n || size != st->len - st->off
                  ? -EINVAL
                  : firmware_copy(st->buf + st->off, (size_t)size, &vm->firmware);
    if (ret < 0) {
        free(path);
        return ret;
    }
    st->off += (size_t)size;
    vm->firmware_path = path;
    vm->cfg.firmware_path = path;
    vm->boot = (struct boot_entry){.mode = BOOT_MODE_RESET}; /* as firmware_load says */
    return 0;
}

/* One length-prefixed part: what fn appends, preceded by its size. */
static int put_part(struct device_state *st, int (*fn)(const void *obj, struct device_state *),
                    const void *obj)
{
    size_t at = st->len;
    state_put_u64(st, 0);
    int ret = fn(obj, st);
    if (ret == 0 && !st->err) {
        uint64_t len = st->len - at - sizeof(uint64_t);
        memcpy(st->buf + at, &len, sizeof(len));
    }
    return ret < 0 ? ret : st->err ? -st->err : 0;
}

/* A reader over the next length-prefixed part of st (which moves past it). */
static struct device_state get_part(struct device_state *st)
{
    uint64_t len = state_get_u64(st);
    if (st->err || len > st->len - st->off) {
        st->err = EINVAL;
        return (struct device_state){.err = EINVAL};
    }
    struct device_state part = state_reader(st->buf + st->off, (size_t)len);
    st->off += (size_t)len;
    return part;
}

static int vcpu_part(const void *v, struct device_state *st)
{
    return vcpu_save(v, st);
}

static int device_part(const void *d, struct device_state *st)
{
    const struct device *dev = d;
    return dev->ops->save(dev, st);
}

static int platform_part(const void *vm, struct device_state *st)
{
    return save_platform(vm, st);
}

static int firmware_part(const void *vm, struct device_state *st)
{
    return save_firmware(vm, st);
}

/* The devices' part, on the loop thread (see save_devices). */
struct devices_save {
    struct kiln_vm *vm;
    struct device_state *st;
    size_t start;   /* where the devices' part begins in st */
    unsigned which; /* the device that failed */
};

static int save_devices_on_loop(void *arg)
{
    struct devices_save *s = arg;
    s->st->len = s->start; /* drop what an earlier try wrote before a busy device */
    for (unsigned i = 0; i < s->vm->ndevices; i++) {
        const struct device *d = s->vm->devices[i];
        s->which = i;
        state_put_u32(s->st, (uint32_t)strlen(d->name));
        state_put(s->st, d->name, strlen(d->name));
        int ret = put_part(s->st, device_part, d);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/*
 * Each device's state, read on the loop thread: it alone touches the virtqueues and back ends.
 * A device with work in flight (a disk request, a frame half sent) answers -EBUSY; the loop
 * finishes it and we ask again, for up to 5 s.
 */
static int save_devices(struct kiln_vm *vm, struct device_state *st, const char *dir, char *errmsg)
{
    struct devices_save s = {.vm = vm, .st = st, .start = st->len, .which = vm->ndevices};
    /* vm_call_on_loop runs it at once when this is the loop (the API's snapshot): there, a busy
     * device is the caller's to retry, since the loop cannot finish the work while we wait. */
    int ret = vm_call_on_loop(vm, save_devices_on_loop, &s);
    for (int tries = 1; ret == -EBUSY && !vm_on_loop(vm) && tries < 500; tries++) {
        nanosleep(&(struct timespec){0, 10000000}, NULL);
        ret = vm_call_on_loop(vm, save_devices_on_loop, &s);
    }
    if (ret < 0 && s.which < vm->ndevices)
        return kiln_fail(errmsg, -ret, "snapshot %s: device %s: %s", dir,
                         vm->devices[s.which]->name,
                         ret == -EBUSY ? "still busy after 5 s" : strerror(-ret));
    return ret < 0 ? snap_fail(errmsg, -ret, dir, "devices") : 0;
}

/* Everything but RAM, after the header. */
static int save_payload(struct kiln_vm *vm, struct device_state *st, char *errmsg, const char *dir)
{
    int ret = put_part(st, firmware_part, vm);
    if (ret < 0)
        return snap_fail(errmsg, -ret, dir, "firmware");
    ret = put_part(st, platform_part, vm);
    if (ret < 0)
        return snap_fail(errmsg, -ret, dir, "interrupt controllers, PIT and clock");
    for (unsigned i = 0; i < vm->cpus.n; i++)
        if ((ret = put_part(st, vcpu_part, &vm->cpus.v[i])) < 0)
            return kiln_fail(errmsg, -ret, "snapshot %s: vCPU %u: %s", dir, i, strerror(-ret));
    return save_devices(vm, st, dir, errmsg);
}

/* ---- Files. */

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[PAGE];
    return memcmp(p, zero, PAGE) == 0;
}

/* Guest RAM, zero pages left as holes; then the file is exactly the RAM size. */
static int write_memory(const struct guest_mem *gm, int fd)
{
    uint64_t off = 0;
    for (unsigned r = 0; r < gm->nregions; r++) {
        const struct guest_region *reg = &gm->regions[r];
        for (uint64_t p = 0; p < reg->size; p += PAGE, off += PAGE) {
            if (page_is_zero(reg->host + p))
                continue;
            if (lseek(fd, (off_t)off, SEEK_SET) < 0)
                return -errno;
            int ret = write_all(fd, reg->host + p, PAGE);
            if (ret < 0)
                return ret;
        }
    }
    return ftruncate(fd, (off_t)off) < 0 ? -errno : 0;
}

/*
 * Write NAME in directory dfd through NAME.tmp and a rename, so a failed snapshot leaves no half
 * file. Only *at() calls on dfd: a confined loop thread may make exactly these (sandbox.c).
 */
static int write_file(int dfd, const char *dir, const char *name,
                      int (*fill)(int fd, const void *ctx), const void *ctx, char *errmsg)
{
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return snap_fail(errmsg, errno, dir, name);
    int ret = fill(fd, ctx);
    if (ret == 0 && fsync(fd) < 0)
        ret = -errno;
    close(fd);
    if (ret == 0 && renameat(dfd, tmp, dfd, name) < 0)
        ret = -errno;
    if (ret < 0) {
        unlinkat(dfd, tmp, 0);
        return snap_fail(errmsg, -ret, dir, name);
    }
    return 0;
}

static int fill_memory(int fd, const void *vm)
{
    return write_memory(&((const struct kiln_vm *)vm)->mem, fd);
}

static int fill_state(int fd, const void *st)
{
    const struct device_state *s = st;
    return write_all(fd, s->buf, s->len);
}

/* ---- Snapshot. */

static int check_snapshottable(struct kiln_vm *vm, const char *dir, char *errmsg)
{
    pthread_mutex_lock(&vm->lock);
    bool running = vm->state == VM_RUNNING && !vm->ended;
    pthread_mutex_unlock(&vm->lock);
    if (!running || !atomic_load(&vm->cpus.pause_req))
        return kiln_fail(errmsg, EINVAL, "snapshot %s: the VM must be running and paused", dir);
    for (unsigned i = 0; i < vm->ndevices; i++)
        if (!vm->devices[i]->ops->save)
            return kiln_fail(errmsg, ENOTSUP, "snapshot %s: device %s cannot be saved yet", dir,
                             vm->devices[i]->name);
    return 0;
}

/* The state (header, CRC, payload) of a paused VM into *st. */
static int build_state(struct kiln_vm *vm, struct device_state *st, const char *dir, char *errmsg)
{
    int ret = check_snapshottable(vm, dir, errmsg);
    if (ret < 0)
        return ret;
    struct snap_header h = {.format = SNAP_FORMAT,
                            .cpus = vm->cpus.n,
                            .memory = vm->mem.size,
                            .ndevices = vm->ndevices};
    memcpy(h.magic, SNAP_MAGIC, sizeof(h.magic));
    snprintf(h.version, sizeof(h.version), "%s", kiln_version());
    state_put(st, &h, sizeof(h));
    ret = save_payload(vm, st, errmsg, dir);
    if (ret == 0 && st->err)
        ret = snap_fail(errmsg, st->err, dir, "state");
    if (ret == 0) {
        h.payload_len = st->len - sizeof(h);
        h.crc = (uint32_t)crc32(0, st->buf + sizeof(h), (uInt)h.payload_len);
        memcpy(st->buf, &h, sizeof(h));
    }
    return ret;
}

int kiln_vm_snapshot(struct kiln_vm *vm, const char *dir, char errmsg[KILN_ERRMSG_MAX])
{
    errmsg[0] = '\0';
    struct device_state st = {0};
    int ret = build_state(vm, &st, dir, errmsg);
    int dfd = -1;
    if (ret == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
        ret = snap_fail(errmsg, errno, dir, "making the directory");
    if (ret == 0 && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        ret = snap_fail(errmsg, errno, dir, "opening the directory");
    if (ret == 0)
        ret = write_file(dfd, dir, "memory", fill_memory, vm, errmsg);
    if (ret == 0)
        ret = write_file(dfd, dir, "state", fill_state, &st, errmsg);
    if (dfd >= 0)
        close(dfd);
    state_free(&st);
    return ret;
}

/* Empty fd, then fill(fd, ctx) from its start, then sync it. */
static int refill(int fd, int (*fill)(int fd, const void *ctx), const void *ctx)
{
    if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    int ret = fill(fd, ctx);
    return ret < 0 ? ret : fsync(fd) < 0 ? -errno : 0;
}

/* fd, the file a snapshot's part name goes to: a regular file open for writing, not appending. */
static int check_target(int fd, const char *dir, const char *name, struct stat *sb, char *errmsg)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fstat(fd, sb) < 0)
        return snap_fail(errmsg, errno, dir, name);
    if (!S_ISREG(sb->st_mode))
        return kiln_fail(errmsg, EINVAL, "snapshot %s: %s: not a regular file", dir, name);
    if ((fl & O_ACCMODE) == O_RDONLY || (fl & O_APPEND))
        return kiln_fail(errmsg, EBADF, "snapshot %s: %s: not open for writing (or only appending)",
                         dir, name);
    return 0;
}

/* Two distinct files, neither the one this VM's RAM is mapped from (a restored VM's memory). */
static int check_targets(const struct kiln_vm *vm, int state_fd, int memory_fd, const char *dir,
                         char *errmsg)
{
    struct stat s, m;
    int ret = check_target(state_fd, dir, "state", &s, errmsg);
    if (ret == 0)
        ret = check_target(memory_fd, dir, "memory", &m, errmsg);
    if (ret == 0 && s.st_dev == m.st_dev && s.st_ino == m.st_ino)
        ret = kiln_fail(errmsg, EINVAL, "snapshot %s: state and memory are the same file", dir);
    for (int i = 0; ret == 0 && vm->mem_file_ino && i < 2; i++) {
        const struct stat *sb = i ? &m : &s;
        if (sb->st_dev == vm->mem_file_dev && sb->st_ino == vm->mem_file_ino)
            ret = kiln_fail(errmsg, EBUSY,
                            "snapshot %s: %s: the memory file this VM was restored from (in use)",
                            dir, i ? "memory" : "state");
    }
    return ret;
}

int vm_snapshot_fds(struct kiln_vm *vm, int state_fd, int memory_fd, const char *dir, char *errmsg)
{
    errmsg[0] = '\0';
    struct device_state st = {0};
    int ret = check_targets(vm, state_fd, memory_fd, dir, errmsg);
    if (ret == 0)
        ret = build_state(vm, &st, dir, errmsg);
    /* The state goes first to empty and last to full: an interrupted snapshot has no state,
     * and a restore refuses it rather than pairing an old state with new memory. */
    if (ret == 0 && (ftruncate(state_fd, 0) < 0 || fsync(state_fd) < 0))
        ret = snap_fail(errmsg, errno, dir, "state");
    if (ret == 0 && (ret = refill(memory_fd, fill_memory, vm)) < 0)
        ret = snap_fail(errmsg, -ret, dir, "memory");
    if (ret == 0 && (ret = refill(state_fd, fill_state, &st)) < 0)
        ret = snap_fail(errmsg, -ret, dir, "state");
    state_free(&st);
    return ret;
}

int kiln_vm_snapshot_fds(struct kiln_vm *vm, int state_fd, int memory_fd,
                         char errmsg[KILN_ERRMSG_MAX])
{
    return vm_snapshot_fds(vm, state_fd, memory_fd, "(files)", errmsg);
}

/* ---- Restore. */

/* DIR/NAME opened for reading, and its size; -errno with the message otherwise. */
static int open_part(const char *dir, const char *name, struct stat *sb, char *errmsg)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, sb) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return kiln_fail(errmsg, err, "restore %s: %s: %s", dir, name, strerror(err));
    }
    return fd;
}

static int read_state(const char *dir, struct device_state *st, char *errmsg)
{
    struct stat sb;
    int fd = open_part(dir, "state", &sb, errmsg);
    if (fd < 0)
        return fd;
    if (sb.st_size < (off_t)sizeof(struct snap_header) || sb.st_size > SNAP_STATE_MAX) {
        close(fd);
        return kiln_fail(errmsg, EINVAL, "restore %s: state: not a kiln snapshot (its size)", dir);
    }
    *st = (struct device_state){.buf = malloc((size_t)sb.st_size), .len = (size_t)sb.st_size};
    ssize_t n = st->buf ? read(fd, st->buf, st->len) : -1;
    close(fd);
    if (n != (ssize_t)st->len) {
        state_free(st);
        return kiln_fail(errmsg, EIO, "restore %s: state: cannot read it whole", dir);
    }
    return 0;
}

/* The header: ours, this version's, intact, and the machine the config describes (its devices are
 * counted once they exist, by check_devices). */
static int check_header(const struct kiln_vm *vm, const char *dir, struct device_state *st,
                        char *errmsg)
{
    struct snap_header h;
    state_get(st, &h, sizeof(h));
    if (memcmp(h.magic, SNAP_MAGIC, sizeof(h.magic)) != 0 || h.format != SNAP_FORMAT)
        return kiln_fail(errmsg, EINVAL, "restore %s: not a kiln snapshot (format %u)", dir,
                         SNAP_FORMAT);
    h.version[sizeof(h.version) - 1] = '\0';
    if (strcmp(h.version, kiln_version()) != 0)
        return kiln_fail(errmsg, EINVAL, "restore %s: made by kiln %s; this is kiln %s", dir,
                         h.version, kiln_version());
    if (h.payload_len != st->len - st->off ||
        (uint32_t)crc32(0, st->buf + st->off, (uInt)h.payload_len) != h.crc)
        return kiln_fail(errmsg, EINVAL, "restore %s: state: corrupt (checksum mismatch)", dir);
    if (h.cpus != vm->cfg.cpus || h.memory != vm->cfg.memory_bytes)
        return kiln_fail(errmsg, EINVAL,
                         "restore %s: the snapshot has %u vCPUs and %llu MiB of memory; the "
                         "config %u and %llu MiB",
                         dir, h.cpus, (unsigned long long)(h.memory >> 20), vm->cfg.cpus,
                         (unsigned long long)(vm->cfg.memory_bytes >> 20));
    return 0;
}

/* The snapshot's device count (in its header) against the devices the config made. */
static int check_devices(const struct kiln_vm *vm, const char *dir, const struct device_state *st,
                         char *errmsg)
{
    struct snap_header h;
    memcpy(&h, st->buf, sizeof(h)); /* read_state made sure it is there */
    if (h.ndevices != vm->ndevices)
        return kiln_fail(
            errmsg, EINVAL, "restore %s: the snapshot has %u devices; the config makes %u (%s)",
            dir, h.ndevices, vm->ndevices, vm->firmware_path ? "a firmware boot" : "a kernel boot");
    return 0;
}

static int restore_device(struct device *d, struct device_state *st, const char *dir, char *errmsg)
{
    uint32_t n = state_get_u32(st);
    char name[64] = "";
    if (!st->err && n < sizeof(name))
        state_get(st, name, n);
    if (st->err || n >= sizeof(name) || strcmp(name, d->name) != 0 || !d->ops->restore)
        return kiln_fail(errmsg, EINVAL, "restore %s: device %s: the snapshot has '%s' there", dir,
                         d->name, name);
    struct device_state part = get_part(st);
    int ret = st->err ? -EINVAL : d->ops->restore(d, &part);
    if (ret == 0)
        ret = state_done(&part);
    return ret < 0
               ? kiln_fail(errmsg, -ret, "restore %s: device %s: %s", dir, d->name, strerror(-ret))
               : 0;
}

static int restore_payload(struct kiln_vm *vm, struct device_state *st, const char *dir,
                           char *errmsg)
{
    struct device_state part = get_part(st);
    int ret = st->err ? -EINVAL : restore_platform(vm, &part);
    if (ret == 0)
        ret = state_done(&part);
    if (ret < 0)
        return kiln_fail(errmsg, -ret, "restore %s: interrupt controllers, PIT and clock: %s", dir,
                         strerror(-ret));
    for (unsigned i = 0; i < vm->cpus.n; i++) {
        part = get_part(st);
        ret = st->err ? -EINVAL : vcpu_restore(&vm->cpus.v[i], &part);
        if (ret == 0)
            ret = state_done(&part);
        if (ret < 0)
            return kiln_fail(errmsg, -ret, "restore %s: vCPU %u: %s", dir, i, strerror(-ret));
    }
    for (unsigned i = 0; i < vm->ndevices; i++)
        if ((ret = restore_device(vm->devices[i], st, dir, errmsg)) < 0)
            return ret;
    return state_done(st) < 0 ? kiln_fail(errmsg, EINVAL, "restore %s: state: trailing data", dir)
                              : 0;
}

int vm_restore_memory(struct kiln_vm *vm, char *errmsg)
{
    const char *dir = vm->cfg.restore_dir;
    struct stat sb;
    int fd = open_part(dir, "memory", &sb, errmsg);
    if (fd < 0)
        return fd;
    int ret = (uint64_t)sb.st_size == vm->cfg.memory_bytes
                  ? guest_mem_map_file(&vm->mem, vm->cfg.memory_bytes, fd)
                  : -EINVAL;
    if (ret == 0) { /* a snapshot must not be written into it (vm_snapshot_fds) */
        vm->mem_file_dev = sb.st_dev;
        vm->mem_file_ino = sb.st_ino;
    }
    close(fd); /* the mapping keeps the file */
    if (ret == -EINVAL)
        return kiln_fail(errmsg, EINVAL, "restore %s: memory is %lld bytes; the config says %llu",
                         dir, (long long)sb.st_size, (unsigned long long)vm->cfg.memory_bytes);
    return ret < 0 ? kiln_fail(errmsg, -ret, "restore %s: memory: %s", dir, strerror(-ret)) : 0;
}

int vm_restore_open(struct kiln_vm *vm, char *errmsg)
{
    const char *dir = vm->cfg.restore_dir;
    struct device_state *st = &vm->restore_state;
    int ret = read_state(dir, st, errmsg);
    if (ret == 0)
        ret = check_header(vm, dir, st, errmsg);
    if (ret < 0)
        return ret;
    struct device_state part = get_part(st);
    ret = st->err ? -EINVAL : restore_firmware(vm, &part);
    if (ret == 0)
        ret = state_done(&part);
    return ret < 0 ? kiln_fail(errmsg, -ret, "restore %s: firmware: %s", dir, strerror(-ret)) : 0;
}

int vm_restore_state(struct kiln_vm *vm, char *errmsg)
{
    int ret = check_devices(vm, vm->cfg.restore_dir, &vm->restore_state, errmsg);
    if (ret == 0)
        ret = restore_payload(vm, &vm->restore_state, vm->cfg.restore_dir, errmsg);
    state_free(&vm->restore_state);
    return ret;
}
