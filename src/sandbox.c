/* sandbox.c: one seccomp allow-list per thread role, compiled with libseccomp, entered per thread.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

/* What every kiln thread does: memory, locks, time, eventfd and fd I/O, signals, exit. */
static const int common_calls[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(close),
    SCMP_SYS(futex),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(sched_yield),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(getrandom),
};

/*
 * The event loop's own calls: epoll, new eventfds, teardown figures (rusage, resident RAM),
 * poll, with which the serial console's stop waits to write out what the guest printed last,
 * and sendmsg, with which a named port writes to its socket without risking SIGPIPE (on an fd
 * kiln already has: no socket can be made without socket()).
 */
static const int loop_calls[] = {
    SCMP_SYS(mincore),     SCMP_SYS(poll),       SCMP_SYS(ppoll),    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),  SCMP_SYS(eventfd2), SCMP_SYS(getrusage),
    SCMP_SYS(fstat),       SCMP_SYS(newfstatat), SCMP_SYS(sendmsg),
};

/* libslirp on the loop: the guest's TCP/UDP/ICMP flows become host sockets; DNS reads
 * /etc/resolv.conf lazily. socket() itself is limited to IPv4 and IPv6 below. */
static const int user_net_calls[] = {
    SCMP_SYS(connect),     SCMP_SYS(bind),       SCMP_SYS(listen),     SCMP_SYS(accept4),
    SCMP_SYS(accept),      SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(getsockname),
    SCMP_SYS(getpeername), SCMP_SYS(sendto),     SCMP_SYS(recvfrom),   SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),     SCMP_SYS(shutdown),   SCMP_SYS(fcntl),      SCMP_SYS(lseek),
    SCMP_SYS(statx),       SCMP_SYS(stat),
};

#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452 /* Linux 6.6; older kernel headers lack it (libseccomp knows it) */
#endif

/*
 * The 9P server on the loop (fs/p9.c, p9_write.c): opening and creating only beneath a share
 * (openat2 with RESOLVE_BENEATH; plain openat stays refused), reading (preadv, straight into the
 * guest's buffers), listing, attributes; on a writable share the *at() calls that change it,
 * each relative to a directory opened beneath the share, writes, truncation and syncs. Before
 * Linux 6.6 (no fchmodat2), chmod goes through /proc/self/fd of an O_PATH fd (fchmodat).
 */
static const int share_calls[] = {
    SCMP_SYS(openat2),   SCMP_SYS(preadv),     SCMP_SYS(getdents64), SCMP_SYS(lseek),
    SCMP_SYS(fstatfs),   SCMP_SYS(readlinkat), SCMP_SYS(newfstatat), SCMP_SYS(fstat),
    SCMP_SYS(pwrite64),  SCMP_SYS(mkdirat),    SCMP_SYS(unlinkat),   SCMP_SYS(renameat2),
    SCMP_SYS(symlinkat), SCMP_SYS(linkat),     SCMP_SYS(mknodat),    SCMP_SYS(fchmodat2),
    SCMP_SYS(fchmodat),  SCMP_SYS(fchownat),   SCMP_SYS(utimensat),  SCMP_SYS(ftruncate),
    SCMP_SYS(fsync),     SCMP_SYS(fdatasync),
};

/*
 * virtio-vsock on the loop: host programs connect to its listening socket (accept4), guest
 * connections go out to unix sockets (socket() is limited to AF_UNIX below), writes half-close
 * (shutdown). At teardown the listening socket's path is removed: unlink is allowed only with
 * the address of kiln's own copy of that path (seccomp cannot read the string itself).
 */
static const int vsock_calls[] = {
    SCMP_SYS(accept4),
    SCMP_SYS(connect),
    SCMP_SYS(shutdown),
};
/* The API socket on the loop: accepting clients on the listening socket kiln was given (no
 * socket of its own: socket() stays refused), and the process's RSS, pread from /proc/self/statm
 * opened before the filter. Requests are read with recvmsg, below. */
static const int api_calls[] = {SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(pread64)};

/*
 * The API's snapshot on the loop: the state of every vCPU and of KVM's interrupt controllers,
 * PIT and clock (read-only ioctls), then two files filled that the caller opened or a client
 * sent with its request, each checked first (fstat, fcntl F_GETFL below). No path is opened:
 * seccomp could not tell a path beneath a directory from any other.
 */
static const int snapshot_calls[] = {SCMP_SYS(write), SCMP_SYS(lseek), SCMP_SYS(ftruncate),
                                     SCMP_SYS(fsync)};
static const unsigned long snapshot_ioctls[] = {
    KVM_GET_MP_STATE,       KVM_GET_REGS,        KVM_GET_SREGS,   KVM_GET_XCRS, KVM_GET_LAPIC,
    KVM_GET_DEBUGREGS,      KVM_GET_XSAVE,       KVM_GET_XSAVE2,  KVM_GET_MSRS, KVM_GET_VCPU_EVENTS,
    KVM_GET_MSR_INDEX_LIST, KVM_CHECK_EXTENSION, KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK};

