/* kiln.h: public API of libkiln, a userspace virtual machine monitor on Linux KVM. */
#ifndef KILN_H
#define KILN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0
#define KILN_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

/* Size of the buffer kiln_vm_create() fills with a one-line error message. */
#define KILN_ERRMSG_MAX 256

/* Limits enforced by kiln_vm_create(). */
#define KILN_MIN_MEMORY (8ULL << 20)
#define KILN_MAX_CPUS 255
/* The BIOS a VM without a kernel boots: SeaBIOS as Debian ships it (package seabios). */
#define KILN_DEFAULT_FIRMWARE "/usr/share/seabios/bios-256k.bin"

/* Most virtio-blk disks one VM can have. */
#define KILN_MAX_DISKS 16
/* Longest disk serial (virtio-blk GET_ID returns 20 bytes). */
#define KILN_DISK_SERIAL_MAX 20

/* A raw disk image attached as a virtio-blk device. */
/* A disk image's format. */
enum kiln_disk_format {
    KILN_DISK_AUTO,  /* qcow2 if the file starts with qcow2's magic, else raw (the default) */
    KILN_DISK_RAW,   /* the file's bytes are the disk's */
    KILN_DISK_QCOW2, /* qcow2 version 2 or 3 (backing files, compressed clusters read-only) */
};

struct kiln_disk {
    const char *path; /* image file; opened read-write and locked unless read_only */
    bool read_only;
    const char *serial; /* NULL or up to KILN_DISK_SERIAL_MAX printable ASCII characters */
    enum kiln_disk_format format;
};

/* Most network devices (virtio-net) one VM can have, and host port forwards per device. */
#define KILN_MAX_NETS 8
#define KILN_MAX_HOSTFWD 16

/* Most named ports (virtio-console) one VM can have, and the longest name. */
#define KILN_MAX_PORTS 8
#define KILN_PORT_NAME_MAX 63

/* The host end of a named port. */
enum kiln_port_kind {
    KILN_PORT_FILE = 0, /* the guest's bytes are appended to a file (created 0644) or device */
    KILN_PORT_SOCKET,   /* a unix stream socket something listens on: kiln connects; both ways */
};

/*
 * A named port of the VM's virtio-console device: the guest's /dev/vportNpM, which udev links
 * as /dev/virtio-ports/NAME.
 */
struct kiln_port {
    const char *name; /* 1..KILN_PORT_NAME_MAX of A-Z a-z 0-9 . _ - */
    enum kiln_port_kind kind;
    const char *path;
};

/* Most host directories (virtio-9p shares) one VM can have, and the longest mount tag. */
#define KILN_MAX_SHARES 8
#define KILN_SHARE_TAG_MAX 31

/*
 * A host directory the guest mounts with `mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR`.
 * Every path is resolved beneath it (no symlink or ".." leads out). A writable share (read_only
 * false) lets the guest create, write, rename and remove below it, as kiln's own user.
 */
struct kiln_share {
    const char *path;
    const char *tag; /* 1..KILN_SHARE_TAG_MAX printable characters, no spaces or commas */
    bool read_only;
};

/*
 * The VM's virtio-vsock device (stream sockets), whose host side is unix sockets: host programs
 * connect to uds_path and send "CONNECT <port>\n" to reach a guest listener on that port (kiln
 * answers "OK <hostport>\n"), and a guest connection to host port P reaches the unix socket
 * "<uds_path>_P" a host program listens on. kiln creates uds_path (replacing a stale socket,
 * refusing anything else) and removes it when the VM is destroyed.
 */
struct kiln_vsock {
    uint64_t cid;         /* the guest's context ID: 3 .. 0xfffffffe */
    const char *uds_path; /* NULL: no vsock device (the default) */
};

/* Where a virtio-net device's frames go. */
enum kiln_net_kind {
    KILN_NET_TAP = 1, /* an existing TAP interface (IFF_VNET_HDR; offloads used when offered) */
    /*
     * User-mode networking (libslirp): no root needed. The guest is on 10.0.2.0/24 with DHCP
     * handing out 10.0.2.15 up; 10.0.2.2 is the gateway and reaches the host's loopback;
     * 10.0.2.3 forwards DNS to the host's resolver. IPv6 on fec0::/64 likewise.
     */
    KILN_NET_USER,
};

