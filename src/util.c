/* util.c: logging, error formatting and whole-file reads for libkiln. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (log->fn ? log->fn : kiln_log_stderr)(log->ctx, level, msg);
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

int read_file(const char *path, size_t max_size, uint8_t **data, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int ret = 0;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        ret = -EISDIR;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        goto out;
    }
    if ((uint64_t)st.st_size > max_size) {
        ret = -EFBIG;
        goto out;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!buf) {
        ret = -ENOMEM;
        goto out;
    }
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ret = n < 0 ? -errno : -EIO; /* the file shrank under us */
            goto out;
        }
        done += (size_t)n;
    }
    *data = buf;
    *size = done;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return ret;
}
