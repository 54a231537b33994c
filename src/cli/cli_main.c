/* cli_main.c: the kiln command: parse, own the terminal and signals, run the VM, exit code. */
#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "kiln.h"
#include "util.h"

/*
 * Process-wide state of the front end. Signal handlers can only reach it through statics; the
 * library itself keeps none.
 */
static struct kiln_vm *volatile g_vm;
static volatile pid_t g_child; /* in the parent: the process running the VM, 0 if none */
static volatile sig_atomic_t g_stop_signal;
static uint64_t g_stop_timeout_ms; /* --stop-timeout: SIGTERM's grace time */
static struct termios g_saved_termios;
static volatile sig_atomic_t g_termios_saved;
/* In the parent of the boots: the terminal before the first one, for a boot killed outright. */
static struct termios g_start_termios;
static bool g_start_saved;

static void restore_terminal(void)
{
    if (g_termios_saved)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
    g_termios_saved = 0;
}

/* Raw mode so every key (Ctrl-C included) reaches the guest; output post-processing stays on. */
static void make_terminal_raw(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &g_saved_termios) < 0)
        return;
    struct termios raw = g_saved_termios;
    raw.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    raw.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    raw.c_cflag = (raw.c_cflag & ~(CSIZE | PARENB)) | CS8;
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    g_termios_saved = 1;
    /* TCSANOW keeps what the user typed ahead; it goes to the guest. */
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
}

/* SIGTERM is a graceful stop (the power button, then a stop after --stop-timeout); the others
 * stop at once. Async-signal-safe, like both calls. */
static void stop_vm(struct kiln_vm *vm, int sig)
{
    if (sig == SIGTERM)
        kiln_vm_shutdown(vm, g_stop_timeout_ms);
    else
        kiln_vm_stop(vm);
}

static void stop_handler(int sig)
{
    g_stop_signal = sig;
    if (g_vm)
        stop_vm(g_vm, sig);
    if (g_child > 0)
        kill(g_child, sig); /* the VM's process stops its VM the same way */
}

/* A crash of kiln itself must still give the user a sane terminal back. */
static void fatal_handler(int sig)
{
    restore_terminal();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    cli_seccomp_install(restore_terminal);
    struct sigaction sa = {.sa_handler = stop_handler};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes EPIPE on write */
    struct sigaction fa = {.sa_handler = fatal_handler, .sa_flags = SA_RESETHAND};
    sigemptyset(&fa.sa_mask);
    const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
        sigaction(fatal[i], &fa, NULL);
}

static uint64_t host_ram_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

static int fail(const char *msg)
{
    fprintf(stderr, "kiln: %s\n", msg);
    return EXIT_CODE_KILN_ERROR;
}

/*
 * After every file is open and the VM exists, kiln needs no privilege at all: drop every
 * capability (and the bounding set where allowed), and forbid regaining any through exec.
 */
static int drop_privileges(void)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (capng_get_caps_process() < 0)
        return -EPERM;
    bool bounds = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);
    capng_clear(bounds ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS);
    return capng_apply(bounds ? CAPNG_SELECT_BOTH : CAPNG_SELECT_CAPS) < 0 ? -EPERM : 0;
}

/* The --api-socket listening socket, made once for all boots (-1: none). */
static int g_api_fd = -1;

