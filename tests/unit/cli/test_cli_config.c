/* test_cli_config.c: --config FILE (JSON) loading, overrides by flags, config --print round trip.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

/* A folder with a kernel, two disk images and a directory to share, as the configs name them. */
static char dir[64], cfg_path[96], kernel[96], disk_a[96], disk_b[96], share[96];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/kiln-cfg-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cfg_path, sizeof(cfg_path), "%s/vm.json", dir);
    snprintf(kernel, sizeof(kernel), "%s/vmlinuz", dir);
    snprintf(disk_a, sizeof(disk_a), "%s/a.img", dir);
    snprintf(disk_b, sizeof(disk_b), "%s/b.qcow2", dir);
    snprintf(share, sizeof(share), "%s/share", dir);
    write_file(kernel, "k");
    write_file(disk_a, "a");
    write_file(disk_b, "b");
    ck_assert_int_eq(mkdir(share, 0755), 0);
}

static void teardown(void)
{
    const char *files[] = {cfg_path, kernel, disk_a, disk_b};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(share);
    rmdir(dir);
}

/* The config text with @K@, @A@, @B@, @S@ replaced by the kernel, disks and share paths. */
static void write_config(const char *tmpl)
{
    char text[8192] = "";
    for (const char *p = tmpl; *p; p++) {
        const char *sub = NULL;
        if (p[0] == '@' && p[1] && p[2] == '@')
            sub = p[1] == 'K' ? kernel : p[1] == 'A' ? disk_a : p[1] == 'B' ? disk_b : share;
        size_t n = strlen(text);
        if (sub) {
            snprintf(text + n, sizeof(text) - n, "%s", sub);
            p += 2;
        } else {
            text[n] = *p;
            text[n + 1] = '\0';
        }
    }
    write_file(cfg_path, text);
}

static int parse_argv(struct cli_options *o, char *err, int argc, const char **argv)
{
    return cli_parse(argc, (char **)argv, 16 * GIB, o, err);
}

#define PARSE(o, err, ...)                                                                         \
    parse_argv(o, err, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),        \
               (const char *[]){__VA_ARGS__})

static const char full_config[] =
    "{\n"
    "  \"kernel\": \"@K@\",\n"
    "  \"cmdline\": \"console=ttyS0 quiet\",\n"
    "  \"cpus\": 4,\n"
    "  \"memory\": \"1G\",\n"
    "  \"serial\": {\"file\": \"console.log\"},\n"
    "  \"timeout\": 2.5,\n"
    "  \"disks\": [{\"path\": \"@A@\", \"ro\": true, \"serial\": \"disk-A\"},\n"
    "            {\"path\": \"@B@\", \"format\": \"qcow2\"}],\n"
    "  \"nets\": [{\"type\": \"user\", \"mac\": \"02:00:00:00:00:07\",\n"
    "            \"hostfwd\": [\"tcp::8080-:80\", \"udp:127.0.0.1:5353-10.0.2.15:53\"],\n"
    "            \"restrict\": true},\n"
    "           {\"type\": \"tap\", \"name\": \"tap0\"}],\n"
    "  \"ports\": [{\"name\": \"results\", \"path\": \"results.out\"},\n"
    "            {\"name\": \"ctl\", \"socket\": \"/run/ctl.sock\"}],\n"
    "  \"shares\": [{\"path\": \"@S@\", \"tag\": \"host\", \"ro\": true}],\n"
    "  \"transport\": \"mmio\",\n"
    "  \"seccomp\": \"off\",\n"
    "  \"debug_exit\": {\"iobase\": 244, \"iosize\": 4},\n"
    "  \"vsock\": {\"cid\": 4294967294, \"socket\": \"/run/v.sock\"},\n"
    "  \"no_reboot\": true,\n"
    "  \"stats\": true,\n"
    "  \"rootfs_host\": true,\n"
    "  \"command\": [\"sh\", \"-c\", \"echo hi\"]\n"
    "}\n";

