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
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "kiln.h"

/*
 * Process-wide state of the front end. Signal handlers can only reach it through statics; the
 * library itself keeps none.
 */
static struct kiln_vm *volatile g_vm;
static volatile sig_atomic_t g_stop_signal;
static struct termios g_saved_termios;
static volatile sig_atomic_t g_termios_saved;

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

static void stop_handler(int sig)
{
    g_stop_signal = sig;
    if (g_vm)
        kiln_vm_stop(g_vm);
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

/* Fill the library config from the options; opens --serial file=PATH. */
static int build_config(const struct cli_options *o, struct kiln_config *cfg, int *serial_fd,
                        char *errmsg)
{
    kiln_config_init(cfg);
    cfg->kernel_path = o->kernel;
    cfg->firmware_path = o->firmware;
    cfg->initrd_path = o->initrd;
    cfg->cmdline = o->cmdline;
    cfg->cpus = o->cpus;
    cfg->memory_bytes = o->memory;
    cfg->timeout_ms = o->timeout_ms;
    cfg->ndisks = o->ndisks;
    memcpy(cfg->disks, o->disks, sizeof(cfg->disks));
    cfg->nnets = o->nnets;
    memcpy(cfg->nets, o->nets, sizeof(cfg->nets));
    cfg->transport = o->transport;
    cfg->seccomp = o->seccomp;
    cfg->debug_exit_port = o->debug_exit_port;
    cfg->debug_exit_size = o->debug_exit_size;
    *serial_fd = -1;
    switch (o->serial) {
    case CLI_SERIAL_STDIO:
        cfg->serial_in_fd = STDIN_FILENO;
        cfg->serial_out_fd = STDOUT_FILENO;
        cfg->serial_escape = isatty(STDIN_FILENO);
        break;
    case CLI_SERIAL_FILE:
        *serial_fd = open(o->serial_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (*serial_fd < 0) {
            snprintf(errmsg, KILN_ERRMSG_MAX, "--serial file=%s: %s", o->serial_path,
                     strerror(errno));
            return -1;
        }
        cfg->serial_out_fd = *serial_fd;
        break;
    case CLI_SERIAL_NONE:
        break;
    }
    return 0;
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

static int report_exit(const struct kiln_exit *e)
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
        fprintf(stderr, "kiln: %s, VM stopped\n", e->message);
    return code;
}

static int run(const struct cli_options *o)
{
    struct kiln_config cfg;
    char errmsg[KILN_ERRMSG_MAX];
    int serial_fd;
    if (build_config(o, &cfg, &serial_fd, errmsg) < 0)
        return fail(errmsg);
    struct kiln_vm *vm;
    if (kiln_vm_create(&cfg, &vm, errmsg) < 0) {
        if (serial_fd >= 0)
            close(serial_fd);
        return fail(errmsg);
    }
    int ret = drop_privileges();
    if (ret < 0) {
        kiln_vm_destroy(vm);
        snprintf(errmsg, sizeof(errmsg), "cannot drop capabilities: %s", strerror(-ret));
        return fail(errmsg);
    }
    g_vm = vm;
    if (g_stop_signal) /* a signal that arrived before g_vm was set */
        kiln_vm_stop(vm);
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
        code = report_exit(&ex);
    }
    kiln_vm_destroy(vm);
    if (serial_fd >= 0)
        close(serial_fd);
    return code;
}

int main(int argc, char **argv)
{
    struct cli_options o;
    char errmsg[KILN_ERRMSG_MAX];
    if (cli_parse(argc, argv, host_ram_bytes(), &o, errmsg) < 0)
        return fail(errmsg);
    if (o.command == CLI_HELP) {
        fputs(cli_usage, stdout);
        return 0;
    }
    if (o.command == CLI_VERSION) {
        printf("kiln %s\n", kiln_version());
        return 0;
    }
    install_signals();
    atexit(restore_terminal);
    return run(&o);
}
