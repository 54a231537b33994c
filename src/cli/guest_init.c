/* guest_init.c: /init of --rootfs-host's initramfs: the host's / as root, run a command, exit. */
/*
 * Runs inside the guest as PID 1, built static and carried inside the kiln binary (see
 * cli_rootfs.c, which writes the /kiln files read here). Steps: load the modules the share
 * needs, mount the host's / (9p, read-only; the top level, /tmp, /run, /var/tmp and /var/log
 * are the guest's own tmpfs), mount the other shares at their host paths, switch to that root,
 * run the command (or a shell) on the console, and end the VM with its exit status through
 * kiln's exit device (I/O port 0x5f0).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_PORT 0x5f0
#define PVPANIC_PORT 0x505
#define MODULE_INIT_COMPRESSED_FILE 4 /* linux/module.h, 6.x: the kernel decompresses */
#define P9_OPTS "trans=virtio,version=9p2000.L,msize=512000"
#define NEWROOT "/newroot"
#define MAX_FILE (64 * 1024)

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln-init: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* End the VM: status 0 as a power-off, any other through the exit device (kiln exits with it). */
static void __attribute__((noreturn)) finish(int status)
{
    sync();
    if (status != 0 && ioperm(EXIT_PORT, 1, 1) == 0)
        outb((unsigned char)status, EXIT_PORT);
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

/*
 * The guest could not be set up (the reason is on the console): reported as a guest crash
 * through pvpanic (kiln exits 126), so no status of the command's own can be mistaken for it.
 */
static void __attribute__((noreturn)) broken(void)
{
    if (ioperm(PVPANIC_PORT, 1, 1) == 0)
        outb(1, PVPANIC_PORT);
    finish(1);
}

/* The whole of a small /kiln file, NUL-terminated; *len is its length; NULL if absent. */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(MAX_FILE + 1);
    size_t n = 0;
    ssize_t r;
    while (buf && n < MAX_FILE && (r = read(fd, buf + n, MAX_FILE - n)) > 0)
        n += (size_t)r;
    close(fd);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Split a file of NUL-terminated strings into a NULL-terminated vector (in place). */
static char **split0(char *buf, size_t len)
{
    size_t n = len && buf[len - 1] != '\0'; /* a last string without its NUL (slurp adds it) */
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\0';
    char **v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0, k = 0; v && i < len; k++) {
        v[k] = buf + i;
        i += strlen(buf + i) + 1;
    }
    return v;
}

static void must_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                       const char *opts)
{
    mkdir(dst, 0755);
    if (mount(src, dst, type, flags, opts) < 0) {
        say("mount %s on %s (%s): %s", src, dst, type, strerror(errno));
        broken();
    }
}

