/* cli_args.c: parsing and validating kiln's command line into struct cli_options. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util.h"

#define MAX_TIMEOUT_S (365ULL * 24 * 3600)

const char cli_usage[] =
    "Usage: kiln run --kernel PATH [options]\n"
    "       kiln run --disk path=IMAGE [options]   (boots the disk through BIOS firmware)\n"
    "       kiln run --kernel PATH --rootfs-host [options] [-- COMMAND [ARG...]]\n"
    "       kiln run --restore DIR [options]   (a snapshot kiln_vm_snapshot wrote)\n"
    "       kiln run --config FILE [options]       (FILE: JSON; the options override it)\n"
    "       kiln config --print [--config FILE] [options]\n"
    "       kiln ctl SOCKET COMMAND [ARG]   (info, pause, resume, stop [SECONDS], kill, stats,\n"
    "                                       snapshot [DIR])\n"
    "       kiln --help | --version\n"
    "\n"
    "Boot a virtual machine on KVM with a serial console.\n"
    "\n"
    "Options for 'run':\n"
    "  --kernel PATH        Linux bzImage, or ELF64 kernel (vmlinux/PVH or 64-bit entry)\n"
    "  --firmware PATH      without --kernel: the BIOS to boot the first disk with\n"
    "                       (default " KILN_DEFAULT_FIRMWARE ")\n"
    "  --initrd PATH        initial ramdisk\n"
    "  --restore DIR        start from a snapshot instead of booting; give the same\n"
    "                       --cpus, --memory and devices as the snapshotted VM had\n"
    "  --cmdline STR        kernel command line (default: \"console=ttyS0 reboot=k\")\n"
    "  --cpus N             number of vCPUs (default 1)\n"
    "  --memory SIZE        guest RAM, bytes or with K/M/G suffix (default 256M)\n"
    "  --serial MODE        stdio (default), file=PATH, or none\n"
    "  --timeout SECONDS    stop the VM after this long and exit 124\n"
    "  --disk path=FILE[,ro][,serial=ID][,format=raw|qcow2]\n"
    "                       disk image as virtio-blk (repeatable: vda, vdb, ...); the\n"
    "                       format is found from the file unless given\n"
    "  --net user[,hostfwd=[tcp|udp]:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...[,mac=MAC]\n"
    "                       user-mode network (no root): DHCP 10.0.2.15, host loopback at\n"
    "                       10.0.2.2; HOSTADDR defaults to 127.0.0.1 (repeatable: eth0, ...)\n"
    "  --net tap=NAME[,mac=MAC]\n"
    "                       an existing TAP interface as virtio-net (repeatable)\n"
    "  --port NAME,path=FILE | NAME,socket=PATH\n"
    "                       a named virtio-console port (/dev/virtio-ports/NAME in the\n"
    "                       guest): its output appended to FILE, or both ways over a unix\n"
    "                       socket something listens on (repeatable)\n"
    "  --share PATH,tag=TAG[,ro]\n"
    "                       a host directory the guest mounts over virtio-9p, read-write\n"
    "                       or (ro) read-only: mount -t 9p -o trans=virtio,version=9p2000.L\n"
    "                       TAG DIR (repeatable)\n"
    "  --vsock cid=N,socket=PATH\n"
    "                       a virtio-vsock device for guest CID N (3 or more): host\n"
    "                       programs connect to PATH and send \"CONNECT <port>\\n\"; guest\n"
    "                       connections to host port P reach the unix socket PATH_P\n"
    "  --transport pci|mmio how virtio devices attach: PCI (default) or virtio-mmio\n"
    "  --seccomp on|off     system call filters on every kiln thread (default on)\n"
    "  --debug-exit iobase=PORT[,iosize=1|2|4]\n"
    "                       QEMU's isa-debug-exit: a guest write of V to PORT exits\n"
    "                       kiln with (V << 1) | 1 (defaults: iobase=0x501, iosize=2)\n"
    "  --config FILE        the run described in a JSON file (see the README); flags given\n"
    "                       too override it, and a list flag replaces the file's list\n"
    "  --rootfs-host        boot --kernel with the host's / as the guest's root (read-only;\n"
    "                       /tmp and /run the guest's own) and run the command given after\n"
    "                       --, or a shell; kiln exits with the command's status\n"
    "  --no-reboot          a guest reboot ends kiln with exit status 128 (default: the\n"
    "                       guest starts again, as from power-on)\n"
    "  --stats              print VM statistics on stderr at exit\n"
    "  --api-socket PATH    serve the JSON API (kiln ctl) on a unix socket at PATH (0600)\n"
    "  --snapshot-dir DIR   where ctl snapshot (no DIR) writes the state and memory (made if\n"
    "                       missing); kiln run --restore DIR starts from it\n"
    "  --stop-timeout SECONDS\n"
    "                       how long SIGTERM or ctl stop waits for the guest to power off\n"
    "                       after the ACPI power button before stopping it (default 30)\n"
    "\n"
    "Exit status: 0 guest powered off; 1-123 status the guest wrote to the exit device\n"
    "(port 0x5f0); 124 timeout; 125 kiln failed; 126 guest crashed; 128 guest rebooted\n"
    "with --no-reboot; 137 killed through the API; 143 SIGTERM or ctl stop and the guest\n"
    "did not power off in time; any odd code from --debug-exit.\n"
    "On a terminal, Ctrl-A x stops the VM.\n";

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k"

int parse_size(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        return -EINVAL;
    }
    /* After the unit letter only "B" or "iB" may follow (1G, 1GB, 1GiB). */
    const char *rest = *end ? end + 1 : end;
    if (strcmp(rest, "") != 0 && strcmp(rest, "B") != 0 && strcmp(rest, "iB") != 0)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

