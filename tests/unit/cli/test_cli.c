/* test_cli.c: command-line parsing and validation, sizes, timeouts and exit-code mapping. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

static int parse(struct cli_options *o, char *err, int argc, const char **argv)
{
    return cli_parse(argc, (char **)argv, 16 * GIB, o, err);
}

#define PARSE(o, err, ...)                                                                         \
    parse(o, err, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),             \
          (const char *[]){__VA_ARGS__})

START_TEST(test_sizes)
{
    uint64_t v;
    ck_assert_int_eq(parse_size("4096", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(parse_size("64K", &v), 0);
    ck_assert_uint_eq(v, 64 * 1024);
    ck_assert_int_eq(parse_size("256M", &v), 0);
    ck_assert_uint_eq(v, 256 * MIB);
    ck_assert_int_eq(parse_size("2g", &v), 0);
    ck_assert_uint_eq(v, 2 * GIB);
    ck_assert_int_eq(parse_size("1GiB", &v), 0);
    ck_assert_uint_eq(v, GIB);
    ck_assert_int_eq(parse_size("1GB", &v), 0);
    ck_assert_int_eq(parse_size("", &v), -EINVAL);
    ck_assert_int_eq(parse_size("M", &v), -EINVAL);
    ck_assert_int_eq(parse_size("-1", &v), -EINVAL);
    ck_assert_int_eq(parse_size("1Q", &v), -EINVAL);
    ck_assert_int_eq(parse_size("1T", &v), -EINVAL);
    ck_assert_int_eq(parse_size("12MX", &v), -EINVAL);
    ck_assert_int_eq(parse_size("99999999999999999999", &v), -ERANGE);
    ck_assert_int_eq(parse_size("99999999999G", &v), -ERANGE);
}
END_TEST

START_TEST(test_seconds)
{
    uint64_t ms;
    ck_assert_int_eq(parse_seconds("5", &ms), 0);
    ck_assert_uint_eq(ms, 5000);
    ck_assert_int_eq(parse_seconds("0.25", &ms), 0);
    ck_assert_uint_eq(ms, 250);
    ck_assert_int_eq(parse_seconds("1.0005", &ms), 0);
    ck_assert_uint_eq(ms, 1000);
    ck_assert_int_eq(parse_seconds("0", &ms), -ERANGE);
    ck_assert_int_eq(parse_seconds("0.0001", &ms), -ERANGE);
    ck_assert_int_eq(parse_seconds("-1", &ms), -EINVAL);
    ck_assert_int_eq(parse_seconds("1.", &ms), -EINVAL);
    ck_assert_int_eq(parse_seconds("1s", &ms), -EINVAL);
    ck_assert_int_eq(parse_seconds("99999999999999", &ms), -ERANGE);
}
END_TEST

START_TEST(test_run_full)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    int ret = PARSE(&o, err, "kiln", "run", "--kernel", "/k", "--initrd=/i", "--cmdline",
                    "console=ttyS0 quiet", "--cpus", "4", "--memory", "1G", "--serial",
                    "file=/tmp/out", "--timeout", "2.5", "--stats");
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_int_eq(o.command, CLI_RUN);
    ck_assert_str_eq(o.kernel, "/k");
    ck_assert_str_eq(o.initrd, "/i");
    ck_assert_str_eq(o.cmdline, "console=ttyS0 quiet");
    ck_assert_uint_eq(o.cpus, 4);
    ck_assert_uint_eq(o.memory, GIB);
    ck_assert_int_eq(o.serial, CLI_SERIAL_FILE);
    ck_assert_str_eq(o.serial_path, "/tmp/out");
    ck_assert_uint_eq(o.timeout_ms, 2500);
    ck_assert(o.stats);
}
END_TEST

START_TEST(test_defaults_and_modes)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k"), 0);
    ck_assert_uint_eq(o.cpus, 1);
    ck_assert_uint_eq(o.memory, 256 * MIB);
    ck_assert_int_eq(o.serial, CLI_SERIAL_STDIO);
    ck_assert_uint_eq(o.timeout_ms, 0);
    ck_assert_str_eq(o.cmdline, "console=ttyS0 reboot=k");
    ck_assert_int_eq(o.transport, KILN_TRANSPORT_PCI);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--serial", "none"), 0);
    ck_assert_int_eq(o.serial, CLI_SERIAL_NONE);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--transport", "mmio"), 0);
    ck_assert_int_eq(o.transport, KILN_TRANSPORT_MMIO);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--transport=pci"), 0);
    ck_assert_int_eq(o.transport, KILN_TRANSPORT_PCI);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--transport", "isa"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--transport 'isa'"));
    ck_assert_int_eq(PARSE(&o, err, "kiln", "--help"), 0);
    ck_assert_int_eq(o.command, CLI_HELP);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "--version"), 0);
    ck_assert_int_eq(o.command, CLI_VERSION);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--help"), 0);
    ck_assert_int_eq(o.command, CLI_HELP);
}
END_TEST

/* Each bad command line fails with a message that names the offending input. */
static void expect_error(const char *needle, int argc, const char **argv)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(parse(&o, err, argc, argv), -EINVAL);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    ck_assert_ptr_null(strchr(err, '\n'));
}

