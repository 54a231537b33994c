/* p9.h: a 9P2000.L file server for one host directory: a request in, its reply out. */
#ifndef KILN_P9_H
#define KILN_P9_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util.h"

/* Message types (9P2000.L; R = T + 1). */
enum p9_type {
    P9_TLERROR = 6,
    P9_RLERROR = 7,
    P9_TSTATFS = 8,
    P9_TLOPEN = 12,
    P9_TLCREATE = 14,
    P9_TSYMLINK = 16,
    P9_TMKNOD = 18,
    P9_TRENAME = 20,
    P9_TREADLINK = 22,
    P9_TGETATTR = 24,
    P9_TSETATTR = 26,
    P9_TXATTRWALK = 30,
    P9_TXATTRCREATE = 32,
    P9_TREADDIR = 40,
    P9_TFSYNC = 50,
    P9_TLOCK = 52,
    P9_TGETLOCK = 54,
    P9_TLINK = 70,
    P9_TMKDIR = 72,
    P9_TRENAMEAT = 74,
    P9_TUNLINKAT = 76,
    P9_TVERSION = 100,
    P9_TAUTH = 102,
    P9_TATTACH = 104,
    P9_TFLUSH = 108,
    P9_TWALK = 110,
    P9_TREAD = 116,
    P9_TWRITE = 118,
    P9_TCLUNK = 120,
    P9_TREMOVE = 122,
};

#define P9_HEADER 7          /* size[4] type[1] tag[2] */
#define P9_MSIZE_MIN 4096    /* smallest msize kiln accepts */
#define P9_MSIZE_MAX 1048576 /* largest msize kiln offers */
#define P9_MAX_FIDS 4096     /* fids one client may hold at once */
#define P9_MAX_WALK 16       /* names in one Twalk (the protocol's limit) */
#define P9_QID_LEN 13        /* type[1] version[4] path[8] */
#define P9_MAX_IOV 260       /* reply buffers one request may have (a virtqueue chain's) */

struct p9_server;

/*
 * A server for the directory root_fd (an O_PATH or O_RDONLY directory fd, which the server
 * takes). Every path the guest names is resolved beneath it (openat2 RESOLVE_BENEATH, no
 * symlinks followed, no magic links), pseudo file systems (proc, sys, dev, ...) below it are
 * hidden, and only regular files and directories can be opened. read_only refuses every change.
 */
int p9_server_create(int root_fd, bool read_only, struct p9_server **out);
void p9_server_destroy(struct p9_server *s);

/* Saved device state for snapshots (state.h). */
struct device_state;

/*
 * Snapshot: the session (msize, and every fid: its number, its path below the root, whether and
 * how it was opened) appended to st. Returns 0 or -errno.
 */
int p9_server_save(const struct p9_server *s, struct device_state *st);
/*
 * Restore a saved session into s (a server for the same directory, before it serves anything):
 * every path is opened again beneath the root as a walk does, opened fids with their flags but
 * never creating or truncating. A fid that cannot be re-attached (its path gone, or none) is
 * dead: every request on it but Tclunk gets ESTALE. Returns 0; -EINVAL for a state no server
 * could have saved (s is then as new); -ENOMEM, -EMFILE or -ENFILE when the host runs short.
 */
int p9_server_restore(struct p9_server *s, struct device_state *st);

/* The msize agreed with the client (P9_MSIZE_MAX until a Tversion). */
uint32_t p9_msize(const struct p9_server *s);

/*
 * Serve one request of len bytes; the reply goes to rep (cap bytes: the guest's buffers, which
 * may be as small as the reply; at least 11, an Rlerror's size).
 * Returns the reply's length: an R-message, or Rlerror for anything refused or malformed
 * (errors are the host's errno values, as 9P2000.L wants). 0 when not even a header could be
 * read: there is no tag to answer to.
 */
size_t p9_handle(struct p9_server *s, const uint8_t *req, size_t len, uint8_t *rep, size_t cap);

/* The same with the reply going into niov buffers (the guest's, as one byte stream). */
size_t p9_handle_iov(struct p9_server *s, const uint8_t *req, size_t len, const struct iovec *rep,
                     unsigned niov);

#endif
