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

/* {"cmd": CMD} plus what ARG means for CMD: stop SECONDS, snapshot PATH; others take none. */
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

int cli_ctl(const struct cli_options *o)
{
    char errmsg[KILN_ERRMSG_MAX];
    char *req = cli_ctl_request(o->ctl_cmd, o->ctl_arg, errmsg);
    if (!req)
        return ctl_fail("%s%s", errmsg + strlen("ctl: "), "");
    int fd = connect_to(o->ctl_path);
    if (fd < 0) {
        free(req);
        return ctl_fail("cannot connect to %s: %s", o->ctl_path, strerror(errno));
    }
    size_t len = strlen(req);
    bool sent = send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len;
    free(req);
    char *line = sent ? read_line(fd) : NULL;
    close(fd);
    if (!line)
        return ctl_fail("%s: no reply from the VM (it may have ended)%s", o->ctl_path, "");
    int code = print_reply(o->ctl_cmd, line);
    free(line);
    return code;
}