static void check_full(const struct cli_options *o)
{
    ck_assert_str_eq(o->kernel, kernel);
    ck_assert_str_eq(o->cmdline, "console=ttyS0 quiet");
    ck_assert(o->cmdline_given);
    ck_assert_uint_eq(o->cpus, 4);
    ck_assert_uint_eq(o->memory, GIB);
    ck_assert_int_eq(o->serial, CLI_SERIAL_FILE);
    ck_assert_str_eq(o->serial_path, "console.log");
    ck_assert_uint_eq(o->timeout_ms, 2500);
    ck_assert_uint_eq(o->ndisks, 2);
    ck_assert_str_eq(o->disks[0].path, disk_a);
    ck_assert(o->disks[0].read_only);
    ck_assert_str_eq(o->disks[0].serial, "disk-A");
    ck_assert_int_eq(o->disks[0].format, KILN_DISK_AUTO);
    ck_assert_int_eq(o->disks[1].format, KILN_DISK_QCOW2);
    ck_assert_uint_eq(o->nnets, 2);
    ck_assert_int_eq(o->nets[0].kind, KILN_NET_USER);
    ck_assert(o->nets[0].mac_set && o->nets[0].mac[5] == 7 && o->nets[0].restricted);
    ck_assert_uint_eq(o->nets[0].nhostfwd, 2);
    ck_assert_uint_eq(o->nets[0].hostfwd[1].host_port, 5353);
    ck_assert(o->nets[0].hostfwd[1].udp);
    ck_assert_str_eq(o->nets[0].hostfwd[1].guest_addr, "10.0.2.15");
    ck_assert_int_eq(o->nets[1].kind, KILN_NET_TAP);
    ck_assert_str_eq(o->nets[1].tap_name, "tap0");
    ck_assert_uint_eq(o->nports, 2);
    ck_assert_str_eq(o->ports[0].name, "results");
    ck_assert_int_eq(o->ports[1].kind, KILN_PORT_SOCKET);
    ck_assert_str_eq(o->ports[1].path, "/run/ctl.sock");
    ck_assert_uint_eq(o->nshares, 1);
    ck_assert_str_eq(o->shares[0].tag, "host");
    ck_assert(o->shares[0].read_only);
    ck_assert_int_eq(o->transport, KILN_TRANSPORT_MMIO);
    ck_assert_int_eq(o->seccomp, KILN_SECCOMP_OFF);
    ck_assert_uint_eq(o->debug_exit_port, 244);
    ck_assert_uint_eq(o->debug_exit_size, 4);
    ck_assert_uint_eq(o->vsock.cid, 4294967294u);
    ck_assert_str_eq(o->vsock.uds_path, "/run/v.sock");
    ck_assert(o->no_reboot && o->stats && o->rootfs_host);
    ck_assert_int_eq(o->ncommand, 3);
    ck_assert_str_eq(o->command_argv[2], "echo hi");
    ck_assert_ptr_null(o->command_argv[3]);
}

START_TEST(test_every_field)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    write_config(full_config);
    int ret = PARSE(&o, err, "kiln", "run", "--config", cfg_path);
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_int_eq(o.command, CLI_RUN);
    check_full(&o);
    cli_options_free(&o);
    ck_assert_ptr_null(o.owned);
}
END_TEST

START_TEST(test_defaults_and_sizes)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    write_config("{\"kernel\": \"@K@\", \"memory\": 67108864, \"timeout\": 3, \"initrd\": null}");
    int ret = PARSE(&o, err, "kiln", "run", "--config", cfg_path);
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_uint_eq(o.memory, 64 * MIB);
    ck_assert_uint_eq(o.timeout_ms, 3000);
    ck_assert_uint_eq(o.cpus, 1);
    ck_assert_ptr_null(o.initrd);
    ck_assert(!o.cmdline_given);
    ck_assert_int_eq(o.serial, CLI_SERIAL_STDIO);
    ck_assert_int_eq(o.seccomp, KILN_SECCOMP_ALL);
    ck_assert_ptr_null(o.command_argv);
    cli_options_free(&o);
}
END_TEST