int parse_seconds(const char *s, uint64_t *ms)
{
    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    uint64_t whole = 0, frac = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > MAX_TIMEOUT_S)
            return -ERANGE;
    }
    if (*p == '.') {
        p++;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (uint64_t)(*p - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 3; digits++)
            frac *= 10;
    }
    if (*p != '\0')
        return -EINVAL;
    uint64_t total = whole * 1000 + frac;
    if (total == 0)
        return -ERANGE;
    if (total > MAX_TIMEOUT_S * 1000)
        return -ERANGE;
    *ms = total;
    return 0;
}

static int parse_cpus(const char *s, unsigned *out, char *errmsg)
{
    char *end;
    errno = 0;
    unsigned long v = (s[0] >= '0' && s[0] <= '9') ? strtoul(s, &end, 10) : 0;
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno == ERANGE)
        return kiln_fail(errmsg, EINVAL, "--cpus '%s': not a whole number", s);
    if (v == 0)
        return kiln_fail(errmsg, EINVAL, "--cpus 0: a VM needs at least one vCPU");
    if (v > KILN_MAX_CPUS)
        return kiln_fail(errmsg, EINVAL, "--cpus %s: above kiln's maximum of %d vCPUs", s,
                         KILN_MAX_CPUS);
    *out = (unsigned)v;
    return 0;
}

static int parse_memory(const char *s, uint64_t host_ram, uint64_t *out, char *errmsg)
{
    uint64_t v;
    int ret = parse_size(s, &v);
    if (ret == -ERANGE)
        return kiln_fail(errmsg, EINVAL, "--memory '%s': too large", s);
    if (ret < 0)
        return kiln_fail(errmsg, EINVAL,
                         "--memory '%s': not a size (bytes, or a number with K, M or G)", s);
    if (v < KILN_MIN_MEMORY)
        return kiln_fail(errmsg, EINVAL, "--memory %s: below the minimum of %llu MiB", s,
                         (unsigned long long)(KILN_MIN_MEMORY >> 20));
    if (v % 4096)
        return kiln_fail(errmsg, EINVAL, "--memory %s: not a multiple of 4 KiB", s);
    if (host_ram && v > host_ram)
        return kiln_fail(errmsg, EINVAL,
                         "--memory %s: more than this host's %" PRIu64 " MiB of RAM", s,
                         host_ram >> 20);
    *out = v;
    return 0;
}

static int parse_serial(const char *s, struct cli_options *o, char *errmsg)
{
    if (strcmp(s, "stdio") == 0) {
        o->serial = CLI_SERIAL_STDIO;
    } else if (strcmp(s, "none") == 0) {
        o->serial = CLI_SERIAL_NONE;
    } else if (strncmp(s, "file=", 5) == 0 && s[5] != '\0') {
        o->serial = CLI_SERIAL_FILE;
        o->serial_path = s + 5;
    } else {
        return kiln_fail(errmsg, EINVAL, "--serial '%s': expected stdio, file=PATH or none", s);
    }
    return 0;
}

