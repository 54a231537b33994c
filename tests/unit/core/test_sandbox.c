/* test_sandbox.c: the seccomp filters: what each thread role may call, and what stops it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "sandbox.h"
#include "util.h"

/* Sanitizer builds let every role open files, clone and map memory (their runtime needs to). */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED true
#else
#define SANITIZED false
#endif

/* One confined child: build the filters of spec, enter role, run body, exit 0. */
static bool g_disks;             /* run_confined's spec.disks */
static bool g_snapshot;          /* run_confined's spec.snapshot */
static bool g_api;               /* run_confined's spec.api */
static const char *g_vsock_path; /* run_confined's spec.vsock_path */

static int run_confined(enum sandbox_role role, bool user_net, void (*body)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sandbox_spec spec = {.user_net = user_net,
                                    .disks = g_disks,
                                    .vsock_path = g_vsock_path,
                                    .snapshot = g_snapshot,
                                    .api = g_api};
        spec.roles[role] = true;
        struct sandbox sb;
        char err[KILN_ERRMSG_MAX];
        if (sandbox_build(&sb, &spec, err) < 0 || sandbox_enter(&sb, role) < 0)
            _exit(3);
        body();
        _exit(0);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_killed(int status)
{
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS,
                  "expected death by SIGSYS, got status 0x%x", status);
}

static void expect_allowed(int status)
{
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "expected a clean exit, got status 0x%x", status);
}

/* ---- Bodies: each makes one kind of call. */

static void unix_socket(void)
{
    socket(AF_UNIX, SOCK_STREAM, 0);
}

static void inet_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        _exit(4);
    close(fd);
}

static void make_directory(void)
{
    mkdir("/tmp/kiln-sandbox-test-never", 0700);
}

static void make_pipe(void)
{
    int p[2];
    if (pipe(p) == 0)
        _exit(5);
}

static void plain_work(void)
{
    /* What a vCPU does between exits: memory, locks, time, writes to an fd it has. */
    void *m = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(6);
    memset(m, 1, 65536);
    munmap(m, 65536);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (write(STDOUT_FILENO, "", 0) < 0)
        _exit(7);
}

static void signal_own_thread(void)
{
    /* SIGCHLD is ignored by default: the call is what is tested. */
    if (syscall(SYS_tgkill, getpid(), gettid(), SIGCHLD) < 0)
        _exit(11);
}

static void signal_other_process(void)
{
    syscall(SYS_tgkill, getppid(), getppid(), 0);
}

static void poll_stdout(void)
{
    struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};
    if (poll(&pfd, 1, 0) < 0)
        _exit(12);
}

