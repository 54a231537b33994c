/* vsock_tool.c: a tiny static AF_VSOCK client and echo server for the e2e guest (busybox has none).
 *
 *   vsock_tool listen PORT        accept forever; echo each connection's bytes back until its EOF
 *                                 (a connection that fails: "echo: read: <strerror>" on stderr)
 *   vsock_tool connect CID PORT   stdin to the socket (half-closed at EOF), the socket to stdout
 *   vsock_tool cid                the guest's own CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID)
 *   vsock_tool host SOCKET PORT [SECONDS]
 *                                 on the host: to guest PORT through kiln's unix SOCKET
 *                                 ("CONNECT PORT", "OK ..."), then as connect; tried again every
 *                                 20 ms (each try given 1 s) for up to SECONDS (default: once)
 *
 * Exit status: 0, or 1 with one line on stderr (connect: "connect: <strerror>").
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int die(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    return 1;
}

/* Write all of buf; false on error. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        buf += w;
        len -= (size_t)w;
    }
    return 1;
}

/* Echo one connection: what arrives goes back, until the peer half-closes; then close. */
static void echo(int fd)
{
    static char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fprintf(stderr, "echo: read: %s\n", strerror(errno));
        if (r <= 0 || !write_all(fd, buf, (size_t)r))
            break;
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static int listen_port(unsigned port)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0)
        return die("socket");
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 256) < 0)
        return die("listen");
    signal(SIGCHLD, SIG_IGN); /* children reaped by the kernel */
    printf("listening on %u\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            return die("accept");
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(s);
            echo(c);
            _exit(0);
        }
        close(c);
    }
}

/* Relay stdin -> socket and socket -> stdout; the socket's EOF ends it. */
static int relay(int s)
{
    static char buf[65536];
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = s, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return die("poll");
        }
        if (p[0].revents) {
            ssize_t r = read(0, buf, sizeof(buf));
            if (r < 0)
                return die("read stdin");
            if (r == 0) {
                shutdown(s, SHUT_WR);
                p[0].fd = -1;
            } else if (!write_all(s, buf, (size_t)r)) {
                return die("write socket");
            }
        }
        if (p[1].revents) {
            ssize_t r = read(s, buf, sizeof(buf));
            if (r < 0)
                return die("read socket");
            if (r == 0)
                return 0;
            if (!write_all(1, buf, (size_t)r))
                return die("write stdout");
        }
    }
}

static int connect_port(unsigned cid, unsigned port)
{
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (s < 0)
        return die("socket");
    struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return die("connect");
    return relay(s);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one line ending in \n into line (cap bytes) within ms; false on EOF, error or timeout. */
static int read_line(int s, char *line, size_t cap, int ms)
{
    size_t n = 0;
    int64_t end = now_ms() + ms;
    while (n + 1 < cap) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0 || read(s, line + n, 1) != 1)
            return 0;
        if (line[n++] == '\n') {
            line[n] = '\0';
            return 1;
        }
    }
    return 0;
}

/* One try: a connection through kiln's socket that the guest accepted, or -1. */
static int host_try(const char *path, unsigned port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char line[64];
    int n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
    if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write_all(s, line, (size_t)n) && read_line(s, line, sizeof(line), 1000) &&
        strncmp(line, "OK ", 3) == 0)
        return s;
    if (s >= 0)
        close(s);
    return -1;
}

static int host_port(const char *path, unsigned port, unsigned seconds)
{
    int64_t end = now_ms() + 1000 * (int64_t)seconds;
    for (;;) {
        int s = host_try(path, port);
        if (s >= 0)
            return relay(s);
        if (now_ms() >= end) {
            fprintf(stderr, "host: %s port %u: the guest did not accept\n", path, port);
            return 1;
        }
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
}

static int local_cid(void)
{
    unsigned cid = 0;
    int fd = open("/dev/vsock", O_RDONLY);
    if (fd < 0 || ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
        return die("/dev/vsock");
    printf("%u\n", cid);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "listen") == 0)
        return listen_port((unsigned)strtoul(argv[2], NULL, 0));
    if (argc == 4 && strcmp(argv[1], "connect") == 0)
        return connect_port((unsigned)strtoul(argv[2], NULL, 0),
                            (unsigned)strtoul(argv[3], NULL, 0));
    if (argc == 2 && strcmp(argv[1], "cid") == 0)
        return local_cid();
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "host") == 0)
        return host_port(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
                         argc == 5 ? (unsigned)strtoul(argv[4], NULL, 0) : 0);
    fprintf(stderr, "usage: vsock_tool listen PORT | connect CID PORT | cid | "
                    "host SOCKET PORT [SECONDS]\n");
    return 2;
}