/* Fill the library config from the options; serial_fd is the open --serial file=PATH. */
static void build_config(const struct cli_options *o, int serial_fd, uint64_t timeout_ms,
                         struct kiln_config *cfg)
{
    kiln_config_init(cfg);
    cfg->kernel_path = o->kernel;
    cfg->firmware_path = o->firmware;
    cfg->initrd_path = o->initrd;
    cfg->restore_dir = o->restore;
    cfg->cmdline = o->cmdline;
    cfg->cpus = o->cpus;
    cfg->memory_bytes = o->memory;
    cfg->timeout_ms = timeout_ms;
    cfg->ndisks = o->ndisks;
    memcpy(cfg->disks, o->disks, sizeof(cfg->disks));
    cfg->nnets = o->nnets;
    memcpy(cfg->nets, o->nets, sizeof(cfg->nets));
    cfg->nports = o->nports;
    memcpy(cfg->ports, o->ports, sizeof(cfg->ports));
    cfg->nshares = o->nshares;
    memcpy(cfg->shares, o->shares, sizeof(cfg->shares));
    cfg->vsock = o->vsock;
    cfg->transport = o->transport;
    cfg->seccomp = o->seccomp;
    cfg->debug_exit_port = o->debug_exit_port;
    cfg->debug_exit_size = o->debug_exit_size;
    cfg->api_fd = g_api_fd;
    cfg->snapshot_state_fd = o->snapshot_fds[0];
    cfg->snapshot_memory_fd = o->snapshot_fds[1];
    cfg->stop_timeout_ms = o->stop_timeout_ms;
    switch (o->serial) {
    case CLI_SERIAL_STDIO:
        cfg->serial_in_fd = STDIN_FILENO;
        cfg->serial_out_fd = STDOUT_FILENO;
        cfg->serial_escape = isatty(STDIN_FILENO);
        break;
    case CLI_SERIAL_FILE:
        cfg->serial_out_fd = serial_fd;
        break;
    case CLI_SERIAL_NONE:
        break;
    }
}

/* Open --serial file=PATH once for all boots (a reboot appends; -1 without such a file). */
static int open_serial_file(const struct cli_options *o, int *fd, char *errmsg)
{
    *fd = -1;
    if (o->serial != CLI_SERIAL_FILE)
        return 0;
    *fd = open(o->serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd >= 0)
        return 0;
    snprintf(errmsg, KILN_ERRMSG_MAX, "--serial file=%s: %s", o->serial_path, strerror(errno));
    return -1;
}

static void print_stats(const struct kiln_vm *vm)
{
    struct kiln_stats st;
    kiln_vm_stats(vm, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "kiln: stats: first_run_cpu_us=%llu guest_resident_kib=%llu max_rss_kib=%ld "
            "vcpu_exits=%llu net_rx=%llu net_tx=%llu net_rx_dropped=%llu net_tx_dropped=%llu\n",
            (unsigned long long)(st.first_run_cpu_ns / 1000),
            (unsigned long long)(st.guest_resident_bytes >> 10), ru.ru_maxrss,
            (unsigned long long)st.vcpu_exits, (unsigned long long)st.net_rx_frames,
            (unsigned long long)st.net_tx_frames, (unsigned long long)st.net_rx_dropped,
            (unsigned long long)st.net_tx_dropped);
}

static int report_exit(const struct kiln_exit *e, uint64_t timeout_ms)
{
    char warn[KILN_ERRMSG_MAX];
    int code = cli_exit_code(e, g_stop_signal, warn);
    if (warn[0])
        fprintf(stderr, "kiln: warning: %s\n", warn);
    if (e->reason == KILN_EXIT_ERROR)
        fprintf(stderr, "kiln: %s\n", e->message);
    else if (e->reason == KILN_EXIT_CRASH)
        fprintf(stderr, "kiln: guest crashed: %s\n", e->message);
    else if (e->reason == KILN_EXIT_TIMEOUT)
        /* The user's --timeout, which covers every boot (this one may have had the rest). */
        fprintf(stderr, "kiln: timeout of %llu ms reached, VM stopped\n",
                (unsigned long long)timeout_ms);
    return code;
}

/*
 * Build and run one VM. When the guest reboots and reboot_fd is not -1, say so by writing a byte
 * to it (the parent starts the next boot).
 */
