/* vm_api.c: the API socket's commands on a running VM: info, pause, resume, stop, kill, stats,
 * snapshot. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api_proto.h"

static void add_str(struct json_object *o, const char *key, const char *v)
{
    json_object_object_add(o, key, v ? json_object_new_string(v) : NULL);
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
    json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_bool(struct json_object *o, const char *key, bool v)
{
    json_object_object_add(o, key, json_object_new_boolean(v));
}

/* Seconds with millisecond precision, written as such (not 0.50640235899999997). */
static void add_seconds(struct json_object *o, const char *key, uint64_t ms)
{
    char s[32];
    snprintf(s, sizeof(s), "%llu.%03u", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
    json_object_object_add(o, key, json_object_new_double_s((double)ms / 1000, s));
}

static const char *const state_names[] = {"created", "running", "paused", "stopping", "ended"};
static const char *const format_names[] = {"auto", "raw", "qcow2"};

static struct json_object *disks_json(const struct kiln_config *c)
{
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < c->ndisks; i++) {
        struct json_object *d = json_object_new_object();
        add_str(d, "path", c->disks[i].path);
        add_bool(d, "read_only", c->disks[i].read_only);
        add_str(d, "serial", c->disks[i].serial);
        add_str(d, "format", format_names[c->disks[i].format % 3]);
        json_object_array_add(a, d);
    }
    return a;
}

static struct json_object *nets_json(const struct kiln_config *c)
{
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < c->nnets; i++) {
        const struct kiln_net *n = &c->nets[i];
        struct json_object *d = json_object_new_object();
        add_str(d, "kind", n->kind == KILN_NET_TAP ? "tap" : "user");
        if (n->kind == KILN_NET_TAP)
            add_str(d, "tap", n->tap_name);
        else
            add_bool(d, "restricted", n->restricted);
        if (n->mac_set) {
            char mac[18];
            snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
                     n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
            add_str(d, "mac", mac);
        }
        add_u64(d, "hostfwd", n->nhostfwd);
        json_object_array_add(a, d);
    }
    return a;
}

static struct json_object *ports_shares_json(const struct kiln_config *c, bool ports)
{
    struct json_object *a = json_object_new_array();
    for (unsigned i = 0; i < (ports ? c->nports : c->nshares); i++) {
        struct json_object *d = json_object_new_object();
        if (ports) {
            add_str(d, "name", c->ports[i].name);
            add_str(d, "kind", c->ports[i].kind == KILN_PORT_SOCKET ? "socket" : "file");
            add_str(d, "path", c->ports[i].path);
        } else {
            add_str(d, "path", c->shares[i].path);
            add_str(d, "tag", c->shares[i].tag);
            add_bool(d, "read_only", c->shares[i].read_only);
        }
        json_object_array_add(a, d);
    }
    return a;
}

static struct json_object *config_json(const struct kiln_config *c)
{
    struct json_object *o = json_object_new_object();
    add_str(o, "kernel", c->kernel_path);
    add_str(o, "firmware", c->firmware_path);
    add_str(o, "initrd", c->initrd_path);
    add_str(o, "cmdline", c->kernel_path ? c->cmdline : NULL);
    add_u64(o, "cpus", c->cpus);
    add_u64(o, "memory_bytes", c->memory_bytes);
    json_object_object_add(o, "disks", disks_json(c));
    json_object_object_add(o, "nets", nets_json(c));
    json_object_object_add(o, "ports", ports_shares_json(c, true));
    json_object_object_add(o, "shares", ports_shares_json(c, false));
    add_str(o, "transport", c->transport == KILN_TRANSPORT_MMIO ? "mmio" : "pci");
    add_str(o, "seccomp",
            c->seccomp == KILN_SECCOMP_OFF   ? "off"
            : c->seccomp == KILN_SECCOMP_ALL ? "all"
                                             : "threads");
    add_u64(o, "timeout_ms", c->timeout_ms);
    add_u64(o, "stop_timeout_ms", c->stop_timeout_ms);
    return o;
}

