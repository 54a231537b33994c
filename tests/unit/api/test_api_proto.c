/* test_api_proto.c: the API socket's request parser and dispatcher, and its server's framing. */
#include <check.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "api/api_proto.h"
#include "api/api_server.h"
#include "util.h"

struct calls {
    int echo, fail, take;
    int take_fds; /* the last take: how many file descriptors it got (0: NULL) */
};

static int cmd_echo(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    struct calls *c = ctx;
    struct json_object *v;
    (void)fds;
    (void)err;
    c->echo++;
    if (json_object_object_get_ex(req, "arg", &v))
        json_object_object_add(reply, "arg", json_object_get(v));
    return 0;
}

static int cmd_fail(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    struct calls *c = ctx;
    (void)req;
    (void)fds;
    (void)reply;
    c->fail++;
    snprintf(err, API_ERR_MAX, "fail: as asked");
    return -1;
}

/* Takes two file descriptors: writes "first" to the first one and "second" to the other. */
static int cmd_take(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    struct calls *c = ctx;
    (void)req;
    (void)reply;
    (void)err;
    c->take++;
    c->take_fds = fds ? 2 : 0;
    if (fds && (write(fds[0], "first", 5) != 5 || write(fds[1], "second", 6) != 6))
        c->take_fds = -1;
    return 0;
}