/* Load the modules in /kiln/modules/load-order (dependencies first); built-in ones are absent. */
static void load_modules(void)
{
    char *order = slurp("/kiln/modules/load-order", NULL);
    for (char *name = order ? strtok(order, "\n") : NULL; name; name = strtok(NULL, "\n")) {
        char path[256];
        snprintf(path, sizeof(path), "/kiln/modules/%s", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        bool packed = strstr(name, ".ko.") != NULL;
        if (fd < 0 ||
            (syscall(SYS_finit_module, fd, "", packed ? MODULE_INIT_COMPRESSED_FILE : 0) < 0 &&
             errno != EEXIST))
            say("module %s: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    free(order);
}

/* Mount 9p share TAG on DIR; the virtio device may still be probing, so try for a while. */
static int mount_share(const char *tag, const char *dir, bool ro)
{
    for (int i = 0; i < 100; i++) {
        if (mount(tag, dir, "9p", ro ? MS_RDONLY : 0, P9_OPTS) == 0)
            return 0;
        if (errno != ENOENT)
            break;
        usleep(20000);
    }
    say("mount share %s on %s: %s", tag, dir, strerror(errno));
    return -1;
}

/* Top-level directories that are the guest's own (empty tmpfs), not the host's. */
static bool scratch_dir(const char *name)
{
    return strcmp(name, "tmp") == 0 || strcmp(name, "run") == 0;
}

/* Put host entry /host/NAME into the new root: a directory or file bound, a symlink copied. */
static void add_top_entry(const char *name)
{
    char src[512], dst[512], target[4096];
    snprintf(src, sizeof(src), "/host/%s", name);
    snprintf(dst, sizeof(dst), NEWROOT "/%s", name);
    struct stat st;
    if (lstat(src, &st) < 0 || S_ISDIR(st.st_mode)) {
        /* What lstat cannot see is a host mount point kiln hides (proc, sys): a place to mount. */
        mkdir(dst, 0755);
        if (lstat(src, &st) == 0 && !scratch_dir(name) &&
            mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
            say("bind %s: %s", src, strerror(errno));
    } else if (S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(src, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            symlink(target, dst);
        }
    } else if (S_ISREG(st.st_mode)) {
        close(open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
        mount(src, dst, NULL, MS_BIND, NULL);
    }
}

/*
 * NEWROOT: a tmpfs holding the host's top-level entries, each directory bound read-only from the
 * 9p share of / (so new top-level names and scratch_dir()s are the guest's own). Not an overlay:
 * overlayfs holds on to every lower dentry it has seen, and with each one a kiln fid (an open
 * file on the host), so a guest walking a big tree would run the host out of files.
 */
static void mount_root(const char *tag)
{
    mkdir("/host", 0755);
    if (mount_share(tag, "/host", true) < 0)
        broken();
    must_mount("tmpfs", NEWROOT, "tmpfs", 0, "mode=0755");
    DIR *d = opendir("/host");
    if (!d) {
        say("reading the host's /: %s", strerror(errno));
        broken();
    }
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            add_top_entry(e->d_name);
    closedir(d);
}

/* mkdir -p: a share's mount point may be missing in the guest (under its fresh /tmp, say). */
static void mkdir_p(char *dir)
{
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0755);
            *p = '/';
        }
    mkdir(dir, 0755);
}

/* The other shares, each at the host path it came from: "tag\0path\0ro|rw\0" records. */
static void mount_extra_shares(void)
{
    size_t len;
    char *buf = slurp("/kiln/mounts", &len);
    char **v = buf ? split0(buf, len) : NULL;
    for (size_t i = 0; v && v[i] && v[i + 1] && v[i + 2]; i += 3) {
        char dir[4096];
        snprintf(dir, sizeof(dir), NEWROOT "%s", v[i + 1]);
        mkdir_p(dir);
        if (mount_share(v[i], dir, strcmp(v[i + 2], "ro") == 0) < 0)
            broken();
    }
    free(v);
    free(buf);
}

/*
 * The guest's own, empty and writable: /tmp, /run (the host's would mislead its programs:
 * sockets, pid files), /var/tmp and /var/log.
 */
static void mount_scratch(void)
{
    must_mount("tmpfs", NEWROOT "/tmp", "tmpfs", 0, "mode=1777");
    must_mount("tmpfs", NEWROOT "/run", "tmpfs", 0, "mode=0755");
    /* Inside the host's /var, so only where the host has them. */
    mount("tmpfs", NEWROOT "/var/tmp", "tmpfs", 0, "mode=1777");
    mount("tmpfs", NEWROOT "/var/log", "tmpfs", 0, "mode=0755");
}

/* Move /dev, /proc and /sys onto the new root and enter it. */
static void enter_root(void)
{
    must_mount("/dev", NEWROOT "/dev", NULL, MS_MOVE, NULL);
    must_mount("/proc", NEWROOT "/proc", NULL, MS_MOVE, NULL);
    must_mount("/sys", NEWROOT "/sys", NULL, MS_MOVE, NULL);
    mkdir(NEWROOT "/dev/pts", 0755);
    mount("devpts", NEWROOT "/dev/pts", "devpts", 0, "gid=5,mode=620,ptmxmode=666");
    mkdir(NEWROOT "/dev/shm", 01777);
    mount("tmpfs", NEWROOT "/dev/shm", "tmpfs", 0, "mode=1777");
    if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0) {
        say("entering the new root: %s", strerror(errno));
        broken();
    }
}

/* The console as the controlling terminal, so a shell has job control and Ctrl-C works. */
static void take_console(void)
{
    setsid();
    int fd = open("/dev/ttyS0", O_RDWR);
    if (fd < 0)
        return;
    ioctl(fd, TIOCSCTTY, 1);
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}

/* What to run, from the /kiln files (read before the initramfs is left behind). */
struct command {
    char **argv;
    char **env;
    char *cwd;
};

static void read_command(struct command *c)
{
    static char *shell[] = {"/bin/sh", "-i", NULL};
    size_t len, envlen;
    char *cmd = slurp("/kiln/cmd", &len), *env = slurp("/kiln/env", &envlen);
    c->argv = cmd && len ? split0(cmd, len) : shell;
    c->env = env ? split0(env, envlen) : NULL;
    c->cwd = slurp("/kiln/cwd", NULL);
}

/* Run the command (or an interactive shell) in the host's working directory; its status. */
static int run_command(const struct command *c)
{
    pid_t pid = fork();
    if (pid == 0) {
        take_console();
        if (!c->cwd || chdir(c->cwd) < 0)
            chdir("/");
        putenv("HOME=/root");
        putenv("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        for (size_t i = 0; c->env && c->env[i]; i++)
            putenv(c->env[i]);
        execvp(c->argv[0], c->argv);
        say("%s: %s", c->argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status = 0;
    /* PID 1 reaps every orphan; the command's own status is the one kept. */
    for (pid_t w; (w = wait(&status)) != pid;)
        if (w < 0 && errno != EINTR)
            broken();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void)
{
    must_mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    must_mount("proc", "/proc", "proc", 0, NULL);
    must_mount("sysfs", "/sys", "sysfs", 0, NULL);
    load_modules();
    char *root = slurp("/kiln/root", NULL);
    if (!root) {
        say("no /kiln/root in the initramfs");
        broken();
    }
    struct command cmd;
    read_command(&cmd);
    mount_root(root);
    mount_scratch();
    mount_extra_shares();
    enter_root();
    sethostname("kiln", 4);
    finish(run_command(&cmd));
}