START_TEST(test_overrides)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    char disk[128], net[] = "user,hostfwd=tcp::2222-:22";
    snprintf(disk, sizeof(disk), "path=%s,serial=flag", disk_b);
    write_config(full_config);
    /* --config after the flags: the flags still win. */
    int ret =
        PARSE(&o, err, "kiln", "run", "--cpus", "2", "--memory=512M", "--serial", "none", "--disk",
              disk, "--net", net, "--transport", "pci", "--config", cfg_path, "--", "true");
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_uint_eq(o.cpus, 2);
    ck_assert_uint_eq(o.memory, 512 * MIB);
    ck_assert_int_eq(o.serial, CLI_SERIAL_NONE);
    ck_assert_int_eq(o.transport, KILN_TRANSPORT_PCI);
    /* A list flag replaces the file's list of its kind; the other lists stay. */
    ck_assert_uint_eq(o.ndisks, 1);
    ck_assert_str_eq(o.disks[0].serial, "flag");
    ck_assert_uint_eq(o.nnets, 1);
    ck_assert_uint_eq(o.nets[0].hostfwd[0].host_port, 2222);
    ck_assert_uint_eq(o.nports, 2);
    ck_assert_uint_eq(o.nshares, 1);
    ck_assert_int_eq(o.ncommand, 1);
    ck_assert_str_eq(o.command_argv[0], "true");
    /* Untouched by flags: the file's. */
    ck_assert_uint_eq(o.timeout_ms, 2500);
    ck_assert_str_eq(o.kernel, kernel);
    cli_options_free(&o);
}
END_TEST

/* Load, print, load the printed text, print again: the same text and the same options. */
static char *print_of(const char *config_text, int nflags, const char **flags)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    const char *argv[32] = {"kiln", "config", "--print"};
    int argc = 3;
    if (config_text) {
        write_config(config_text);
        argv[argc++] = "--config";
        argv[argc++] = cfg_path;
    }
    for (int i = 0; i < nflags; i++)
        argv[argc++] = flags[i];
    int ret = parse_argv(&o, err, argc, argv);
    ck_assert_msg(ret == 0, "%s", err);
    ck_assert_int_eq(o.command, CLI_CONFIG_PRINT);
    char *json = cli_config_print(&o);
    ck_assert_ptr_nonnull(json);
    cli_options_free(&o);
    return json;
}

START_TEST(test_round_trip)
{
    char *first = print_of(full_config, 0, NULL);
    char *second = print_of(first, 0, NULL);
    ck_assert_str_eq(first, second);
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    write_config(second);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", cfg_path), 0);
    check_full(&o);
    cli_options_free(&o);
    free(first);
    free(second);
}
END_TEST

/* From flags alone: the printed file gives back what the flags said. */
START_TEST(test_round_trip_flags)
{
    /* Writable: the flags' parsers split values in place, as argv allows. */
    char disk[128], shr[128], net[] = "user,hostfwd=udp::53-:53";
    snprintf(disk, sizeof(disk), "path=%s,format=raw", disk_a);
    snprintf(shr, sizeof(shr), "%s,tag=t", share);
    const char *flags[] = {"--kernel",     kernel,         "--memory", "100000K",   "--disk",
                           disk,           "--share",      shr,        "--timeout", "0.125",
                           "--debug-exit", "iobase=0x501", "--net",    net,         "--stats"};
    char *first = print_of(NULL, (int)(sizeof(flags) / sizeof(flags[0])), flags);
    ck_assert_ptr_nonnull(strstr(first, "\"memory\": \"100000K\""));
    ck_assert_ptr_nonnull(strstr(first, "\"timeout\": 0.125"));
    char *second = print_of(first, 0, NULL);
    ck_assert_str_eq(first, second);
    free(first);
    free(second);
}
END_TEST