static int parse_timeout(const char *s, uint64_t *ms, char *errmsg)
{
    int ret = parse_seconds(s, ms);
    if (ret == -ERANGE)
        return kiln_fail(errmsg, EINVAL, "--timeout %s: must be above 0 and at most a year", s);
    if (ret < 0)
        return kiln_fail(errmsg, EINVAL, "--timeout '%s': not a number of seconds", s);
    return 0;
}

static int parse_stop_timeout(const char *s, uint64_t *ms, char *errmsg)
{
    int ret = parse_seconds(s, ms);
    if (ret == -ERANGE)
        return kiln_fail(errmsg, EINVAL, "--stop-timeout %s: must be above 0 and at most a year",
                         s);
    if (ret < 0)
        return kiln_fail(errmsg, EINVAL, "--stop-timeout '%s': not a number of seconds", s);
    return 0;
}

/* A serial is what GET_ID returns: printable ASCII, no separators kiln's syntax uses. */
static bool serial_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > KILN_DISK_SERIAL_MAX)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

int cli_disk_field(char *field, bool first, struct kiln_disk *d, const char *orig, char *errmsg)
{
    if (strncmp(field, "path=", 5) == 0 || (first && !strchr(field, '=') && strcmp(field, "ro"))) {
        if (d->path)
            return kiln_fail(errmsg, EINVAL, "--disk '%s': more than one path", orig);
        d->path = strncmp(field, "path=", 5) == 0 ? field + 5 : field;
        if (!d->path[0])
            return kiln_fail(errmsg, EINVAL, "--disk '%s': empty path", orig);
    } else if (strcmp(field, "ro") == 0) {
        d->read_only = true;
    } else if (strncmp(field, "serial=", 7) == 0) {
        if (!serial_ok(field + 7))
            return kiln_fail(errmsg, EINVAL,
                             "--disk '%s': serial must be 1-%d printable characters without "
                             "spaces or commas",
                             orig, KILN_DISK_SERIAL_MAX);
        d->serial = field + 7;
    } else if (strncmp(field, "format=", 7) == 0) {
        if (strcmp(field + 7, "raw") == 0)
            d->format = KILN_DISK_RAW;
        else if (strcmp(field + 7, "qcow2") == 0)
            d->format = KILN_DISK_QCOW2;
        else
            return kiln_fail(errmsg, EINVAL, "--disk '%s': format must be raw or qcow2", orig);
    } else {
        return kiln_fail(errmsg, EINVAL,
                         "--disk '%s': unknown option '%s' (expected path=FILE, ro, serial=ID, "
                         "format=raw|qcow2)",
                         orig, field);
    }
    return 0;
}

int parse_disk(char *s, struct kiln_disk *d, char *errmsg)
{
    char orig[128];
    snprintf(orig, sizeof(orig), "%s", s);
    memset(d, 0, sizeof(*d));
    bool first = true;
    for (char *field = s, *next; field; field = next, first = false) {
        next = strchr(field, ',');
        if (next)
            *next++ = '\0';
        int ret = cli_disk_field(field, first, d, orig, errmsg);
        if (ret < 0)
            return ret;
    }
    if (!d->path)
        return kiln_fail(errmsg, EINVAL, "--disk '%s': path=FILE is required", orig);
    return 0;
}