static void exec_mapping(void)
{
    mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void kvm_run_ioctl(void)
{
    /* On an fd that is no vCPU the kernel refuses it (ENOTTY), but the filter lets it through. */
    if (ioctl(STDIN_FILENO, KVM_RUN, 0) == 0)
        _exit(8);
}

static void tty_inject_ioctl(void)
{
    char c = 'x';
    ioctl(STDIN_FILENO, TIOCSTI, &c);
}

static void create_vm_ioctl(void)
{
    ioctl(STDIN_FILENO, KVM_CREATE_VM, 0);
}

static void open_for_reading(void)
{
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        _exit(9);
    close(fd);
}

static void open_for_writing(void)
{
    open("/tmp/kiln-sandbox-test-never", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
}

static void open_read_write(void)
{
    open("/dev/null", O_RDWR | O_CLOEXEC);
}

static void new_thread(void)
{
    /* clone: a confined thread can start no other (the runtime's threads start earlier). */
    fork();
}

START_TEST(test_vcpu_role)
{
    expect_allowed(run_confined(SANDBOX_VCPU, false, plain_work));
    expect_allowed(run_confined(SANDBOX_VCPU, false, kvm_run_ioctl));
    expect_allowed(run_confined(SANDBOX_VCPU, false, signal_own_thread));
    expect_killed(run_confined(SANDBOX_VCPU, false, signal_other_process));
    expect_killed(run_confined(SANDBOX_VCPU, false, unix_socket));
    expect_killed(run_confined(SANDBOX_VCPU, false, inet_socket));
    expect_killed(run_confined(SANDBOX_VCPU, false, make_directory));
    expect_killed(run_confined(SANDBOX_VCPU, false, tty_inject_ioctl));
    expect_killed(run_confined(SANDBOX_VCPU, false, create_vm_ioctl));
    if (!SANITIZED) {
        expect_killed(run_confined(SANDBOX_VCPU, false, exec_mapping));
        expect_killed(run_confined(SANDBOX_VCPU, false, open_for_reading));
        expect_killed(run_confined(SANDBOX_VCPU, false, new_thread));
        expect_killed(run_confined(SANDBOX_VCPU, false, make_pipe));
    }
}
END_TEST

/* Sockets and read-only opens only with a user-mode network, and then only IPv4/IPv6 ones. */
START_TEST(test_loop_role)
{
    expect_allowed(run_confined(SANDBOX_LOOP, false, plain_work));
    expect_allowed(run_confined(SANDBOX_LOOP, false, poll_stdout)); /* the serial flush at stop */
    expect_killed(run_confined(SANDBOX_WORKER, false, poll_stdout));
    expect_killed(run_confined(SANDBOX_LOOP, false, inet_socket));
    expect_killed(run_confined(SANDBOX_LOOP, false, kvm_run_ioctl));
    expect_allowed(run_confined(SANDBOX_LOOP, true, inet_socket));
    expect_killed(run_confined(SANDBOX_LOOP, true, unix_socket));
    expect_allowed(run_confined(SANDBOX_LOOP, true, open_for_reading));
    if (!SANITIZED) {
        expect_killed(run_confined(SANDBOX_LOOP, true, open_for_writing));
        expect_killed(run_confined(SANDBOX_LOOP, false, open_for_reading));
    }
    expect_killed(run_confined(SANDBOX_LOOP, true, make_directory));
}
END_TEST

/* vsock: unix sockets (not IP ones), and unlink of its own path's copy only (by address). */
static char g_vsock_own[] = "/nonexistent-kiln-vsock.sock";

static void unlink_own_path(void)
{
    if (unlink(g_vsock_own) == 0 || errno != ENOENT)
        _exit(11);
}

static void unlink_other_copy(void)
{
    char same[sizeof(g_vsock_own)];
    memcpy(same, g_vsock_own, sizeof(same)); /* the same string elsewhere is not allowed */
    if (unlink(same) == 0)
        _exit(11);
}

START_TEST(test_loop_role_vsock)
{
    g_vsock_path = g_vsock_own;
    expect_allowed(run_confined(SANDBOX_LOOP, false, unix_socket));
    expect_killed(run_confined(SANDBOX_LOOP, false, inet_socket));
    expect_allowed(run_confined(SANDBOX_LOOP, false, unlink_own_path));
    expect_killed(run_confined(SANDBOX_LOOP, false, unlink_other_copy));
    g_vsock_path = NULL;
    expect_killed(run_confined(SANDBOX_LOOP, false, unix_socket));
    expect_killed(run_confined(SANDBOX_LOOP, false, unlink_own_path));
}
END_TEST

static int g_fd; /* the worker body's file, opened before the filter */

/* The API's snapshot: a file opened before the filter is truncated, filled, synced. */
static void snapshot_files(void)
{
    if (fcntl(g_fd, F_GETFL) < 0 || ftruncate(g_fd, 0) < 0 || lseek(g_fd, 4096, SEEK_SET) != 4096 ||
        write(g_fd, "state", 5) != 5 || fsync(g_fd) < 0)
        _exit(10);
}

/* A file opened by name in the snapshot's directory: still refused (the path cannot be held). */
static void snapshot_open(void)
{
    openat(g_fd, "state", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
}

/* fcntl for anything but reading the flags: still refused. */
static void snapshot_set_flags(void)
{
    fcntl(g_fd, F_SETFL, O_APPEND);
}

START_TEST(test_loop_role_snapshot)
{
    char path[] = "/tmp/kiln-sandbox-snap.XXXXXX";
    g_fd = mkstemp(path);
    ck_assert_int_ge(g_fd, 0);
    g_snapshot = true;
    expect_allowed(run_confined(SANDBOX_LOOP, false, snapshot_files));
    if (!SANITIZED) { /* a sanitizer's runtime opens files: its builds allow openat */
        expect_killed(run_confined(SANDBOX_LOOP, false, snapshot_open));
        expect_killed(run_confined(SANDBOX_LOOP, false, open_for_writing));
    }
    expect_killed(run_confined(SANDBOX_LOOP, false, snapshot_set_flags));
    g_snapshot = false;
    if (!SANITIZED)
        expect_killed(run_confined(SANDBOX_LOOP, false, snapshot_files));
    struct stat st;
    ck_assert_int_eq(fstat(g_fd, &st), 0);
    ck_assert_int_eq(st.st_size, 4101);
    close(g_fd);
    unlink(path);
}
END_TEST

static int g_sock[2]; /* a connected pair, made before the filter */

/* The API's read of a request and the file descriptor sent with it (close-on-exec). */
static void api_recv_fds(void)
{
    char byte, control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control,
                        .msg_controllen = sizeof(control)};
    if (recvmsg(g_sock[1], &mh, MSG_CMSG_CLOEXEC) != 1 || !CMSG_FIRSTHDR(&mh))
        _exit(10);
}

/* recvmsg without MSG_CMSG_CLOEXEC: refused. */
static void api_recv_plain(void)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    recvmsg(g_sock[1], &mh, 0);
}

/* Send one byte and fd over g_sock[0], for api_recv_fds. */
static void send_fd(int fd)
{
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = control,
                        .msg_controllen = sizeof(control)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    *cm = (struct cmsghdr){
        .cmsg_len = CMSG_LEN(sizeof(int)), .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS};
    memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
    ck_assert_int_eq(sendmsg(g_sock[0], &mh, 0), 1);
}

START_TEST(test_loop_role_api)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_sock), 0);
    g_api = true;
    send_fd(STDIN_FILENO);
    expect_allowed(run_confined(SANDBOX_LOOP, false, api_recv_fds));
    send_fd(STDIN_FILENO);
    expect_killed(run_confined(SANDBOX_LOOP, false, api_recv_plain));
    g_api = false;
    expect_killed(run_confined(SANDBOX_LOOP, false, api_recv_fds));
    close(g_sock[0]);
    close(g_sock[1]);
}
END_TEST

