/* cli_rootfs.c: --rootfs-host: the host's / as the guest's root, through an initramfs kiln builds.
 */
/*
 * The initramfs (cpio "newc", uncompressed, in a memfd the loader reads as --initrd) holds
 * guest_init.c's program as /init, the kernel's virtio-pci and 9p modules with their
 * dependencies (from /lib/modules/VERSION, VERSION read from the bzImage header), and the /kiln
 * files /init reads: root (the share's tag), cmd, cwd, env and mounts (the other shares).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util.h"

/* guest_init, static, carried in this binary (guest_init_blob.S). */
extern const unsigned char kiln_guest_init[], kiln_guest_init_end[];

#define ROOT_TAG "kilnroot"
#define MAX_MODULE (64u << 20)
#define MAX_DEP_FILE (64u << 20)
#define ROOTFS_CMDLINE "console=ttyS0 reboot=k quiet"

/* Modules /init needs, then ones it loads when the kernel has them (absent ones are skipped). */
static const char *const needed_modules[] = {"virtio_pci", "9pnet_virtio", "9p"};
static const char *const wanted_modules[] = {"virtio_blk", "virtio_net", "virtio_console",
                                             "pvpanic_mmio"};

struct cpio {
    int fd;
    uint64_t off;
    unsigned ino;
    int err;
};

static void cpio_write(struct cpio *c, const void *data, size_t len)
{
    static const char zeros[4];
    const char *p = data;
    size_t pad = (4 - (c->off + len) % 4) % 4;
    while (!c->err && len) {
        ssize_t n = write(c->fd, p, len);
        if (n < 0) {
            c->err = errno;
            return;
        }
        p += n, len -= (size_t)n, c->off += (uint64_t)n;
    }
    if (!c->err && pad) {
        if (write(c->fd, zeros, pad) != (ssize_t)pad)
            c->err = errno ? errno : EIO;
        c->off += pad;
    }
}

/* One "newc" entry: header, name (NUL, padded to 4) and data (padded to 4). */
static void cpio_entry(struct cpio *c, const char *name, unsigned mode, unsigned rdev_major,
                       unsigned rdev_minor, const void *data, size_t len)
{
    char hdr[160]; /* 110 used: every field fits 8 hex digits (files are below MAX_MODULE) */
    snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
             ++c->ino, mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, (unsigned)len, 0u, 0u, rdev_major,
             rdev_minor, (unsigned)strlen(name) + 1, 0u);
    /* The header's 110 bytes and the name are padded to 4 together. */
    if (!c->err && write(c->fd, hdr, 110) != 110)
        c->err = errno ? errno : EIO;
    c->off += 110;
    cpio_write(c, name, strlen(name) + 1);
    if (len)
        cpio_write(c, data, len);
}

static void cpio_file(struct cpio *c, const char *name, const void *data, size_t len)
{
    cpio_entry(c, name, S_IFREG | 0644, 0, 0, data, len);
}

static void cpio_dir(struct cpio *c, const char *name)
{
    cpio_entry(c, name, S_IFDIR | 0755, 0, 0, NULL, 0);
}

/* A whole (small) host file, NUL-terminated; NULL with errno set when it cannot be read. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size <= max)
        buf = malloc((size_t)st.st_size + 1);
    else
        errno = EFBIG;
    size_t n = 0;
    ssize_t r = 0;
    while (buf && n < (size_t)st.st_size && (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)r;
    int saved = errno;
    close(fd);
    if (buf && r < 0) {
        free(buf);
        errno = saved;
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* The release string the setup header points at: its first word. */
static bool parse_release(const uint8_t *hdr, size_t n, char *out, size_t size)
{
    size_t at = 0x200 + (size_t)(hdr[0x20e] | hdr[0x20f] << 8);
    if (hdr[0x20e] == 0 && hdr[0x20f] == 0)
        return false;
    size_t len = 0;
    while (at + len < n && len + 1 < size && hdr[at + len] > ' ' && hdr[at + len] < 0x7f)
        len++;
    if (len == 0 || at + len >= n)
        return false;
    memcpy(out, hdr + at, len);
    out[len] = '\0';
    return true;
}

