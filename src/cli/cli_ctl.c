/* cli_ctl.c: kiln ctl: one request to a VM's API socket, its reply printed. */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util.h"

/* How long ctl waits for the reply (a pause waits for every vCPU to park). */
#define CTL_REPLY_TIMEOUT_MS 30000
#define CTL_REPLY_MAX (1 << 20)

/* {"cmd": CMD} plus what ARG means for CMD: stop SECONDS; snapshot DIR, whose files go with the
 * request ("fds": 2, state and memory); others take none. */
char *cli_ctl_request(const char *cmd, const char *arg, char *errmsg)
{
    if (cmd[0] == '\0') {
        kiln_fail(errmsg, EINVAL, "ctl: empty command");
        return NULL;
    }
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    int ret = 0;
    if (arg && strcmp(cmd, "stop") == 0) {
        uint64_t ms;
        if (parse_seconds(arg, &ms) < 0)
            ret = kiln_fail(errmsg, EINVAL, "ctl: stop '%s': not a number of seconds above 0", arg);
        else
            json_object_object_add(req, "timeout", json_object_new_double(ms / 1000.0));
    } else if (arg && strcmp(cmd, "snapshot") == 0) {
        if (arg[0] == '\0')
            ret = kiln_fail(errmsg, EINVAL, "ctl: snapshot: empty directory path");
        else
            json_object_object_add(req, "fds", json_object_new_int(2));
    } else if (arg) {
        ret = kiln_fail(errmsg, EINVAL, "ctl: %s takes no argument (got '%s')", cmd, arg);
    }
    char *line = NULL;
    if (ret == 0) {
        const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        line = malloc(strlen(s) + 2);
        if (line)
            sprintf(line, "%s\n", s);
    }
    json_object_put(req);
    return line;
}

static int ctl_fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "kiln: ctl: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return EXIT_CODE_KILN_ERROR;
}

static int connect_to(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* The whole request in one message, with the nfds descriptors fds (SCM_RIGHTS) if any. */
static bool send_request(int fd, const char *req, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = (void *)req, .iov_len = strlen(req)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len;
}

/* Read up to the first newline (malloc'd, without it), or NULL. */
static char *read_line(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf && len < CTL_REPLY_MAX) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, CTL_REPLY_TIMEOUT_MS) <= 0)
            break;
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                break;
            buf = grown;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            *nl = '\0';
            return buf;
        }
    }
    free(buf);
    return NULL;
}

/* Print the reply: info and stats as indented JSON, the rest as the line came. */
static int print_reply(const char *cmd, const char *line)
{
    struct json_object *r = json_tokener_parse(line);
    if (!r || !json_object_is_type(r, json_type_object)) {
        json_object_put(r);
        return ctl_fail("the VM's reply is no JSON object: %.200s%s", line, "");
    }
    struct json_object *err;
    int code = 0;
    if (json_object_object_get_ex(r, "error", &err)) {
        fprintf(stderr, "kiln: ctl: %s\n", json_object_get_string(err));
        code = EXIT_CODE_CTL_ERROR;
    } else if (strcmp(cmd, "info") == 0 || strcmp(cmd, "stats") == 0) {
        printf("%s\n",
               json_object_to_json_string_ext(r, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        printf("%s\n", line);
    }
    json_object_put(r);
    return code;
}

/* Send req (with snap's files, if any) and read the reply line (malloc'd), or NULL. */
static char *ask(const struct cli_options *o, const char *req, const struct ctl_snap *snap)
{
    int fd = connect_to(o->ctl_path);
    if (fd < 0) {
        ctl_fail("cannot connect to %s: %s", o->ctl_path, strerror(errno));
        return NULL;
    }
    bool sent = send_request(fd, req, snap ? snap->fd : NULL, snap ? 2 : 0);
    char *line = sent ? read_line(fd) : NULL;
    close(fd);
    if (!line)
        ctl_fail("%s: no reply from the VM (it may have ended)%s", o->ctl_path, "");
    return line;
}

/* Whether the reply line is a success ({"ok":true,...}). */
static bool reply_ok(const char *line)
{
    struct json_object *r = json_tokener_parse(line), *ok;
    bool yes = r && json_object_object_get_ex(r, "ok", &ok) && json_object_get_boolean(ok);
    json_object_put(r);
    return yes;
}

int cli_ctl(const struct cli_options *o)
{
    char errmsg[KILN_ERRMSG_MAX];
    char *req = cli_ctl_request(o->ctl_cmd, o->ctl_arg, errmsg);
    if (!req)
        return ctl_fail("%s%s", errmsg + strlen("ctl: "), "");
    /* snapshot DIR: the files are made before the VM is asked, and kept only if it succeeds. */
    struct ctl_snap snap, *s = NULL;
    if (o->ctl_arg && strcmp(o->ctl_cmd, "snapshot") == 0) {
        if (ctl_snap_open(&snap, o->ctl_arg, errmsg) < 0) {
            free(req);
            return ctl_fail("%s%s", errmsg, "");
        }
        s = &snap;
    }
    char *line = ask(o, req, s);
    free(req);
    int code = line ? 0 : EXIT_CODE_KILN_ERROR;
    if (s && line && reply_ok(line) && ctl_snap_commit(s, errmsg) < 0)
        code = ctl_fail("%s%s", errmsg, "");
    else if (s && !(line && reply_ok(line)))
        ctl_snap_abandon(s);
    if (line && code == 0)
        code = print_reply(o->ctl_cmd, line);
    free(line);
    return code;
}