static const struct api_command cmds[] = {
    {"echo", cmd_echo, 0}, {"fail", cmd_fail, 0}, {"take", cmd_take, 2}};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static char *handle(struct calls *c, const char *line)
{
    char *r = api_handle_line(cmds, NCMDS, c, line, strlen(line), NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_gt(strlen(r), 1);
    ck_assert_int_eq(r[strlen(r) - 1], '\n');
    ck_assert_ptr_null(strchr(r, '\n') == r + strlen(r) - 1 ? NULL : r); /* exactly one line */
    return r;
}

/* The reply's "error" string, or NULL for a success ({"ok":true,...}). */
static char *error_of(const char *reply)
{
    struct json_object *o = json_tokener_parse(reply);
    ck_assert_ptr_nonnull(o);
    struct json_object *e, *ok;
    char *msg = NULL;
    if (json_object_object_get_ex(o, "error", &e))
        msg = strdup(json_object_get_string(e));
    else
        ck_assert(json_object_object_get_ex(o, "ok", &ok) && json_object_get_boolean(ok));
    json_object_put(o);
    return msg;
}

static void expect_error(const char *line, const char *part)
{
    struct calls c = {0};
    char *r = handle(&c, line);
    char *e = error_of(r);
    ck_assert_msg(e && strstr(e, part), "'%s' -> %s", line, r);
    ck_assert_int_eq(c.echo + c.fail + c.take, 0);
    free(e);
    free(r);
}

START_TEST(test_dispatch)
{
    struct calls c = {0};
    char *r = handle(&c, "{\"cmd\":\"echo\",\"arg\":[1,\"two\"]}");
    ck_assert_int_eq(c.echo, 1);
    ck_assert_ptr_null(error_of(r));
    ck_assert_ptr_nonnull(strstr(r, "\"arg\":[1,\"two\"]"));
    free(r);
    r = handle(&c, "  {\"cmd\": \"echo\"}  \r"); /* white space around, CRLF */
    ck_assert_int_eq(c.echo, 2);
    free(r);
    r = handle(&c, "{\"cmd\":\"fail\"}");
    char *e = error_of(r);
    ck_assert_str_eq(e, "fail: as asked");
    free(e);
    free(r);
}
END_TEST

START_TEST(test_bad_requests)
{
    expect_error("", "bad JSON");
    expect_error("{", "bad JSON");
    expect_error("{\"cmd\":\"echo\"", "bad JSON");
    expect_error("nonsense", "bad JSON");
    expect_error("{\"cmd\":\"echo\"} {}", "bad JSON: text after");
    expect_error("[\"echo\"]", "must be a JSON object");
    expect_error("\"echo\"", "must be a JSON object");
    expect_error("{}", "no \"cmd\"");
    expect_error("{\"cmd\":7}", "no \"cmd\"");
    expect_error("{\"cmd\":\"reboot\"}", "unknown command 'reboot'");
    struct calls c = {0};
    const char nul[] = "{\"cmd\":\"echo\"}\0x";
    char *r = api_handle_line(cmds, NCMDS, &c, nul, sizeof(nul) - 1, NULL);
    char *e = error_of(r);
    ck_assert_ptr_nonnull(strstr(e, "NUL"));
    ck_assert_int_eq(c.echo, 0);
    free(e);
    free(r);
    /* An error message with quotes and a newline stays one valid line. */
    r = api_error_line("a \"quoted\"\nline");
    ck_assert_ptr_eq(strchr(r, '\n'), r + strlen(r) - 1);
    e = error_of(r);
    ck_assert_str_eq(e, "a \"quoted\"\nline");
    free(e);
    free(r);
}
END_TEST

/* handle() with file descriptors (two pipes' write ends; n of them, extra: more were sent). */
static char *handle_fds(struct calls *c, const char *line, unsigned n, bool extra, int p[2][2])
{
    struct api_fds fds = {.n = n, .extra = extra};
    for (unsigned i = 0; i < n; i++)
        fds.fd[i] = p[i][1];
    char *r = api_handle_line(cmds, NCMDS, c, line, strlen(line), &fds);
    ck_assert_ptr_nonnull(r);
    return r;
}

static void expect_fds_error(const char *line, unsigned n, bool extra, const char *part)
{
    struct calls c = {0};
    int p[2][2];
    ck_assert(pipe(p[0]) == 0 && pipe(p[1]) == 0);
    char *r = handle_fds(&c, line, n, extra, p);
    char *e = error_of(r);
    ck_assert_msg(e && strstr(e, part), "'%s' with %u fds -> %s", line, n, r);
    ck_assert_int_eq(c.echo + c.take, 0);
    free(e);
    free(r);
    for (int i = 0; i < 4; i++)
        close(p[i / 2][i % 2]); /* still the caller's: api_handle_line closes none */
}

/* "fds": N must match what came with the line and what the command takes. */
START_TEST(test_request_fds)
{
    struct calls c = {0};
    int p[2][2];
    ck_assert(pipe(p[0]) == 0 && pipe(p[1]) == 0);
    char *r = handle_fds(&c, "{\"cmd\":\"take\",\"fds\":2}", 2, false, p);
    ck_assert_ptr_null(error_of(r));
    ck_assert_int_eq(c.take_fds, 2);
    char got[8] = "";
    ck_assert_int_eq(read(p[0][0], got, sizeof(got)), 5);
    ck_assert(memcmp(got, "first", 5) == 0); /* in the order sent */
    ck_assert_int_eq(read(p[1][0], got, sizeof(got)), 6);
    free(r);
    /* The command without files: it runs, with fds NULL. */
    r = handle(&c, "{\"cmd\":\"take\"}");
    ck_assert_ptr_null(error_of(r));
    ck_assert_int_eq(c.take, 2);
    ck_assert_int_eq(c.take_fds, 0);
    free(r);
    r = handle(&c, "{\"cmd\":\"take\",\"fds\":0}");
    ck_assert_ptr_null(error_of(r));
    free(r);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(fcntl(p[i / 2][i % 2], F_GETFD), 0); /* the caller's still */
    for (int i = 0; i < 4; i++)
        close(p[i / 2][i % 2]);
    expect_fds_error("{\"cmd\":\"take\",\"fds\":2}", 0, false, "\"fds\" is 2, and 0 file");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":2}", 1, false, "\"fds\" is 2, and 1 file");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":2}", 2, true, "and more than 2 file");
    expect_fds_error("{\"cmd\":\"take\"}", 2, false, "no \"fds\" count");
    expect_fds_error("{\"cmd\":\"echo\"}", 1, false, "no \"fds\" count");
    expect_fds_error("{\"cmd\":\"echo\",\"fds\":1}", 1, false, "takes 0 file descriptors");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":1}", 1, false, "takes 2 file descriptors");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":\"2\"}", 2, false, "must be a count");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":3}", 2, true, "must be a count");
    expect_fds_error("{\"cmd\":\"take\",\"fds\":-1}", 0, false, "must be a count");
    expect_fds_error("{\"cmd\":\"nope\",\"fds\":2}", 2, false, "unknown command");
}
END_TEST

/* ---- The server on a real socket and loop; the client side runs in the same thread. */

struct fixture {
    uv_loop_t loop;
    struct api_server *server;
    struct calls calls;
    char path[108];
    int listen_fd;
};