int cli_port_name_check(const char *name, const char *orig, char *errmsg)
{
    size_t n = strlen(name);
    if (n == 0 || n > KILN_PORT_NAME_MAX ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
        return kiln_fail(errmsg, EINVAL,
                         "--port '%s': a name is 1-%d letters, digits, '.', '_' or '-'", orig,
                         KILN_PORT_NAME_MAX);
    return 0;
}

int parse_vport(char *s, struct kiln_port *p, char *errmsg)
{
    char orig[128];
    snprintf(orig, sizeof(orig), "%s", s);
    memset(p, 0, sizeof(*p));
    char *comma = strchr(s, ',');
    if (!comma || comma == s)
        return kiln_fail(errmsg, EINVAL, "--port '%s': expected NAME,path=FILE or NAME,socket=PATH",
                         orig);
    *comma = '\0';
    p->name = s;
    int ret = cli_port_name_check(s, orig, errmsg);
    if (ret < 0)
        return ret;
    char *f = comma + 1;
    if (strncmp(f, "path=", 5) == 0) {
        p->kind = KILN_PORT_FILE;
        p->path = f + 5;
    } else if (strncmp(f, "socket=", 7) == 0) {
        p->kind = KILN_PORT_SOCKET;
        p->path = f + 7;
    } else {
        return kiln_fail(errmsg, EINVAL,
                         "--port '%s': expected path=FILE or socket=PATH after the name", orig);
    }
    if (!p->path[0])
        return kiln_fail(errmsg, EINVAL, "--port '%s': empty path", orig);
    return 0;
}

int cli_share_field(char *f, bool first, struct kiln_share *sh, const char *orig, char *errmsg)
{
    if (first && !strchr(f, '='))
        sh->path = f;
    else if (strncmp(f, "path=", 5) == 0)
        sh->path = f + 5;
    else if (strncmp(f, "tag=", 4) == 0)
        sh->tag = f + 4;
    else if (strcmp(f, "ro") == 0)
        sh->read_only = true;
    else
        return kiln_fail(errmsg, EINVAL,
                         "--share '%s': unknown option '%s' (expected PATH, tag=TAG, ro)", orig, f);
    return 0;
}

int cli_share_check(const struct kiln_share *sh, const char *orig, char *errmsg)
{
    if (!sh->path || !sh->path[0])
        return kiln_fail(errmsg, EINVAL, "--share '%s': a directory path is required", orig);
    if (!sh->tag || !sh->tag[0] || strlen(sh->tag) > KILN_SHARE_TAG_MAX || strpbrk(sh->tag, " \t"))
        return kiln_fail(errmsg, EINVAL,
                         "--share '%s': tag=TAG is required, 1-%d characters without spaces", orig,
                         KILN_SHARE_TAG_MAX);
    return 0;
}

int parse_share(char *s, struct kiln_share *sh, char *errmsg)
{
    char orig[160];
    snprintf(orig, sizeof(orig), "%s", s);
    memset(sh, 0, sizeof(*sh));
    bool first = true;
    for (char *f = s, *next; f; f = next, first = false) {
        next = strchr(f, ',');
        if (next)
            *next++ = '\0';
        int ret = cli_share_field(f, first, sh, orig, errmsg);
        if (ret < 0)
            return ret;
    }
    return cli_share_check(sh, orig, errmsg);
}

int cli_list_room(const char *flag, const struct cli_options *o, char *errmsg)
{
    if (strcmp(flag, "--disk") == 0 && o->ndisks == KILN_MAX_DISKS)
        return kiln_fail(errmsg, EINVAL, "--disk: at most %d disks", KILN_MAX_DISKS);
    if (strcmp(flag, "--net") == 0 && o->nnets == KILN_MAX_NETS)
        return kiln_fail(errmsg, EINVAL, "--net: at most %d network devices", KILN_MAX_NETS);
    if (strcmp(flag, "--port") == 0 && o->nports == KILN_MAX_PORTS)
        return kiln_fail(errmsg, EINVAL, "--port: at most %d ports", KILN_MAX_PORTS);
    if (strcmp(flag, "--share") == 0 && o->nshares == KILN_MAX_SHARES)
        return kiln_fail(errmsg, EINVAL, "--share: at most %d shares", KILN_MAX_SHARES);
    return 0;
}

int cli_list_commit(const char *flag, struct cli_options *o, char *errmsg)
{
    if (strcmp(flag, "--disk") == 0) {
        o->ndisks++;
    } else if (strcmp(flag, "--net") == 0) {
        o->nnets++;
    } else if (strcmp(flag, "--port") == 0) {
        for (unsigned i = 0; i < o->nports; i++)
            if (strcmp(o->ports[i].name, o->ports[o->nports].name) == 0)
                return kiln_fail(errmsg, EINVAL, "--port %s: the name is given twice",
                                 o->ports[i].name);
        o->nports++;
    } else {
        for (unsigned i = 0; i < o->nshares; i++)
            if (strcmp(o->shares[i].tag, o->shares[o->nshares].tag) == 0)
                return kiln_fail(errmsg, EINVAL, "--share: tag %s is given twice",
                                 o->shares[i].tag);
        o->nshares++;
    }
    return 0;
}

int parse_vsock(char *s, struct kiln_vsock *vs, char *errmsg)
{
    char orig[160];
    snprintf(orig, sizeof(orig), "%s", s);
    memset(vs, 0, sizeof(*vs));
    bool cid_set = false;
    for (char *f = s, *next; f; f = next) {
        next = strchr(f, ',');
        if (next)
            *next++ = '\0';
        unsigned long long cid;
        char *end;
        if (strncmp(f, "cid=", 4) == 0) {
            errno = 0;
            cid = f[4] >= '0' && f[4] <= '9' ? strtoull(f + 4, &end, 0) : 0;
            if (f[4] < '0' || f[4] > '9' || errno || *end || cid < 3 || cid >= 0xffffffffULL)
                return kiln_fail(errmsg, EINVAL, "--vsock '%s': cid must be 3 to 4294967294", orig);
            vs->cid = cid;
            cid_set = true;
        } else if (strncmp(f, "socket=", 7) == 0) {
            vs->uds_path = f + 7;
        } else {
            return kiln_fail(errmsg, EINVAL,
                             "--vsock '%s': unknown option '%s' (expected cid=N, socket=PATH)",
                             orig, f);
        }
    }
    if (!cid_set)
        return kiln_fail(errmsg, EINVAL, "--vsock '%s': cid=N is required", orig);
    if (!vs->uds_path || !vs->uds_path[0])
        return kiln_fail(errmsg, EINVAL, "--vsock '%s': socket=PATH is required", orig);
    return 0;
}

static int add_vsock(const char *value, struct cli_options *o, char *errmsg)
{
    if (o->vsock.uds_path)
        return kiln_fail(errmsg, EINVAL, "--vsock: given twice (one device at most)");
    return parse_vsock((char *)value, &o->vsock, errmsg);
}

/* One --disk, --net, --port or --share value, parsed into the next free entry of its list. */
static int add_entry(const char *flag, const char *value, struct cli_options *o, char *errmsg)
{
    int ret = cli_list_room(flag, o, errmsg);
    if (ret < 0)
        return ret;
    /* argv strings are writable (C11 5.1.2.2.1); the fields are split in place. */
    char *s = (char *)value;
    if (strcmp(flag, "--disk") == 0)
        ret = parse_disk(s, &o->disks[o->ndisks], errmsg);
    else if (strcmp(flag, "--net") == 0)
        ret = parse_net(s, &o->nets[o->nnets], errmsg);
    else if (strcmp(flag, "--port") == 0)
        ret = parse_vport(s, &o->ports[o->nports], errmsg);
    else
        ret = parse_share(s, &o->shares[o->nshares], errmsg);
    return ret < 0 ? ret : cli_list_commit(flag, o, errmsg);
}

static const char *const value_flags[] = {
    "--kernel",       "--firmware",   "--initrd",      "--cmdline", "--restore",   "--cpus",
    "--memory",       "--serial",     "--timeout",     "--disk",    "--transport", "--net",
    "--seccomp",      "--debug-exit", "--port",        "--share",   "--config",    "--api-socket",
    "--stop-timeout", "--vsock",      "--snapshot-dir"};

static bool takes_value(const char *flag)
{
    for (size_t i = 0; i < ARRAY_SIZE(value_flags); i++)
        if (strcmp(flag, value_flags[i]) == 0)
            return true;
    return false;
}

static int set_path(const char *flag, const char *value, const char **dst, char *errmsg)
{
    if (value[0] == '\0')
        return kiln_fail(errmsg, EINVAL, "%s: empty path", flag);
    *dst = value;
    return 0;
}

static int parse_transport(const char *s, enum kiln_transport *t, char *errmsg)
{
    if (strcmp(s, "pci") == 0)
        *t = KILN_TRANSPORT_PCI;
    else if (strcmp(s, "mmio") == 0)
        *t = KILN_TRANSPORT_MMIO;
    else
        return kiln_fail(errmsg, EINVAL, "--transport '%s': expected pci or mmio", s);
    return 0;
}

/* on: every thread kiln runs, the main one included; off: none (for debugging). */
static int parse_seccomp(const char *s, enum kiln_seccomp *m, char *errmsg)
{
    if (strcmp(s, "on") == 0)
        *m = KILN_SECCOMP_ALL;
    else if (strcmp(s, "off") == 0)
        *m = KILN_SECCOMP_OFF;
    else
        return kiln_fail(errmsg, EINVAL, "--seccomp '%s': expected on or off", s);
    return 0;
}

/* A number in C syntax (0x.. hex, 0.. octal, decimal) up to max, the whole string. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

int parse_debug_exit(const char *s, struct cli_options *o, char *errmsg)
{
    unsigned long port = 0x501, size = 2;
    char buf[128];
    if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
        return kiln_fail(errmsg, EINVAL, "--debug-exit: value too long");
    for (char *f = buf, *next; f; f = next) {
        next = strchr(f, ',');
        if (next)
            *next++ = '\0';
        if (strncmp(f, "iobase=", 7) == 0) {
            if (!parse_uint(f + 7, 0xffff, &port))
                return kiln_fail(errmsg, EINVAL,
                                 "--debug-exit '%s': iobase must be a port, 0-0xffff", s);
        } else if (strncmp(f, "iosize=", 7) == 0) {
            if (!parse_uint(f + 7, 4, &size) || size == 0 || size == 3)
                return kiln_fail(errmsg, EINVAL, "--debug-exit '%s': iosize must be 1, 2 or 4", s);
        } else {
            return kiln_fail(errmsg, EINVAL,
                             "--debug-exit '%s': unknown option '%s' (expected iobase=PORT, "
                             "iosize=1|2|4)",
                             s, f);
        }
    }
    if (port + size > 0x10000)
        return kiln_fail(errmsg, EINVAL, "--debug-exit '%s': the ports go past 0xffff", s);
    o->debug_exit_port = (uint16_t)port;
    o->debug_exit_size = (uint8_t)size;
    return 0;
}

int cli_apply_option(const char *flag, const char *value, uint64_t host_ram, struct cli_options *o,
                     char *errmsg)
{
    if (strcmp(flag, "--kernel") == 0)
        return set_path(flag, value, &o->kernel, errmsg);
    if (strcmp(flag, "--firmware") == 0)
        return set_path(flag, value, &o->firmware, errmsg);
    if (strcmp(flag, "--initrd") == 0)
        return set_path(flag, value, &o->initrd, errmsg);
    if (strcmp(flag, "--restore") == 0)
        return set_path(flag, value, &o->restore, errmsg);
    if (strcmp(flag, "--cmdline") == 0) {
        o->cmdline = value;
        o->cmdline_given = true;
        return 0;
    }
    if (strcmp(flag, "--cpus") == 0)
        return parse_cpus(value, &o->cpus, errmsg);
    if (strcmp(flag, "--memory") == 0)
        return parse_memory(value, host_ram, &o->memory, errmsg);
    if (strcmp(flag, "--serial") == 0)
        return parse_serial(value, o, errmsg);
    if (strcmp(flag, "--disk") == 0 || strcmp(flag, "--net") == 0 || strcmp(flag, "--port") == 0 ||
        strcmp(flag, "--share") == 0)
        return add_entry(flag, value, o, errmsg);
    if (strcmp(flag, "--transport") == 0)
        return parse_transport(value, &o->transport, errmsg);
    if (strcmp(flag, "--seccomp") == 0)
        return parse_seccomp(value, &o->seccomp, errmsg);
    if (strcmp(flag, "--debug-exit") == 0)
        return parse_debug_exit(value, o, errmsg);
    if (strcmp(flag, "--config") == 0)
        return 0; /* loaded before the other flags (see parse_run) */
    if (strcmp(flag, "--api-socket") == 0)
        return set_path(flag, value, &o->api_socket, errmsg);
    if (strcmp(flag, "--snapshot-dir") == 0)
        return set_path(flag, value, &o->snapshot_dir, errmsg);
    if (strcmp(flag, "--stop-timeout") == 0)
        return parse_stop_timeout(value, &o->stop_timeout_ms, errmsg);
    if (strcmp(flag, "--vsock") == 0)
        return add_vsock(value, o, errmsg);
    return parse_timeout(value, &o->timeout_ms, errmsg);
}