/* A host port forwarded into the guest (user-mode networking). */
struct kiln_hostfwd {
    bool udp;               /* false: TCP */
    const char *host_addr;  /* address to listen on; NULL or "": 127.0.0.1 */
    uint16_t host_port;     /* 0: any free port */
    const char *guest_addr; /* NULL or "": the first DHCP address, 10.0.2.15 */
    uint16_t guest_port;
};

/* One virtio-net device. */
struct kiln_net {
    enum kiln_net_kind kind;
    const char *tap_name; /* KILN_NET_TAP: the interface name (it must exist) */
    bool mac_set;         /* false: a deterministic locally administered MAC (see README) */
    uint8_t mac[6];
    bool restricted; /* KILN_NET_USER: the guest may reach nothing outside (hostfwd still work) */
    struct kiln_hostfwd hostfwd[KILN_MAX_HOSTFWD];
    unsigned nhostfwd;
};

/* How virtio devices (disks, network) reach the guest. */
enum kiln_transport {
    KILN_TRANSPORT_PCI = 0, /* modern virtio-pci on PCI bus 0 (the default) */
    /*
     * virtio-mmio: each device is a LNRO0005 entry in the DSDT (ACPI kernels) and a
     * virtio_mmio.device=... entry kiln appends to the command line (kernels with
     * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES); the guest kernel needs CONFIG_VIRTIO_MMIO.
     */
    KILN_TRANSPORT_MMIO,
};

/* Log levels passed to a kiln_log_fn. */
enum kiln_log_level {
    KILN_LOG_ERROR = 0,
    KILN_LOG_WARN = 1,
    KILN_LOG_INFO = 2,
    KILN_LOG_DEBUG = 3,
};

/*
 * Receives one log line (no trailing newline). Called from any kiln thread, possibly several at
 * once; it must be thread-safe. The default writes "kiln: LEVEL: MSG" to stderr.
 */
typedef void (*kiln_log_fn)(void *ctx, enum kiln_log_level level, const char *msg);

/*
 * System call filters (seccomp) for the VM's threads. Each confined thread may make only the
 * calls its job needs; any other raises SIGSYS. kiln installs no SIGSYS handler: without one
 * the process is killed (the kiln command installs one that names the call and exits 125).
 * Confined threads call log_fn, so a log_fn may only write, allocate and take locks.
 */
enum kiln_seccomp {
    KILN_SECCOMP_THREADS = 0, /* the vCPU threads kiln creates (the default) */
    /*
     * Also the thread calling kiln_vm_run, for the rest of its life, and the libuv threadpool
     * threads that do disk I/O (shared by the whole process). Such a thread can create no more
     * threads nor open files afterwards: for programs that run one VM and exit, like the kiln
     * command.
     */
    KILN_SECCOMP_ALL,
    KILN_SECCOMP_OFF, /* no filter at all (debugging) */
};

/* Everything needed to build a VM. Initialise with kiln_config_init(), then set fields. */
struct kiln_config {
    /*
     * bzImage or ELF64 (vmlinux, PVH or plain 64-bit), booted directly. NULL or "": boot
     * through BIOS firmware instead, which boots from the first disk (see firmware_path).
     */
    const char *kernel_path;
    /* With no kernel: the BIOS image (SeaBIOS); NULL: KILN_DEFAULT_FIRMWARE. */
    const char *firmware_path;
    const char *initrd_path; /* optional */
    const char *cmdline;     /* kernel command line; NULL means "" */
    unsigned cpus;           /* 1..KILN_MAX_CPUS and at most KVM's limit; default 1 */
    uint64_t memory_bytes;   /* guest RAM; default 256 MiB, at least KILN_MIN_MEMORY */

    /*
     * Serial console (COM1). Bytes the guest transmits are written to serial_out_fd, bytes read
     * from serial_in_fd are received by the guest. Either may be -1 (none). kiln never closes
     * them, never changes their flags or terminal mode: the caller owns them. A pipe whose reader
     * goes away raises SIGPIPE in the caller's process when kiln next writes to it: ignore
     * SIGPIPE (as the kiln command does) or give a file, terminal or socket.
     */
    int serial_in_fd;
    int serial_out_fd;
    /* When true, the input byte sequence Ctrl-A x stops the VM (Ctrl-A Ctrl-A sends Ctrl-A). */
    bool serial_escape;