#define EXPECT_ERROR(needle, ...)                                                                  \
    expect_error(needle, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),      \
                 (const char *[]){__VA_ARGS__})

START_TEST(test_errors)
{
    EXPECT_ERROR("no command", "kiln");
    EXPECT_ERROR("'boot'", "kiln", "boot");
    EXPECT_ERROR("--kernel", "kiln", "run");
    EXPECT_ERROR("--kernel: missing value", "kiln", "run", "--kernel");
    EXPECT_ERROR("'--frobnicate'", "kiln", "run", "--kernel", "k", "--frobnicate");
    EXPECT_ERROR("'-x'", "kiln", "run", "-x");
    EXPECT_ERROR("--cpus 0", "kiln", "run", "--kernel", "k", "--cpus", "0");
    EXPECT_ERROR("--cpus 100000", "kiln", "run", "--kernel", "k", "--cpus", "100000");
    EXPECT_ERROR("--cpus 'two'", "kiln", "run", "--kernel", "k", "--cpus", "two");
    EXPECT_ERROR("--cpus '-1'", "kiln", "run", "--kernel", "k", "--cpus", "-1");
    EXPECT_ERROR("--memory 0", "kiln", "run", "--kernel", "k", "--memory", "0");
    EXPECT_ERROR("--memory 1M", "kiln", "run", "--kernel", "k", "--memory", "1M");
    EXPECT_ERROR("'1Q'", "kiln", "run", "--kernel", "k", "--memory", "1Q");
    EXPECT_ERROR("'99999999999G'", "kiln", "run", "--kernel", "k", "--memory", "99999999999G");
    EXPECT_ERROR("host", "kiln", "run", "--kernel", "k", "--memory", "64G");
    EXPECT_ERROR("4 KiB", "kiln", "run", "--kernel", "k", "--memory", "10000001");
    EXPECT_ERROR("'serialport'", "kiln", "run", "--kernel", "k", "--serial", "serialport");
    EXPECT_ERROR("'file='", "kiln", "run", "--kernel", "k", "--serial", "file=");
    EXPECT_ERROR("--timeout 0", "kiln", "run", "--kernel", "k", "--timeout", "0");
    EXPECT_ERROR("'soon'", "kiln", "run", "--kernel", "k", "--timeout", "soon");
    EXPECT_ERROR("--kernel: empty path", "kiln", "run", "--kernel", "");
}
END_TEST

