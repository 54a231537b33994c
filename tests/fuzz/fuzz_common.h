/* fuzz_common.h: what every fuzz target shares: an input reader, heap guest RAM, a quiet logger. */
#ifndef KILN_FUZZ_COMMON_H
#define KILN_FUZZ_COMMON_H

/*
 * Header-only (static inline): each target is one .c file linked against libkiln and the
 * Check shim (fuzz_check.c), like the unit tests with their fixture headers.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "util.h"

/* libFuzzer's entry points. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A harness invariant (a documented property of kiln's code) failed: report it as a crash, so
 * libFuzzer saves the input. Never used for the harness's own bookkeeping.
 */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- Input reader: past the end every read gives zeros, so any input is a whole program. */

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline bool fz_more(const struct fz *f)
{
    return f->n > 0;
}

/* Copy up to n bytes to dst (zero-filling what the input lacks); returns how many were real. */
static inline size_t fz_take(struct fz *f, void *dst, size_t n)
{
    size_t k = n < f->n ? n : f->n;
    if (k)
        memcpy(dst, f->p, k);
    if (n > k)
        memset((uint8_t *)dst + k, 0, n - k);
    f->p += k;
    f->n -= k;
    return k;
}

static inline uint8_t fz_u8(struct fz *f)
{
    uint8_t v;
    fz_take(f, &v, 1);
    return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
    uint8_t b[2];
    fz_take(f, b, 2);
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint8_t b[4];
    fz_take(f, b, 4);
    return (uint32_t)le_get(b, 4);
}

static inline uint64_t fz_u64(struct fz *f)
{
    uint8_t b[8];
    fz_take(f, b, 8);
    return le_get(b, 8);
}

/* The next n bytes (fewer if the input ends first) as a reader of their own. */
static inline struct fz fz_sub(struct fz *f, size_t n)
{
    size_t k = n < f->n ? n : f->n;
    struct fz s = {f->p, k};
    f->p += k;
    f->n -= k;
    return s;
}

/* ---- Guest RAM on the heap. */

/*
 * Guest RAM laid out as guest_mem_init() lays it out (region 0 at gpa 0; with a second region,
 * that one at GUEST_MEM_HIGH_START, as for a guest above 3 GiB), but each region is its own
 * heap block instead of part of one mapping: AddressSanitizer then reports any access that
 * leaves a region, where an anonymous mapping would let it land silently on the next page.
 * Only gpa_to_host() and the guest_read/guest_write helpers are used on it (never
 * guest_mem_free()).
 */
struct fz_ram {
    struct guest_mem gm;
    uint8_t *block[GUEST_MEM_MAX_REGIONS];
};

static inline void fz_ram_alloc(struct fz_ram *r, size_t lo_size, size_t hi_size)
{
    memset(r, 0, sizeof(*r));
    size_t sizes[GUEST_MEM_MAX_REGIONS] = {lo_size, hi_size};
    const uint64_t gpas[GUEST_MEM_MAX_REGIONS] = {0, GUEST_MEM_HIGH_START};
    for (unsigned i = 0; i < GUEST_MEM_MAX_REGIONS && sizes[i]; i++) {
        r->block[i] = aligned_alloc(4096, sizes[i]);
        if (!r->block[i])
            abort();
        r->gm.regions[i] = (struct guest_region){gpas[i], sizes[i], r->block[i]};
        r->gm.nregions = i + 1;
        r->gm.size += sizes[i];
    }
    r->gm.base = r->block[0];
}

/* Every byte back to zero: each input starts from the same RAM. */
static inline void fz_ram_clear(struct fz_ram *r)
{
    for (unsigned i = 0; i < r->gm.nregions; i++)
        memset(r->block[i], 0, r->gm.regions[i].size);
}

/* Fill RAM from the input, region after region (the rest stays zero). */
static inline void fz_ram_load(struct fz_ram *r, struct fz *f)
{
    for (unsigned i = 0; i < r->gm.nregions; i++)
        fz_take(f, r->block[i], r->gm.regions[i].size);
}

/* True if [p, p + len) lies inside one region's block. */
static inline bool fz_ram_holds(const struct fz_ram *r, const void *p, uint64_t len)
{
    const uint8_t *b = p;
    for (unsigned i = 0; i < r->gm.nregions; i++) {
        const uint8_t *lo = r->block[i];
        uint64_t size = r->gm.regions[i].size;
        if (b >= lo && (uint64_t)(b - lo) <= size && len <= size - (uint64_t)(b - lo))
            return true;
    }
    return false;
}

/* ---- Logging: every line is formatted (debug level), printed only with KILN_FUZZ_LOG set. */

static inline void fz_log_sink(void *ctx, enum kiln_log_level level, const char *msg)
{
    (void)level;
    if (*(const bool *)ctx)
        fprintf(stderr, "kiln log: %s\n", msg);
}

/* KILN_FUZZ_LOG is set: print what kiln logs and the errors it returns (to debug an input). */
static inline bool fz_verbose(void)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("KILN_FUZZ_LOG") != NULL;
    return verbose;
}

/* The logger every target hands to kiln. */
static inline const struct kiln_log *fz_log(void)
{
    static bool verbose;
    static struct kiln_log log = {fz_log_sink, &verbose, KILN_LOG_DEBUG};
    verbose = fz_verbose();
    return &log;
}

/* An error message kiln returned (a loader's, the CLI's), shown with KILN_FUZZ_LOG. */
static inline void fz_result(const char *what, int ret, const char *errmsg)
{
    if (fz_verbose())
        fprintf(stderr, "kiln %s: %s\n", what, ret < 0 ? errmsg : "ok");
}

#endif