static void defaults(struct cli_options *o)
{
    memset(o, 0, sizeof(*o));
    o->command = CLI_RUN;
    o->cmdline = DEFAULT_CMDLINE;
    o->cpus = 1;
    o->memory = 256ULL << 20;
    o->serial = CLI_SERIAL_STDIO;
    o->seccomp = KILN_SECCOMP_ALL;
    o->rootfs_fd = -1;
    o->snapshot_fds[0] = o->snapshot_fds[1] = -1;
    o->stop_timeout_ms = CLI_DEFAULT_STOP_TIMEOUT_MS;
}

/* A kernel, or firmware and a disk for it to boot; options only one of the two takes. */
/* A snapshot holds the guest: nothing to boot, and the same machine around it. */
static int check_restore(const struct cli_options *o, char *errmsg)
{
    const char *boot = o->kernel          ? "--kernel"
                       : o->firmware      ? "--firmware"
                       : o->initrd        ? "--initrd"
                       : o->cmdline_given ? "--cmdline"
                       : o->rootfs_host   ? "--rootfs-host"
                                          : NULL;
    if (boot)
        return kiln_fail(errmsg, EINVAL, "%s: not with --restore (the snapshot holds the guest)",
                         boot);
    return 0;
}

static int check_boot_source(const struct cli_options *o, char *errmsg)
{
    if (o->restore)
        return check_restore(o, errmsg);
    if (o->kernel && o->firmware)
        return kiln_fail(errmsg, EINVAL, "--firmware: only without --kernel (it boots a disk)");
    if (o->kernel)
        return 0;
    if (o->ndisks == 0)
        return kiln_fail(errmsg, EINVAL,
                         "run: --kernel PATH is required, or a --disk for firmware to boot");
    if (o->initrd)
        return kiln_fail(errmsg, EINVAL, "--initrd: needs --kernel (firmware boots the disk)");
    if (o->cmdline_given)
        return kiln_fail(errmsg, EINVAL,
                         "--cmdline: needs --kernel (the disk's boot loader has its own)");
    if (o->transport == KILN_TRANSPORT_MMIO)
        return kiln_fail(errmsg, EINVAL,
                         "--transport mmio: needs --kernel (firmware finds disks on PCI)");
    return 0;
}