/*
 * The kernel release of a bzImage: the setup header's kernel_version field points at a string
 * like "6.1.0-57-amd64 (debian-kernel@...) #1 SMP ...". Returns false for other images.
 */
static bool bzimage_release(const char *kernel, char *out, size_t size)
{
    enum { SETUP_MAX = 0x10000 }; /* the real-mode setup (and the string) is below 64 KiB */
    uint8_t *hdr = malloc(SETUP_MAX);
    int fd = open(kernel, O_RDONLY | O_CLOEXEC);
    ssize_t n = hdr && fd >= 0 ? pread(fd, hdr, SETUP_MAX, 0) : -1;
    if (fd >= 0)
        close(fd);
    bool ok = n >= 0x210 && memcmp(hdr + 0x202, "HdrS", 4) == 0 &&
              parse_release(hdr, (size_t)n, out, size);
    free(hdr);
    return ok;
}

/* A module's name from its path in modules.dep: basename without .ko[.*], '-' as '_'. */
static void module_name(const char *path, size_t len, char *out, size_t size)
{
    const char *base = path;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/')
            base = path + i + 1;
    size_t n = (size_t)(path + len - base);
    const char *ko = strstr(base, ".ko");
    if (ko && ko < path + len)
        n = (size_t)(ko - base);
    if (n >= size)
        n = size - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = base[i] == '-' ? '_' : base[i];
    out[n] = '\0';
}

struct modset {
    char dir[PATH_MAX];  /* /lib/modules/VERSION */
    char *dep, *builtin; /* modules.dep, modules.builtin (NULL: none) */
    char **done;         /* module paths already added, in load order */
    size_t ndone;
    struct cpio *cpio;
    char order[16384]; /* load-order: one file name per line */
    size_t order_len;
};

/* The modules.dep line of module NAME (a pointer to its start), or NULL. */
static const char *dep_line(const char *dep, const char *name)
{
    for (const char *line = dep; line && *line;) {
        const char *colon = strchr(line, ':'), *eol = strchr(line, '\n');
        if (colon && (!eol || colon < eol)) {
            char n[64];
            module_name(line, (size_t)(colon - line), n, sizeof(n));
            if (strcmp(n, name) == 0)
                return line;
        }
        line = eol ? eol + 1 : NULL;
    }
    return NULL;
}

