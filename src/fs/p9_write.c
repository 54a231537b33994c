/* p9_write.c: the 9P2000.L requests that change a writable share, and its syncs and locks. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fs/p9.h"
#include "fs/p9_impl.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6: the chmod that can refuse to follow a symlink */
#endif

/* Tsetattr's valid bits. */
#define P9_SETATTR_MODE 0x1
#define P9_SETATTR_UID 0x2
#define P9_SETATTR_GID 0x4
#define P9_SETATTR_SIZE 0x8
#define P9_SETATTR_ATIME 0x10
#define P9_SETATTR_MTIME 0x20
#define P9_SETATTR_ATIME_SET 0x80
#define P9_SETATTR_MTIME_SET 0x100

#define P9_LOCK_SUCCESS 0
#define P9_LOCK_TYPE_UNLCK 2

/* ---- Names, directories, modes. */

/*
 * The directory fid f names, opened afresh beneath the root (O_PATH), and a new entry's name for
 * it. Returns 0 or the errno to answer: a short message, an unknown fid, a name that is not one
 * entry ("", ".", "..", or with a "/"), a fid whose name the guest has removed, not a directory.
 */
static int at_dir(struct p9_server *s, const struct p9_in *in, const struct p9_fid *f,
                  const char *name, int *dfd)
{
    int err = p9_fid_error(in, f);
    if (err)
        return err;
    if (!p9_name_ok(name))
        return EINVAL;
    if (!f->path)
        return ESTALE;
    int fd = p9_open_beneath(s, f->path, O_PATH | O_DIRECTORY);
    if (fd < 0)
        return -fd;
    *dfd = fd;
    return 0;
}

/*
 * The parent directory of path (opened beneath the root, O_PATH) and path's last name in it.
 * Returns 0 or an errno: ESTALE for a removed name, EBUSY for the root (which has no parent
 * inside the share).
 */
static int parent_of(struct p9_server *s, const char *path, int *dfd, const char **base)
{
    if (!path)
        return ESTALE;
    if (!path[0])
        return EBUSY;
    const char *slash = strrchr(path, '/');
    size_t keep = slash ? (size_t)(slash - path) : 0;
    char *parent = strndup(path, keep);
    if (!parent)
        return ENOMEM;
    int fd = p9_open_beneath(s, parent, O_PATH | O_DIRECTORY);
    free(parent);
    if (fd < 0)
        return -fd;
    *dfd = fd;
    *base = slash ? slash + 1 : path;
    return 0;
}