    uint64_t timeout_ms; /* 0: none; otherwise kiln_vm_run() ends with KILN_EXIT_TIMEOUT */

    struct kiln_disk disks[KILN_MAX_DISKS]; /* in order: /dev/vda, /dev/vdb, ... */
    unsigned ndisks;

    struct kiln_net nets[KILN_MAX_NETS]; /* in order: eth0, eth1, ... (after the disks on PCI) */
    unsigned nnets;

    struct kiln_port ports[KILN_MAX_PORTS]; /* one virtio-console (after the networks) */
    unsigned nports;

    struct kiln_share shares[KILN_MAX_SHARES]; /* a virtio-9p device each (after the console) */
    unsigned nshares;

    struct kiln_vsock vsock; /* one virtio-vsock device if uds_path is set (after the shares) */

    kiln_log_fn log_fn; /* NULL: the default stderr logger */
    void *log_ctx;
    enum kiln_log_level log_level; /* default KILN_LOG_WARN */

    enum kiln_transport transport; /* default KILN_TRANSPORT_PCI */
    enum kiln_seccomp seccomp;     /* default KILN_SECCOMP_THREADS */

    /*
     * QEMU's isa-debug-exit, for test frameworks that use it: a guest write of V (any width) to
     * ports debug_exit_port .. + debug_exit_size - 1 ends the VM with KILN_EXIT_DEBUG, status V.
     * QEMU's defaults are port 0x501, size 2.
     */
    uint16_t debug_exit_port;
    uint8_t debug_exit_size; /* 0: no such device (the default); else 1, 2 or 4 */

    /*
     * Restore instead of boot: the directory kiln_vm_snapshot() wrote. The rest of the config
     * must describe the same machine (cpus, memory, devices; checked); kernel, initrd, command
     * line and firmware_path are not used (a VM booted through firmware is restored with the
     * BIOS image its snapshot holds). Guest RAM is mapped copy-on-write from the snapshot, not
     * read.
     */
    const char *restore_dir;

    /*
     * The API socket: a listening unix stream socket (bound and listening; -1: none, the
     * default). While the VM runs, kiln accepts clients on it on the VM's event loop and serves
     * the line-delimited JSON protocol of the README ("API socket"): info, pause, resume, stop,
     * kill, stats, snapshot (into files the client sends with the request, SCM_RIGHTS). kiln
     * neither closes nor unlinks it (it works on a duplicate), so the caller can serve it again
     * from the next VM, after a guest reboot say.
     */
    int api_fd;
    /*
     * Where the API's snapshot command writes when the request sends no files of its own: the
     * state and memory files of a snapshot directory, open for writing (kiln truncates and
     * fills them; each snapshot replaces the last). -1 (the default): such a request is
     * refused. kiln never closes them. They are files the caller opened because the loop thread
     * that serves the API is confined: it writes to open files and opens nothing.
     */
    int snapshot_state_fd, snapshot_memory_fd;
    /* The API's stop: how long the guest has to power off after the power button before kiln
     * stops it (kiln_vm_shutdown). 0: KILN_DEFAULT_STOP_TIMEOUT_MS. */
    uint64_t stop_timeout_ms;
};

#define KILN_DEFAULT_STOP_TIMEOUT_MS 30000

/* Why kiln_vm_run() returned. */
enum kiln_exit_reason {
    KILN_EXIT_POWEROFF = 0, /* the guest powered off */
    /* The guest asked for a reset. The VM has ended; to boot again, destroy it, create anew. */
    KILN_EXIT_REBOOT,
    KILN_EXIT_STATUS,  /* the guest wrote a status byte to the exit device; see status */
    KILN_EXIT_TIMEOUT, /* config.timeout_ms elapsed; the VM was stopped */
    KILN_EXIT_CRASH,   /* the guest crashed (triple fault, KVM shutdown or crash event) */
    /* kiln_vm_stop() or kiln_vm_shutdown() stopped it, or the serial escape was typed; status
     * says which (enum kiln_stop_cause) */
    KILN_EXIT_STOPPED,
    KILN_EXIT_ERROR, /* kiln or KVM failed while running; see error and message */
    KILN_EXIT_DEBUG, /* the guest wrote to the debug exit device; see status */
};