/* --rootfs-host boots a kernel with the initramfs kiln makes; a command needs it. */
static int check_rootfs_host(const struct cli_options *o, char *errmsg)
{
    if (!o->rootfs_host)
        return o->command_argv
                   ? kiln_fail(errmsg, EINVAL, "run: a command after -- needs --rootfs-host")
                   : 0;
    if (!o->kernel)
        return kiln_fail(errmsg, EINVAL, "--rootfs-host: needs --kernel");
    if (o->initrd)
        return kiln_fail(errmsg, EINVAL,
                         "--initrd: not with --rootfs-host (kiln makes the initramfs)");
    for (unsigned i = 0; i < o->nshares; i++)
        if (strcmp(o->shares[i].tag, "kilnroot") == 0)
            return kiln_fail(errmsg, EINVAL,
                             "--share: tag kilnroot is --rootfs-host's own; pick another");
    if (o->ncommand > 0 && o->command_argv[0][0] == '\0')
        return kiln_fail(errmsg, EINVAL, "--rootfs-host: the command after -- is empty");
    return 0;
}

/* One argument of "run": the flag (before any "="), and its value if it has one. */
struct arg {
    char flag[32];
    const char *value;
    bool has_value;
};

static void split_arg(const char *arg, struct arg *a)
{
    const char *eq = strchr(arg, '=');
    a->value = NULL;
    if (strncmp(arg, "--", 2) == 0 && eq && (size_t)(eq - arg) < sizeof(a->flag)) {
        memcpy(a->flag, arg, (size_t)(eq - arg));
        a->flag[eq - arg] = '\0';
        a->value = eq + 1;
    } else {
        snprintf(a->flag, sizeof(a->flag), "%s", arg);
    }
    a->has_value = takes_value(a->flag);
}

