/* p9_impl.h: the 9P server's state and the helpers p9.c and p9_write.c share (private to fs/). */
#ifndef KILN_FS_P9_IMPL_H
#define KILN_FS_P9_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

/* fs/p9.h comes first in both .c files (its limits size the server here); not included from
 * here, which would make p9.c and this header a circle of includes. */

#define P9_NOFID 0xffffffffu
#define P9_GETATTR_BASIC 0x7ffULL
#define P9_PATH_MAX 4096
#define P9_NAME_MAX 255
#define QT_DIR 0x80
#define QT_SYMLINK 0x02
#define QT_FILE 0x00
#define P9_FID_BUCKETS 1024 /* a power of two */

/* The open flags kiln passes on: access mode, append, truncate, directory, non-blocking. */
#define P9_OPEN_FLAGS (O_ACCMODE | O_APPEND | O_TRUNC | O_DIRECTORY | O_NONBLOCK | O_LARGEFILE)
/* What a fid remembers of them, to open it again on restore: never O_TRUNC (nor O_CREAT or
 * O_EXCL, which are not passed on at all): a restore must not change a host file. */
#define P9_REOPEN_FLAGS (P9_OPEN_FLAGS & ~O_TRUNC)

struct p9_fid {
    bool used;
    /* Restored from a snapshot without its file (its path gone, or it had none): every request
     * but Tclunk gets ESTALE; fd and open_fd are -1. */
    bool dead;
    uint16_t next; /* 1 + the next slot in this fid's bucket (used) or the free list; 0: none */
    uint32_t fid;
    int fd;         /* O_PATH: what the fid names */
    int open_fd;    /* after Tlopen or Tlcreate: the open file or directory, else -1 */
    int open_flags; /* what open_fd was opened with (P9_REOPEN_FLAGS), for a restore */
    /* Relative to the root, "" for the root itself; NULL once the guest removed or replaced
     * the name (the fd still names the file, but no path does: path operations get ESTALE). */
    char *path;
};

struct p9_server {
    int root_fd;
    bool read_only;
    bool root; /* kiln runs as root: ownership changes are attempted */
    uint32_t msize;
    struct p9_fid fids[P9_MAX_FIDS];
    unsigned nfids; /* slots in use */
    /* Every request names a fid: a hash of chains finds it without a scan of all the slots.
     * Both hold 1 + a slot, 0 for none. */
    uint16_t fid_bucket[P9_FID_BUCKETS];
    uint16_t fid_free;
    _Alignas(8) uint8_t dirbuf[32768]; /* getdents64 for Treaddir (8-aligned records) */
    struct iovec iov[P9_MAX_IOV];      /* a Tread's slice of the reply buffers */
};

/* ---- Decoding: every read is bounded; a short message sets bad and reads zeros. */

struct p9_in {
    const uint8_t *p;
    size_t len, off;
    bool bad;
};

uint64_t p9_get(struct p9_in *in, unsigned n);
/* A string into buf (NUL-terminated, at most max bytes, no NUL inside). */
void p9_get_str(struct p9_in *in, char *buf, size_t max);

/*
 * Encoding into the reply buffers (the guest's, as iovecs: a read's data goes straight from the
 * file into them). Writes past cap set overflow (the reply becomes an error).
 */
struct p9_out {
    const struct iovec *iov;
    unsigned niov;
    size_t cap, len;
    bool overflow;
};

void p9_put_bytes(struct p9_out *o, const void *b, size_t n);
void p9_put(struct p9_out *o, unsigned n, uint64_t v);
void p9_put_str(struct p9_out *o, const char *s);
void p9_put_qid(struct p9_out *o, const struct stat *st);
/* Start a reply (its size is filled in by p9_finish); p9_finish returns its length. */
void p9_begin(struct p9_out *o, uint8_t type, uint16_t tag);
size_t p9_finish(struct p9_out *o);
size_t p9_lerror(struct p9_out *o, uint16_t tag, int err);

/* ---- Fids and paths. */

struct p9_fid *p9_fid_get(struct p9_server *s, uint32_t fid);
void p9_fid_drop(struct p9_server *s, struct p9_fid *f);
/* Bind fid to (fd, path): a fid already there is replaced; takes fd and path. */
int p9_fid_set(struct p9_server *s, uint32_t fid, int fd, char *path);
/* The request's fid field; p9_fid_error, once every field is read: EPROTO for a short message,
 * EBADF for a fid the client does not hold, ESTALE for a dead one, else 0. */
struct p9_fid *p9_fid_arg(struct p9_server *s, struct p9_in *in);
int p9_fid_error(const struct p9_in *in, const struct p9_fid *f);

/* Open path (relative to the root; "" is the root) beneath the root, following no symlink;
 * returns the fd or -errno. Pseudo file systems are ENOENT. */
int p9_open_beneath(struct p9_server *s, const char *path, int flags);
/* path + "/" + name, or the parent of path for "..", into a new string (NULL: too long). */
char *p9_path_join(const char *path, const char *name);
/* A name the guest may give a new entry or walk to: not empty, not "." or "..", no "/". */
bool p9_name_ok(const char *name);
int p9_stat_fd(int fd, struct stat *st);

/* ---- Requests. */

typedef size_t (*p9_handler)(struct p9_server *, struct p9_in *, uint16_t, struct p9_out *);

struct p9_request {
    uint8_t type;
    p9_handler fn;
};

/* The requests that change the share (p9_write.c), and whether a type is one of them. */
extern const struct p9_request p9_write_requests[];
extern const size_t p9_nwrite_requests;
bool p9_changes(uint8_t type);

#endif