/* Why a VM ended with KILN_EXIT_STOPPED (in struct kiln_exit.status). */
enum kiln_stop_cause {
    KILN_STOP_REQUESTED = 0,     /* kiln_vm_stop(), or the serial escape */
    KILN_STOP_GRACE_EXPIRED = 1, /* kiln_vm_shutdown(): the guest had not powered off in time */
    KILN_STOP_KILLED = 2,        /* the API socket's kill command */
};

struct kiln_exit {
    enum kiln_exit_reason reason;
    /* KILN_EXIT_STATUS: the byte written (0-255); KILN_EXIT_DEBUG: the value (low 31 bits);
     * KILN_EXIT_STOPPED: an enum kiln_stop_cause */
    int status;
    int error;                     /* KILN_EXIT_ERROR: a positive errno-style code */
    char message[KILN_ERRMSG_MAX]; /* human-readable detail, "" if none */
};

/* Statistics a caller may read after kiln_vm_run() returns. */
struct kiln_stats {
    uint64_t first_run_cpu_ns;     /* process CPU time at the first KVM_RUN (0 if never ran) */
    uint64_t guest_resident_bytes; /* guest RAM pages the VM touched */
    uint64_t vcpu_exits;           /* exits to userspace over all vCPUs */
    /* The same by kind: port I/O, MMIO, interrupted by a signal (kicks), anything else. */
    uint64_t exits_io, exits_mmio, exits_intr, exits_other;
    /* Frames over all network devices; dropped: malformed, oversized, or no room anywhere. */
    uint64_t net_rx_frames, net_tx_frames; /* to the guest, from the guest */
    uint64_t net_rx_dropped, net_tx_dropped;
};

struct kiln_vm;

/* Fill *cfg with defaults. */
KILN_API void kiln_config_init(struct kiln_config *cfg);

/*
 * Build a VM from *cfg: open /dev/kvm, allocate guest RAM, load the kernel, create devices and
 * vCPUs. Nothing runs yet. On success returns 0 and stores the VM in *out. On failure returns
 * -errno, stores NULL, and writes a one-line message naming the input at fault into errmsg
 * (which must hold KILN_ERRMSG_MAX bytes). The strings in *cfg are copied.
 */
KILN_API int kiln_vm_create(const struct kiln_config *cfg, struct kiln_vm **out,
                            char errmsg[KILN_ERRMSG_MAX]);

/*
 * Run the VM on the calling thread (vCPUs get their own threads) until it ends, then fill *exit.
 * Returns 0 when *exit was filled (whatever the guest did), -errno if the VM could not start.
 * A VM runs once.
 */
KILN_API int kiln_vm_run(struct kiln_vm *vm, struct kiln_exit *exit);

/*
 * Ask a running VM to stop; kiln_vm_run() then returns KILN_EXIT_STOPPED unless the VM already
 * ended for another reason. Callable from any thread and from a signal handler.
 */
KILN_API void kiln_vm_stop(struct kiln_vm *vm);

/*
 * Pause all vCPUs of a running VM and return once none is executing guest code; resume lets them
 * continue. Devices keep servicing their back ends while paused. Callable from any thread except
 * a vCPU thread. Return 0, or -EINVAL if the VM is not running.
 */
KILN_API int kiln_vm_pause(struct kiln_vm *vm);
KILN_API int kiln_vm_resume(struct kiln_vm *vm);

/*
 * Press the VM's ACPI power button: a guest that handles it (systemd-logind, acpid) shuts down
 * and powers off, and kiln_vm_run() returns KILN_EXIT_POWEROFF. Nothing else happens: see
 * kiln_vm_shutdown for a deadline. Direct kernel boot has hardware-reduced ACPI: the button is a
 * PNP0C0C device behind a Generic Event Device (ACPI0013) on IRQ 12; firmware boot has the fixed
 * power button of the PM1 registers, raised through the SCI (IRQ 9). Callable from any thread and
 * from a signal handler, also before kiln_vm_run (the press comes once the VM runs). Returns 0, or
 * -EINVAL if the VM has ended.
 */