static int cmd_info(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    (void)fds;
    struct kiln_vm *vm = ctx;
    (void)req;
    (void)err;
    struct kiln_vm_info info;
    kiln_vm_info(vm, &info);
    add_str(reply, "state", state_names[info.state % 5]);
    add_seconds(reply, "uptime_s", info.uptime_ns / 1000000);
    add_u64(reply, "power_button_presses", info.power_button_presses);
    json_object_object_add(reply, "config", config_json(kiln_vm_config(vm)));
    return 0;
}

static int cmd_pause(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                     char *err)
{
    (void)fds;
    (void)req;
    (void)reply;
    if (kiln_vm_pause(ctx) == 0)
        return 0;
    snprintf(err, API_ERR_MAX, "pause: the VM is not running");
    return -1;
}

static int cmd_resume(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                      char *err)
{
    (void)fds;
    (void)req;
    (void)reply;
    if (kiln_vm_resume(ctx) == 0)
        return 0;
    snprintf(err, API_ERR_MAX, "resume: the VM is not paused");
    return -1;
}

/* {"cmd":"stop"[,"timeout":SECONDS]}: the power button, then a hard stop after the timeout. */
static int cmd_stop(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    (void)fds;
    struct kiln_vm *vm = ctx;
    uint64_t ms = vm->cfg.stop_timeout_ms ? vm->cfg.stop_timeout_ms : KILN_DEFAULT_STOP_TIMEOUT_MS;
    struct json_object *t;
    if (json_object_object_get_ex(req, "timeout", &t)) {
        double s = json_object_get_double(t);
        bool number =
            json_object_is_type(t, json_type_double) || json_object_is_type(t, json_type_int);
        if (!number || !(s >= 0 && s <= 365.0 * 24 * 3600)) {
            snprintf(err, API_ERR_MAX,
                     "stop: \"timeout\" must be a number of seconds, 0 to a year");
            return -1;
        }
        ms = (uint64_t)(s * 1000);
    }
    if (kiln_vm_shutdown(vm, ms) < 0) {
        snprintf(err, API_ERR_MAX, "stop: the VM has ended");
        return -1;
    }
    add_seconds(reply, "timeout_s", ms);
    return 0;
}

static int cmd_kill(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                    char *err)
{
    (void)fds;
    (void)req;
    (void)reply;
    (void)err;
    vm_finish(ctx, KILN_EXIT_STOPPED, KILN_STOP_KILLED, 0, "killed through the API socket");
    return 0;
}