static void fixture_up(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    ck_assert_int_eq(uv_loop_init(&f->loop), 0);
    snprintf(f->path, sizeof(f->path), "/tmp/kiln-test-api-%d.sock", getpid());
    unlink(f->path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->path);
    ck_assert_int_eq(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(f->listen_fd, 16), 0);
    static const struct kiln_log log = {.level = KILN_LOG_ERROR};
    ck_assert_int_eq(
        api_server_start(&f->loop, f->listen_fd, cmds, NCMDS, &f->calls, &log, &f->server), 0);
}

static void fixture_down(struct fixture *f)
{
    api_server_stop(f->server);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    api_server_free(f->server);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
    /* The caller's socket stays open (the server worked on a duplicate). */
    ck_assert_int_eq(listen(f->listen_fd, 16), 0);
    close(f->listen_fd);
    unlink(f->path);
}

static int client(const struct fixture *f)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", f->path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void spin(struct fixture *f)
{
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Every reply line the server has sent fd so far, concatenated. */
static size_t replies(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = recv(fd, buf + n, cap - 1 - n, MSG_DONTWAIT)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_server_framing)
{
    struct fixture f;
    fixture_up(&f);
    int fd = client(&f);
    /* Two requests in one write, a third split over two writes. */
    const char *two = "{\"cmd\":\"echo\"}\n{\"cmd\":\"nope\"}\n{\"cmd\":";
    ck_assert_int_eq(write(fd, two, strlen(two)), (ssize_t)strlen(two));
    spin(&f);
    ck_assert_int_eq(write(fd, "\"echo\"}\n", 8), 8);
    spin(&f);
    char buf[16384];
    replies(fd, buf, sizeof(buf));
    ck_assert_uint_eq(count_lines(buf), 3);
    ck_assert_int_eq(f.calls.echo, 2);
    ck_assert_ptr_nonnull(strstr(buf, "unknown command 'nope'"));
    /* An oversized line: one error, the rest of it skipped, the connection still usable. */
    char big[3 * API_LINE_MAX];
    memset(big, 'x', sizeof(big));
    ck_assert_int_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
    spin(&f);
    ck_assert_int_eq(write(fd, "tail\n{\"cmd\":\"echo\"}\n", 20), 20);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_uint_eq(count_lines(buf), 2);
    ck_assert_ptr_nonnull(strstr(buf, "longer than 4096"));
    ck_assert_ptr_nonnull(strstr(buf, "{\"ok\":true}"));
    ck_assert_int_eq(f.calls.echo, 3);
    /* A client that goes mid-request changes nothing. */
    int gone = client(&f);
    ck_assert_int_eq(write(gone, "{\"cmd\":\"echo\"", 13), 13);
    spin(&f);
    close(gone);
    spin(&f);
    ck_assert_int_eq(f.calls.echo, 3);
    close(fd);
    fixture_down(&f);
}
END_TEST

START_TEST(test_server_bounded_clients)
{
    struct fixture f;
    fixture_up(&f);
    int fds[API_MAX_CLIENTS + 1];
    for (unsigned i = 0; i <= API_MAX_CLIENTS; i++) {
        fds[i] = client(&f);
        spin(&f);
    }
    char buf[4096];
    /* The one too many is told so and closed. */
    replies(fds[API_MAX_CLIENTS], buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "too many API clients"));
    ck_assert_int_eq(recv(fds[API_MAX_CLIENTS], buf, 1, 0), 0);
    for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
        ck_assert_int_eq(write(fds[i], "{\"cmd\":\"echo\"}\n", 15), 15);
        spin(&f);
        replies(fds[i], buf, sizeof(buf));
        ck_assert_str_eq(buf, "{\"ok\":true}\n");
    }
    /* A slot freed is taken again. */
    close(fds[0]);
    spin(&f);
    fds[0] = client(&f);
    ck_assert_int_eq(write(fds[0], "{\"cmd\":\"echo\"}\n", 15), 15);
    spin(&f);
    replies(fds[0], buf, sizeof(buf));
    ck_assert_str_eq(buf, "{\"ok\":true}\n");
    for (unsigned i = 0; i <= API_MAX_CLIENTS; i++)
        close(fds[i]);
    fixture_down(&f);
}
END_TEST