/* A disk request on a threadpool thread. */
static const int worker_calls[] = {
    SCMP_SYS(preadv),    SCMP_SYS(pwritev), SCMP_SYS(pread64),   SCMP_SYS(pwrite64),
    SCMP_SYS(fdatasync), SCMP_SYS(fsync),   SCMP_SYS(fallocate),
};

#if defined(__SANITIZE_ADDRESS__)
/* Sanitizer builds only: ASan's reports and LeakSanitizer's exit check (which stops the world
 * with a ptrace-ing clone and reads /proc) must work in confined threads too. */
static const int sanitizer_calls[] = {
    SCMP_SYS(open),
    SCMP_SYS(openat),
    SCMP_SYS(getdents),
    SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
    SCMP_SYS(getdents64),
    SCMP_SYS(clone),
    SCMP_SYS(clone3),
    SCMP_SYS(ptrace),
    SCMP_SYS(wait4),
    SCMP_SYS(prctl),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(lseek),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(getppid),
    SCMP_SYS(kill),
    SCMP_SYS(mmap),
    SCMP_SYS(mprotect),
    SCMP_SYS(pipe2),
    SCMP_SYS(dup),
    SCMP_SYS(uname),
};
#endif

/* Terminal modes: the front end restores the user's terminal even from its SIGSYS handler. */
static const unsigned long terminal_ioctls[] = {TCGETS, TCSETS, TCSETSW, TCSETSF};

/* A vCPU's device writes reprogram interrupts (MSI-X), queue kicks, and TAP offloads. */
static const unsigned long vcpu_ioctls[] = {KVM_RUN, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING,
                                            TUNSETOFFLOAD};

/* The loop does the same on device resets and teardown, and libuv sets fd flags with ioctls. */
static const unsigned long loop_ioctls[] = {
    KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, TUNSETOFFLOAD, FIONBIO, FIOCLEX, FIONREAD};

/* Argument arg equals v (SCMP_A0() and friends leave datum_b to an implicit zero). */
static struct scmp_arg_cmp arg_eq(unsigned arg, scmp_datum_t v)
{
    return (struct scmp_arg_cmp){.arg = arg, .op = SCMP_CMP_EQ, .datum_a = v, .datum_b = 0};
}

static int allow_all(scmp_filter_ctx ctx, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, calls[i], 0);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* ioctl with exactly these requests (the low 32 bits: the kernel takes an unsigned int). */
static int allow_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, reqs[i]));
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* mmap and mprotect, never of executable memory: no thread of a running VM needs new code. */
static int allow_data_mappings(scmp_filter_ctx ctx)
{
    int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                               SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (ret == 0)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                               SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    return ret;
}

/* libslirp's sockets (IPv4 and IPv6 only) and its read-only look at /etc/resolv.conf. */
static int allow_user_net(scmp_filter_ctx ctx)
{
    int ret = allow_all(ctx, user_net_calls, ARRAY_SIZE(user_net_calls));
    const int families[] = {AF_INET, AF_INET6};
    for (size_t i = 0; i < ARRAY_SIZE(families) && ret == 0; i++)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                               arg_eq(0, (scmp_datum_t)families[i]));
    if (ret == 0)
        ret = seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
            SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, O_RDONLY));
    return ret;
}

/* API clients: accepted, and read only with recvmsg(MSG_CMSG_CLOEXEC), so that no file
 * descriptor a client sends could outlive an exec (kiln makes none). */
static int allow_api(scmp_filter_ctx ctx)
{
    int ret = allow_all(ctx, api_calls, ARRAY_SIZE(api_calls));
    return ret < 0 ? ret
                   : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1,
                                      arg_eq(2, (scmp_datum_t)MSG_CMSG_CLOEXEC));
}

/* The snapshot's files: checked (fstat is the loop's already; fcntl only to read the flags),
 * filled and synced; and the read-only KVM state ioctls. */
static int allow_snapshot(scmp_filter_ctx ctx)
{
    int ret = allow_all(ctx, snapshot_calls, ARRAY_SIZE(snapshot_calls));
    if (ret == 0)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                               arg_eq(1, (scmp_datum_t)F_GETFL));
    return ret < 0 ? ret : allow_ioctls(ctx, snapshot_ioctls, ARRAY_SIZE(snapshot_ioctls));
}

static int allow_vsock(scmp_filter_ctx ctx, const char *path)
{
    int ret = allow_all(ctx, vsock_calls, ARRAY_SIZE(vsock_calls));
    if (ret == 0)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                               arg_eq(0, (scmp_datum_t)AF_UNIX));
    return ret < 0 ? ret
                   : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(unlink), 1,
                                      arg_eq(0, (scmp_datum_t)(uintptr_t)path));
}