START_TEST(test_disks)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    char a[] = "path=/img/a.raw,ro,serial=disk-A", b[] = "/img/b.raw", c[] = "path=/c,serial=x";
    int ret = PARSE(&o, err, "kiln", "run", "--kernel", "k", "--disk", a, "--disk", b, "--disk", c);
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_uint_eq(o.ndisks, 3);
    ck_assert_str_eq(o.disks[0].path, "/img/a.raw");
    ck_assert(o.disks[0].read_only);
    ck_assert_str_eq(o.disks[0].serial, "disk-A");
    ck_assert_str_eq(o.disks[1].path, "/img/b.raw");
    ck_assert(!o.disks[1].read_only);
    ck_assert_ptr_null(o.disks[1].serial);
    ck_assert_str_eq(o.disks[2].serial, "x");
}
END_TEST

START_TEST(test_disk_errors)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    const char *bad[][2] = {
        {"ro", "path=FILE is required"},
        {"path=", "empty path"},
        {"path=/a,path=/b", "more than one path"},
        {"path=/a,cache=none", "unknown option 'cache=none'"},
        {"path=/a,serial=", "serial"},
        {"path=/a,serial=123456789012345678901", "serial"},
        {"path=/a,serial=has space", "serial"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char value[64];
        snprintf(value, sizeof(value), "%s", bad[i][0]);
        err[0] = '\0';
        ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--disk", value), -EINVAL);
        ck_assert_msg(strstr(err, bad[i][1]) && strstr(err, "--disk"), "'%s': %s", bad[i][0], err);
    }
    /* More disks than kiln supports. */
    char many[KILN_MAX_DISKS + 1][16];
    const char *argv[4 + 2 * (KILN_MAX_DISKS + 1)] = {"kiln", "run", "--kernel", "k"};
    int argc = 4;
    for (int i = 0; i <= KILN_MAX_DISKS; i++) {
        snprintf(many[i], sizeof(many[i]), "/d%d", i);
        argv[argc++] = "--disk";
        argv[argc++] = many[i];
    }
    ck_assert_int_eq(parse(&o, err, argc, argv), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at most"));
}
END_TEST

START_TEST(test_nets)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    char a[] = "user,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.2:5353-10.0.2.16:53,restrict=on";
    char b[] = "tap=tap0,mac=02:AB:cd:00:00:01", c[] = "user";
    int ret = PARSE(&o, err, "kiln", "run", "--kernel", "k", "--net", a, "--net", b, "--net", c);
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_uint_eq(o.nnets, 3);
    ck_assert_int_eq(o.nets[0].kind, KILN_NET_USER);
    ck_assert(o.nets[0].restricted && !o.nets[0].mac_set);
    ck_assert_uint_eq(o.nets[0].nhostfwd, 2);
    const struct kiln_hostfwd *h = o.nets[0].hostfwd;
    ck_assert(!h[0].udp && !h[0].host_addr && !h[0].guest_addr);
    ck_assert_uint_eq(h[0].host_port, 8080);
    ck_assert_uint_eq(h[0].guest_port, 80);
    ck_assert(h[1].udp);
    ck_assert_str_eq(h[1].host_addr, "127.0.0.2");
    ck_assert_str_eq(h[1].guest_addr, "10.0.2.16");
    ck_assert_uint_eq(h[1].host_port, 5353);
    ck_assert_uint_eq(h[1].guest_port, 53);
    ck_assert_int_eq(o.nets[1].kind, KILN_NET_TAP);
    ck_assert_str_eq(o.nets[1].tap_name, "tap0");
    ck_assert(o.nets[1].mac_set);
    const uint8_t mac[6] = {0x02, 0xab, 0xcd, 0, 0, 1};
    ck_assert_mem_eq(o.nets[1].mac, mac, 6);
    ck_assert_int_eq(o.nets[2].kind, KILN_NET_USER);
    ck_assert_uint_eq(o.nets[2].nhostfwd, 0);
}
END_TEST