/*
 * --config FILE is loaded before any other flag, wherever it stands, so that every flag overrides
 * the file. Only the first pass over the arguments, which skips the values of other flags.
 */
static int load_config_flag(int argc, char **argv, int start, uint64_t host_ram,
                            struct cli_options *o, char *errmsg)
{
    const char *path = NULL;
    for (int i = start; i < argc && strcmp(argv[i], "--") != 0; i++) {
        struct arg a;
        split_arg(argv[i], &a);
        if (a.has_value && !a.value && i + 1 < argc)
            a.value = argv[++i];
        if (strcmp(a.flag, "--config") != 0 || !a.value)
            continue;
        if (path)
            return kiln_fail(errmsg, EINVAL, "--config: given more than once");
        if (!a.value[0])
            return kiln_fail(errmsg, EINVAL, "--config: empty path");
        path = a.value;
    }
    return path ? cli_config_load(path, host_ram, o, errmsg) : 0;
}

/*
 * A list flag (--disk, --net, --port, --share) replaces the config file's whole list of its kind:
 * its first use empties that list. replaced: a bit per kind already emptied.
 */
static void replace_file_list(const char *flag, struct cli_options *o, unsigned *replaced)
{
    static const char *const lists[] = {"--disk", "--net", "--port", "--share"};
    unsigned *counts[] = {&o->ndisks, &o->nnets, &o->nports, &o->nshares};
    for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
        if (strcmp(flag, lists[k]) != 0 || (*replaced & (1u << k)))
            continue;
        *replaced |= 1u << k;
        *counts[k] = 0;
    }
}

