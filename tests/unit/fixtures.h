/* fixtures.h: helpers shared by the unit tests (temporary files, scratch guest memory). */
#ifndef KILN_TEST_FIXTURES_H
#define KILN_TEST_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

/* Write len bytes to a new temporary file; its path goes to path (at least 64 bytes). */
void fixture_tmpfile(const void *data, size_t len, char *path);

#endif