static int run(const struct cli_options *o, int serial_fd, int reboot_fd, uint64_t timeout_ms)
{
    struct kiln_config cfg;
    char errmsg[KILN_ERRMSG_MAX];
    build_config(o, serial_fd, timeout_ms, &cfg);
    struct kiln_vm *vm;
    if (kiln_vm_create(&cfg, &vm, errmsg) < 0)
        return fail(errmsg);
    int ret = drop_privileges();
    if (ret < 0) {
        kiln_vm_destroy(vm);
        snprintf(errmsg, sizeof(errmsg), "cannot drop capabilities: %s", strerror(-ret));
        return fail(errmsg);
    }
    g_vm = vm;
    if (g_stop_signal) /* a signal that arrived before g_vm was set */
        stop_vm(vm, g_stop_signal);
    if (cfg.serial_escape) {
        fprintf(stderr, "kiln: console on this terminal; Ctrl-A x stops the VM\n");
        make_terminal_raw();
    }
    struct kiln_exit ex;
    ret = kiln_vm_run(vm, &ex);
    restore_terminal();
    g_vm = NULL;
    int code;
    if (ret < 0) {
        snprintf(errmsg, sizeof(errmsg), "cannot run the VM: %s", strerror(-ret));
        code = fail(errmsg);
    } else {
        if (o->stats)
            print_stats(vm);
        code = report_exit(&ex, o->timeout_ms);
    }
    kiln_vm_destroy(vm);
    if (ret == 0 && ex.reason == KILN_EXIT_REBOOT && reboot_fd >= 0 &&
        write(reboot_fd, "R", 1) != 1)
        code = fail("cannot tell the next boot to start");
    return code;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for the child running one boot: its exit code (128 + N if signal N killed it). */
static int wait_boot(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return fail("lost the process running the VM");
    g_child = 0;
    /* A boot that died without restoring the terminal (SIGKILL) must not leave it raw. */
    if (g_start_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &g_start_termios);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * One boot in a child process; sets *reboot when the guest rebooted. A new process per boot is
 * a reset from power-on with nothing left over, and the child's seccomp filter could not build a
 * second VM anyway. The parent only waits, and passes the stop signals on.
 */
static int boot_in_child(const struct cli_options *o, int serial_fd, uint64_t timeout_ms,
                         bool *reboot)
{
    int fds[2];
    *reboot = false;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return fail("cannot make a pipe for the VM's process");
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return fail("cannot start the VM's process");
    }
    if (pid == 0) {
        close(fds[0]);
        /* The VM must not outlive kiln: a SIGKILL to the parent (the pid the user knows) ends
         * this boot too. If the parent is already gone, so is the reason to boot. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(EXIT_CODE_KILN_ERROR);
        exit(run(o, serial_fd, fds[1], timeout_ms));
    }
    close(fds[1]);
    g_child = pid;
    if (g_stop_signal) /* a signal that came before g_child was set */
        kill(pid, g_stop_signal);
    int code = wait_boot(pid);
    char b;
    *reboot = read(fds[0], &b, 1) == 1;
    close(fds[0]);
    return code;
}

/* Boot, and boot again after each guest reboot, within one --timeout for all of them. */
static int run_boots(const struct cli_options *o, int serial_fd)
{
    uint64_t timeout = o->timeout_ms, left = timeout, start = now_ms();
    g_start_saved = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_start_termios) == 0;
    for (;;) {
        bool reboot;
        int code = boot_in_child(o, serial_fd, left, &reboot);
        if (!reboot || g_stop_signal)
            return code;
        uint64_t spent = now_ms() - start;
        if (timeout && spent >= timeout) {
            fprintf(stderr, "kiln: timeout of %llu ms reached, VM stopped\n",
                    (unsigned long long)timeout);
            return EXIT_CODE_TIMEOUT;
        }
        left = timeout ? timeout - spent : 0;
        fprintf(stderr, "kiln: the guest rebooted; starting it again\n");
    }
}

/*
 * --snapshot-dir DIR: DIR (made if missing) and its state and memory files, opened here for the
 * VM to fill on request; what is there stays until a snapshot replaces it. Not the directory a
 * restored guest's memory is mapped from: rewriting that file would pull pages from under it.
 */
static int open_snapshot_dir(struct cli_options *o, char *errmsg)
{
    const char *dir = o->snapshot_dir;
    if (!dir)
        return 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return kiln_fail(errmsg, errno, "--snapshot-dir %s: %s", dir, strerror(errno));
    struct stat a, b;
    if (o->restore && stat(dir, &a) == 0 && stat(o->restore, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        return kiln_fail(errmsg, EINVAL,
                         "--snapshot-dir %s: the --restore directory (its memory is in use)", dir);
    const char *names[2] = {"state", "memory"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        o->snapshot_fds[i] = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (o->snapshot_fds[i] < 0)
            return kiln_fail(errmsg, errno, "--snapshot-dir %s: %s: %s", dir, names[i],
                             strerror(errno));
    }
    return 0;
}

static int run_cli(const struct cli_options *o)
{
    char errmsg[KILN_ERRMSG_MAX];
    int serial_fd;
    if (open_serial_file(o, &serial_fd, errmsg) < 0)
        return fail(errmsg);
    /* The socket outlives every boot: each boot's process serves it, this one removes it. */
    if (o->api_socket && cli_api_listen(o->api_socket, &g_api_fd, errmsg) < 0) {
        if (serial_fd >= 0)
            close(serial_fd);
        return fail(errmsg);
    }
    /* A restored guest has nothing to boot again from: its reboot ends kiln, as --no-reboot. */
    bool once = o->no_reboot || o->restore;
    int code;
    if (once && o->api_socket) {
        /* One boot, in a child all the same: the boot's process is confined and could not
         * remove the socket; this one does, once the child is gone. */
        bool reboot;
        g_start_saved = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_start_termios) == 0;
        code = boot_in_child(o, serial_fd, o->timeout_ms, &reboot);
    } else {
        code = once ? run(o, serial_fd, -1, o->timeout_ms) : run_boots(o, serial_fd);
    }
    if (o->api_socket)
        unlink(o->api_socket);
    if (g_api_fd >= 0)
        close(g_api_fd);
    if (serial_fd >= 0)
        close(serial_fd);
    return code;
}

/* kiln config --print: the effective configuration as JSON on stdout. */
static int print_config(struct cli_options *o)
{
    char *json = cli_config_print(o);
    cli_options_free(o);
    if (!json)
        return fail("config --print: out of memory");
    int bad = printf("%s\n", json) < 0 || fflush(stdout) != 0;
    free(json);
    return bad ? fail("config --print: cannot write to stdout") : 0;
}

int main(int argc, char **argv)
{
    struct cli_options o;
    char errmsg[KILN_ERRMSG_MAX];
    if (cli_parse(argc, argv, host_ram_bytes(), &o, errmsg) < 0) {
        cli_options_free(&o);
        return fail(errmsg);
    }
    if (o.command == CLI_HELP || o.command == CLI_VERSION) {
        cli_options_free(&o);
        if (o.command == CLI_HELP)
            fputs(cli_usage, stdout);
        else
            printf("kiln %s\n", kiln_version());
        return 0;
    }
    if (o.command == CLI_CONFIG_PRINT)
        return print_config(&o);
    if (o.command == CLI_CTL) {
        int code = cli_ctl(&o);
        cli_options_free(&o);
        return code;
    }
    g_stop_timeout_ms = o.stop_timeout_ms;
    if ((o.rootfs_host && cli_rootfs_prepare(&o, errmsg) < 0) ||
        open_snapshot_dir(&o, errmsg) < 0) {
        cli_options_free(&o);
        return fail(errmsg);
    }
    install_signals();
    atexit(restore_terminal);
    int code = run_cli(&o);
    cli_options_free(&o);
    return code;
}
