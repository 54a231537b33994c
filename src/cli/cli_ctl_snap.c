/* cli_ctl_snap.c: kiln ctl SOCKET snapshot DIR: the files the VM fills, made here, renamed in. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util.h"

/* The parts of a snapshot (the order the request sends them in) and the names they fill in. */
static const char *const part_names[2] = {"state", "memory"};
static const char *const tmp_names[2] = {"state.tmp", "memory.tmp"};

static int snap_fail(char *errmsg, int err, const char *dir, const char *name)
{
    return kiln_fail(errmsg, err, "snapshot %s: %s%s%s", dir, name, name[0] ? ": " : "",
                     strerror(err));
}

/* DIR itself: made (0700) if missing, opened, and locked against a second ctl writing there. */
static int open_dir(struct ctl_snap *s, char *errmsg)
{
    if (mkdir(s->dir, 0700) == 0)
        s->made_dir = true;
    else if (errno != EEXIST)
        return snap_fail(errmsg, errno, s->dir, "");
    s->dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0)
        return snap_fail(errmsg, errno, s->dir, "");
    if (flock(s->dfd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? kiln_fail(errmsg, EBUSY,
                                                "snapshot %s: another snapshot is being written "
                                                "there",
                                                s->dir)
                                    : snap_fail(errmsg, errno, s->dir, "");
    return 0;
}

int ctl_snap_open(struct ctl_snap *s, const char *dir, char *errmsg)
{
    *s = (struct ctl_snap){.dir = dir, .dfd = -1, .fd = {-1, -1}};
    int ret = open_dir(s, errmsg);
    for (int i = 0; i < 2 && ret == 0; i++) {
        /* A new file of our own: a leftover of a snapshot that died goes first, and nothing at
         * the name (a symlink, a link to another file) is followed or reused. */
        if (unlinkat(s->dfd, tmp_names[i], 0) < 0 && errno != ENOENT)
            ret = snap_fail(errmsg, errno, dir, tmp_names[i]);
        else if ((s->fd[i] = openat(s->dfd, tmp_names[i],
                                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) <
                 0)
            ret = snap_fail(errmsg, errno, dir, tmp_names[i]);
    }
    if (ret < 0)
        ctl_snap_abandon(s);
    return ret;
}

void ctl_snap_abandon(struct ctl_snap *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->fd[i] >= 0) {
            close(s->fd[i]);
            unlinkat(s->dfd, tmp_names[i], 0);
        }
        s->fd[i] = -1;
    }
    if (s->made_dir)
        rmdir(s->dir); /* only if empty: what was there before stays */
    if (s->dfd >= 0)
        close(s->dfd); /* and the lock with it */
    s->dfd = -1;
}

int ctl_snap_commit(struct ctl_snap *s, char *errmsg)
{
    /* The old state goes first: between the two renames a restore finds no state and refuses,
     * rather than pair an old state with the new memory. The VM synced both files. */
    int ret = 0;
    if (unlinkat(s->dfd, part_names[0], 0) < 0 && errno != ENOENT)
        ret = snap_fail(errmsg, errno, s->dir, part_names[0]);
    for (int i = 1; i >= 0 && ret == 0; i--)
        if (renameat(s->dfd, tmp_names[i], s->dfd, part_names[i]) < 0)
            ret = snap_fail(errmsg, errno, s->dir, part_names[i]);
        else
            close(s->fd[i]), s->fd[i] = -1;
    if (ret == 0 && fsync(s->dfd) < 0)
        ret = snap_fail(errmsg, errno, s->dir, "");
    s->made_dir = false; /* it holds a snapshot, or what is left of one */
    ctl_snap_abandon(s);
    return ret;
}