START_TEST(test_net_errors)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    const char *bad[][2] = {
        {"", "expected user or tap=NAME"},
        {"tap=", "expected user or tap=NAME"},
        {"slirp", "expected user or tap=NAME"},
        {"user,mac=01:00:00:00:00:01", "not multicast"},
        {"user,mac=02:00:00:00:00", "mac must be"},
        {"user,mac=02:00:00:00:00:0g", "mac must be"},
        {"user,mac=02-00-00-00-00-01", "mac must be"},
        {"user,hostfwd=tcp::8080", "hostfwd must be"},
        {"user,hostfwd=tcp::0-:80", "hostfwd must be"},
        {"user,hostfwd=tcp::8080-:65536", "hostfwd must be"},
        {"user,hostfwd=tcp:localhost:8080-:80", "hostfwd must be"},
        {"user,hostfwd=sctp::1-:2", "hostfwd must be"},
        {"user,restrict=yes", "restrict must be"},
        {"tap=tap0,hostfwd=tcp::1-:2", "hostfwd is for user"},
        {"user,model=e1000", "unknown option 'model=e1000'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char value[64];
        snprintf(value, sizeof(value), "%s", bad[i][0]);
        err[0] = '\0';
        ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--net", value), -EINVAL);
        ck_assert_msg(strstr(err, bad[i][1]) && strstr(err, "--net"), "'%s': %s", bad[i][0], err);
    }
    const char *argv[4 + 2 * (KILN_MAX_NETS + 1)] = {"kiln", "run", "--kernel", "k"};
    char many[KILN_MAX_NETS + 1][8];
    int argc = 4;
    for (int i = 0; i <= KILN_MAX_NETS; i++) {
        snprintf(many[i], sizeof(many[i]), "user");
        argv[argc++] = "--net";
        argv[argc++] = many[i];
    }
    ck_assert_int_eq(parse(&o, err, argc, argv), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at most"));
}
END_TEST

START_TEST(test_debug_exit)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k"), 0);
    ck_assert_int_eq(o.debug_exit_size, 0);
    ck_assert(!o.no_reboot);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--no-reboot", "--kernel", "k"), 0);
    ck_assert(o.no_reboot);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--debug-exit", "iobase=0xf4"),
                     0);
    ck_assert_int_eq(o.debug_exit_port, 0xf4);
    ck_assert_int_eq(o.debug_exit_size, 2);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--debug-exit=iosize=4"), 0);
    ck_assert_int_eq(o.debug_exit_port, 0x501);
    ck_assert_int_eq(o.debug_exit_size, 4);
    ck_assert_int_eq(
        PARSE(&o, err, "kiln", "run", "--kernel", "k", "--debug-exit", "iosize=1,iobase=65535"), 0);
    ck_assert_int_eq(o.debug_exit_port, 0xffff);
    ck_assert_int_eq(o.debug_exit_size, 1);
    static const char *const bad[] = {
        "iobase=",  "iobase=-1", "iobase=0x10000",         "iobase=0xf4x",  "iosize=0",
        "iosize=3", "iosize=8",  "iobase=0xffff,iosize=2", "iobase=0xf4,,", "size=2",
        ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--debug-exit", bad[i]),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "--debug-exit"));
    }
}
END_TEST

static int code_for(enum kiln_exit_reason reason, int status, int sig, char *warn)
{
    struct kiln_exit e = {.reason = reason, .status = status};
    return cli_exit_code(&e, sig, warn);
}

