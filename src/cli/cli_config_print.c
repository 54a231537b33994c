/* cli_config_print.c: options as the JSON config file that gives them back (kiln config --print).
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void add(json_object *obj, const char *key, json_object *v)
{
    json_object_object_add(obj, key, v);
}

static void add_str(json_object *obj, const char *key, const char *s)
{
    add(obj, key, json_object_new_string(s));
}

static void add_bool(json_object *obj, const char *key, bool b)
{
    add(obj, key, json_object_new_boolean(b));
}

/* "512M" when a whole number of the unit, else bytes: what --memory accepts. */
static json_object *size_json(uint64_t v)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        unsigned shift = 30 - 10 * (unsigned)i;
        if (v && v % (1ULL << shift) == 0) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%" PRIu64 "%c", v >> shift, units[i]);
            return json_object_new_string(buf);
        }
    }
    return json_object_new_uint64(v);
}

/* Seconds: whole, or with the milliseconds written exactly ("2.5", not 2.50000000000001). */
static json_object *seconds_json(uint64_t ms)
{
    if (ms % 1000 == 0)
        return json_object_new_uint64(ms / 1000);
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64 ".%03u", ms / 1000, (unsigned)(ms % 1000));
    for (size_t n = strlen(buf); buf[n - 1] == '0'; n--)
        buf[n - 1] = '\0';
    return json_object_new_double_s((double)ms / 1000.0, buf);
}

static json_object *disk_json(const struct kiln_disk *d)
{
    json_object *o = json_object_new_object();
    add_str(o, "path", d->path);
    add_bool(o, "ro", d->read_only);
    if (d->serial)
        add_str(o, "serial", d->serial);
    if (d->format != KILN_DISK_AUTO)
        add_str(o, "format", d->format == KILN_DISK_QCOW2 ? "qcow2" : "raw");
    return o;
}

/* A hostfwd rule in the syntax --net takes: "tcp:127.0.0.1:8080-:80". */
static json_object *hostfwd_json(const struct kiln_hostfwd *h)
{
    char buf[96];
    snprintf(buf, sizeof(buf), "%s:%s:%u-%s:%u", h->udp ? "udp" : "tcp",
             h->host_addr ? h->host_addr : "", h->host_port, h->guest_addr ? h->guest_addr : "",
             h->guest_port);
    return json_object_new_string(buf);
}

static json_object *net_json(const struct kiln_net *n)
{
    json_object *o = json_object_new_object();
    bool user = n->kind == KILN_NET_USER;
    add_str(o, "type", user ? "user" : "tap");
    if (!user)
        add_str(o, "name", n->tap_name);
    if (n->mac_set) {
        char mac[18];
        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1], n->mac[2],
                 n->mac[3], n->mac[4], n->mac[5]);
        add_str(o, "mac", mac);
    }
    if (!user)
        return o;
    json_object *fwd = json_object_new_array();
    for (unsigned i = 0; i < n->nhostfwd; i++)
        json_object_array_add(fwd, hostfwd_json(&n->hostfwd[i]));
    add(o, "hostfwd", fwd);
    add_bool(o, "restrict", n->restricted);
    return o;
}

static json_object *port_json(const struct kiln_port *p)
{
    json_object *o = json_object_new_object();
    add_str(o, "name", p->name);
    add_str(o, p->kind == KILN_PORT_SOCKET ? "socket" : "path", p->path);
    return o;
}

static json_object *share_json(const struct kiln_share *s)
{
    json_object *o = json_object_new_object();
    add_str(o, "path", s->path);
    add_str(o, "tag", s->tag);
    add_bool(o, "ro", s->read_only);
    return o;
}

