/* fixtures.h: helpers shared by the unit tests (temporary files, a counting logger). */
#ifndef KILN_TEST_FIXTURES_H
#define KILN_TEST_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* Write len bytes to a new temporary file; its path goes to path (at least 64 bytes). */
void fixture_tmpfile(const void *data, size_t len, char *path);

/* Logger sink (a struct kiln_log's fn) counting lines into the unsigned that ctx points at. */
void fixture_count_log(void *ctx, enum kiln_log_level level, const char *msg);

#endif
