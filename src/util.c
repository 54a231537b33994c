/* util.c: logging, error formatting and file reads for libkiln. */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *level_name(enum kiln_log_level level)
{
    switch (level) {
    case KILN_LOG_ERROR:
        return "error";
    case KILN_LOG_WARN:
        return "warning";
    case KILN_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

void kiln_log_stderr(void *ctx, enum kiln_log_level level, const char *msg)
{
    (void)ctx;
    /* One fprintf per line: stderr is unbuffered, so lines from several threads do not mix. */
    fprintf(stderr, "kiln: %s: %s\n", level_name(level), msg);
}

void klog(const struct kiln_log *log, enum kiln_log_level level, const char *fmt, ...)
{
    if (!log || level > log->level)
        return;
    char msg[512];
    KILN_VFORMAT(msg, fmt);
    (log->fn ? log->fn : kiln_log_stderr)(log->ctx, level, msg);
}

void end_vm(const struct end_vm *e, enum kiln_exit_reason reason, int status, int error,
            const char *fmt, ...)
{
    char msg[KILN_ERRMSG_MAX]; /* the size of kiln_exit.message */
    KILN_VFORMAT(msg, fmt);
    e->fn(e->ctx, reason, status, error, msg);
}

int kiln_fail(char *errmsg, int errnum, const char *fmt, ...)
{
    if (errmsg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errmsg, KILN_ERRMSG_MAX, fmt, ap);
        va_end(ap);
    }
    return -errnum;
}

int pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, (size_t)(len - done), (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO; /* the file shrank since it was sized */
        done += (uint64_t)n;
    }
    return 0;
}
