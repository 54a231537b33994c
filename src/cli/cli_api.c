/* cli_api.c: --api-socket: the listening socket kiln run serves, and its removal at exit. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util.h"

/* True if something accepts connections on the socket at a. */
static bool served(const struct sockaddr_un *a)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool yes = fd >= 0 && connect(fd, (const struct sockaddr *)a, sizeof(*a)) == 0;
    if (fd >= 0)
        close(fd);
    return yes;
}

/* Nothing at PATH, or a stale socket (removed); anything else is the user's and is refused. */
static int clear_path(const char *path, const struct sockaddr_un *a, char *errmsg)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT
                   ? 0
                   : kiln_fail(errmsg, errno, "--api-socket %s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return kiln_fail(errmsg, EEXIST, "--api-socket %s: exists and is not a socket", path);
    if (served(a))
        return kiln_fail(errmsg, EADDRINUSE, "--api-socket %s: another process serves it", path);
    if (unlink(path) < 0)
        return kiln_fail(errmsg, errno, "--api-socket %s: cannot remove the old socket: %s", path,
                         strerror(errno));
    return 0;
}

int cli_api_listen(const char *path, int *fd, char *errmsg)
{
    *fd = -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path))
        return kiln_fail(errmsg, ENAMETOOLONG, "--api-socket %s: path longer than %zu bytes", path,
                         sizeof(a.sun_path) - 1);
    memcpy(a.sun_path, path, strlen(path) + 1);
    int ret = clear_path(path, &a, errmsg);
    if (ret < 0)
        return ret;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return kiln_fail(errmsg, errno, "--api-socket %s: %s", path, strerror(errno));
    /* The socket is born 0600: only its owner may drive the VM. */
    mode_t old = umask(0177);
    ret = bind(s, (struct sockaddr *)&a, sizeof(a));
    int err = errno;
    umask(old);
    if (ret == 0 && listen(s, 16) < 0) {
        err = errno;
        unlink(path);
        ret = -1;
    }
    if (ret < 0) {
        close(s);
        return kiln_fail(errmsg, err, "--api-socket %s: %s", path, strerror(err));
    }
    *fd = s;
    return 0;
}
