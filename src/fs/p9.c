/* p9.c: 9P2000.L over one host directory: decode, check, serve, encode; nothing outside it. */
#include "fs/p9.h"
#include "fs/p9_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- Decoding: every read is bounded; a short message sets bad and reads zeros. */

uint64_t p9_get(struct p9_in *in, unsigned n)
{
    if (in->bad || in->len - in->off < n) {
        in->bad = true;
        return 0;
    }
    uint64_t v = le_get(in->p + in->off, n);
    in->off += n;
    return v;
}

/* A string into buf (NUL-terminated, at most max bytes, no NUL inside). */
void p9_get_str(struct p9_in *in, char *buf, size_t max)
{
    size_t n = (size_t)p9_get(in, 2);
    if (in->bad || n > max || in->len - in->off < n || memchr(in->p + in->off, 0, n)) {
        in->bad = true;
        buf[0] = '\0';
        return;
    }
    memcpy(buf, in->p + in->off, n);
    buf[n] = '\0';
    in->off += n;
}

/* The reply's bytes [off, off + n) as iovecs into dst (at most max); returns the count. */
static unsigned out_slice(const struct p9_out *o, size_t off, size_t n, struct iovec *dst,
                          unsigned max)
{
    unsigned k = 0;
    for (unsigned i = 0; i < o->niov && n && k < max; i++) {
        size_t l = o->iov[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        size_t take = l - off < n ? l - off : n;
        dst[k++] = (struct iovec){(uint8_t *)o->iov[i].iov_base + off, take};
        n -= take;
        off = 0;
    }
    return k;
}

/* Copy n bytes to the reply at off (inside cap). */
static void out_write(const struct p9_out *o, size_t off, const void *src, size_t n)
{
    const uint8_t *b = src;
    for (unsigned i = 0; i < o->niov && n; i++) {
        size_t l = o->iov[i].iov_len;
        if (off >= l) {
            off -= l;
            continue;
        }
        size_t take = l - off < n ? l - off : n;
        memcpy((uint8_t *)o->iov[i].iov_base + off, b, take);
        b += take;
        n -= take;
        off = 0;
    }
}

void p9_put_bytes(struct p9_out *o, const void *b, size_t n)
{
    if (o->overflow || o->cap - o->len < n) {
        o->overflow = true;
        return;
    }
    out_write(o, o->len, b, n);
    o->len += n;
}

void p9_put(struct p9_out *o, unsigned n, uint64_t v)
{
    uint8_t b[8];
    le_put(b, n, v);
    p9_put_bytes(o, b, n);
}

/* Overwrite the 4-byte field at off (a count known only at the end). */
static void patch32(const struct p9_out *o, size_t off, uint32_t v)
{
    uint8_t b[4];
    le_put(b, 4, v);
    out_write(o, off, b, 4);
}

void p9_put_str(struct p9_out *o, const char *s)
{
    size_t n = strlen(s);
    p9_put(o, 2, n);
    p9_put_bytes(o, s, n);
}

void p9_put_qid(struct p9_out *o, const struct stat *st)
{
    uint8_t type = S_ISDIR(st->st_mode) ? QT_DIR : S_ISLNK(st->st_mode) ? QT_SYMLINK : QT_FILE;
    p9_put(o, 1, type);
    p9_put(o, 4, 0);
    /* Inode numbers are unique per file system; a share may span several. */
    p9_put(o, 8, (uint64_t)st->st_ino ^ ((uint64_t)st->st_dev << 48));
}

/* Start a reply: the size is filled in by finish. */
void p9_begin(struct p9_out *o, uint8_t type, uint16_t tag)
{
    o->len = 0;
    o->overflow = false;
    p9_put(o, 4, 0);
    p9_put(o, 1, type);
    p9_put(o, 2, tag);
}

size_t p9_finish(struct p9_out *o)
{
    patch32(o, 0, (uint32_t)o->len);
    return o->len;
}

size_t p9_lerror(struct p9_out *o, uint16_t tag, int err)
{
    p9_begin(o, P9_RLERROR, tag);
    p9_put(o, 4, (uint32_t)err);
    return p9_finish(o);
}

/* ---- Fids and paths. */

/* The bucket of a fid: clients count fids up from 0, so the low bits spread them well. */
static uint16_t *fid_bucket(struct p9_server *s, uint32_t fid)
{
    return &s->fid_bucket[fid & (P9_FID_BUCKETS - 1)];
}

struct p9_fid *p9_fid_get(struct p9_server *s, uint32_t fid)
{
    for (uint16_t i = *fid_bucket(s, fid); i; i = s->fids[i - 1].next)
        if (s->fids[i - 1].fid == fid)
            return &s->fids[i - 1];
    return NULL;
}

void p9_fid_drop(struct p9_server *s, struct p9_fid *f)
{
    uint16_t slot = (uint16_t)(f - s->fids + 1), *link = fid_bucket(s, f->fid);
    while (*link != slot)
        link = &s->fids[*link - 1].next;
    *link = f->next;
    if (f->fd >= 0)
        close(f->fd);
    if (f->open_fd >= 0)
        close(f->open_fd);
    free(f->path);
    *f = (struct p9_fid){.fd = -1, .open_fd = -1, .next = s->fid_free};
    s->fid_free = slot;
    s->nfids--;
}

/* Bind fid to (fd, path): a fid already there is replaced; takes fd and path. */
int p9_fid_set(struct p9_server *s, uint32_t fid, int fd, char *path)
{
    struct p9_fid *f = p9_fid_get(s, fid);
    if (f)
        p9_fid_drop(s, f);
    if (!s->fid_free || fid == P9_NOFID) {
        close(fd);
        free(path);
        return -ENFILE;
    }
    uint16_t slot = s->fid_free, *bucket = fid_bucket(s, fid);
    f = &s->fids[slot - 1];
    s->fid_free = f->next;
    *f = (struct p9_fid){
        .used = true, .next = *bucket, .fid = fid, .fd = fd, .open_fd = -1, .path = path};
    *bucket = slot;
    s->nfids++;
    return 0;
}

/* Pseudo file systems a share never shows: the host's processes, devices and kernel state. */
static bool hidden_fs(int fd)
{
    struct statfs fs;
    struct stat st;
    /*
     * A symlink's own fd (O_PATH) has no statfs on every file system: a 9p one, say, as when
     * the shared / is itself a 9p mount. A symlink shows no content, so it may stay visible.
     */
    if (fstatfs(fd, &fs) < 0)
        return !(fstat(fd, &st) == 0 && S_ISLNK(st.st_mode));
    switch ((unsigned long)fs.f_type) {
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case DEVPTS_SUPER_MAGIC:
    case DEBUGFS_MAGIC:
    case SECURITYFS_MAGIC:
    case TRACEFS_MAGIC:
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case BPF_FS_MAGIC:
        return true;
    default:
        return false;
    }
}

/* Open path (relative to the root; "" is the root) beneath the root, following no symlink. */
int p9_open_beneath(struct p9_server *s, const char *path, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, s->root_fd, path[0] ? path : ".", &how, sizeof(how));
    if (fd < 0)
        return -errno;
    if (hidden_fs((int)fd)) {
        close((int)fd);
        return -ENOENT;
    }
    return (int)fd;
}

