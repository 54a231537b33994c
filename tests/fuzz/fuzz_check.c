/* fuzz_check.c: Check's assertion hooks, for the unit-test fixture headers the targets include. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * tests/unit/virtio_fixture.h and virtq_builder.h assert with Check's macros, which call these
 * two functions. libcheck itself is not linked: outside a Check runner it has no channel to
 * report through and exits (even on a passing assertion, which it records as a "mark point").
 * Here a passing assertion costs nothing and a failing one is a crash libFuzzer records.
 */
void _mark_point(const char *file, int line)
{
    (void)file;
    (void)line;
}

void _ck_assert_failed(const char *file, int line, const char *expr, const char *msg, ...)
{
    fprintf(stderr, "fuzz: fixture assertion failed at %s:%d: %s", file, line, expr);
    if (msg) {
        va_list ap;
        va_start(ap, msg);
        fputs(": ", stderr);
        vfprintf(stderr, msg, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    abort();
}