#define REPLACED_VSOCK (1u << 8) /* beside replace_file_list's bits */

/* A flag without a value; returns true when arg was one. */
static bool apply_switch(const char *arg, struct cli_options *o)
{
    if (strcmp(arg, "--stats") == 0)
        o->stats = true;
    else if (strcmp(arg, "--no-reboot") == 0)
        o->no_reboot = true;
    else if (strcmp(arg, "--rootfs-host") == 0)
        o->rootfs_host = true;
    else
        return false;
    return true;
}

static int parse_run(int argc, char **argv, int start, uint64_t host_ram, struct cli_options *o,
                     char *errmsg)
{
    int ret = load_config_flag(argc, argv, start, host_ram, o, errmsg);
    if (ret < 0)
        return ret;
    unsigned replaced = 0;
    for (int i = start; i < argc; i++) {
        const char *arg = argv[i];
        struct arg a;
        split_arg(arg, &a);
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            o->command = CLI_HELP;
            return 0;
        }
        if (apply_switch(arg, o))
            continue;
        if (strcmp(arg, "--") == 0) {
            o->command_argv = argv + i + 1;
            o->ncommand = argc - i - 1;
            break;
        }
        if (!a.has_value)
            return kiln_fail(errmsg, EINVAL, "run: unknown option '%s' (see kiln --help)", arg);
        if (!a.value) {
            if (i + 1 >= argc)
                return kiln_fail(errmsg, EINVAL, "%s: missing value", a.flag);
            a.value = argv[++i];
        }
        replace_file_list(a.flag, o, &replaced);
        if (strcmp(a.flag, "--vsock") == 0 && !(replaced & REPLACED_VSOCK)) {
            replaced |= REPLACED_VSOCK; /* the flag replaces the file's vsock, not a second one */
            o->vsock = (struct kiln_vsock){0};
        }
        ret = cli_apply_option(a.flag, a.value, host_ram, o, errmsg);
        if (ret < 0)
            return ret;
    }
    ret = check_boot_source(o, errmsg);
    if (ret == 0 && o->snapshot_dir && !o->api_socket)
        ret = kiln_fail(errmsg, EINVAL,
                        "--snapshot-dir: needs --api-socket (snapshots are taken through it)");
    return ret < 0 ? ret : check_rootfs_host(o, errmsg);
}

/* kiln ctl SOCKET COMMAND [ARG]: the request is checked as it is made (cli_ctl_request). */
static int parse_ctl(int argc, char **argv, struct cli_options *o, char *errmsg)
{
    o->command = CLI_CTL;
    if (argc < 4 || argc > 5)
        return kiln_fail(errmsg, EINVAL, "ctl: expected SOCKET COMMAND [ARG] (see kiln --help)");
    if (argv[2][0] == '\0')
        return kiln_fail(errmsg, EINVAL, "ctl: empty socket path");
    o->ctl_path = argv[2];
    o->ctl_cmd = argv[3];
    o->ctl_arg = argc == 5 ? argv[4] : NULL;
    char *req = cli_ctl_request(o->ctl_cmd, o->ctl_arg, errmsg);
    free(req);
    return req ? 0 : -EINVAL;
}

int cli_parse(int argc, char **argv, uint64_t host_ram, struct cli_options *o, char *errmsg)
{
    defaults(o);
    if (argc < 2)
        return kiln_fail(errmsg, EINVAL, "no command given (try kiln --help)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        o->command = CLI_HELP;
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        o->command = CLI_VERSION;
        return 0;
    }
    if (strcmp(cmd, "config") == 0) {
        if (argc < 3 || strcmp(argv[2], "--print") != 0)
            return kiln_fail(errmsg, EINVAL, "config: expected --print (try kiln --help)");
        o->command = CLI_CONFIG_PRINT;
        return parse_run(argc, argv, 3, host_ram, o, errmsg);
    }
    if (strcmp(cmd, "ctl") == 0)
        return parse_ctl(argc, argv, o, errmsg);
    if (strcmp(cmd, "run") != 0)
        return kiln_fail(errmsg, EINVAL, "unknown command '%s' (try kiln --help)", cmd);
    return parse_run(argc, argv, 2, host_ram, o, errmsg);
}