/* path + "/" + name, or the parent of path for "..", into a new string (NULL: too long). */
char *p9_path_join(const char *path, const char *name)
{
    size_t n = strlen(path);
    char *out;
    if (strcmp(name, "..") == 0) {
        const char *slash = strrchr(path, '/');
        size_t keep = slash ? (size_t)(slash - path) : 0; /* at the root, ".." is the root */
        out = malloc(keep + 1);
        if (out) {
            memcpy(out, path, keep);
            out[keep] = '\0';
        }
        return out;
    }
    if (n + 1 + strlen(name) >= P9_PATH_MAX)
        return NULL;
    out = malloc(n + strlen(name) + 2);
    if (out) {
        strcpy(out, path);
        if (n)
            strcat(out, "/");
        strcat(out, name);
    }
    return out;
}

bool p9_name_ok(const char *name)
{
    return name[0] && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && !strchr(name, '/');
}

int p9_stat_fd(int fd, struct stat *st)
{
    return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* ---- Requests. */

/* The request's fid field, and what is wrong with it once every field has been read: EPROTO
 * for a short message, EBADF for a fid the client does not hold, else 0. */
struct p9_fid *p9_fid_arg(struct p9_server *s, struct p9_in *in)
{
    return p9_fid_get(s, (uint32_t)p9_get(in, 4));
}

int p9_fid_error(const struct p9_in *in, const struct p9_fid *f)
{
    return in->bad ? EPROTO : !f ? EBADF : f->dead ? ESTALE : 0;
}

static size_t t_version(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    uint32_t msize = (uint32_t)p9_get(in, 4);
    char version[32];
    p9_get_str(in, version, sizeof(version) - 1);
    if (in->bad)
        return p9_lerror(o, tag, EPROTO);
    for (unsigned i = 0; i < P9_MAX_FIDS; i++) /* a new session: every fid goes */
        if (s->fids[i].used)
            p9_fid_drop(s, &s->fids[i]);
    if (msize < P9_MSIZE_MIN)
        return p9_lerror(o, tag, EINVAL);
    s->msize = msize < P9_MSIZE_MAX ? msize : P9_MSIZE_MAX;
    p9_begin(o, P9_TVERSION + 1, tag);
    p9_put(o, 4, s->msize);
    p9_put_str(o, strcmp(version, "9P2000.L") == 0 ? "9P2000.L" : "unknown");
    return p9_finish(o);
}

static size_t t_attach(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    uint32_t fid = (uint32_t)p9_get(in, 4);
    p9_get(in, 4); /* afid: no authentication */
    char uname[P9_NAME_MAX + 1], aname[P9_PATH_MAX];
    p9_get_str(in, uname, P9_NAME_MAX);
    p9_get_str(in, aname, sizeof(aname) - 1);
    p9_get(in, 4); /* n_uname: files are reached as kiln's own user */
    if (in->bad)
        return p9_lerror(o, tag, EPROTO);
    int fd = p9_open_beneath(s, "", O_PATH | O_DIRECTORY);
    char *root = strdup("");
    if (fd < 0 || !root) {
        free(root);
        if (fd >= 0)
            close(fd);
        return p9_lerror(o, tag, fd < 0 ? -fd : ENOMEM);
    }
    struct stat st;
    int ret = p9_stat_fd(fd, &st);
    if (ret == 0)
        ret = p9_fid_set(s, fid, fd, root);
    else {
        close(fd);
        free(root);
    }
    if (ret < 0)
        return p9_lerror(o, tag, -ret);
    p9_begin(o, P9_TATTACH + 1, tag);
    p9_put_qid(o, &st);
    return p9_finish(o);
}

static size_t t_walk(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    uint32_t fid = (uint32_t)p9_get(in, 4), newfid = (uint32_t)p9_get(in, 4);
    unsigned n = (unsigned)p9_get(in, 2);
    char names[P9_MAX_WALK][P9_NAME_MAX + 1];
    for (unsigned i = 0; i < n && i < P9_MAX_WALK; i++)
        p9_get_str(in, names[i], P9_NAME_MAX);
    if (in->bad || n > P9_MAX_WALK)
        return p9_lerror(o, tag, in->bad ? EPROTO : EINVAL);
    struct p9_fid *f = p9_fid_get(s, fid);
    if (!f || f->open_fd >= 0) /* an opened fid may not be walked from */
        return p9_lerror(o, tag, f ? EBUSY : EBADF);
    if (!f->path)
        return p9_lerror(o, tag, ESTALE);
    if (newfid != fid && p9_fid_get(s, newfid))
        return p9_lerror(o, tag, EEXIST);
    char *path = strdup(f->path);
    int fd = -1;
    struct stat qids[P9_MAX_WALK];
    unsigned done = 0;
    int err = path ? 0 : ENOMEM;
    for (; done < n && !err; done++) {
        char *next = p9_name_ok(names[done]) || strcmp(names[done], "..") == 0
                         ? p9_path_join(path, names[done])
                         : NULL;
        int nfd = next ? p9_open_beneath(s, next, O_PATH) : -ENOENT;
        if (nfd >= 0 && p9_stat_fd(nfd, &qids[done]) < 0) {
            close(nfd);
            nfd = -EIO;
        }
        if (nfd < 0) {
            free(next);
            err = -nfd;
            break;
        }
        if (fd >= 0)
            close(fd);
        free(path);
        fd = nfd;
        path = next;
    }
    if (err && done == 0) {
        free(path);
        if (fd >= 0)
            close(fd);
        return p9_lerror(o, tag, err);
    }
    if (!err) {
        if (n == 0) /* a clone of fid */
            fd = p9_open_beneath(s, path, O_PATH);
        int ret = fd < 0 ? fd : p9_fid_set(s, newfid, fd, path);
        path = NULL;
        if (ret < 0)
            return p9_lerror(o, tag, -ret);
    } else {
        /* Part of the walk: the qids found, and newfid untouched. */
        free(path);
        close(fd);
    }
    p9_begin(o, P9_TWALK + 1, tag);
    p9_put(o, 2, done);
    for (unsigned i = 0; i < done; i++)
        p9_put_qid(o, &qids[i]);
    return p9_finish(o);
}

static size_t t_getattr(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    p9_get(in, 8); /* request_mask: everything basic is always given */
    int err = p9_fid_error(in, f);
    if (err)
        return p9_lerror(o, tag, err);
    struct stat st;
    int ret = p9_stat_fd(f->fd, &st);
    if (ret < 0)
        return p9_lerror(o, tag, -ret);
    p9_begin(o, P9_TGETATTR + 1, tag);
    p9_put(o, 8, P9_GETATTR_BASIC);
    p9_put_qid(o, &st);
    p9_put(o, 4, st.st_mode);
    p9_put(o, 4, st.st_uid);
    p9_put(o, 4, st.st_gid);
    p9_put(o, 8, st.st_nlink);
    p9_put(o, 8, st.st_rdev);
    p9_put(o, 8, (uint64_t)st.st_size);
    p9_put(o, 8, (uint64_t)st.st_blksize);
    p9_put(o, 8, (uint64_t)st.st_blocks);
    p9_put(o, 8, (uint64_t)st.st_atim.tv_sec);
    p9_put(o, 8, (uint64_t)st.st_atim.tv_nsec);
    p9_put(o, 8, (uint64_t)st.st_mtim.tv_sec);
    p9_put(o, 8, (uint64_t)st.st_mtim.tv_nsec);
    p9_put(o, 8, (uint64_t)st.st_ctim.tv_sec);
    p9_put(o, 8, (uint64_t)st.st_ctim.tv_nsec);
    p9_put(o, 8, 0); /* btime, gen, data_version: not given (valid says so) */
    p9_put(o, 8, 0);
    p9_put(o, 8, 0);
    p9_put(o, 8, 0);
    return p9_finish(o);
}

static size_t t_lopen(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    uint32_t flags = (uint32_t)p9_get(in, 4) & P9_OPEN_FLAGS;
    int err = p9_fid_error(in, f);
    if (err)
        return p9_lerror(o, tag, err);
    if (f->open_fd >= 0)
        return p9_lerror(o, tag, EBUSY);
    struct stat st;
    int ret = p9_stat_fd(f->fd, &st);
    if (ret < 0)
        return p9_lerror(o, tag, -ret);
    /* Devices, FIFOs and sockets stay the host's: opening them could block or reach hardware. */
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return p9_lerror(o, tag, S_ISLNK(st.st_mode) ? ELOOP : EACCES);
    if (s->read_only && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)))
        return p9_lerror(o, tag, EROFS);
    int fd = f->path ? p9_open_beneath(s, f->path, (int)(flags | O_NOCTTY)) : -ESTALE;
    struct stat now;
    /* The path names the fid's file still: on a writable share only a host process could
     * have put another file there, and it is not opened in its place. */
    if (fd >= 0 &&
        (p9_stat_fd(fd, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)) {
        close(fd);
        fd = -ESTALE;
    }
    if (fd < 0)
        return p9_lerror(o, tag, -fd);
    f->open_fd = fd;
    f->open_flags = (int)(flags & P9_REOPEN_FLAGS);
    p9_begin(o, P9_TLOPEN + 1, tag);
    p9_put_qid(o, &st);
    p9_put(o, 4, 0); /* iounit: up to msize */
    return p9_finish(o);
}