/* Send line with the write ends of nfds fresh pipes (their read ends in rd[]) in one sendmsg. */
static void send_with_fds(int fd, const char *line, unsigned nfds, int *rd)
{
    int wr[4];
    for (unsigned i = 0; i < nfds; i++) {
        int p[2];
        ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        rd[i] = p[0];
        wr[i] = p[1];
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(wr))];
    } control;
    struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        *cm = (struct cmsghdr){.cmsg_len = CMSG_LEN(nfds * sizeof(int)),
                               .cmsg_level = SOL_SOCKET,
                               .cmsg_type = SCM_RIGHTS};
        memcpy(CMSG_DATA(cm), wr, nfds * sizeof(int));
    }
    ck_assert_int_eq(sendmsg(fd, &mh, 0), (ssize_t)strlen(line));
    for (unsigned i = 0; i < nfds; i++)
        close(wr[i]); /* from now on only the server holds the write ends */
}

/* What the server wrote into the pipe read end rd, and that it holds the write end no more. */
static void expect_pipe(int rd, const char *want)
{
    char got[16] = "";
    ssize_t n = read(rd, got, sizeof(got) - 1);
    ck_assert_msg(strcmp(n > 0 ? got : "", want) == 0, "pipe: '%s', expected '%s'", got, want);
    ck_assert_msg(read(rd, got, 1) == 0, "the server left a file descriptor open");
    close(rd);
}

START_TEST(test_server_fds)
{
    struct fixture f;
    fixture_up(&f);
    int fd = client(&f);
    char buf[16384];
    int rd[4];
    /* Two files with the request that announces them: the command gets them, in order. */
    send_with_fds(fd, "{\"cmd\":\"take\",\"fds\":2}\n", 2, rd);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_str_eq(buf, "{\"ok\":true}\n");
    ck_assert_int_eq(f.calls.take_fds, 2);
    expect_pipe(rd[0], "first");
    expect_pipe(rd[1], "second");
    /* Announced, none sent: an error, and the connection stays usable. */
    send_with_fds(fd, "{\"cmd\":\"take\",\"fds\":2}\n", 0, NULL);
    spin(&f);
    send_with_fds(fd, "{\"cmd\":\"echo\"}\n", 0, NULL);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "and 0 file descriptors came with it"));
    ck_assert_ptr_nonnull(strstr(buf, "\n{\"ok\":true}\n"));
    /* Sent with another line, or too many: errors, and every one closed unused. */
    send_with_fds(fd, "{\"cmd\":\"echo\"}\n", 2, rd);
    spin(&f);
    send_with_fds(fd, "{\"cmd\":\"take\",\"fds\":2}\n", 3, rd + 1);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_uint_eq(count_lines(buf), 2);
    ck_assert_ptr_nonnull(strstr(buf, "no \\\"fds\\\" count"));
    ck_assert_ptr_nonnull(strstr(buf, "more than 2 file descriptors"));
    int takes = f.calls.take;
    for (int i = 0; i < 4; i++)
        expect_pipe(rd[i], "");
    /* A line without files read together with the next one, which has them (one sendmsg for
     * that line and its files, as the protocol asks); then files sent with the first half of a
     * line. */
    send_with_fds(fd, "{\"cmd\":\"echo\"}\n", 0, NULL);
    send_with_fds(fd, "{\"cmd\":\"take\",\"fds\":2}\n", 2, rd);
    spin(&f);
    send_with_fds(fd, "{\"cmd\":\"take\",", 2, rd + 2);
    spin(&f);
    send_with_fds(fd, "\"fds\":2}\n", 0, NULL);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_str_eq(buf, "{\"ok\":true}\n{\"ok\":true}\n{\"ok\":true}\n");
    ck_assert_int_eq(f.calls.take, takes + 2);
    for (int i = 0; i < 4; i++)
        expect_pipe(rd[i], i % 2 ? "second" : "first");
    /* Files with an oversized line are closed with it. */
    char big[2 * API_LINE_MAX];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    send_with_fds(fd, big, 2, rd);
    spin(&f);
    send_with_fds(fd, "\n", 0, NULL);
    spin(&f);
    replies(fd, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "longer than 4096"));
    expect_pipe(rd[0], "");
    expect_pipe(rd[1], "");
    /* A client gone mid-request with its files: nothing runs, the files are closed. */
    int gone = client(&f);
    send_with_fds(gone, "{\"cmd\":\"take\",\"fds\":2}", 2, rd);
    spin(&f);
    close(gone);
    spin(&f);
    ck_assert_int_eq(f.calls.take, takes + 2);
    expect_pipe(rd[0], "");
    expect_pipe(rd[1], "");
    close(fd);
    fixture_down(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api_proto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_request_fds);
    tcase_add_test(tc, test_server_framing);
    tcase_add_test(tc, test_server_bounded_clients);
    tcase_add_test(tc, test_server_fds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
