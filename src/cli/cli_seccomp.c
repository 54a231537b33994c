/* cli_seccomp.c: the kiln command's SIGSYS handler: name the forbidden call, restore, exit 125. */
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

#include "cli/cli.h"
#include "syscall_names.h" /* generated from the kernel headers at build time */

/* The front end's terminal restore; a signal handler can only reach it through a static. */
static void (*g_on_fatal)(void);

/* Append s to buf at *len (async-signal-safe: no stdio in a signal handler). */
static void put_str(char *buf, size_t size, size_t *len, const char *s)
{
    while (*s && *len + 1 < size)
        buf[(*len)++] = *s++;
}

static void put_uint(char *buf, size_t size, size_t *len, unsigned v)
{
    char digits[12];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < sizeof(digits));
    while (n && *len + 1 < size)
        buf[(*len)++] = digits[--n];
}

static const char *syscall_name(int nr)
{
    size_t n = sizeof(syscall_names) / sizeof(syscall_names[0]);
    return nr >= 0 && (size_t)nr < n && syscall_names[nr] ? syscall_names[nr] : "unknown";
}

static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    char msg[192];
    size_t len = 0;
    put_str(msg, sizeof(msg), &len, "kiln: seccomp: a kiln thread made a forbidden system call, ");
    put_str(msg, sizeof(msg), &len, syscall_name(si->si_syscall));
    put_str(msg, sizeof(msg), &len, " (");
    put_uint(msg, sizeof(msg), &len, si->si_syscall < 0 ? 0 : (unsigned)si->si_syscall);
    put_str(msg, sizeof(msg), &len, "); --seccomp off runs without filters\n");
    ssize_t ignored = write(STDERR_FILENO, msg, len);
    (void)ignored;
    if (g_on_fatal)
        g_on_fatal();
    _exit(EXIT_CODE_KILN_ERROR);
}

void cli_seccomp_install(void (*on_fatal)(void))
{
    g_on_fatal = on_fatal;
    struct sigaction sa = {.sa_sigaction = sigsys_handler, .sa_flags = SA_SIGINFO};
    sigfillset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}
