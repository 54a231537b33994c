/* p9_state.c: a 9P session saved for a snapshot, and its fids re-attached beneath the root. */
/*
 * The state is msize, the number of fids, then per fid: its number, bits (FID_*), the flags it
 * was opened with, its file type (S_IFMT, 0: not known), and its path below the root (a length
 * and the bytes, no NUL). Nothing else is kept per fid: reads, writes and Treaddir carry their
 * offset in every request, so a file or directory opened again serves them as before.
 *
 * A restore opens every path again beneath the root exactly as a walk does (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, pseudo file systems hidden),
 * and an opened fid's file again with its flags (never O_CREAT, O_EXCL or O_TRUNC: a restore
 * changes no host file). A fid that cannot be re-attached (no path at snapshot time, its path
 * gone or of another type now, a FIFO or device where a file was open, opened for writing on a
 * share restored read-only) comes back dead: every request on it but Tclunk gets ESTALE, as a
 * stale NFS handle would. What the host changed in the share in between is the user's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/p9.h"
#include "fs/p9_impl.h"
#include "state.h"

#define FID_HAS_PATH 0x1u /* the path follows; without it the fid restores dead */
#define FID_OPENED 0x2u   /* opened (Tlopen, Tlcreate) with the flags given */
#define FID_BITS (FID_HAS_PATH | FID_OPENED)

/* One fid as the state holds it. */
struct saved_fid {
    uint32_t fid, bits, flags, type;
    char path[P9_PATH_MAX];
};

/* ---- Save. */

static void save_fid(const struct p9_fid *f, struct device_state *st)
{
    struct stat sb;
    uint32_t type = 0, len = f->path ? (uint32_t)strlen(f->path) : 0;
    if (f->path && p9_stat_fd(f->fd, &sb) == 0)
        type = (uint32_t)(sb.st_mode & S_IFMT);
    state_put_u32(st, f->fid);
    state_put_u32(st, (f->path ? FID_HAS_PATH : 0) | (f->open_fd >= 0 ? FID_OPENED : 0));
    state_put_u32(st, f->open_fd >= 0 ? (uint32_t)f->open_flags : 0);
    state_put_u32(st, type);
    state_put_u32(st, len);
    state_put(st, f->path ? f->path : "", len);
}

int p9_server_save(const struct p9_server *s, struct device_state *st)
{
    state_put_u32(st, s->msize);
    state_put_u32(st, s->nfids);
    for (unsigned i = 0; i < P9_MAX_FIDS; i++)
        if (s->fids[i].used)
            save_fid(&s->fids[i], st);
    return st->err ? -st->err : 0;
}

/* ---- Checking what was read back: the snapshot file is as hostile as the guest. */

/* A path below the root as a walk builds it: "" or names joined by "/", each a real entry. */
static bool path_ok(const char *path)
{
    if (!path[0])
        return true;
    char name[P9_NAME_MAX + 1];
    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n > P9_NAME_MAX)
            return false;
        memcpy(name, p, n);
        name[n] = '\0';
        if (!p9_name_ok(name))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static bool type_ok(uint32_t type)
{
    switch (type) {
    case 0:
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
        return true;
    default:
        return false;
    }
}

/* The next fid from st, checked on its own; -EINVAL for anything a server could not have had. */
static int read_fid(struct device_state *st, struct saved_fid *sf)
{
    sf->fid = state_get_u32(st);
    sf->bits = state_get_u32(st);
    sf->flags = state_get_u32(st);
    sf->type = state_get_u32(st);
    uint32_t len = state_get_u32(st);
    bool has_path = sf->bits & FID_HAS_PATH, opened = sf->bits & FID_OPENED;
    if (st->err || sf->fid == P9_NOFID || (sf->bits & ~FID_BITS) || !type_ok(sf->type) ||
        len >= P9_PATH_MAX || (!has_path && (len || sf->type)))
        return -EINVAL;
    if (opened ? (sf->flags & ~(uint32_t)P9_REOPEN_FLAGS) != 0 : sf->flags != 0)
        return -EINVAL;
    if (opened && sf->type && sf->type != S_IFREG && sf->type != S_IFDIR)
        return -EINVAL; /* only files and directories are ever opened */
    state_get(st, sf->path, len);
    sf->path[len] = '\0';
    if (st->err || strlen(sf->path) != len || (has_path && !path_ok(sf->path)))
        return -EINVAL;
    return 0;
}