/* name in the directory dfd (one entry: no symlink followed), as openat2 does it. */
static int open_in(int dfd, const char *name, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dfd, name, &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

/*
 * The mode bits the guest may give a file: never set-user-ID, and set-group-ID only on a
 * directory (where it means "new entries take my group", no privilege). A file the guest makes
 * or changes must not let a host user run anything as someone else, whoever kiln runs as.
 */
static mode_t safe_mode(uint32_t mode, bool dir)
{
    mode_t m = (mode_t)(mode & 07777) & ~(mode_t)S_ISUID;
    return dir ? m : m & ~(mode_t)S_ISGID;
}

/*
 * Before Linux 6.6 (no fchmodat2): chmod through /proc/self/fd of an O_PATH fd of the entry,
 * which names that very inode, after checking it is no symlink (chmod would follow it).
 */
static int chmod_by_fd(int dfd, const char *name, mode_t mode, int flags)
{
    struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int fd =
        (flags & AT_EMPTY_PATH) ? dfd : (int)syscall(SYS_openat2, dfd, name, &how, sizeof(how));
    if (fd < 0)
        return -errno;
    struct stat st;
    char proc[40];
    int ret = fstat(fd, &st) < 0 ? -errno : S_ISLNK(st.st_mode) ? -EOPNOTSUPP : 0;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (ret == 0 && fchmodat(AT_FDCWD, proc, mode, 0) < 0)
        ret = -errno;
    if (fd != dfd)
        close(fd);
    return ret;
}

/* chmod of name in dfd ("" with AT_EMPTY_PATH: dfd itself), never through a symlink. */
static int chmod_at(int dfd, const char *name, mode_t mode, int flags)
{
    if (syscall(SYS_fchmodat2, dfd, name, mode, flags | AT_SYMLINK_NOFOLLOW) == 0)
        return 0;
    return errno == ENOSYS ? chmod_by_fd(dfd, name, mode, flags) : -errno;
}

/*
 * A new entry's mode and group. The mode is set again after creation because kiln's umask has
 * cut it (the guest applied its own umask already). The group
 * the guest asks for is given only when kiln runs as root (a user's kiln keeps its own group);
 * failing to give it leaves the entry as it is.
 */
static void new_entry_attrs(const struct p9_server *s, int dfd, const char *name, mode_t mode,
                            uint32_t gid)
{
    chmod_at(dfd, name, mode, 0);
    if (s->root && gid != (uint32_t)-1)
        (void)fchownat(dfd, name, (uid_t)-1, (gid_t)gid, AT_SYMLINK_NOFOLLOW);
}

/* Reply type with the qid of name in dfd (a new entry). Closes dfd. */
static size_t reply_qid(struct p9_out *o, uint8_t type, uint16_t tag, int dfd, const char *name)
{
    struct stat st;
    int ret = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
    close(dfd);
    if (ret)
        return p9_lerror(o, tag, ret);
    p9_begin(o, type, tag);
    p9_put_qid(o, &st);
    return p9_finish(o);
}

/* Rlerror err, or with err 0 the reply type with no fields. */
static size_t reply_empty(struct p9_out *o, uint8_t type, uint16_t tag, int err)
{
    if (err)
        return p9_lerror(o, tag, err);
    p9_begin(o, type, tag);
    return p9_finish(o);
}

/* Close fd1 and fd2 (each -1 if the request opened none), then reply as reply_empty does. */
static size_t close_reply(struct p9_out *o, uint8_t type, uint16_t tag, int err, int fd1, int fd2)
{
    if (fd1 >= 0)
        close(fd1);
    if (fd2 >= 0)
        close(fd2);
    return reply_empty(o, type, tag, err);
}

/* ---- Fids after a rename or a removal: their paths follow what the guest did. */

/* path is prefix itself or below it. */
static bool below(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Fids at or below path lose their path: no name leads to their file any more (ESTALE). */
static void fids_forget(struct p9_server *s, const char *path)
{
    for (unsigned i = 0; i < P9_MAX_FIDS; i++) {
        struct p9_fid *f = &s->fids[i];
        if (f->used && f->path && below(f->path, path)) {
            free(f->path);
            f->path = NULL;
        }
    }
}

/* Fids at or below from now live below to (a path that cannot be built makes them stale). */
static void fids_move(struct p9_server *s, const char *from, const char *to)
{
    size_t nfrom = strlen(from), nto = strlen(to);
    for (unsigned i = 0; i < P9_MAX_FIDS; i++) {
        struct p9_fid *f = &s->fids[i];
        if (!f->used || !f->path || !below(f->path, from))
            continue;
        size_t rest = strlen(f->path) - nfrom;
        char *moved = malloc(nto + rest + 1);
        if (moved) {
            memcpy(moved, to, nto);
            memcpy(moved + nto, f->path + nfrom, rest + 1);
        }
        free(f->path);
        f->path = moved;
    }
}

/*
 * Rename oname in odfd (the directory at path odir) to nname in ndfd (at ndir), and keep the
 * fids consistent: those at the old name and below move with it, those at a name it replaced
 * go stale. Two names of one file are left alone, as rename(2) leaves them. Returns 0 or an errno.
 */
static int rename_in(struct p9_server *s, int odfd, const char *odir, const char *oname, int ndfd,
                     const char *ndir, const char *nname)
{
    char *from = p9_path_join(odir, oname), *to = p9_path_join(ndir, nname);
    struct stat a, b;
    bool same = fstatat(odfd, oname, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
                fstatat(ndfd, nname, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
                a.st_dev == b.st_dev;
    int err = !from || !to ? ENAMETOOLONG : 0;
    if (!err && syscall(SYS_renameat2, odfd, oname, ndfd, nname, 0) < 0)
        err = errno;
    if (!err && !same) {
        fids_forget(s, to);
        fids_move(s, from, to);
    }
    free(from);
    free(to);
    return err;
}

/* ---- Creating. */

/* Tlcreate: the fid (a directory) becomes the new regular file, opened with flags. */
static size_t t_lcreate(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    int flags = (int)(p9_get(in, 4) & P9_OPEN_FLAGS & ~(uint64_t)O_DIRECTORY);
    mode_t mode = safe_mode((uint32_t)p9_get(in, 4), false);
    uint32_t gid = (uint32_t)p9_get(in, 4);
    int dfd = -1, err = at_dir(s, in, f, name, &dfd);
    if (!err && f->open_fd >= 0)
        err = EBUSY;
    char *path = err ? NULL : p9_path_join(f->path, name);
    if (!err && !path)
        err = ENAMETOOLONG;
    /* O_EXCL: never an existing file, never through a symlink left in the name's place. */
    int fd = err ? -1 : open_in(dfd, name, flags | O_CREAT | O_EXCL | O_NOCTTY, mode);
    if (!err && fd < 0)
        err = -fd;
    int pfd = err ? -1 : open_in(dfd, name, O_PATH, 0);
    struct stat st;
    if (!err && (pfd < 0 || fstat(fd, &st) < 0)) {
        err = pfd < 0 ? -pfd : errno;
        unlinkat(dfd, name, 0); /* not served: not made either */
    }
    if (!err)
        new_entry_attrs(s, dfd, name, mode, gid);
    if (dfd >= 0)
        close(dfd);
    if (err) {
        free(path);
        return close_reply(o, P9_TLCREATE + 1, tag, err, fd, pfd);
    }
    close(f->fd);
    free(f->path);
    f->fd = pfd;
    f->open_fd = fd;
    f->open_flags = flags & P9_REOPEN_FLAGS;
    f->path = path;
    p9_begin(o, P9_TLCREATE + 1, tag);
    p9_put_qid(o, &st);
    p9_put(o, 4, 0); /* iounit: up to msize */
    return p9_finish(o);
}

static size_t t_mkdir(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    mode_t mode = safe_mode((uint32_t)p9_get(in, 4), true);
    uint32_t gid = (uint32_t)p9_get(in, 4);
    int dfd, err = at_dir(s, in, f, name, &dfd);
    if (err)
        return p9_lerror(o, tag, err);
    if (mkdirat(dfd, name, mode) < 0)
        return close_reply(o, P9_TMKDIR + 1, tag, errno, dfd, -1);
    new_entry_attrs(s, dfd, name, mode, gid);
    return reply_qid(o, P9_TMKDIR + 1, tag, dfd, name);
}

/* Tsymlink: the target is the guest's text, stored as it is; the server never follows it. */
static size_t t_symlink(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1], target[P9_PATH_MAX];
    p9_get_str(in, name, P9_NAME_MAX);
    p9_get_str(in, target, sizeof(target) - 1);
    uint32_t gid = (uint32_t)p9_get(in, 4);
    int dfd, err = at_dir(s, in, f, name, &dfd);
    if (err)
        return p9_lerror(o, tag, err);
    if (!target[0] || symlinkat(target, dfd, name) < 0)
        return close_reply(o, P9_TSYMLINK + 1, tag, target[0] ? errno : ENOENT, dfd, -1);
    if (s->root && gid != (uint32_t)-1)
        (void)fchownat(dfd, name, (uid_t)-1, (gid_t)gid, AT_SYMLINK_NOFOLLOW);
    return reply_qid(o, P9_TSYMLINK + 1, tag, dfd, name);
}

/*
 * Tmknod: FIFOs, sockets and empty regular files. Never a device node (EPERM, whoever kiln runs
 * as): a node the guest made would open the host's hardware to every host user who can reach the
 * share. kiln itself never opens a FIFO or socket in a share (Tlopen refuses them).
 */
static size_t t_mknod(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    uint32_t raw = (uint32_t)p9_get(in, 4);
    p9_get(in, 4); /* major, minor: no device is ever made */
    p9_get(in, 4);
    uint32_t gid = (uint32_t)p9_get(in, 4);
    mode_t type = raw & S_IFMT, mode = safe_mode(raw, false);
    int dfd = -1, err = at_dir(s, in, f, name, &dfd);
    if (!err && (type == S_IFCHR || type == S_IFBLK))
        err = EPERM;
    else if (!err && type != 0 && type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
        err = EINVAL;
    if (!err && mknodat(dfd, name, (type ? type : S_IFREG) | mode, 0) < 0)
        err = errno;
    if (err)
        return close_reply(o, P9_TMKNOD + 1, tag, err, dfd, -1);
    new_entry_attrs(s, dfd, name, mode, gid);
    return reply_qid(o, P9_TMKNOD + 1, tag, dfd, name);
}

/* Tlink: a new name in dfid for the file of fid (not a directory: the kernel refuses those). */
static size_t t_link(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *d = p9_fid_arg(s, in), *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    int dfd = -1, sfd = -1, err = p9_fid_error(in, f);
    const char *base = NULL;
    if (!err)
        err = at_dir(s, in, d, name, &dfd);
    if (!err)
        err = parent_of(s, f->path, &sfd, &base);
    if (err == EBUSY)
        err = EPERM;                                 /* the share's root, a directory */
    if (!err && linkat(sfd, base, dfd, name, 0) < 0) /* 0: a symlink is linked, not followed */
        err = errno;
    return close_reply(o, P9_TLINK + 1, tag, err, dfd, sfd);
}

/* ---- Removing and renaming. */

static size_t t_unlinkat(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    uint32_t flags = (uint32_t)p9_get(in, 4);
    int dfd = -1, err = at_dir(s, in, f, name, &dfd);
    if (!err && (flags & ~(uint32_t)AT_REMOVEDIR))
        err = EINVAL;
    if (!err && unlinkat(dfd, name, (int)flags) < 0)
        err = errno;
    if (dfd >= 0)
        close(dfd);
    char *path = err ? NULL : p9_path_join(f->path, name);
    if (path)
        fids_forget(s, path);
    free(path);
    return reply_empty(o, P9_TUNLINKAT + 1, tag, err);
}

static size_t t_renameat(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *od = p9_fid_arg(s, in);
    char oname[P9_NAME_MAX + 1], nname[P9_NAME_MAX + 1];
    p9_get_str(in, oname, P9_NAME_MAX);
    struct p9_fid *nd = p9_fid_arg(s, in);
    p9_get_str(in, nname, P9_NAME_MAX);
    int odfd = -1, ndfd = -1, err = p9_fid_error(in, nd);
    if (!err)
        err = at_dir(s, in, od, oname, &odfd);
    if (!err)
        err = at_dir(s, in, nd, nname, &ndfd);
    if (!err)
        err = rename_in(s, odfd, od->path, oname, ndfd, nd->path, nname);
    return close_reply(o, P9_TRENAMEAT + 1, tag, err, odfd, ndfd);
}

/* Trename (the older form): the file of fid gets the name name in the directory dfid. */
static size_t t_rename(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in), *d = p9_fid_arg(s, in);
    char name[P9_NAME_MAX + 1];
    p9_get_str(in, name, P9_NAME_MAX);
    int odfd = -1, ndfd = -1, err = p9_fid_error(in, f);
    const char *base = NULL;
    if (!err)
        err = at_dir(s, in, d, name, &ndfd);
    if (!err)
        err = parent_of(s, f->path, &odfd, &base);
    /* The old parent's path: f's up to the "/" before base, or "" at the top. */
    char *odir = err ? NULL : strndup(f->path, base > f->path ? (size_t)(base - f->path) - 1 : 0);
    if (!err && !odir)
        err = ENOMEM;
    if (!err)
        err = rename_in(s, odfd, odir, base, ndfd, d->path, name);
    free(odir);
    return close_reply(o, P9_TRENAME + 1, tag, err, odfd, ndfd);
}

/* Tremove: unlink the file of fid, and clunk fid whether that worked or not (as 9P says). */
static size_t t_remove(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    int err = p9_fid_error(in, f);
    if (err == ESTALE) /* a dead fid: clunked all the same */
        p9_fid_drop(s, f);
    if (err)
        return p9_lerror(o, tag, err);
    int dfd = -1;
    const char *base;
    struct stat st;
    err = parent_of(s, f->path, &dfd, &base);
    if (!err && p9_stat_fd(f->fd, &st) < 0)
        err = EIO;
    if (!err && unlinkat(dfd, base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
        err = errno;
    if (dfd >= 0)
        close(dfd);
    if (!err) {
        char *path = f->path;
        f->path = NULL;
        fids_forget(s, path);
        free(path);
    }
    p9_fid_drop(s, f);
    return reply_empty(o, P9_TREMOVE + 1, tag, err);
}

/* ---- Writing and attributes. */

/*
 * Twrite: fid[4] offset[8] count[4] data[count], into the file Tlopen or Tlcreate opened. The
 * data is written from the request as the device copied it out of the guest's buffers (a copy
 * the guest cannot change while the server checks and serves it).
 */
static size_t t_write(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    uint64_t off = p9_get(in, 8);
    uint32_t count = (uint32_t)p9_get(in, 4);
    int err = p9_fid_error(in, f);
    if (!err && count > in->len - in->off) /* more data than the message carries */
        err = EPROTO;
    else if (!err && f->open_fd < 0)
        err = EBADF;
    else if (!err && off > INT64_MAX)
        err = EINVAL;
    else if (!err && count > INT64_MAX - off) /* the write would end past the largest offset */
        err = EFBIG;
    ssize_t n = err ? -1 : pwrite(f->open_fd, in->p + in->off, count, (off_t)off);
    if (!err && n < 0)
        err = errno;
    if (err)
        return p9_lerror(o, tag, err);
    p9_begin(o, P9_TWRITE + 1, tag);
    p9_put(o, 4, (uint64_t)n);
    return p9_finish(o);
}

/*
 * A new owner or group. As root, chown (never through a symlink). As a user, only "no change"
 * is served and anything else is EPERM, as the kernel would answer a user giving a file away.
 */
static int set_owner(const struct p9_server *s, const struct p9_fid *f, const struct stat *st,
                     uint32_t valid, uint32_t uid, uint32_t gid)
{
    uid_t u = valid & P9_SETATTR_UID ? (uid_t)uid : (uid_t)-1;
    gid_t g = valid & P9_SETATTR_GID ? (gid_t)gid : (gid_t)-1;
    if (!s->root)
        return (u != (uid_t)-1 && u != st->st_uid) || (g != (gid_t)-1 && g != st->st_gid) ? -EPERM
                                                                                          : 0;
    return fchownat(f->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/*
 * A new size: through the fid's open file if it was opened for writing, else the file opened for
 * writing here (a regular file only, the same file the fid names, permission checked by the
 * host as for truncate(2)).
 */
static int set_size(struct p9_server *s, const struct p9_fid *f, const struct stat *st,
                    uint64_t size)
{
    if (size > INT64_MAX)
        return -EFBIG;
    if (f->open_fd >= 0 && ftruncate(f->open_fd, (off_t)size) == 0)
        return 0;
    if (!S_ISREG(st->st_mode))
        return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
    int fd = f->path ? p9_open_beneath(s, f->path, O_WRONLY | O_NONBLOCK | O_NOCTTY) : -ESTALE;
    if (fd < 0)
        return fd;
    struct stat now;
    int ret = p9_stat_fd(fd, &now);
    if (ret == 0 && (now.st_ino != st->st_ino || now.st_dev != st->st_dev))
        ret = -ESTALE;
    if (ret == 0 && ftruncate(fd, (off_t)size) < 0)
        ret = -errno;
    close(fd);
    return ret;
}

/* One of atime or mtime: now, the time given (a nanosecond field must be one), or unchanged. */
static int time_arg(uint32_t valid, uint32_t bit, uint32_t set_bit, uint64_t sec, uint64_t nsec,
                    struct timespec *ts)
{
    if (!(valid & bit)) {
        *ts = (struct timespec){.tv_nsec = UTIME_OMIT};
        return 0;
    }
    if (!(valid & set_bit)) {
        *ts = (struct timespec){.tv_nsec = UTIME_NOW};
        return 0;
    }
    if (nsec >= 1000000000u)
        return -EINVAL;
    *ts = (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = (long)nsec};
    return 0;
}

/*
 * Tsetattr: fid[4] valid[4] mode[4] uid[4] gid[4] size[8] atime[8+8] mtime[8+8]. Applied in that
 * order; the first failure is the answer (what came before it stays done). CTIME alone changes
 * nothing: the host moves ctime on every change and cannot be asked for one.
 */
static size_t t_setattr(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    uint32_t valid = (uint32_t)p9_get(in, 4), mode = (uint32_t)p9_get(in, 4);
    uint32_t uid = (uint32_t)p9_get(in, 4), gid = (uint32_t)p9_get(in, 4);
    uint64_t size = p9_get(in, 8), t[4];
    for (int i = 0; i < 4; i++)
        t[i] = p9_get(in, 8);
    int err = p9_fid_error(in, f);
    if (err)
        return p9_lerror(o, tag, err);
    struct stat st;
    int ret = p9_stat_fd(f->fd, &st);
    if (ret == 0 && (valid & P9_SETATTR_MODE))
        ret = chmod_at(f->fd, "", safe_mode(mode, S_ISDIR(st.st_mode)), AT_EMPTY_PATH);
    if (ret == 0 && (valid & (P9_SETATTR_UID | P9_SETATTR_GID)))
        ret = set_owner(s, f, &st, valid, uid, gid);
    if (ret == 0 && (valid & P9_SETATTR_SIZE))
        ret = set_size(s, f, &st, size);
    struct timespec ts[2];
    if (ret == 0 && (valid & (P9_SETATTR_ATIME | P9_SETATTR_MTIME))) {
        ret = time_arg(valid, P9_SETATTR_ATIME, P9_SETATTR_ATIME_SET, t[0], t[1], &ts[0]);
        if (ret == 0)
            ret = time_arg(valid, P9_SETATTR_MTIME, P9_SETATTR_MTIME_SET, t[2], t[3], &ts[1]);
        if (ret == 0 && utimensat(f->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
            ret = -errno;
    }
    return reply_empty(o, P9_TSETATTR + 1, tag, -ret);
}

/* ---- Syncs and locks (served on read-only shares too). */

/* Tfsync: fid[4] datasync[4]; an unopened fid has nothing of its own to sync. */
static size_t t_fsync(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    uint32_t datasync = (uint32_t)p9_get(in, 4);
    int err = p9_fid_error(in, f);
    if (!err && f->open_fd >= 0 && (datasync ? fdatasync(f->open_fd) : fsync(f->open_fd)) < 0)
        err = errno;
    return reply_empty(o, P9_TFSYNC + 1, tag, err);
}

/*
 * Tlock and Tgetlock: POSIX locks. The Linux client takes every lock in its own kernel first
 * (so the guest's processes exclude each other without the server); the server is only asked
 * about other clients, and a share has one. So a lock is granted and a test finds none, as QEMU
 * does. Host processes are not excluded: kiln takes no host lock on the guest's behalf.
 */
struct p9_lock {
    uint8_t type;
    uint64_t start, length;
    uint32_t proc_id;
    char client[P9_NAME_MAX + 1];
};

/* fid[4] type[1] (flags[4] for Tlock) start[8] length[8] proc_id[4] client_id[s]. */
static int lock_args(struct p9_server *s, struct p9_in *in, bool flags, struct p9_lock *l)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    l->type = (uint8_t)p9_get(in, 1);
    if (flags)
        p9_get(in, 4);
    l->start = p9_get(in, 8);
    l->length = p9_get(in, 8);
    l->proc_id = (uint32_t)p9_get(in, 4);
    p9_get_str(in, l->client, P9_NAME_MAX);
    return p9_fid_error(in, f);
}

static size_t t_lock(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_lock l;
    int err = lock_args(s, in, true, &l);
    if (err)
        return p9_lerror(o, tag, err);
    p9_begin(o, P9_TLOCK + 1, tag);
    p9_put(o, 1, P9_LOCK_SUCCESS);
    return p9_finish(o);
}

static size_t t_getlock(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_lock l;
    int err = lock_args(s, in, false, &l);
    if (err)
        return p9_lerror(o, tag, err);
    p9_begin(o, P9_TGETLOCK + 1, tag);
    p9_put(o, 1, P9_LOCK_TYPE_UNLCK); /* no other client holds anything */
    p9_put(o, 8, l.start);
    p9_put(o, 8, l.length);
    p9_put(o, 4, l.proc_id);
    p9_put_str(o, l.client);
    return p9_finish(o);
}

const struct p9_request p9_write_requests[] = {
    {P9_TLCREATE, t_lcreate},   {P9_TMKDIR, t_mkdir},     {P9_TSYMLINK, t_symlink},
    {P9_TMKNOD, t_mknod},       {P9_TLINK, t_link},       {P9_TUNLINKAT, t_unlinkat},
    {P9_TRENAMEAT, t_renameat}, {P9_TRENAME, t_rename},   {P9_TREMOVE, t_remove},
    {P9_TWRITE, t_write},       {P9_TSETATTR, t_setattr}, {P9_TFSYNC, t_fsync},
    {P9_TLOCK, t_lock},         {P9_TGETLOCK, t_getlock},
};
const size_t p9_nwrite_requests = sizeof(p9_write_requests) / sizeof(p9_write_requests[0]);

bool p9_changes(uint8_t type)
{
    switch (type) {
    case P9_TLCREATE:
    case P9_TSYMLINK:
    case P9_TMKNOD:
    case P9_TRENAME:
    case P9_TSETATTR:
    case P9_TXATTRCREATE:
    case P9_TLINK:
    case P9_TMKDIR:
    case P9_TRENAMEAT:
    case P9_TUNLINKAT:
    case P9_TWRITE:
    case P9_TREMOVE:
        return true;
    default:
        return false;
    }
}