/* The four lists, each always present (an empty one says "none" plainly). */
static void add_lists(json_object *root, const struct cli_options *o)
{
    json_object *disks = json_object_new_array(), *nets = json_object_new_array();
    json_object *ports = json_object_new_array(), *shares = json_object_new_array();
    for (unsigned i = 0; i < o->ndisks; i++)
        json_object_array_add(disks, disk_json(&o->disks[i]));
    for (unsigned i = 0; i < o->nnets; i++)
        json_object_array_add(nets, net_json(&o->nets[i]));
    for (unsigned i = 0; i < o->nports; i++)
        json_object_array_add(ports, port_json(&o->ports[i]));
    for (unsigned i = 0; i < o->nshares; i++)
        json_object_array_add(shares, share_json(&o->shares[i]));
    add(root, "disks", disks);
    add(root, "nets", nets);
    add(root, "ports", ports);
    add(root, "shares", shares);
}

static json_object *serial_json(const struct cli_options *o)
{
    if (o->serial == CLI_SERIAL_STDIO)
        return json_object_new_string("stdio");
    if (o->serial == CLI_SERIAL_NONE)
        return json_object_new_string("none");
    json_object *s = json_object_new_object();
    add_str(s, "file", o->serial_path);
    return s;
}

/* What boots: the kernel (with initrd and cmdline if given) or the firmware. */
static void add_boot(json_object *root, const struct cli_options *o)
{
    if (o->restore) { /* a snapshot: nothing boots */
        add_str(root, "restore", o->restore);
        return;
    }
    if (!o->kernel) {
        add_str(root, "firmware", o->firmware ? o->firmware : KILN_DEFAULT_FIRMWARE);
        return;
    }
    add_str(root, "kernel", o->kernel);
    if (o->initrd)
        add_str(root, "initrd", o->initrd);
    /* Only when given: --rootfs-host has its own default command line. */
    if (o->cmdline_given)
        add_str(root, "cmdline", o->cmdline);
}

static void add_command(json_object *root, const struct cli_options *o)
{
    if (o->ncommand <= 0)
        return;
    json_object *argv = json_object_new_array();
    for (int i = 0; i < o->ncommand; i++)
        json_object_array_add(argv, json_object_new_string(o->command_argv[i]));
    add(root, "command", argv);
}

char *cli_config_print(const struct cli_options *o)
{
    json_object *root = json_object_new_object();
    if (!root)
        return NULL;
    add_boot(root, o);
    add(root, "cpus", json_object_new_int((int)o->cpus));
    add(root, "memory", size_json(o->memory));
    add(root, "serial", serial_json(o));
    if (o->timeout_ms)
        add(root, "timeout", seconds_json(o->timeout_ms));
    add_lists(root, o);
    add_str(root, "transport", o->transport == KILN_TRANSPORT_MMIO ? "mmio" : "pci");
    add_str(root, "seccomp", o->seccomp == KILN_SECCOMP_OFF ? "off" : "on");
    if (o->debug_exit_size) {
        json_object *d = json_object_new_object();
        add(d, "iobase", json_object_new_int(o->debug_exit_port));
        add(d, "iosize", json_object_new_int(o->debug_exit_size));
        add(root, "debug_exit", d);
    }
    if (o->vsock.uds_path) {
        json_object *d = json_object_new_object();
        add(d, "cid", json_object_new_int64((int64_t)o->vsock.cid));
        add_str(d, "socket", o->vsock.uds_path);
        add(root, "vsock", d);
    }
    if (o->api_socket) {
        add_str(root, "api_socket", o->api_socket);
        add(root, "stop_timeout", seconds_json(o->stop_timeout_ms));
    }
    if (o->snapshot_dir)
        add_str(root, "snapshot_dir", o->snapshot_dir);
    add_bool(root, "no_reboot", o->no_reboot);
    add_bool(root, "stats", o->stats);
    add_bool(root, "rootfs_host", o->rootfs_host);
    add_command(root, o);
    const char *s = json_object_to_json_string_ext(
        root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    char *out = s ? strdup(s) : NULL;
    json_object_put(root);
    return out;
}
