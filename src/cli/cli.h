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
/* The API socket's kill: as if by SIGKILL. */
#define EXIT_CODE_KILLED 137
/* kiln ctl: the VM answered with an error. */
#define EXIT_CODE_CTL_ERROR 1

/* --stop-timeout's default: what a graceful stop (SIGTERM, ctl stop) gives the guest. */
#define CLI_DEFAULT_STOP_TIMEOUT_MS 30000

enum cli_command { CLI_RUN, CLI_CTL, CLI_HELP, CLI_VERSION, CLI_CONFIG_PRINT };
enum cli_serial { CLI_SERIAL_STDIO, CLI_SERIAL_FILE, CLI_SERIAL_NONE };

struct cli_options {
    enum cli_command command;
    const char *kernel;
    const char *firmware; /* without kernel; NULL: KILN_DEFAULT_FIRMWARE */
    const char *initrd;
    const char *restore; /* --restore DIR: a snapshot to start from instead of booting */
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
    int rootfs_fd;            /* the initramfs kiln built (a memfd), -1 if none */
    char rootfs_initrd[32];   /* its path for the loader: /proc/self/fd/N */
    const char *api_socket;   /* --api-socket PATH, or NULL */
    const char *snapshot_dir; /* --snapshot-dir DIR: where the API's snapshot writes, or NULL */
    int snapshot_fds[2];      /* its state and memory files, open (-1: none) */
    uint64_t stop_timeout_ms; /* --stop-timeout */
    /* kiln ctl PATH COMMAND [ARG] */
    const char *ctl_path, *ctl_cmd, *ctl_arg;
    /* --config FILE (cli_config.c), NULL if none; the strings taken from it, owned here. */
    const char *config_path;
    struct cli_owned *owned;
};

/* Parse one --disk value "path=FILE[,ro][,serial=ID]" into *d (pointing into s). */
int parse_disk(char *s, struct kiln_disk *d, char *errmsg);
/*
 * One field of a --disk ("path=", "ro", "serial=", "format="; first: a bare path allowed), into
 * *d, pointing into field; orig is the whole value for the message. The config file uses it too.
 */
int cli_disk_field(char *field, bool first, struct kiln_disk *d, const char *orig, char *errmsg);
/* One field of a --share ("path=", "tag=", "ro"), and the check of the whole once all are in. */
int cli_share_field(char *f, bool first, struct kiln_share *sh, const char *orig, char *errmsg);
int cli_share_check(const struct kiln_share *sh, const char *orig, char *errmsg);
/* The first field of a --net ("user" or "tap=NAME"), then any other ("mac=", "hostfwd=", ...). */
int cli_net_kind(char *field, struct kiln_net *n, const char *orig, char *errmsg);
int cli_net_field(char *field, struct kiln_net *n, const char *orig, char *errmsg);

/*
 * Lists (flag "--disk", "--net", "--port", "--share"): room checks there is a free entry; the
 * caller fills the next one (o->disks[o->ndisks], ...), then commit checks it against the others
 * (a port name, a share tag given twice) and counts it.
 */
int cli_list_room(const char *flag, const struct cli_options *o, char *errmsg);
int cli_list_commit(const char *flag, struct cli_options *o, char *errmsg);

/*
 * Apply one "--flag value" pair of 'run' as the command line does; o keeps pointers into value.
 * The config file applies its scalar fields through it, so both are validated alike.
 */
int cli_apply_option(const char *flag, const char *value, uint64_t host_ram, struct cli_options *o,
                     char *errmsg);

/*
 * --config FILE: load the JSON description of a run into o, over its defaults (cli_config.c).
 * Returns 0, or -EINVAL with one line "FILE: .json.path: reason" in errmsg. The strings o gets
 * are copies o owns (cli_options_free).
 */
int cli_config_load(const char *path, uint64_t host_ram, struct cli_options *o, char *errmsg);
/* The effective configuration of o as pretty JSON that cli_config_load reads back; malloc'd. */
char *cli_config_print(const struct cli_options *o);
/* Free what o owns (the config file's strings); o's pointers into them go stale. */
void cli_options_free(struct cli_options *o);

/* Parse one --port value "NAME,path=FILE" or "NAME,socket=PATH" into *p (pointing into s). */
int parse_vport(char *s, struct kiln_port *p, char *errmsg);
/* A port's NAME: 1..KILN_PORT_NAME_MAX of A-Z a-z 0-9 . _ -; orig is for the message. */
int cli_port_name_check(const char *name, const char *orig, char *errmsg);

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
/*
 * --api-socket PATH: a new listening unix socket at PATH (mode 0600) in *fd. An existing socket
 * nobody serves is replaced; anything else at PATH is refused. Returns 0 or -errno with a one-line
 * message in errmsg.
 */
int cli_api_listen(const char *path, int *fd, char *errmsg);

/* kiln ctl: send one request to the API socket, print the reply; the process exit code. */
int cli_ctl(const struct cli_options *o);
/* The request line kiln ctl sends for COMMAND [ARG] (malloc'd), or NULL with errmsg. */
char *cli_ctl_request(const char *cmd, const char *arg, char *errmsg);

/*
 * kiln ctl SOCKET snapshot DIR (cli_ctl_snap.c): the VM writes into files ctl opens in DIR
 * (state.tmp, memory.tmp: new, 0600) and sends with the request; after a success ctl renames
 * them to state and memory, after anything else it removes them (and DIR, if it made it).
 */
struct ctl_snap {
    const char *dir;
    int dfd;   /* DIR, locked (flock) while ctl works in it */
    int fd[2]; /* state.tmp, memory.tmp */
    bool made_dir;
};
/* Make or take DIR and create the two files in it. Returns 0 or -errno with errmsg. */
int ctl_snap_open(struct ctl_snap *s, const char *dir, char *errmsg);
/* After the VM's success: the files into place (the old state removed first); then released. */
int ctl_snap_commit(struct ctl_snap *s, char *errmsg);
/* After a failure: the files removed, DIR too if ctl made it; released. */
void ctl_snap_abandon(struct ctl_snap *s);

/* Usage text for --help. */
extern const char cli_usage[];

/*
 * The process exit code for how the VM ended. stop_signal is the signal that made the CLI stop
 * the VM (0 if none). If the code hides something the user should know (a status above 123),
 * a one-line warning is written to warn (KILN_ERRMSG_MAX bytes), else warn is "".
 */
int cli_exit_code(const struct kiln_exit *e, int stop_signal, char *warn);

#endif