static void worker_io(void)
{
    char buf[16] = "sandbox";
    struct iovec iov = {buf, sizeof(buf)};
    if (pwritev(g_fd, &iov, 1, 0) != sizeof(buf) || preadv(g_fd, &iov, 1, 0) != sizeof(buf) ||
        fdatasync(g_fd) < 0)
        _exit(10);
}

START_TEST(test_worker_role)
{
    char path[] = "/tmp/kiln-sandbox-XXXXXX";
    g_fd = mkstemp(path);
    ck_assert_int_ge(g_fd, 0);
    unlink(path);
    expect_allowed(run_confined(SANDBOX_WORKER, false, worker_io));
    /* The loop does disk I/O only when it closes disk images, so only a VM with disks lets it. */
    expect_killed(run_confined(SANDBOX_LOOP, false, worker_io));
    g_disks = true;
    expect_allowed(run_confined(SANDBOX_LOOP, false, worker_io));
    g_disks = false;
    expect_killed(run_confined(SANDBOX_WORKER, false, inet_socket));
    expect_killed(run_confined(SANDBOX_WORKER, false, kvm_run_ioctl));
    if (!SANITIZED)
        expect_killed(run_confined(SANDBOX_WORKER, false, open_read_write));
    close(g_fd);
}
END_TEST

/* No filter for a role the spec leaves out: entering it is a no-op. */
START_TEST(test_unconfined_role)
{
    struct sandbox_spec spec = {.roles[SANDBOX_VCPU] = true};
    struct sandbox sb;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(sandbox_build(&sb, &spec, err), 0);
    ck_assert(sandbox_confines(&sb, SANDBOX_VCPU));
    ck_assert(!sandbox_confines(&sb, SANDBOX_LOOP));
    ck_assert(!sandbox_confines(&sb, SANDBOX_WORKER));
    ck_assert(!sandbox_confines(NULL, SANDBOX_VCPU));
    ck_assert_int_eq(sandbox_enter(&sb, SANDBOX_LOOP), 0);
    sandbox_free(&sb);
    ck_assert(!sandbox_confines(&sb, SANDBOX_VCPU));
}
END_TEST

static void on_fatal_marker(void)
{
    static const char m[] = "restored\n";
    ssize_t ignored = write(STDERR_FILENO, m, sizeof(m) - 1);
    (void)ignored;
}

/* The kiln command's handler: one line naming the call, the terminal restore, exit 125. */
START_TEST(test_cli_handler)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        cli_seccomp_install(on_fatal_marker);
        struct sandbox_spec spec = {.roles[SANDBOX_VCPU] = true};
        struct sandbox sb;
        char err[KILN_ERRMSG_MAX];
        if (sandbox_build(&sb, &spec, err) < 0 || sandbox_enter(&sb, SANDBOX_VCPU) < 0)
            _exit(3);
        unix_socket();
        _exit(0);
    }
    close(p[1]);
    char out[512] = "";
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 125, "status 0x%x", status);
    ck_assert_msg(strstr(out, "kiln: seccomp: ") == out, "message: %s", out);
    ck_assert_msg(strstr(out, "forbidden system call, socket (41)"), "message: %s", out);
    ck_assert_msg(strstr(out, "\nrestored\n"), "no terminal restore after the line: %s", out);
}
END_TEST

static Suite *sandbox_suite(void)
{
    Suite *s = suite_create("sandbox");
    TCase *tc = tcase_create("roles");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_vcpu_role);
    tcase_add_test(tc, test_loop_role);
    tcase_add_test(tc, test_loop_role_vsock);
    tcase_add_test(tc, test_loop_role_snapshot);
    tcase_add_test(tc, test_loop_role_api);
    tcase_add_test(tc, test_worker_role);
    tcase_add_test(tc, test_unconfined_role);
    tcase_add_test(tc, test_cli_handler);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sandbox_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
