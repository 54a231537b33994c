/* cli.h: the kiln command line: option parsing, validation and exit-code mapping. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln.h"

/* Process exit codes (documented in the README). */
#define EXIT_CODE_STATUS_MAX 123
#define EXIT_CODE_TIMEOUT 124
#define EXIT_CODE_KILN_ERROR 125
#define EXIT_CODE_CRASH 126
/* The guest rebooted, with --no-reboot (without it, kiln starts the guest again). */
#define EXIT_CODE_REBOOT 128

enum cli_command { CLI_RUN, CLI_HELP, CLI_VERSION };
enum cli_serial { CLI_SERIAL_STDIO, CLI_SERIAL_FILE, CLI_SERIAL_NONE };

struct cli_options {
    enum cli_command command;
    const char *kernel;
    const char *firmware; /* without kernel; NULL: KILN_DEFAULT_FIRMWARE */
    const char *initrd;
    const char *cmdline;
    bool cmdline_given;
    unsigned cpus;
    uint64_t memory;
    enum cli_serial serial;
    const char *serial_path;
    uint64_t timeout_ms;
    bool stats;
    bool no_reboot;
    enum kiln_transport transport;
    enum kiln_seccomp seccomp;
    uint16_t debug_exit_port; /* --debug-exit; size 0: none */
    uint8_t debug_exit_size;
    struct kiln_disk disks[KILN_MAX_DISKS];
    unsigned ndisks;
    struct kiln_net nets[KILN_MAX_NETS];
    unsigned nnets;
    struct kiln_port ports[KILN_MAX_PORTS];
    unsigned nports;
    struct kiln_share shares[KILN_MAX_SHARES];
    unsigned nshares;
    struct kiln_vsock vsock; /* --vsock; uds_path NULL: none */
    /* --rootfs-host [-- COMMAND ARG...]: the host's / as the guest's root (cli_rootfs.c). */
    bool rootfs_host;
    char **command_argv; /* after "--"; ncommand 0: an interactive shell */
    int ncommand;
    int rootfs_fd;          /* the initramfs kiln built (a memfd), -1 if none */
    char rootfs_initrd[32]; /* its path for the loader: /proc/self/fd/N */
};

/* Parse one --disk value "path=FILE[,ro][,serial=ID]" into *d (pointing into s). */
int parse_disk(char *s, struct kiln_disk *d, char *errmsg);

/* Parse one --port value "NAME,path=FILE" or "NAME,socket=PATH" into *p (pointing into s). */
int parse_vport(char *s, struct kiln_port *p, char *errmsg);

/* Parse one --share value "PATH,tag=TAG[,ro]" into *sh (pointing into s). */
int parse_share(char *s, struct kiln_share *sh, char *errmsg);

/* Parse one --vsock value "cid=N,socket=PATH" into *vs (pointing into s). */
int parse_vsock(char *s, struct kiln_vsock *vs, char *errmsg);

/* Parse one --debug-exit value "iobase=PORT[,iosize=1|2|4]" into o (QEMU's defaults: 0x501, 2). */
int parse_debug_exit(const char *s, struct cli_options *o, char *errmsg);

/* Parse one --net value "user[,...]" or "tap=NAME[,...]" into *n (pointing into s). */
int parse_net(char *s, struct kiln_net *n, char *errmsg);
/* "02:00:00:00:00:01" into mac (unicast only). Returns 0 or -EINVAL. */
int parse_mac(const char *s, uint8_t mac[6]);
/* "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" in place. Returns 0 or -EINVAL. */
int parse_hostfwd(char *s, struct kiln_hostfwd *h);

/*
 * Parse argv into *o. Returns 0, or -EINVAL with a one-line message (without the "kiln: "
 * prefix) naming the offending argument in errmsg (KILN_ERRMSG_MAX bytes). host_ram is the
 * host's physical memory in bytes (0: unknown), used to refuse absurd --memory values.
 */
int cli_parse(int argc, char **argv, uint64_t host_ram, struct cli_options *o, char *errmsg);

/* SIZE: plain bytes or a K/M/G suffix (powers of 1024). Returns 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* SECONDS: a positive decimal number with up to 3 decimals, at most a year. Into ms. */
int parse_seconds(const char *s, uint64_t *ms);

/*
 * SIGSYS (a seccomp filter refused a call): one line on stderr naming the call, on_fatal (the
 * terminal restore), then exit 125. Async-signal-safe throughout.
 */
void cli_seccomp_install(void (*on_fatal)(void));

/*
 * --rootfs-host: build the initramfs that mounts the host's / (read-only, under a tmpfs overlay)
 * as the guest's root and runs the command; point o's initrd at it, default its cmdline, and add
 * the share of /. Returns 0 or -errno with a one-line message in errmsg.
 */
int cli_rootfs_prepare(struct cli_options *o, char *errmsg);
/* Usage text for --help. */
extern const char cli_usage[];

/*
 * The process exit code for how the VM ended. stop_signal is the signal that made the CLI stop
 * the VM (0 if none). If the code hides something the user should know (a status above 123),
 * a one-line warning is written to warn (KILN_ERRMSG_MAX bytes), else warn is "".
 */
int cli_exit_code(const struct kiln_exit *e, int stop_signal, char *warn);

#endif