/*
 * Tread and Treaddir: an opened fid, offset[8], count[4] (cut to what fits the reply, whose
 * capacity is at most msize). Sets *err to EPROTO, EBADF or EINVAL, or 0.
 */
static struct p9_fid *io_args(struct p9_server *s, struct p9_in *in, const struct p9_out *o,
                              uint64_t *off, uint32_t *count, int *err)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    *off = p9_get(in, 8);
    *count = (uint32_t)p9_get(in, 4);
    *err = p9_fid_error(in, f);
    if (!*err)
        *err = f->open_fd < 0 ? EBADF : *off > INT64_MAX ? EINVAL : 0;
    if (*count > o->cap - P9_HEADER - 4)
        *count = (uint32_t)(o->cap - P9_HEADER - 4);
    return f;
}

static size_t t_read(struct p9_server *s, struct p9_fid *f, uint64_t off, uint32_t count,
                     uint16_t tag, struct p9_out *o)
{
    p9_begin(o, P9_TREAD + 1, tag);
    p9_put(o, 4, 0);
    /* Straight from the file into the reply's buffers: no copy in between. */
    unsigned k = out_slice(o, o->len, count, s->iov, P9_MAX_IOV);
    ssize_t n = count ? preadv(f->open_fd, s->iov, (int)k, (off_t)off) : 0;
    if (n < 0)
        return p9_lerror(o, tag, errno);
    patch32(o, P9_HEADER, (uint32_t)n);
    o->len += (size_t)n;
    return p9_finish(o);
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static size_t t_readdir(struct p9_server *s, struct p9_fid *f, uint64_t off, uint32_t count,
                        uint16_t tag, struct p9_out *o)
{
    if (lseek(f->open_fd, (off_t)off, SEEK_SET) < 0)
        return p9_lerror(o, tag, errno);
    p9_begin(o, P9_TREADDIR + 1, tag);
    p9_put(o, 4, 0);
    size_t start = o->len;
    uint8_t *buf = s->dirbuf;
    for (;;) {
        /* Ask for about what still fits: entries read but not sent would be skipped. */
        size_t want = count - (o->len - start);
        long n = syscall(SYS_getdents64, f->open_fd, buf,
                         want < sizeof(s->dirbuf) ? want : sizeof(s->dirbuf));
        if (n < 0 && o->len == start)
            return p9_lerror(o, tag, errno);
        if (n <= 0)
            break;
        for (long pos = 0; pos < n;) {
            const struct linux_dirent64 *d = (const void *)(buf + pos);
            size_t name_len = strnlen(d->d_name, P9_NAME_MAX + 1);
            size_t need = P9_QID_LEN + 8 + 1 + 2 + name_len;
            if (name_len > P9_NAME_MAX || o->len - start + need > count) {
                /* Not sent: the next Treaddir starts at this entry. */
                goto done;
            }
            uint8_t qt = d->d_type == DT_DIR ? QT_DIR : d->d_type == DT_LNK ? QT_SYMLINK : QT_FILE;
            p9_put(o, 1, qt);
            p9_put(o, 4, 0);
            p9_put(o, 8, d->d_ino);
            p9_put(o, 8, (uint64_t)d->d_off);
            p9_put(o, 1, d->d_type);
            p9_put(o, 2, name_len);
            p9_put_bytes(o, d->d_name, name_len);
            pos += d->d_reclen;
        }
    }
done:
    patch32(o, P9_HEADER, (uint32_t)(o->len - start));
    return p9_finish(o);
}

/* Tclunk: the one request a dead fid (see p9_state.c) is served. */
static size_t t_clunk(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    struct p9_fid *f = p9_fid_arg(s, in);
    if (in->bad || !f)
        return p9_lerror(o, tag, in->bad ? EPROTO : EBADF);
    p9_fid_drop(s, f);
    p9_begin(o, P9_TCLUNK + 1, tag);
    return p9_finish(o);
}

static size_t t_statfs(struct p9_server *s, struct p9_fid *f, uint16_t tag, struct p9_out *o)
{
    (void)s;
    struct statfs fs;
    if (fstatfs(f->fd, &fs) < 0)
        return p9_lerror(o, tag, errno);
    p9_begin(o, P9_TSTATFS + 1, tag);
    p9_put(o, 4, (uint64_t)fs.f_type);
    p9_put(o, 4, (uint64_t)fs.f_bsize);
    p9_put(o, 8, fs.f_blocks);
    p9_put(o, 8, fs.f_bfree);
    p9_put(o, 8, fs.f_bavail);
    p9_put(o, 8, fs.f_files);
    p9_put(o, 8, fs.f_ffree);
    uint64_t fsid;
    memcpy(&fsid, &fs.f_fsid, sizeof(fsid));
    p9_put(o, 8, fsid);
    p9_put(o, 4, (uint64_t)fs.f_namelen);
    return p9_finish(o);
}

static size_t t_readlink(struct p9_server *s, struct p9_fid *f, uint16_t tag, struct p9_out *o)
{
    (void)s;
    char target[P9_PATH_MAX];
    ssize_t n = readlinkat(f->fd, "", target, sizeof(target) - 1);
    if (n < 0)
        return p9_lerror(o, tag, errno);
    target[n] = '\0';
    p9_begin(o, P9_TREADLINK + 1, tag);
    p9_put_str(o, target);
    return p9_finish(o);
}

static size_t t_flush(struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    p9_get(in, 2); /* oldtag: every request is answered before the next is read */
    if (in->bad)
        return p9_lerror(o, tag, EPROTO);
    p9_begin(o, P9_TFLUSH + 1, tag);
    return p9_finish(o);
}

static size_t t_flush_s(struct p9_server *s, struct p9_in *in, uint16_t tag, struct p9_out *o)
{
    (void)s;
    return t_flush(in, tag, o);
}

/* The requests served here, by type (the changes, syncs and locks are p9_write.c's). */
static const struct p9_request handlers[] = {
    {P9_TVERSION, t_version}, {P9_TATTACH, t_attach}, {P9_TWALK, t_walk},
    {P9_TGETATTR, t_getattr}, {P9_TLOPEN, t_lopen},   {P9_TFLUSH, t_flush_s},
    {P9_TCLUNK, t_clunk},
};

/* Requests that are a fid[4] and nothing else: served once the fid is known to be held. */
typedef size_t (*p9_fid_handler)(struct p9_server *, struct p9_fid *, uint16_t, struct p9_out *);
static const struct {
    uint8_t type;
    p9_fid_handler fn;
} fid_handlers[] = {
    {P9_TSTATFS, t_statfs},
    {P9_TREADLINK, t_readlink},
};

static size_t dispatch(struct p9_server *s, uint8_t type, struct p9_in *in, uint16_t tag,
                       struct p9_out *o)
{
    if (s->read_only && p9_changes(type))
        return p9_lerror(o, tag, EROFS);
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (handlers[i].type == type)
            return handlers[i].fn(s, in, tag, o);
    for (size_t i = 0; i < p9_nwrite_requests; i++)
        if (p9_write_requests[i].type == type)
            return p9_write_requests[i].fn(s, in, tag, o);
    if (type == P9_TREAD || type == P9_TREADDIR) {
        uint64_t off;
        uint32_t count;
        int err;
        struct p9_fid *f = io_args(s, in, o, &off, &count, &err);
        if (err)
            return p9_lerror(o, tag, err);
        return (type == P9_TREAD ? t_read : t_readdir)(s, f, off, count, tag, o);
    }
    for (size_t i = 0; i < sizeof(fid_handlers) / sizeof(fid_handlers[0]); i++) {
        if (fid_handlers[i].type != type)
            continue;
        struct p9_fid *f = p9_fid_arg(s, in);
        int err = p9_fid_error(in, f);
        return err ? p9_lerror(o, tag, err) : fid_handlers[i].fn(s, f, tag, o);
    }
    /* Extended attributes (none: see p9_write.c), authentication, unknown types. */
    return p9_lerror(o, tag, EOPNOTSUPP);
}

size_t p9_handle(struct p9_server *s, const uint8_t *req, size_t len, uint8_t *rep, size_t cap)
{
    const struct iovec iov = {rep, cap};
    return p9_handle_iov(s, req, len, &iov, 1);
}

size_t p9_handle_iov(struct p9_server *s, const uint8_t *req, size_t len, const struct iovec *rep,
                     unsigned niov)
{
    size_t cap = 0;
    for (unsigned i = 0; i < niov; i++)
        cap += rep[i].iov_len;
    if (len < P9_HEADER || cap < P9_HEADER + 4) /* room for an Rlerror at least */
        return 0;
    struct p9_in in = {req, len, 0, false};
    uint32_t size = (uint32_t)p9_get(&in, 4);
    uint8_t type = (uint8_t)p9_get(&in, 1);
    uint16_t tag = (uint16_t)p9_get(&in, 2);
    struct p9_out o = {rep, niov, cap < s->msize ? cap : s->msize, 0, false};
    if (size < P9_HEADER || size > len)
        return p9_lerror(&o, tag, EPROTO);
    in.len = size;
    size_t n = dispatch(s, type, &in, tag, &o);
    if (o.overflow)
        return p9_lerror(&o, tag, ERANGE);
    return n;
}

uint32_t p9_msize(const struct p9_server *s)
{
    return s->msize;
}

int p9_server_create(int root_fd, bool read_only, struct p9_server **out)
{
    struct p9_server *s = calloc(1, sizeof(*s));
    if (!s) {
        close(root_fd);
        return -ENOMEM;
    }
    s->root_fd = root_fd;
    s->read_only = read_only;
    s->root = geteuid() == 0;
    s->msize = P9_MSIZE_MAX;
    /* The free list in slot order (slot i + 1 follows slot i). */
    for (unsigned i = 0; i < P9_MAX_FIDS; i++)
        s->fids[i] = (struct p9_fid){
            .fd = -1, .open_fd = -1, .next = (uint16_t)(i + 1 < P9_MAX_FIDS ? i + 2 : 0)};
    s->fid_free = 1;
    *out = s;
    return 0;
}

void p9_server_destroy(struct p9_server *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < P9_MAX_FIDS; i++)
        if (s->fids[i].used)
            p9_fid_drop(s, &s->fids[i]);
    close(s->root_fd);
    free(s);
}
