/* fuzz_cli.c: kiln's command line parsing (cli/cli_args.c, cli/cli_net.c) on any argument list. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz_common.h"

/*
 * Input: u8 mode, then the text. Modes 0-3: the text split at NUL bytes is argv after "kiln"
 * (cli_parse, what main does first); 4-9: the whole text is one value for parse_size,
 * parse_seconds, parse_mac, parse_hostfwd, parse_disk or parse_net. Every argument is its own
 * exact-size heap copy, so AddressSanitizer sees a read past any of them. Parsing only reads
 * and splits strings: it opens no file, binds no port, touches no /dev/kvm (hostfwd listeners
 * are bound by the user-mode network when the VM is built, not here).
 */

#define MAX_ARGS 64
#define HOST_RAM (4ULL << 30)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static char *copy(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Each string the options point at is readable to its end (strlen runs under ASan). */
static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static void check_net(const struct kiln_net *n)
{
    FZ_CHECK(n->kind == KILN_NET_USER || n->kind == KILN_NET_TAP);
    FZ_CHECK(n->kind != KILN_NET_TAP || touch(n->tap_name) > 0);
    FZ_CHECK(n->nhostfwd <= KILN_MAX_HOSTFWD);
    FZ_CHECK(!n->mac_set || !(n->mac[0] & 1));
    for (unsigned i = 0; i < n->nhostfwd; i++) {
        const struct kiln_hostfwd *h = &n->hostfwd[i];
        FZ_CHECK(h->host_port && h->guest_port);
        touch(h->host_addr);
        touch(h->guest_addr);
    }
}

/* What a successful cli_parse promises about the options it returns. */
static void check_options(const struct cli_options *o)
{
    if (o->command != CLI_RUN)
        return;
    /* A kernel to boot, or a disk for the firmware to boot, or a snapshot and nothing to boot. */
    if (o->restore)
        FZ_CHECK(touch(o->restore) > 0 && !o->kernel && !o->firmware && !o->initrd);
    else
        FZ_CHECK(o->kernel ? touch(o->kernel) > 0 : o->ndisks > 0);
    touch(o->firmware);
    touch(o->initrd);
    touch(o->cmdline);
    FZ_CHECK(o->cpus >= 1 && o->cpus <= KILN_MAX_CPUS);
    FZ_CHECK(o->memory >= KILN_MIN_MEMORY && o->memory % 4096 == 0 && o->memory <= HOST_RAM);
    FZ_CHECK(o->serial != CLI_SERIAL_FILE || touch(o->serial_path) > 0);
    FZ_CHECK(o->ndisks <= KILN_MAX_DISKS && o->nnets <= KILN_MAX_NETS);
    for (unsigned i = 0; i < o->ndisks; i++) {
        FZ_CHECK(touch(o->disks[i].path) > 0);
        FZ_CHECK(touch(o->disks[i].serial) <= KILN_DISK_SERIAL_MAX);
    }
    for (unsigned i = 0; i < o->nnets; i++)
        check_net(&o->nets[i]);
}

static void parse_argv(const uint8_t *p, size_t n)
{
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = copy((const uint8_t *)"kiln", 4);
    for (size_t start = 0; start <= n && argc < MAX_ARGS;) {
        const uint8_t *nul = memchr(p + start, 0, n - start);
        size_t len = nul ? (size_t)(nul - (p + start)) : n - start;
        argv[argc++] = copy(p + start, len);
        start += len + 1;
    }
    argv[argc] = NULL;
    struct cli_options o;
    char err[KILN_ERRMSG_MAX] = "";
    int ret = cli_parse(argc, argv, HOST_RAM, &o, err);
    fz_result("cli_parse", ret, err);
    FZ_CHECK(ret == 0 || (ret == -EINVAL && err[0] && memchr(err, 0, sizeof(err))));
    if (ret == 0)
        check_options(&o);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

/* An address a hostfwd value gave back must be a dotted IPv4 one, as cli.h says. */
static void check_hostfwd(const struct kiln_hostfwd *h)
{
    struct in_addr ia;
    FZ_CHECK(h->host_port && h->guest_port);
    FZ_CHECK(!h->host_addr || inet_pton(AF_INET, h->host_addr, &ia) == 1);
    FZ_CHECK(!h->guest_addr || inet_pton(AF_INET, h->guest_addr, &ia) == 1);
}

/* One value parser on the whole text. */
static void parse_value(unsigned which, char *s)
{
    char err[KILN_ERRMSG_MAX] = "";
    uint64_t v = 0;
    uint8_t mac[6];
    struct kiln_hostfwd h;
    struct kiln_disk d;
    struct kiln_net n;
    switch (which) {
    case 0:
        FZ_CHECK(parse_size(s, &v) <= 0);
        break;
    case 1:
        if (parse_seconds(s, &v) == 0)
            FZ_CHECK(v >= 1 && v <= 365ULL * 24 * 3600 * 1000);
        break;
    case 2:
        if (parse_mac(s, mac) == 0)
            FZ_CHECK(!(mac[0] & 1));
        break;
    case 3:
        if (parse_hostfwd(s, &h) == 0)
            check_hostfwd(&h);
        break;
    case 4:
        if (parse_disk(s, &d, err) == 0)
            FZ_CHECK(touch(d.path) > 0 && touch(d.serial) <= KILN_DISK_SERIAL_MAX);
        break;
    default:
        if (parse_net(s, &n, err) == 0)
            check_net(&n);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0; /* not even a mode byte */
    unsigned mode = data[0] % 10;
    if (mode < 4) {
        parse_argv(data + 1, size - 1);
        return 0;
    }
    char *s = copy(data + 1, size - 1);
    parse_value(mode - 4, s);
    free(s);
    return 0;
}
