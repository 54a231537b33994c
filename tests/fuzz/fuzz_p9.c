/* fuzz_p9.c: the 9P2000.L server (fs/p9.c, p9_write.c) over a small read-only or writable share. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/p9.h"
#include "fuzz_common.h"

/*
 * One share for the process (files, a directory of many entries, symlinks in and out, a FIFO),
 * made in a directory of its own inside a fresh temporary directory, and a fresh server for each
 * input. The input is a sequence of messages:
 *   u8  flags (bit 0: a read-only share; bit 1: a 4 KiB reply space; bit 2: the reply space in
 *       three pieces, split where the two u16 before each message say)
 *   then per message: u8 type, u16 tag, u16 body length, the body bytes
 * The harness writes each message's size field itself (bit 15 of the body length set: a wrong
 * size, the low byte of the next input byte), so most inputs reach the request handlers. Each
 * reply must fit the buffer, carry its own length and the request's tag; a read-only share must
 * not change; a writable one may change anything below it (it is made again after each input
 * that had it writable) and nothing beside it: the temporary directory must hold the share and
 * nothing else after every input.
 */

static char top[64], share[80];

static void make(const char *rel, const char *content)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", share, rel);
    FILE *f = fopen(p, "w");
    FZ_CHECK(f);
    fputs(content, f);
    fclose(f);
}

/* A guest may leave directories it cannot be listed or entered: open them up for removal. */
static int open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DNR)
        chmod(path, 0700);
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Remove the share (in the process: a fork per input would be slow). A pass opens up one more
 * level of directories a guest closed, so a few may be needed. */
static void remove_tree(const char *root)
{
    struct stat st;
    for (int pass = 0; pass < 64 && lstat(root, &st) == 0; pass++) {
        nftw(root, open_up, 16, FTW_PHYS);
        nftw(root, remove_one, 16, FTW_PHYS | FTW_DEPTH);
    }
}

static void remove_all(void)
{
    remove_tree(share);
    rmdir(top);
}

/* The temporary directory holds the share and nothing else: nothing was made beside it. */
static void check_top(void)
{
    DIR *d = opendir(top);
    FZ_CHECK(d);
    unsigned n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            FZ_CHECK(strcmp(e->d_name, "share") == 0);
            n++;
        }
    closedir(d);
    FZ_CHECK(n == 1);
}

static void make_share(void)
{
    char p[128];
    FZ_CHECK(mkdir(share, 0755) == 0);
    make("a.txt", "hello");
    snprintf(p, sizeof(p), "%s/d", share);
    FZ_CHECK(mkdir(p, 0755) == 0);
    for (int i = 0; i < 20; i++) {
        char n[32];
        snprintf(n, sizeof(n), "d/f%02d", i);
        make(n, "x");
    }
    snprintf(p, sizeof(p), "%s/out", share);
    FZ_CHECK(symlink("/etc", p) == 0);
    snprintf(p, sizeof(p), "%s/in", share);
    FZ_CHECK(symlink("a.txt", p) == 0);
    snprintf(p, sizeof(p), "%s/fifo", share);
    FZ_CHECK(mkfifo(p, 0644) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(top, sizeof(top), "/tmp/kiln-fuzz-p9-XXXXXX");
    FZ_CHECK(mkdtemp(top));
    snprintf(share, sizeof(share), "%s/share", top);
    atexit(remove_all);
    make_share();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t req[65536], rep[65536];
    struct fz f = {data, size};
    uint8_t flags = fz_u8(&f);
    int root = open(share, O_PATH | O_DIRECTORY | O_CLOEXEC);
    FZ_CHECK(root >= 0);
    struct p9_server *s;
    FZ_CHECK(p9_server_create(root, flags & 1, &s) == 0);
    while (fz_more(&f)) {
        uint8_t type = fz_u8(&f);
        uint16_t tag = fz_u16(&f), body = fz_u16(&f);
        size_t n = P9_HEADER + fz_take(&f, req + P9_HEADER, (body & 0x7fff) % 4096);
        uint32_t claimed = body & 0x8000 ? fz_u8(&f) * 97u : (uint32_t)n;
        le_put(req, 4, claimed);
        req[4] = type;
        le_put(req + 5, 2, tag);
        size_t cap = flags & 2 ? P9_MSIZE_MIN : sizeof(rep);
        size_t r;
        if (flags & 4) {
            /* The reply space in three pieces, as a guest's buffers may come. */
            size_t a = fz_u16(&f) % (cap + 1), b = a + fz_u16(&f) % (cap - a + 1);
            const struct iovec iov[3] = {{rep, a}, {rep + a, b - a}, {rep + b, cap - b}};
            r = p9_handle_iov(s, req, n, iov, 3);
        } else {
            r = p9_handle(s, req, n, rep, cap);
        }
        FZ_CHECK(r <= cap);
        if (r) {
            FZ_CHECK(r >= P9_HEADER && le_get(rep, 4) == r && le_get(rep + 5, 2) == tag);
            FZ_CHECK(r <= p9_msize(s));
        }
    }
    p9_server_destroy(s);
    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/a.txt", share);
    FZ_CHECK(!(flags & 1) || (stat(p, &st) == 0 && st.st_size == 5));
    check_top();
    if (!(flags & 1)) {
        remove_tree(share);
        make_share();
    }
    return 0;
}