/* Each bad file fails with one line: the file, the JSON path of the field, and why. */
static void expect_config_error(const char *text, const char *needle)
{
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    write_config(text);
    int ret = PARSE(&o, err, "kiln", "run", "--config", cfg_path);
    cli_options_free(&o);
    ck_assert_msg(ret == -EINVAL, "'%s' was accepted", text);
    ck_assert_msg(strncmp(err, cfg_path, strlen(cfg_path)) == 0, "'%s' does not name the file",
                  err);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_bad_values)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"{\"kernel\": \"@K@\", \"memory\": \"1Q\"}", ": .memory: not a size"},
        {"{\"kernel\": \"@K@\", \"memory\": 1.5}", ".memory: expected a size"},
        {"{\"kernel\": \"@K@\", \"memory\": 4097}", ".memory: below the minimum"},
        {"{\"kernel\": \"@K@\", \"memory\": \"64G\"}", ".memory: more than this host"},
        {"{\"kernel\": \"@K@\", \"cpus\": \"2\"}", ".cpus: expected a whole number"},
        {"{\"kernel\": \"@K@\", \"cpus\": 0}", ".cpus: a VM needs at least one vCPU"},
        {"{\"kernel\": \"@K@\", \"cpus\": -1}", ".cpus: not a whole number"},
        {"{\"kernel\": \"@K@\", \"timeout\": -5}", ".timeout: not a number of seconds"},
        {"{\"kernel\": \"@K@\", \"timeout\": 0.0001}", ".timeout: must be above 0"},
        {"{\"kernel\": \"@K@\", \"timeout\": \"5\"}", ".timeout: expected a number"},
        {"{\"kernel\": \"@K@\", \"serial\": \"tty\"}", ".serial: expected stdio"},
        {"{\"kernel\": \"@K@\", \"serial\": {\"file\": \"\"}}", ".serial.file: empty path"},
        {"{\"kernel\": \"@K@\", \"serial\": 1}", ".serial: expected \"stdio\""},
        {"{\"kernel\": \"@K@\", \"transport\": \"isa\"}", ".transport: expected pci or mmio"},
        {"{\"kernel\": \"@K@\", \"seccomp\": true}", ".seccomp: expected a string"},
        {"{\"kernel\": \"@K@\", \"no_reboot\": 1}", ".no_reboot: expected true or false"},
        {"{\"kernel\": \"@K@\", \"debug_exit\": {}}", ".debug_exit: missing field \"iobase\""},
        {"{\"kernel\": \"@K@\", \"vsock\": {\"cid\": 3}}", ".vsock: missing field \"socket\""},
        {"{\"kernel\": \"@K@\", \"vsock\": {\"socket\": \"s\"}}", ".vsock: missing field \"cid\""},
        {"{\"kernel\": \"@K@\", \"vsock\": {\"cid\": 2, \"socket\": \"s\"}}", "cid must be 3"},
        {"{\"kernel\": \"@K@\", \"vsock\": {\"cid\": \"3\", \"socket\": \"s\"}}",
         ".vsock.cid: expected a whole number"},
        {"{\"kernel\": \"@K@\", \"vsock\": {\"cid\": 3, \"socket\": \"s\", \"port\": 1}}", "port"},
        {"{\"kernel\": \"@K@\", \"debug_exit\": {\"iobase\": 65536}}", "iobase must be a port"},
        {"{\"kernel\": \"@K@\", \"debug_exit\": {\"iobase\": 1, \"iosize\": 3}}", "iosize"},
        {"{\"kernel\": \"@K@\", \"debug_exit\": {\"iobase\": \"0x501\"}}",
         ".debug_exit.iobase: expected a whole number"},
        {"{\"kernel\": \"@K@\", \"command\": [\"ls\", 3]}", ".command[1]: expected a string"},
        {"{\"kernel\": \"@K@\", \"command\": \"ls\"}", ".command: expected an array"},
        {"{\"kernel\": \"@K@\", \"frob\": 1}", ".frob: unknown field"},
        {"{\"kernel\": \"@K@\", \"a\\nb\": 1}", ".a?b: unknown field"},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\", \"serial\": \"a\\nb\"}]}",
         ".disks[0].serial: serial must be"},
        {"{\"kernel\": \"@K@/nosuch\"}", ".kernel: "},
        {"{\"kernel\": \"\"}", ".kernel: empty path"},
        {"{\"kernel\": \"a\\u0000b\"}", ".kernel: contains a NUL character"},
        {"{\"kernel\": 7}", ".kernel: expected a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_config_error(cases[i].text, cases[i].needle);
}
END_TEST