START_TEST(test_exit_codes)
{
    char warn[KILN_ERRMSG_MAX];
    ck_assert_int_eq(code_for(KILN_EXIT_POWEROFF, 0, 0, warn), 0);
    ck_assert_int_eq(code_for(KILN_EXIT_REBOOT, 0, 0, warn), 128); /* reached with --no-reboot */
    ck_assert_int_eq(code_for(KILN_EXIT_STATUS, 0, 0, warn), 0);
    ck_assert_int_eq(code_for(KILN_EXIT_STATUS, 1, 0, warn), 1);
    ck_assert_int_eq(code_for(KILN_EXIT_STATUS, 123, 0, warn), 123);
    ck_assert_str_eq(warn, "");
    ck_assert_int_eq(code_for(KILN_EXIT_STATUS, 124, 0, warn), 123);
    ck_assert_ptr_nonnull(strstr(warn, "124"));
    ck_assert_int_eq(code_for(KILN_EXIT_STATUS, 255, 0, warn), 123);
    ck_assert_ptr_nonnull(strstr(warn, "255"));
    ck_assert_int_eq(code_for(KILN_EXIT_TIMEOUT, 0, 0, warn), 124);
    ck_assert_str_eq(warn, "");
    ck_assert_int_eq(code_for(KILN_EXIT_ERROR, 0, 0, warn), 125);
    ck_assert_int_eq(code_for(KILN_EXIT_CRASH, 0, 0, warn), 126);
    /* QEMU's isa-debug-exit: (V << 1) | 1, eight bits of it, no warning. */
    ck_assert_int_eq(code_for(KILN_EXIT_DEBUG, 0, 0, warn), 1);
    ck_assert_int_eq(code_for(KILN_EXIT_DEBUG, 0x10, 0, warn), 33);
    ck_assert_int_eq(code_for(KILN_EXIT_DEBUG, 127, 0, warn), 255);
    ck_assert_int_eq(code_for(KILN_EXIT_DEBUG, 128, 0, warn), 1);
    ck_assert_int_eq(code_for(KILN_EXIT_DEBUG, 0x7fffffff, 0, warn), 255);
    ck_assert_str_eq(warn, "");
    ck_assert_int_eq(code_for(KILN_EXIT_STOPPED, 0, 0, warn), 128 + SIGINT);
    ck_assert_int_eq(code_for(KILN_EXIT_STOPPED, 0, SIGTERM, warn), 128 + SIGTERM);
}
END_TEST

/* A writable copy of s (parse_vsock splits its value in place, as argv strings allow). */
static char *w(const char *s)
{
    static char bufs[4][128];
    static unsigned n;
    char *b = bufs[n++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s", s);
    return b;
}

START_TEST(test_vsock)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX];
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k"), 0);
    ck_assert_ptr_null(o.vsock.uds_path);
    ck_assert_int_eq(
        PARSE(&o, err, "kiln", "run", "--kernel", "k", "--vsock", w("cid=3,socket=/tmp/v.sock")),
        0);
    ck_assert_uint_eq(o.vsock.cid, 3);
    ck_assert_str_eq(o.vsock.uds_path, "/tmp/v.sock");
    ck_assert_int_eq(
        PARSE(&o, err, "kiln", "run", "--kernel", "k", w("--vsock=socket=s,cid=0xfffffffe")), 0);
    ck_assert_uint_eq(o.vsock.cid, 0xfffffffeu);
    static const char *const bad[] = {"cid=2,socket=s",
                                      "cid=0xffffffff,socket=s",
                                      "cid=,socket=s",
                                      "cid=-3,socket=s",
                                      "cid=3",
                                      "cid=3,socket=",
                                      "socket=s",
                                      "cid=3,socket=s,x=1",
                                      ""};
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--vsock", w(bad[i])),
                         -EINVAL);
        ck_assert_msg(strncmp(err, "--vsock", 7) == 0, "%s: %s", bad[i], err);
    }
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--kernel", "k", "--vsock", w("cid=3,socket=a"),
                           "--vsock", w("cid=4,socket=b")),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "given twice"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_seconds);
    tcase_add_test(tc, test_run_full);
    tcase_add_test(tc, test_defaults_and_modes);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_exit_codes);
    tcase_add_test(tc, test_debug_exit);
    tcase_add_test(tc, test_disks);
    tcase_add_test(tc, test_disk_errors);
    tcase_add_test(tc, test_nets);
    tcase_add_test(tc, test_net_errors);
    tcase_add_test(tc, test_vsock);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