static bool is_builtin(const struct modset *m, const char *name)
{
    for (const char *line = m->builtin; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char n[64];
        module_name(line, len, n, sizeof(n));
        if (strcmp(n, name) == 0)
            return true;
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

/* Add module file REL (a path relative to m->dir) to the image, once. */
static int add_module_file(struct modset *m, const char *rel, size_t len, char *errmsg)
{
    char path[PATH_MAX], name[256];
    int plen = snprintf(path, sizeof(path), "%s/%.*s", m->dir, (int)len, rel);
    if (plen < 0 || (size_t)plen >= sizeof(path))
        return kiln_fail(errmsg, ENAMETOOLONG, "--rootfs-host: a module path is too long");
    for (size_t i = 0; i < m->ndone; i++)
        if (strcmp(m->done[i], path) == 0)
            return 0;
    char **done = realloc(m->done, (m->ndone + 1) * sizeof(*done));
    if (!done || !(done[m->ndone] = strdup(path)))
        return kiln_fail(errmsg, ENOMEM, "--rootfs-host: out of memory");
    m->done = done;
    m->ndone++;
    size_t size;
    char *data = read_file(path, MAX_MODULE, &size);
    if (!data)
        return kiln_fail(errmsg, errno, "--rootfs-host: module %s: %s", path, strerror(errno));
    const char *base = strrchr(path, '/') + 1;
    snprintf(name, sizeof(name), "kiln/modules/%s", base);
    cpio_file(m->cpio, name, data, size);
    free(data);
    int n = snprintf(m->order + m->order_len, sizeof(m->order) - m->order_len, "%s\n", base);
    if (n < 0 || (size_t)n >= sizeof(m->order) - m->order_len)
        return kiln_fail(errmsg, E2BIG, "--rootfs-host: too many modules");
    m->order_len += (size_t)n;
    return 0;
}

/* Add module NAME and, first, what it depends on. Returns 1 if it is neither file nor built in. */
static int add_module(struct modset *m, const char *name, unsigned depth, char *errmsg)
{
    const char *line = dep_line(m->dep, name);
    if (!line)
        return is_builtin(m, name) ? 0 : 1;
    const char *colon = strchr(line, ':'), *eol = strchr(line, '\n');
    const char *end = eol ? eol : line + strlen(line);
    /* Dependencies are listed so that the last one loads first. */
    for (const char *p = end; depth < 16 && p > colon + 1;) {
        const char *q = p;
        while (q > colon + 1 && q[-1] != ' ')
            q--;
        if (q < p) {
            char dep[64];
            module_name(q, (size_t)(p - q), dep, sizeof(dep));
            int ret = add_module(m, dep, depth + 1, errmsg);
            if (ret != 0)
                return ret < 0 ? ret
                               : kiln_fail(errmsg, ENOENT,
                                           "--rootfs-host: module %s needs %s, which "
                                           "modules.dep does not list",
                                           name, dep);
        }
        p = q > colon + 1 ? q - 1 : q;
    }
    return add_module_file(m, line, (size_t)(colon - line), errmsg);
}

/*
 * The modules of kernel release REL. Without /lib/modules/REL (a kernel built by the user),
 * none: such a kernel must have virtio-pci and 9p built in, or /init says on the console what
 * it cannot mount.
 */
static int add_modules(struct cpio *c, const char *rel, char *errmsg)
{
    struct modset m = {.cpio = c};
    snprintf(m.dir, sizeof(m.dir), "/lib/modules/%s", rel);
    char path[PATH_MAX + 32];
    size_t len;
    snprintf(path, sizeof(path), "%s/modules.dep", m.dir);
    m.dep = read_file(path, MAX_DEP_FILE, &len);
    if (!m.dep)
        return errno == ENOENT
                   ? 0
                   : kiln_fail(errmsg, errno, "--rootfs-host: %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s/modules.builtin", m.dir);
    m.builtin = read_file(path, MAX_DEP_FILE, &len);
    int ret = 0;
    for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(needed_modules); i++)
        if ((ret = add_module(&m, needed_modules[i], 0, errmsg)) > 0)
            ret = kiln_fail(errmsg, ENOENT,
                            "--rootfs-host: kernel %s has no module %s in %s and does not build "
                            "it in",
                            rel, needed_modules[i], m.dir);
    for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(wanted_modules); i++) {
        int r = add_module(&m, wanted_modules[i], 0, errmsg);
        ret = r < 0 ? r : 0;
    }
    if (ret == 0)
        cpio_file(c, "kiln/modules/load-order", m.order, m.order_len);
    for (size_t i = 0; i < m.ndone; i++)
        free(m.done[i]);
    free(m.done);
    free(m.dep);
    free(m.builtin);
    return ret < 0 ? ret : 0;
}

/* A string list "a\0b\0" of n strings, as one buffer (for /kiln/cmd and /kiln/mounts). */
struct strlist {
    char buf[65536];
    size_t len;
    bool full;
};

