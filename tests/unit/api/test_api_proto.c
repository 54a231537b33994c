/* test_api_proto.c: the API socket's request parser and dispatcher, and its server's framing. */
#include <check.h>
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
    int echo, fail;
};

static int cmd_echo(void *ctx, struct json_object *req, struct json_object *reply, char *err)
{
    struct calls *c = ctx;
    struct json_object *v;
    (void)err;
    c->echo++;
    if (json_object_object_get_ex(req, "arg", &v))
        json_object_object_add(reply, "arg", json_object_get(v));
    return 0;
}

static int cmd_fail(void *ctx, struct json_object *req, struct json_object *reply, char *err)
{
    struct calls *c = ctx;
    (void)req;
    (void)reply;
    c->fail++;
    snprintf(err, API_ERR_MAX, "fail: as asked");
    return -1;
}

static const struct api_command cmds[] = {{"echo", cmd_echo}, {"fail", cmd_fail}};

static char *handle(struct calls *c, const char *line)
{
    char *r = api_handle_line(cmds, 2, c, line, strlen(line));
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
    ck_assert_int_eq(c.echo + c.fail, 0);
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
    char *r = api_handle_line(cmds, 2, &c, nul, sizeof(nul) - 1);
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
    ck_assert_int_eq(api_server_start(&f->loop, f->listen_fd, cmds, 2, &f->calls, &log, &f->server),
                     0);
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

int main(void)
{
    Suite *s = suite_create("api_proto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_bad_requests);
    tcase_add_test(tc, test_server_framing);
    tcase_add_test(tc, test_server_bounded_clients);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
