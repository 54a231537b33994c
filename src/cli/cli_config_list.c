/* cli_config_list.c: the config file's lists (disks, nets, ports, shares), through the flags'. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli_config.h"

/*
 * One member of a list entry and the field of the flag's value it stands for: a string becomes
 * prefix + value ("serial=ID"), a boolean the field on or off (NULL: none), an array of strings
 * (list) a field each. The flags' own field parsers then validate it.
 */
struct member_spec {
    const char *name;
    const char *prefix;
    const char *on, *off;
    bool list;
};

/* A flag's field parser on one field, for the entry being filled. */
typedef int (*field_fn)(char *field, void *entry, const char *orig, char *errmsg);

static int disk_field(char *field, void *entry, const char *orig, char *errmsg)
{
    return cli_disk_field(field, false, entry, orig, errmsg);
}

static int share_field(char *field, void *entry, const char *orig, char *errmsg)
{
    return cli_share_field(field, false, entry, orig, errmsg);
}

static int net_field(char *field, void *entry, const char *orig, char *errmsg)
{
    return cli_net_field(field, entry, orig, errmsg);
}

/* field (kept: the entry points into it) through fn; a refusal is reported at jpath. */
static int apply_field(struct cfg_ctx *c, const char *jpath, const char *flag, field_fn fn,
                       void *entry, char *field)
{
    char orig[KILN_ERRMSG_MAX];
    snprintf(orig, sizeof(orig), "%s", field); /* fn may split field in place */
    return fn(field, entry, orig, c->errmsg) < 0 ? cfg_rewrap(c, jpath, flag, orig) : 0;
}

