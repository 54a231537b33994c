/* cli_exit.c: maps how a VM ended to kiln's documented process exit codes. */
#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"

int cli_exit_code(const struct kiln_exit *e, int stop_signal, char *warn)
{
    warn[0] = '\0';
    switch (e->reason) {
    case KILN_EXIT_POWEROFF:
        return 0;
    case KILN_EXIT_REBOOT:
        return EXIT_CODE_REBOOT;
    case KILN_EXIT_STATUS:
        if (e->status > EXIT_CODE_STATUS_MAX) {
            snprintf(warn, KILN_ERRMSG_MAX,
                     "guest exit status %d is above %d (reserved codes follow); exiting with %d",
                     e->status, EXIT_CODE_STATUS_MAX, EXIT_CODE_STATUS_MAX);
            return EXIT_CODE_STATUS_MAX;
        }
        return e->status < 0 ? EXIT_CODE_KILN_ERROR : e->status;
    case KILN_EXIT_DEBUG:
        /* QEMU's isa-debug-exit code, which test frameworks expect: (V << 1) | 1. */
        return (int)(((unsigned)e->status << 1 | 1) & 0xff);
    case KILN_EXIT_TIMEOUT:
        return EXIT_CODE_TIMEOUT;
    case KILN_EXIT_CRASH:
        return EXIT_CODE_CRASH;
    case KILN_EXIT_STOPPED:
        /* Stopped by the user: the shell convention for death by that signal. A graceful stop
         * (SIGTERM, ctl stop) the guest did not finish in time counts as SIGTERM, ctl kill as
         * SIGKILL, and the serial escape as SIGINT. */
        if (e->status == KILN_STOP_KILLED)
            return EXIT_CODE_KILLED;
        if (e->status == KILN_STOP_GRACE_EXPIRED)
            return 128 + (stop_signal ? stop_signal : SIGTERM);
        return 128 + (stop_signal ? stop_signal : SIGINT);
    case KILN_EXIT_ERROR:
    default:
        return EXIT_CODE_KILN_ERROR;
    }
}
