/* fixtures.c: helpers shared by the unit tests. */
#include "fixtures.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fixture_tmpfile(const void *data, size_t len, char *path)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, 64, "%.40s/kiln-test-XXXXXX", dir);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

void fixture_count_log(void *ctx, enum kiln_log_level level, const char *msg)
{
    (void)level;
    (void)msg;
    (*(unsigned *)ctx)++;
}