/* One member (string, boolean, or array of strings) per spec into fields for fn. */
static int apply_member(struct cfg_ctx *c, const char *jpath, json_object *v,
                        const struct member_spec *s, const char *flag, field_fn fn, void *entry)
{
    char *field;
    if (s->on) {
        bool b;
        int ret = cfg_get_bool(c, jpath, v, &b);
        if (ret < 0)
            return ret;
        const char *text = b ? s->on : s->off;
        if (!text)
            return 0;
        char buf[32];
        snprintf(buf, sizeof(buf), "%s", text);
        return apply_field(c, jpath, flag, fn, entry, buf);
    }
    if (!s->list) {
        int ret = cfg_get_str(c, jpath, v, s->prefix, &field);
        return ret < 0 ? ret : apply_field(c, jpath, flag, fn, entry, field);
    }
    if (!json_object_is_type(v, json_type_array))
        return cfg_fail(c, jpath, "expected an array of strings");
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        char p[JPATH_MAX];
        snprintf(p, sizeof(p), "%s[%zu]", jpath, i);
        int ret = cfg_get_str(c, p, json_object_array_get_idx(v, i), s->prefix, &field);
        if (ret == 0)
            ret = apply_field(c, p, flag, fn, entry, field);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int apply_members(struct cfg_ctx *c, const char *jpath, json_object *e,
                         const struct member_spec *specs, size_t n, const char *flag, field_fn fn,
                         void *entry)
{
    for (size_t i = 0; i < n; i++) {
        json_object *v = cfg_member(e, specs[i].name);
        char p[JPATH_MAX];
        cfg_subpath(p, jpath, specs[i].name);
        int ret = v ? apply_member(c, p, v, &specs[i], flag, fn, entry) : 0;
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* The entry is an object of names only, with each of required (NULL-ended) present. */
static int check_entry(struct cfg_ctx *c, const char *jpath, json_object *e,
                       const char *const *names, size_t n, const char *const *required)
{
    int ret = cfg_check_object(c, jpath, e, names, n);
    for (; ret == 0 && *required; required++)
        if (!cfg_member(e, *required))
            ret = cfg_fail(c, jpath, "missing field \"%s\"", *required);
    return ret;
}

/* {"path": FILE, "ro": BOOL, "serial": ID, "format": "raw"|"qcow2"} */
static int load_disk(struct cfg_ctx *c, const char *jpath, json_object *e)
{
    static const struct member_spec specs[] = {
        {.name = "path", .prefix = "path="},
        {.name = "ro", .on = "ro"},
        {.name = "serial", .prefix = "serial="},
        {.name = "format", .prefix = "format="},
    };
    static const char *const names[] = {"path", "ro", "serial", "format"};
    static const char *const required[] = {"path", NULL};
    struct kiln_disk *d = &c->o->disks[c->o->ndisks];
    memset(d, 0, sizeof(*d));
    int ret = check_entry(c, jpath, e, names, ARRAY_SIZE(names), required);
    if (ret == 0)
        ret = apply_members(c, jpath, e, specs, ARRAY_SIZE(specs), "--disk", disk_field, d);
    char p[JPATH_MAX];
    cfg_subpath(p, jpath, "path");
    return ret < 0 ? ret : cfg_check_exists(c, p, d->path);
}

/* {"path": DIR, "tag": TAG, "ro": BOOL} */
static int load_share(struct cfg_ctx *c, const char *jpath, json_object *e)
{
    static const struct member_spec specs[] = {
        {.name = "path", .prefix = "path="},
        {.name = "tag", .prefix = "tag="},
        {.name = "ro", .on = "ro"},
    };
    static const char *const names[] = {"path", "tag", "ro"};
    static const char *const required[] = {"path", "tag", NULL};
    struct kiln_share *sh = &c->o->shares[c->o->nshares];
    memset(sh, 0, sizeof(*sh));
    int ret = check_entry(c, jpath, e, names, ARRAY_SIZE(names), required);
    if (ret == 0)
        ret = apply_members(c, jpath, e, specs, ARRAY_SIZE(specs), "--share", share_field, sh);
    char p[JPATH_MAX];
    cfg_subpath(p, jpath, sh->path && sh->path[0] ? "tag" : "path");
    if (ret == 0 && cli_share_check(sh, "", c->errmsg) < 0)
        ret = cfg_rewrap(c, p, "--share", "");
    cfg_subpath(p, jpath, "path");
    return ret < 0 ? ret : cfg_check_exists(c, p, sh->path);
}

/* "type" and "name" give the --net kind: "user", or "tap=NAME". */
static int net_kind(struct cfg_ctx *c, const char *jpath, json_object *e, struct kiln_net *n)
{
    char p[JPATH_MAX], *type, *kind;
    cfg_subpath(p, jpath, "type");
    int ret = cfg_get_str(c, p, cfg_member(e, "type"), "", &type);
    if (ret < 0)
        return ret;
    bool tap = strcmp(type, "tap") == 0;
    if (!tap && strcmp(type, "user") != 0)
        return cfg_fail(c, p, "expected \"user\" or \"tap\"");
    json_object *name = cfg_member(e, "name");
    cfg_subpath(p, jpath, "name");
    if (!tap && name)
        return cfg_fail(c, p, "only for \"type\": \"tap\"");
    if (tap && !name)
        return cfg_fail(c, jpath, "missing field \"name\" (the TAP interface)");
    char user[] = "user";
    ret = tap ? cfg_get_str(c, p, name, "tap=", &kind) : 0;
    if (ret == 0 && cli_net_kind(tap ? kind : user, n, tap ? kind : user, c->errmsg) < 0)
        ret = cfg_rewrap(c, p, "--net", tap ? kind : user);
    return ret;
}

/* {"type": "user", "hostfwd": [RULE...], "restrict": BOOL, "mac": MAC} or
 * {"type": "tap", "name": IFNAME, "mac": MAC} */
static int load_net(struct cfg_ctx *c, const char *jpath, json_object *e)
{
    static const struct member_spec specs[] = {
        {.name = "mac", .prefix = "mac="},
        {.name = "hostfwd", .prefix = "hostfwd=", .list = true},
        {.name = "restrict", .on = "restrict=on", .off = "restrict=off"},
    };
    static const char *const names[] = {"type", "name", "mac", "hostfwd", "restrict"};
    static const char *const required[] = {"type", NULL};
    struct kiln_net *n = &c->o->nets[c->o->nnets];
    memset(n, 0, sizeof(*n));
    int ret = check_entry(c, jpath, e, names, ARRAY_SIZE(names), required);
    if (ret == 0)
        ret = net_kind(c, jpath, e, n);
    return ret < 0 ? ret
                   : apply_members(c, jpath, e, specs, ARRAY_SIZE(specs), "--net", net_field, n);
}

/* {"name": NAME, "path": FILE} or {"name": NAME, "socket": PATH}: "NAME,path=FILE" for --port. */
static int load_port(struct cfg_ctx *c, const char *jpath, json_object *e)
{
    static const char *const names[] = {"name", "path", "socket"};
    static const char *const required[] = {"name", NULL};
    int ret = check_entry(c, jpath, e, names, ARRAY_SIZE(names), required);
    json_object *path = cfg_member(e, "path"), *sock = cfg_member(e, "socket");
    if (ret == 0 && !path == !sock)
        ret = cfg_fail(c, jpath, "expected one of \"path\" (a file) or \"socket\"");
    char p[JPATH_MAX], *name, *where;
    cfg_subpath(p, jpath, "name");
    if (ret == 0)
        ret = cfg_get_str(c, p, cfg_member(e, "name"), "", &name);
    if (ret == 0 && cli_port_name_check(name, name, c->errmsg) < 0)
        ret = cfg_rewrap(c, p, "--port", name);
    cfg_subpath(p, jpath, path ? "path" : "socket");
    if (ret == 0)
        ret = cfg_get_str(c, p, path ? path : sock, "", &where);
    if (ret < 0)
        return ret;
    size_t len = strlen(name) + strlen(where) + 10;
    char *value = cfg_own_alloc(c->o, len), orig[KILN_ERRMSG_MAX];
    if (!value)
        return cfg_fail(c, p, "%s", strerror(ENOMEM));
    snprintf(value, len, "%s,%s=%s", name, path ? "path" : "socket", where);
    snprintf(orig, sizeof(orig), "%s", value);
    if (parse_vport(value, &c->o->ports[c->o->nports], c->errmsg) < 0)
        return cfg_rewrap(c, p, "--port", orig);
    return 0;
}

int cfg_load_list(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    static const struct {
        const char *flag;
        int (*load)(struct cfg_ctx *c, const char *jpath, json_object *e);
    } kinds[] = {
        {"--disk", load_disk},
        {"--net", load_net},
        {"--port", load_port},
        {"--share", load_share},
    };
    size_t k = 0;
    while (strcmp(kinds[k].flag, flag) != 0)
        k++;
    if (!json_object_is_type(v, json_type_array))
        return cfg_fail(c, jpath, "expected an array [ ... ]");
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        char p[JPATH_MAX];
        snprintf(p, sizeof(p), "%s[%zu]", jpath, i);
        if (cli_list_room(flag, c->o, c->errmsg) < 0)
            return cfg_rewrap(c, p, flag, "");
        int ret = kinds[k].load(c, p, json_object_array_get_idx(v, i));
        if (ret < 0)
            return ret;
        /* A port's name given twice: the message names it, as the flag's does. */
        const char *name = k == 2 ? c->o->ports[c->o->nports].name : "";
        if (cli_list_commit(flag, c->o, c->errmsg) < 0)
            return cfg_rewrap(c, p, flag, name);
    }
    return 0;
}