static int add_role_rules(scmp_filter_ctx ctx, enum sandbox_role role,
                          const struct sandbox_spec *spec)
{
    int ret = allow_all(ctx, common_calls, ARRAY_SIZE(common_calls));
    /* Signals (the vCPU kick, raise) only to kiln's own threads. */
    if (ret == 0)
        ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                               arg_eq(0, (scmp_datum_t)getpid()));
    if (ret == 0)
        ret = allow_data_mappings(ctx);
    if (ret == 0)
        ret = allow_ioctls(ctx, terminal_ioctls, ARRAY_SIZE(terminal_ioctls));
#if defined(__SANITIZE_ADDRESS__)
    if (ret == 0)
        ret = allow_all(ctx, sanitizer_calls, ARRAY_SIZE(sanitizer_calls));
#endif
    if (ret < 0)
        return ret;
    switch (role) {
    case SANDBOX_VCPU:
        ret = allow_ioctls(ctx, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
        return ret < 0 ? ret : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(eventfd2), 0);
    case SANDBOX_LOOP:
        ret = allow_all(ctx, loop_calls, ARRAY_SIZE(loop_calls));
        if (ret == 0)
            ret = allow_ioctls(ctx, loop_ioctls, ARRAY_SIZE(loop_ioctls));
        /* Closing a disk image writes its cached metadata back and flushes, as a worker does. */
        if (ret == 0 && spec->disks)
            ret = allow_all(ctx, worker_calls, ARRAY_SIZE(worker_calls));
        if (ret == 0 && spec->shares)
            ret = allow_all(ctx, share_calls, ARRAY_SIZE(share_calls));
        if (ret == 0 && spec->vsock_path)
            ret = allow_vsock(ctx, spec->vsock_path);
        if (ret == 0 && spec->api)
            ret = allow_api(ctx);
        if (ret == 0 && spec->snapshot)
            ret = allow_snapshot(ctx);
        return ret == 0 && spec->user_net ? allow_user_net(ctx) : ret;
    case SANDBOX_WORKER:
        return allow_all(ctx, worker_calls, ARRAY_SIZE(worker_calls));
    default:
        return -EINVAL;
    }
}

/* The compiled program of ctx, read back from libseccomp's export into heap memory. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
    int fd = memfd_create("kiln-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int ret = seccomp_export_bpf(ctx, fd);
    off_t size = ret < 0 ? 0 : lseek(fd, 0, SEEK_END);
    if (ret == 0 && (size <= 0 || size % sizeof(struct sock_filter) ||
                     size / sizeof(struct sock_filter) > BPF_MAXINSNS))
        ret = -EINVAL;
    struct sock_filter *insns = ret == 0 ? malloc((size_t)size) : NULL;
    if (ret == 0 && !insns)
        ret = -ENOMEM;
    if (ret == 0 && pread(fd, insns, (size_t)size, 0) != size)
        ret = -EIO;
    close(fd);
    if (ret < 0) {
        free(insns);
        return ret;
    }
    prog->len = (unsigned short)(size / sizeof(struct sock_filter));
    prog->filter = insns;
    return 0;
}

static int build_role(struct sandbox *sb, enum sandbox_role role, const struct sandbox_spec *spec)
{
    /* Anything else traps: SIGSYS, which the front end turns into a message naming the call. */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx)
        return -ENOMEM;
    int ret = add_role_rules(ctx, role, spec);
    if (ret == 0)
        ret = export_program(ctx, &sb->prog[role]);
    seccomp_release(ctx);
    return ret;
}

static const char *const role_names[SANDBOX_ROLES] = {"vCPU", "event loop", "disk worker"};

int sandbox_build(struct sandbox *sb, const struct sandbox_spec *spec, char *errmsg)
{
    memset(sb, 0, sizeof(*sb));
    for (int r = 0; r < SANDBOX_ROLES; r++) {
        int ret = spec->roles[r] ? build_role(sb, (enum sandbox_role)r, spec) : 0;
        if (ret < 0) {
            sandbox_free(sb);
            return kiln_fail(errmsg, -ret, "seccomp filter for the %s threads: %s", role_names[r],
                             strerror(-ret));
        }
    }
    return 0;
}

bool sandbox_confines(const struct sandbox *sb, enum sandbox_role role)
{
    return sb && role < SANDBOX_ROLES && sb->prog[role].filter;
}

int sandbox_enter(const struct sandbox *sb, enum sandbox_role role)
{
    if (!sandbox_confines(sb, role))
        return 0;
    /* SIGSYS must reach a handler: the kernel would reset a blocked one to its default. */
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sb->prog[role]) < 0)
        return -errno;
    return 0;
}

int sandbox_enter_once(const struct sandbox *sb, enum sandbox_role role)
{
    /* A fact about this thread, not about any VM: a confined thread may not call seccomp(). */
    static _Thread_local bool entered;
    if (entered || !sandbox_confines(sb, role))
        return 0;
    int ret = sandbox_enter(sb, role);
    entered = ret == 0;
    return ret;
}

void sandbox_free(struct sandbox *sb)
{
    for (int r = 0; r < SANDBOX_ROLES; r++) {
        free(sb->prog[r].filter);
        sb->prog[r] = (struct sock_fprog){0};
    }
}
