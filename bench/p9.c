/* p9.c: host-side microbenchmark of the 9P server: the requests a Linux guest sends, timed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/p9.h"

#define HELD_FIDS 200 /* fids a busy guest holds: a lookup must not cost more with them */
#define NEW_FID 50000
#define FILE_FID 7

/* One request being built, and the reply buffer (at most P9_MSIZE_MAX). */
struct bench {
    struct p9_server *s;
    uint8_t req[512];
    size_t len;
    uint8_t *rep;
};

static void put(struct bench *b, unsigned n, uint64_t v)
{
    le_put(b->req + b->len, n, v);
    b->len += n;
}

static void put_str(struct bench *b, const char *str)
{
    size_t n = strlen(str);
    put(b, 2, n);
    memcpy(b->req + b->len, str, n);
    b->len += n;
}

static void begin(struct bench *b, uint8_t type)
{
    b->len = 0;
    put(b, 4, 0);
    put(b, 1, type);
    put(b, 2, 1);
}

/* Send the request; an Rlerror ends the benchmark (its setup is wrong). */
static void send_req(struct bench *b, const struct iovec *iov, unsigned niov)
{
    le_put(b->req, 4, b->len);
    size_t n = p9_handle_iov(b->s, b->req, b->len, iov, niov);
    if (n < P9_HEADER || ((const uint8_t *)iov[0].iov_base)[4] == P9_RLERROR) {
        fprintf(stderr, "bench_p9: request type %u failed\n", b->req[4]);
        exit(1);
    }
}

static void send_simple(struct bench *b)
{
    const struct iovec iov = {b->rep, P9_MSIZE_MAX};
    send_req(b, &iov, 1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Version, attach (fid 0), HELD_FIDS clones of the root, and FILE_FID open on name. */
static void setup(struct bench *b, const char *name)
{
    begin(b, P9_TVERSION);
    put(b, 4, 524288);
    put_str(b, "9P2000.L");
    send_simple(b);
    begin(b, P9_TATTACH);
    put(b, 4, 0);
    put(b, 4, ~0u);
    put_str(b, "root");
    put_str(b, "");
    put(b, 4, 0);
    send_simple(b);
    for (unsigned i = 1; i <= HELD_FIDS; i++) {
        begin(b, P9_TWALK);
        put(b, 4, 0);
        put(b, 4, 1000 + i);
        put(b, 2, 0);
        send_simple(b);
    }
    begin(b, P9_TWALK);
    put(b, 4, 0);
    put(b, 4, FILE_FID);
    put(b, 2, 1);
    put_str(b, name);
    send_simple(b);
    begin(b, P9_TLOPEN);
    put(b, 4, FILE_FID);
    put(b, 4, 0);
    send_simple(b);
}

/* A walk to a new fid and its clunk: what every path lookup of a guest costs the server. */
static void bench_walk(struct bench *b, unsigned n)
{
    double t0 = now();
    for (unsigned i = 0; i < n; i++) {
        begin(b, P9_TWALK);
        put(b, 4, 0);
        put(b, 4, NEW_FID);
        put(b, 2, 0);
        send_simple(b);
        begin(b, P9_TCLUNK);
        put(b, 4, NEW_FID);
        send_simple(b);
    }
    printf("Twalk + Tclunk of a new fid (%u held): %.2f us\n", HELD_FIDS + 2,
           (now() - t0) * 1e6 / n);
}

/*
 * The whole file in Treads of chunk bytes into 4 KiB pages, as the guest's zero-copy reads
 * arrive: an 11-byte header buffer, then the data pages.
 */
static void bench_read(struct bench *b, size_t chunk)
{
    unsigned np = (unsigned)(chunk / 4096);
    uint8_t *pages = aligned_alloc(4096, chunk);
    struct iovec *iov = calloc(np + 1, sizeof(*iov));
    if (!pages || !iov || np + 1 > P9_MAX_IOV)
        exit(1);
    iov[0] = (struct iovec){b->rep, P9_HEADER + 4};
    for (unsigned i = 0; i < np; i++)
        iov[1 + i] = (struct iovec){pages + (size_t)i * 4096, 4096};
    uint64_t off = 0, requests = 0;
    double t0 = now();
    for (uint32_t n = 1; n; off += n, requests++) {
        begin(b, P9_TREAD);
        put(b, 4, FILE_FID);
        put(b, 8, off);
        put(b, 4, chunk);
        send_req(b, iov, np + 1);
        n = (uint32_t)le_get(b->rep + P9_HEADER, 4);
    }
    double t = now() - t0;
    printf("%7zu-byte Treads: %6.0f MiB/s, %7.2f us a request\n", chunk,
           (double)off / 1048576.0 / t, t * 1e6 / (double)requests);
    free(iov);
    free(pages);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_p9 DIR FILE (FILE in DIR, e.g. 256 MiB on a tmpfs)\n");
        return 2;
    }
    struct bench b = {.rep = malloc(P9_MSIZE_MAX)};
    int fd = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!b.rep || fd < 0 || p9_server_create(fd, true, &b.s) < 0) {
        perror(argv[1]);
        return 1;
    }
    setup(&b, argv[2]);
    bench_walk(&b, 100000);
    for (size_t chunk = 4096; chunk <= 524288; chunk *= 4)
        bench_read(&b, chunk);
    p9_server_destroy(b.s);
    free(b.rep);
    return 0;
}
