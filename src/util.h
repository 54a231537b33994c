/* util.h: logging, error messages and overflow-safe arithmetic shared by all of libkiln. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KILN_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* In a variadic function whose last named parameter is fmt: format into the char array buf. */
#define KILN_VFORMAT(buf, fmt)                                                                     \
    do {                                                                                           \
        va_list ap_;                                                                               \
        va_start(ap_, fmt);                                                                        \
        vsnprintf(buf, sizeof(buf), fmt, ap_);                                                     \
        va_end(ap_);                                                                               \
    } while (0)

/* Where a component sends its log lines; every VM has one and hands it to its devices. */
struct kiln_log {
    kiln_log_fn fn;
    void *ctx;
    enum kiln_log_level level;
};

void klog(const struct kiln_log *log, enum kiln_log_level level, const char *fmt, ...)
    KILN_PRINTF(3, 4);

/* The default logger: "kiln: warning: MSG" on stderr. */
void kiln_log_stderr(void *ctx, enum kiln_log_level level, const char *msg);

/*
 * How a part of a VM (a device, a vCPU) ends it: the VM records the reason, status, error and
 * message of the first end and stops every vCPU and its loop. fn may be called from any thread.
 */
struct end_vm {
    void (*fn)(void *ctx, enum kiln_exit_reason reason, int status, int error, const char *msg);
    void *ctx;
};

/* Format the message and call e->fn. */
void end_vm(const struct end_vm *e, enum kiln_exit_reason reason, int status, int error,
            const char *fmt, ...) KILN_PRINTF(5, 6);

/* Format a one-line message into errmsg (KILN_ERRMSG_MAX bytes) and return -errnum. */
int kiln_fail(char *errmsg, int errnum, const char *fmt, ...) KILN_PRINTF(3, 4);

/* a + b <= limit without overflow. */
static inline bool range_within(uint64_t a, uint64_t b, uint64_t limit)
{
    return a <= limit && b <= limit - a;
}

static inline uint64_t align_down(uint64_t v, uint64_t align)
{
    return v & ~(align - 1);
}

static inline uint64_t align_up(uint64_t v, uint64_t align)
{
    return (v + align - 1) & ~(align - 1);
}

/* Little-endian register values of len bytes (at most 8) in guest accesses. */
static inline uint64_t le_get(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void le_put(uint8_t *p, uint32_t len, uint64_t v)
{
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i < 8 ? v >> (8 * i) : 0);
}

/* Big-endian fields of len bytes (at most 8) in on-disk formats and firmware interfaces. */
static inline uint64_t be_get(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline void be_put(uint8_t *p, uint32_t len, uint64_t v)
{
    for (uint32_t i = len; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
}

/* Read exactly len bytes at offset off of fd into buf. Returns 0, or -errno (-EIO if short). */
int pread_full(int fd, void *buf, uint64_t len, uint64_t off);

#endif