/* ---- Re-attaching. */

/* A failure of the host's (memory, file descriptors) fails the restore; any other only the fid. */
static int fatal(int err)
{
    return err == -ENOMEM || err == -EMFILE || err == -ENFILE;
}

/* The fid's file opened as it was, the same file as pfd names (st); 1: cannot be, -errno. */
static int reopen(struct p9_server *s, const struct saved_fid *sf, const struct stat *st, int *out)
{
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return 1; /* never a FIFO or a device, whatever a host process put there */
    if (s->read_only && (sf->flags & O_ACCMODE) != O_RDONLY)
        return 1;
    /* O_NONBLOCK: a FIFO swapped in after the check must not block the restore. */
    int fd = p9_open_beneath(s, sf->path, (int)sf->flags | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fatal(fd) ? fd : 1;
    struct stat now;
    int fl = fcntl(fd, F_GETFL);
    if (p9_stat_fd(fd, &now) < 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev ||
        fl < 0 || (!(sf->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
        close(fd);
        return 1;
    }
    *out = fd;
    return 0;
}

/* The fid's path beneath the root (O_PATH) and, if it was opened, its open file. Returns 0, 1
 * when the fid cannot be re-attached, or -errno. */
static int reattach(struct p9_server *s, const struct saved_fid *sf, int *fd, int *open_fd)
{
    if (!(sf->bits & FID_HAS_PATH))
        return 1;
    int pfd = p9_open_beneath(s, sf->path, O_PATH);
    if (pfd < 0)
        return fatal(pfd) ? pfd : 1;
    struct stat st;
    int ret = p9_stat_fd(pfd, &st) < 0 || (sf->type && (st.st_mode & S_IFMT) != sf->type) ? 1 : 0;
    if (ret == 0 && (sf->bits & FID_OPENED))
        ret = reopen(s, sf, &st, open_fd);
    if (ret != 0) {
        close(pfd);
        return ret;
    }
    *fd = pfd;
    return 0;
}

/* Bind a restored fid (its number unused): live with its fds and a copy of its path, or dead. */
static int add_fid(struct p9_server *s, const struct saved_fid *sf)
{
    int fd = -1, open_fd = -1;
    int ret = reattach(s, sf, &fd, &open_fd);
    if (ret < 0)
        return ret;
    char *path = ret == 0 ? strdup(sf->path) : NULL;
    if (ret == 0 && !path) {
        close(fd);
        if (open_fd >= 0)
            close(open_fd);
        return -ENOMEM;
    }
    /* A dead fid still takes a slot: fd -1, which p9_fid_set and p9_fid_drop leave alone. */
    ret = p9_fid_set(s, sf->fid, fd, path);
    if (ret < 0) {
        if (open_fd >= 0)
            close(open_fd);
        return ret;
    }
    struct p9_fid *f = p9_fid_get(s, sf->fid);
    f->dead = fd < 0;
    f->open_fd = open_fd;
    f->open_flags = open_fd >= 0 ? (int)sf->flags : 0;
    return 0;
}

static void drop_all(struct p9_server *s)
{
    for (unsigned i = 0; i < P9_MAX_FIDS; i++)
        if (s->fids[i].used)
            p9_fid_drop(s, &s->fids[i]);
}

static int restore_fids(struct p9_server *s, struct device_state *st, uint32_t n)
{
    struct saved_fid *sf = malloc(sizeof(*sf));
    int ret = sf ? 0 : -ENOMEM;
    for (uint32_t i = 0; i < n && ret == 0; i++) {
        ret = read_fid(st, sf);
        if (ret == 0 && p9_fid_get(s, sf->fid))
            ret = -EINVAL; /* a fid number twice */
        if (ret == 0)
            ret = add_fid(s, sf);
    }
    free(sf);
    return ret;
}

int p9_server_restore(struct p9_server *s, struct device_state *st)
{
    drop_all(s);
    uint32_t msize = state_get_u32(st), n = state_get_u32(st);
    int ret = st->err || msize < P9_MSIZE_MIN || msize > P9_MSIZE_MAX || n > P9_MAX_FIDS
                  ? -EINVAL
                  : restore_fids(s, st, n);
    if (ret < 0) { /* nothing half restored */
        drop_all(s);
        s->msize = P9_MSIZE_MAX;
        return ret;
    }
    s->msize = msize;
    return 0;
}