static void strlist_add(struct strlist *l, const char *s)
{
    size_t n = strlen(s) + 1;
    if (n > sizeof(l->buf) - l->len) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* /kiln/cmd, /kiln/cwd, /kiln/env, /kiln/root and /kiln/mounts (the user's shares). */
static int add_settings(struct cpio *c, const struct cli_options *o, char *errmsg)
{
    struct strlist *l = calloc(1, sizeof(*l));
    if (!l)
        return kiln_fail(errmsg, ENOMEM, "--rootfs-host: out of memory");
    for (int i = 0; i < o->ncommand; i++)
        strlist_add(l, o->command_argv[i]);
    if (l->full) {
        free(l);
        return kiln_fail(errmsg, E2BIG, "--rootfs-host: the command is longer than 64 KiB");
    }
    cpio_file(c, "kiln/cmd", l->buf, l->len);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)))
        cpio_file(c, "kiln/cwd", cwd, strlen(cwd));
    l->len = 0;
    const char *term = getenv("TERM");
    char env[256];
    if (term && snprintf(env, sizeof(env), "TERM=%s", term) < (int)sizeof(env))
        strlist_add(l, env);
    cpio_file(c, "kiln/env", l->buf, l->len);
    cpio_file(c, "kiln/root", ROOT_TAG, strlen(ROOT_TAG));
    l->len = 0;
    for (unsigned i = 0; i < o->nshares; i++) {
        char *real = realpath(o->shares[i].path, NULL);
        strlist_add(l, o->shares[i].tag);
        strlist_add(l, real ? real : o->shares[i].path);
        strlist_add(l, o->shares[i].read_only ? "ro" : "rw");
        free(real);
    }
    cpio_file(c, "kiln/mounts", l->buf, l->len);
    free(l);
    return 0;
}

/* The whole initramfs into fd. */
static int write_initramfs(int fd, const struct cli_options *o, char *errmsg)
{
    struct cpio c = {.fd = fd};
    static const char *const dirs[] = {"dev", "proc", "sys", "kiln", "kiln/modules"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
        cpio_dir(&c, dirs[i]);
    cpio_entry(&c, "dev/console", S_IFCHR | 0600, 5, 1, NULL, 0);
    cpio_entry(&c, "init", S_IFREG | 0755, 0, 0, kiln_guest_init,
               (size_t)(kiln_guest_init_end - kiln_guest_init));
    char rel[65];
    if (!bzimage_release(o->kernel, rel, sizeof(rel))) {
        struct utsname u;
        uname(&u);
        snprintf(rel, sizeof(rel), "%s", u.release);
    }
    int ret = add_modules(&c, rel, errmsg);
    if (ret == 0)
        ret = add_settings(&c, o, errmsg);
    if (ret == 0)
        cpio_entry(&c, "TRAILER!!!", 0, 0, 0, NULL, 0);
    if (ret == 0 && c.err)
        ret = kiln_fail(errmsg, c.err, "--rootfs-host: writing the initramfs: %s", strerror(c.err));
    return ret;
}

int cli_rootfs_prepare(struct cli_options *o, char *errmsg)
{
    int fd = memfd_create("kiln-rootfs-host", MFD_CLOEXEC);
    if (fd < 0)
        return kiln_fail(errmsg, errno, "--rootfs-host: memfd_create: %s", strerror(errno));
    int ret = write_initramfs(fd, o, errmsg);
    if (ret == 0 && o->nshares == KILN_MAX_SHARES)
        ret = kiln_fail(errmsg, EINVAL, "--rootfs-host: it takes a share; at most %d others",
                        KILN_MAX_SHARES - 1);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    /* The loader opens the initrd by path; the memfd stays open until kiln exits. */
    o->rootfs_fd = fd;
    snprintf(o->rootfs_initrd, sizeof(o->rootfs_initrd), "/proc/self/fd/%d", fd);
    o->initrd = o->rootfs_initrd;
    if (!o->cmdline_given)
        o->cmdline = ROOTFS_CMDLINE;
    o->shares[o->nshares++] = (struct kiln_share){.path = "/", .tag = ROOT_TAG, .read_only = true};
    return 0;
}