KILN_API int kiln_vm_power_button(struct kiln_vm *vm);

/*
 * Graceful stop: resume the VM if paused, press the power button, and if the guest has not
 * powered off timeout_ms later, stop it (KILN_EXIT_STOPPED, status KILN_STOP_GRACE_EXPIRED).
 * timeout_ms 0 stops at once. A second call while one is pending presses again and keeps the
 * earlier deadline. Callable like kiln_vm_power_button. Returns 0, or -EINVAL if the VM has ended.
 */
KILN_API int kiln_vm_shutdown(struct kiln_vm *vm, uint64_t timeout_ms);

/* What a VM is doing. */
enum kiln_vm_state {
    KILN_VM_CREATED = 0, /* not run yet */
    KILN_VM_RUNNING,
    KILN_VM_PAUSED,   /* kiln_vm_pause() */
    KILN_VM_STOPPING, /* kiln_vm_shutdown(): the button was pressed, the deadline is pending */
    KILN_VM_ENDED,    /* the guest ended or was stopped (kiln_vm_run has returned or will) */
};

struct kiln_vm_info {
    enum kiln_vm_state state;
    uint64_t uptime_ns;            /* since kiln_vm_run() started it (0 before) */
    uint32_t power_button_presses; /* since the VM was made */
};

/* Fill *info. Any thread (not a signal handler). */
KILN_API void kiln_vm_info(struct kiln_vm *vm, struct kiln_vm_info *info);

/*
 * The configuration the VM runs with: what kiln_vm_create got, with the defaults filled in, the
 * command line as the guest gets it, and every string owned by the VM (valid until
 * kiln_vm_destroy).
 */
KILN_API const struct kiln_config *kiln_vm_config(const struct kiln_vm *vm);

/* Copy the VM's statistics into *stats. */
KILN_API void kiln_vm_stats(const struct kiln_vm *vm, struct kiln_stats *stats);

/*
 * Write the whole state of a paused VM (kiln_vm_pause) into directory dir (made if missing;
 * its "state" and "memory" files are replaced): every vCPU's registers, FPU, MSRs, LAPIC and
 * events, the in-kernel interrupt controllers, PIT and clock, each device's state, the BIOS
 * image of a VM booted through firmware, and guest RAM. kiln_config.restore_dir then starts an
 * equal VM from it. The VM stays paused. Returns 0, or -errno with a one-line message; -ENOTSUP if
 * a device cannot be saved yet (named).
 */
KILN_API int kiln_vm_snapshot(struct kiln_vm *vm, const char *dir, char errmsg[KILN_ERRMSG_MAX]);

/*
 * kiln_vm_snapshot into two files the caller opened: state_fd gets what DIR/state would, and
 * memory_fd DIR/memory (a restore reads them under those names). For a caller that cannot or
 * will not let kiln open paths, like the API's snapshot, whose loop thread runs confined. Both
 * must be regular files open for writing (not O_APPEND), two different ones, and not the
 * memory file this VM was restored from. kiln empties state_fd first and fills it last (an
 * interrupted snapshot leaves no state, which a restore refuses), writes from offset 0, syncs
 * both, and never closes them; to keep an earlier snapshot until the new one is whole, open
 * temporary files and rename them once this returns 0 (kiln ctl does). The VM must be paused
 * and stays so. Returns 0, or -errno with a one-line message (-EINVAL, -EBADF, -EBUSY for the
 * files, -ENOTSUP for a device that cannot be saved yet).
 */
KILN_API int kiln_vm_snapshot_fds(struct kiln_vm *vm, int state_fd, int memory_fd,
                                  char errmsg[KILN_ERRMSG_MAX]);

/* Release every resource of the VM. It must not be running. NULL is accepted. */
KILN_API void kiln_vm_destroy(struct kiln_vm *vm);

/* Library version string, e.g. "0.1.0". */
KILN_API const char *kiln_version(void);

#ifdef __cplusplus
}
#endif

#endif