/* Resident memory of the whole process, from /proc/self/statm (0 if unknown). */
static uint64_t rss_bytes(const struct kiln_vm *vm)
{
    char buf[128];
    ssize_t n = vm->statm_fd >= 0 ? pread(vm->statm_fd, buf, sizeof(buf) - 1, 0) : -1;
    unsigned long long size, resident;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int cmd_stats(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
                     char *err)
{
    (void)fds;
    struct kiln_vm *vm = ctx;
    (void)req;
    (void)err;
    struct kiln_stats st;
    kiln_vm_stats(vm, &st);
    struct json_object *exits = json_object_new_object();
    add_u64(exits, "total", st.vcpu_exits);
    add_u64(exits, "io", st.exits_io);
    add_u64(exits, "mmio", st.exits_mmio);
    add_u64(exits, "intr", st.exits_intr);
    add_u64(exits, "other", st.exits_other);
    json_object_object_add(reply, "exits", exits);
    struct json_object *net = json_object_new_object();
    add_u64(net, "rx_frames", st.net_rx_frames);
    add_u64(net, "tx_frames", st.net_tx_frames);
    add_u64(net, "rx_dropped", st.net_rx_dropped);
    add_u64(net, "tx_dropped", st.net_tx_dropped);
    json_object_object_add(reply, "net", net);
    add_u64(reply, "guest_resident_bytes", st.guest_resident_bytes);
    add_u64(reply, "rss_bytes", rss_bytes(vm));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    add_u64(reply, "max_rss_bytes", (uint64_t)ru.ru_maxrss * 1024);
    return 0;
}

/* Pause a running VM for a snapshot into state_fd and memory_fd (named dir in messages). */
static int snapshot_into(struct kiln_vm *vm, int state_fd, int memory_fd, const char *dir,
                         struct json_object *reply, char *err)
{
    struct kiln_vm_info info;
    kiln_vm_info(vm, &info);
    bool pause_here = info.state == KILN_VM_RUNNING;
    if ((!pause_here && info.state != KILN_VM_PAUSED) || (pause_here && kiln_vm_pause(vm) < 0)) {
        snprintf(err, API_ERR_MAX, "snapshot: the VM is not running");
        return -1;
    }
    char msg[KILN_ERRMSG_MAX];
    int ret = vm_snapshot_fds(vm, state_fd, memory_fd, dir, msg);
    if (pause_here)
        kiln_vm_resume(vm);
    if (ret < 0) {
        snprintf(err, API_ERR_MAX, "%s", msg);
        return -1;
    }
    json_object_object_add(reply, "resumed", json_object_new_boolean(pause_here));
    return 0;
}

/*
 * {"cmd":"snapshot","fds":2}: the whole VM into the two files sent with the request (state,
 * memory: the client opened them; kiln ctl renames them into place after the reply). Without
 * "fds", into the files of kiln run's --snapshot-dir. Paused for the time it takes, unless it
 * was paused already. A request cannot name a path: the confined loop could not open it.
 */
static int cmd_snapshot(void *ctx, struct json_object *req, const int *fds,
                        struct json_object *reply, char *err)
{
    struct kiln_vm *vm = ctx;
    if (json_object_object_get_ex(req, "path", NULL)) {
        snprintf(err, API_ERR_MAX,
                 "snapshot: a request names no path; it sends the state and memory files "
                 "(\"fds\":2, as kiln ctl SOCKET snapshot DIR does)");
        return -1;
    }
    if (fds)
        return snapshot_into(vm, fds[0], fds[1], "(the request's files)", reply, err);
    if (vm->cfg.snapshot_state_fd < 0 || vm->cfg.snapshot_memory_fd < 0) {
        snprintf(err, API_ERR_MAX,
                 "snapshot: this VM has no snapshot directory (--snapshot-dir); send the files "
                 "with the request (kiln ctl SOCKET snapshot DIR)");
        return -1;
    }
    /* A kiln ctl snapshot into the same directory renames new files over these: writing the
     * old ones then would be lost without a word. */
    struct stat a, b;
    if (fstat(vm->cfg.snapshot_state_fd, &a) < 0 || fstat(vm->cfg.snapshot_memory_fd, &b) < 0 ||
        a.st_nlink == 0 || b.st_nlink == 0) {
        snprintf(err, API_ERR_MAX,
                 "snapshot: --snapshot-dir's files were replaced or removed since kiln started; "
                 "send the files with the request (kiln ctl SOCKET snapshot DIR)");
        return -1;
    }
    return snapshot_into(vm, vm->cfg.snapshot_state_fd, vm->cfg.snapshot_memory_fd,
                         "--snapshot-dir", reply, err);
}

/* Every command of the protocol: a new one is a handler and a line here. */
static const struct api_command commands[] = {
    {"info", cmd_info, 0},         {"pause", cmd_pause, 0}, {"resume", cmd_resume, 0},
    {"stop", cmd_stop, 0},         {"kill", cmd_kill, 0},   {"stats", cmd_stats, 0},
    {"snapshot", cmd_snapshot, 2}, /* state, memory */
};

int vm_api_start(struct kiln_vm *vm)
{
    if (vm->cfg.api_fd < 0)
        return 0;
    /* Opened now: the loop thread's filter allows no open once the VM runs. */
    if (vm->statm_fd < 0)
        vm->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    return api_server_start(&vm->loop, vm->cfg.api_fd, commands, ARRAY_SIZE(commands), vm, &vm->log,
                            &vm->api);
}

void vm_api_stop(struct kiln_vm *vm)
{
    api_server_stop(vm->api);
}