START_TEST(test_bad_lists)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"{\"kernel\": \"@K@\", \"disks\": {\"path\": \"@A@\"}}", ".disks: expected an array"},
        {"{\"kernel\": \"@K@\", \"disks\": [\"@A@\"]}", ".disks[0]: expected an object"},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\"}, {\"path\": \"@A@.no\"}]}",
         ".disks[1].path: "},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"ro\": true}]}", ".disks[0]: missing field \"path\""},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\", \"cache\": 1}]}",
         ".disks[0].cache: unknown field"},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\", \"serial\": \"a b\"}]}",
         ".disks[0].serial: serial must be 1-20 printable"},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\", \"format\": \"vmdk\"}]}",
         ".disks[0].format: format must be raw or qcow2"},
        {"{\"kernel\": \"@K@\", \"disks\": [{\"path\": \"@A@\", \"ro\": \"yes\"}]}",
         ".disks[0].ro: expected true or false"},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"bridge\"}]}", ".nets[0].type: expected"},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"tap\"}]}",
         ".nets[0]: missing field \"name\""},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"user\", \"name\": \"x\"}]}",
         ".nets[0].name: only for"},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"user\", \"hostfwd\": [\"tcp::80\"]}]}",
         ".nets[0].hostfwd[0]: hostfwd must be"},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"tap\", \"name\": \"t\", \"hostfwd\": "
         "[\"tcp::1-:1\"]}]}",
         "hostfwd is for user"},
        {"{\"kernel\": \"@K@\", \"nets\": [{\"type\": \"user\", \"mac\": \"01:00:5e:00:00:01\"}]}",
         ".nets[0].mac: mac must be"},
        {"{\"kernel\": \"@K@\", \"ports\": [{\"name\": \"bad name\", \"path\": \"x\"}]}",
         ".ports[0].name: a name is"},
        {"{\"kernel\": \"@K@\", \"ports\": [{\"name\": \"a\"}]}", ".ports[0]: expected one of"},
        {"{\"kernel\": \"@K@\", \"ports\": [{\"name\": \"a\", \"path\": \"\"}]}",
         ".ports[0].path: empty path"},
        {"{\"kernel\": \"@K@\", \"ports\": [{\"name\": \"a\", \"path\": \"x\"}, {\"name\": \"a\", "
         "\"socket\": \"y\"}]}",
         ".ports[1]: the name is given twice"},
        {"{\"kernel\": \"@K@\", \"shares\": [{\"path\": \"@S@\", \"tag\": \"a b\"}]}",
         ".shares[0].tag: tag=TAG is required"},
        {"{\"kernel\": \"@K@\", \"shares\": [{\"path\": \"@S@/no\", \"tag\": \"t\"}]}",
         ".shares[0].path: "},
        {"{\"kernel\": \"@K@\", \"shares\": [{\"path\": \"@S@\"}]}",
         ".shares[0]: missing field \"tag\""},
        {"{\"kernel\": \"@K@\", \"shares\": [{\"path\": \"@S@\", \"tag\": \"t\"}, {\"path\": "
         "\"@S@\", \"tag\": \"t\"}]}",
         ".shares[1]: tag t is given twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_config_error(cases[i].text, cases[i].needle);
}
END_TEST

START_TEST(test_bad_files)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"", "empty"},
        {"[1]", "expected a JSON object"},
        {"null", "expected a JSON object"},
        {"{\"kernel\": ", "invalid JSON"},
        {"{\n  \"cpus\": 2,,\n}", "invalid JSON at line 2, column 13"},
        {"{\"cpus\": 2,}", "invalid JSON at line 1"},
        {"{} x", "invalid JSON at line 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_config_error(cases[i].text, cases[i].needle);
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", "/nonexistent/vm.json"), -EINVAL);
    ck_assert_str_eq(err, "/nonexistent/vm.json: No such file or directory");
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", dir), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "Is a directory"));
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", "/dev/null"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config"), -EINVAL);
    ck_assert_str_eq(err, "--config: missing value");
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", "a", "--config=b"), -EINVAL);
    ck_assert_str_eq(err, "--config: given more than once");
    /* What only the whole configuration shows is said as for the flags. */
    write_config("{\"kernel\": \"@K@\", \"firmware\": \"@A@\"}");
    ck_assert_int_eq(PARSE(&o, err, "kiln", "run", "--config", cfg_path), -EINVAL);
    ck_assert_str_eq(err, "--firmware: only without --kernel (it boots a disk)");
    cli_options_free(&o);
    ck_assert_int_eq(PARSE(&o, err, "kiln", "config", "--kernel", "k"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--print"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli_config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_field);
    tcase_add_test(tc, test_defaults_and_sizes);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_round_trip_flags);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_bad_lists);
    tcase_add_test(tc, test_bad_files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
