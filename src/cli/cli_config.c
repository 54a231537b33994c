/* cli_config.c: --config FILE, a JSON description of a run, into struct cli_options (loading). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_config.h"
#include "util.h"

/* A file larger than this is not the description of one VM. */
#define CONFIG_MAX_BYTES (1 << 20)

/* One allocation the options own: a string copied out of the JSON tree, or an argv array. */
struct cli_owned {
    struct cli_owned *next;
    max_align_t data[];
};

void cli_options_free(struct cli_options *o)
{
    while (o->owned) {
        struct cli_owned *n = o->owned;
        o->owned = n->next;
        free(n);
    }
}

void *cfg_own_alloc(struct cli_options *o, size_t n)
{
    struct cli_owned *b = malloc(sizeof(*b) + n);
    if (!b)
        return NULL;
    b->next = o->owned;
    o->owned = b;
    return b->data;
}

int cfg_fail(struct cfg_ctx *c, const char *jpath, const char *fmt, ...)
{
    char why[KILN_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    kiln_fail(c->errmsg, EINVAL, "%s: %s: %s", c->file, jpath, why);
    /* Keys and values from the file may hold any character: the message stays one line. */
    for (char *p = c->errmsg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -EINVAL;
}

/*
 * The reason in a flag parser's message "--flag 'VALUE': why", "--flag VALUE: why" or
 * "--flag: why"; the whole message if it has another shape. The JSON path replaces the prefix.
 */
static const char *flag_reason(const char *msg, const char *flag, const char *value)
{
    size_t n = strlen(flag), v = strlen(value);
    if (strncmp(msg, flag, n) != 0)
        return msg;
    const char *p = msg + n;
    if (*p == ' ') {
        p++;
        if (*p == '\'' && strncmp(p + 1, value, v) == 0 && p[1 + v] == '\'')
            p += v + 2;
        else if (strncmp(p, value, v) == 0)
            p += v;
        else
            return msg;
    }
    return strncmp(p, ": ", 2) == 0 ? p + 2 : msg;
}

/* A flag parser refused value (its message is in errmsg): say so at jpath instead. */
int cfg_rewrap(struct cfg_ctx *c, const char *jpath, const char *flag, const char *value)
{
    char msg[KILN_ERRMSG_MAX];
    snprintf(msg, sizeof(msg), "%s", c->errmsg);
    return cfg_fail(c, jpath, "%s", flag_reason(msg, flag, value));
}

/* v's cfg_member name, or NULL when it is absent or null (null means "not given"). */
json_object *cfg_member(json_object *v, const char *name)
{
    json_object *m;
    return json_object_object_get_ex(v, name, &m) ? m : NULL;
}

void cfg_subpath(char *out, const char *jpath, const char *name)
{
    snprintf(out, JPATH_MAX, "%s.%s", jpath, name);
}

/* An object whose members are all among names (an unknown one is a typo, not to be ignored). */
int cfg_check_object(struct cfg_ctx *c, const char *jpath, json_object *v, const char *const *names,
                     size_t n)
{
    if (!json_object_is_type(v, json_type_object))
        return cfg_fail(c, jpath, "expected an object { ... }");
    json_object_object_foreach(v, key, val)
    {
        (void)val;
        size_t i = 0;
        while (i < n && strcmp(key, names[i]) != 0)
            i++;
        if (i == n) {
            char p[JPATH_MAX];
            cfg_subpath(p, jpath, key);
            return cfg_fail(c, p, "unknown field");
        }
    }
    return 0;
}

/* A JSON string, copied after prefix into storage o owns. */
int cfg_get_str(struct cfg_ctx *c, const char *jpath, json_object *v, const char *prefix,
                char **out)
{
    if (!json_object_is_type(v, json_type_string))
        return cfg_fail(c, jpath, "expected a string");
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v), np = strlen(prefix);
    if (memchr(s, '\0', n))
        return cfg_fail(c, jpath, "contains a NUL character");
    char *copy = cfg_own_alloc(c->o, np + n + 1);
    if (!copy)
        return cfg_fail(c, jpath, "%s", strerror(ENOMEM));
    memcpy(copy, prefix, np);
    memcpy(copy + np, s, n + 1);
    *out = copy;
    return 0;
}

/* Text copied into storage o owns. */
static int own_text(struct cfg_ctx *c, const char *jpath, const char *text, char **out)
{
    size_t n = strlen(text) + 1;
    *out = cfg_own_alloc(c->o, n);
    if (!*out)
        return cfg_fail(c, jpath, "%s", strerror(ENOMEM));
    memcpy(*out, text, n);
    return 0;
}

int cfg_get_bool(struct cfg_ctx *c, const char *jpath, json_object *v, bool *out)
{
    if (!json_object_is_type(v, json_type_boolean))
        return cfg_fail(c, jpath, "expected true or false");
    *out = json_object_get_boolean(v);
    return 0;
}

/* A JSON integer as decimal text, for the flag parsers (which refuse a minus sign themselves). */
static void int_text(json_object *v, char *buf, size_t n)
{
    int64_t i = json_object_get_int64(v);
    if (i < 0)
        snprintf(buf, n, "%" PRId64, i);
    else
        snprintf(buf, n, "%" PRIu64, json_object_get_uint64(v));
}

/* A path the file names must exist now, so that the message can name the field. */
int cfg_check_exists(struct cfg_ctx *c, const char *jpath, const char *file)
{
    struct stat st;
    if (stat(file, &st) < 0)
        return cfg_fail(c, jpath, "%s: %s", file, strerror(errno));
    return 0;
}

/* Apply text (copied) as the value of flag, as the command line would. */
static int apply(struct cfg_ctx *c, const char *jpath, const char *flag, const char *text)
{
    char *value;
    int ret = own_text(c, jpath, text, &value);
    if (ret == 0 && cli_apply_option(flag, value, c->host_ram, c->o, c->errmsg) < 0)
        ret = cfg_rewrap(c, jpath, flag, text);
    return ret;
}

/* A string field that is a flag's value: kernel, cmdline, transport, ... */
static int load_string(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    char *s;
    int ret = cfg_get_str(c, jpath, v, "", &s);
    return ret < 0 ? ret : apply(c, jpath, flag, s);
}

/* kernel, firmware, initrd: also the file must exist. */
static int load_file(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    char *s;
    int ret = cfg_get_str(c, jpath, v, "", &s);
    if (ret == 0)
        ret = apply(c, jpath, flag, s);
    return ret < 0 ? ret : cfg_check_exists(c, jpath, s);
}

static int load_cpus(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    char text[32];
    if (!json_object_is_type(v, json_type_int))
        return cfg_fail(c, jpath, "expected a whole number");
    int_text(v, text, sizeof(text));
    return apply(c, jpath, flag, text);
}

static int load_memory(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    char text[32];
    if (json_object_is_type(v, json_type_string))
        return load_string(c, jpath, v, flag);
    if (!json_object_is_type(v, json_type_int))
        return cfg_fail(c, jpath, "expected a size: a number of bytes, or a string like \"512M\"");
    int_text(v, text, sizeof(text));
    return apply(c, jpath, flag, text);
}

/* Seconds: an integer, or a number with decimals (milliseconds count, as on the command line). */
static int load_timeout(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    char text[64];
    if (json_object_is_type(v, json_type_int))
        int_text(v, text, sizeof(text));
    else if (json_object_is_type(v, json_type_double))
        snprintf(text, sizeof(text), "%.3f", json_object_get_double(v));
    else
        return cfg_fail(c, jpath, "expected a number of seconds");
    return apply(c, jpath, flag, text);
}

/* "stdio", "none", or {"file": PATH}. */
static int load_serial(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    static const char *const names[] = {"file"};
    if (json_object_is_type(v, json_type_string))
        return load_string(c, jpath, v, flag);
    if (!json_object_is_type(v, json_type_object))
        return cfg_fail(c, jpath, "expected \"stdio\", \"none\" or {\"file\": PATH}");
    int ret = cfg_check_object(c, jpath, v, names, ARRAY_SIZE(names));
    json_object *file = cfg_member(v, "file");
    if (ret == 0 && !file)
        ret = cfg_fail(c, jpath, "expected \"stdio\", \"none\" or {\"file\": PATH}");
    char p[JPATH_MAX], *s;
    cfg_subpath(p, jpath, "file");
    if (ret == 0)
        ret = cfg_get_str(c, p, file, "file=", &s);
    if (ret == 0 && !s[5])
        ret = cfg_fail(c, p, "empty path");
    return ret < 0 ? ret : apply(c, p, flag, s);
}

/* {"iobase": PORT, "iosize": 1|2|4}: iobase required, iosize QEMU's default 2. */
static int load_debug_exit(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    static const char *const names[] = {"iobase", "iosize"};
    int ret = cfg_check_object(c, jpath, v, names, ARRAY_SIZE(names));
    if (ret < 0)
        return ret;
    char text[80] = "", num[32];
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        json_object *m = cfg_member(v, names[i]);
        char p[JPATH_MAX];
        cfg_subpath(p, jpath, names[i]);
        if (!m && i == 0)
            return cfg_fail(c, jpath, "missing field \"iobase\"");
        if (!m)
            continue;
        if (!json_object_is_type(m, json_type_int))
            return cfg_fail(c, p, "expected a whole number");
        int_text(m, num, sizeof(num));
        size_t len = strlen(text);
        snprintf(text + len, sizeof(text) - len, "%s%s=%s", i ? "," : "", names[i], num);
    }
    return apply(c, jpath, flag, text);
}

static int load_switch(struct cfg_ctx *c, const char *jpath, json_object *v, const char *field)
{
    bool *dst = strcmp(field, "no_reboot") == 0 ? &c->o->no_reboot
                : strcmp(field, "stats") == 0   ? &c->o->stats
                                                : &c->o->rootfs_host;
    return cfg_get_bool(c, jpath, v, dst);
}

/* {"cid": N, "socket": PATH}: both required. */
static int load_vsock(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag)
{
    static const char *const names[] = {"cid", "socket"};
    int ret = cfg_check_object(c, jpath, v, names, ARRAY_SIZE(names));
    json_object *cid = cfg_member(v, "cid"), *sock = cfg_member(v, "socket");
    if (ret == 0 && (!cid || !sock))
        ret = cfg_fail(c, jpath, "missing field \"%s\"", cid ? "socket" : "cid");
    char p[JPATH_MAX], num[32], *path;
    cfg_subpath(p, jpath, "cid");
    if (ret == 0 && !json_object_is_type(cid, json_type_int))
        ret = cfg_fail(c, p, "expected a whole number");
    cfg_subpath(p, jpath, "socket");
    if (ret == 0)
        ret = cfg_get_str(c, p, sock, "", &path);
    if (ret < 0)
        return ret;
    int_text(cid, num, sizeof(num));
    size_t len = strlen(num) + strlen(path) + sizeof("cid=,socket=");
    char *text = malloc(len);
    if (!text)
        return cfg_fail(c, jpath, "%s", strerror(ENOMEM));
    snprintf(text, len, "cid=%s,socket=%s", num, path);
    ret = apply(c, jpath, flag, text);
    free(text);
    return ret;
}

/* The command --rootfs-host runs: an argv array (empty: a shell, as with no command). */
static int load_command(struct cfg_ctx *c, const char *jpath, json_object *v, const char *unused)
{
    (void)unused;
    if (!json_object_is_type(v, json_type_array))
        return cfg_fail(c, jpath, "expected an array of strings");
    size_t n = json_object_array_length(v);
    if (n == 0)
        return 0;
    char **argv = cfg_own_alloc(c->o, (n + 1) * sizeof(*argv));
    if (!argv)
        return cfg_fail(c, jpath, "%s", strerror(ENOMEM));
    for (size_t i = 0; i < n; i++) {
        char p[JPATH_MAX];
        snprintf(p, sizeof(p), "%s[%zu]", jpath, i);
        int ret = cfg_get_str(c, p, json_object_array_get_idx(v, i), "", &argv[i]);
        if (ret < 0)
            return ret;
    }
    argv[n] = NULL;
    c->o->command_argv = argv;
    c->o->ncommand = (int)n;
    return 0;
}

/* The top-level fields, in the order they are applied; each with its flag (or its own name). */
static const struct {
    const char *name;
    int (*load)(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag);
    const char *flag;
} root_fields[] = {
    {"kernel", load_file, "--kernel"},
    {"firmware", load_file, "--firmware"},
    {"initrd", load_file, "--initrd"},
    {"restore", load_file, "--restore"},
    {"cmdline", load_string, "--cmdline"},
    {"cpus", load_cpus, "--cpus"},
    {"memory", load_memory, "--memory"},
    {"serial", load_serial, "--serial"},
    {"timeout", load_timeout, "--timeout"},
    {"disks", cfg_load_list, "--disk"},
    {"nets", cfg_load_list, "--net"},
    {"ports", cfg_load_list, "--port"},
    {"shares", cfg_load_list, "--share"},
    {"transport", load_string, "--transport"},
    {"seccomp", load_string, "--seccomp"},
    {"debug_exit", load_debug_exit, "--debug-exit"},
    {"vsock", load_vsock, "--vsock"},
    {"no_reboot", load_switch, "no_reboot"},
    {"stats", load_switch, "stats"},
    {"rootfs_host", load_switch, "rootfs_host"},
    {"api_socket", load_string, "--api-socket"},
    {"stop_timeout", load_timeout, "--stop-timeout"},
    {"snapshot_dir", load_string, "--snapshot-dir"},
    {"command", load_command, NULL},
};

static int load_root(struct cfg_ctx *c, json_object *root)
{
    const char *names[ARRAY_SIZE(root_fields)];
    for (size_t i = 0; i < ARRAY_SIZE(root_fields); i++)
        names[i] = root_fields[i].name;
    int ret = cfg_check_object(c, "", root, names, ARRAY_SIZE(names));
    for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(root_fields); i++) {
        json_object *v = cfg_member(root, root_fields[i].name);
        char p[JPATH_MAX];
        cfg_subpath(p, "", root_fields[i].name);
        if (v)
            ret = root_fields[i].load(c, p, v, root_fields[i].flag);
    }
    return ret;
}

/* The whole file, refused when it is not a regular file or too large to be a config. */
static int read_config(struct cfg_ctx *c, char **text, size_t *len)
{
    /* O_NONBLOCK: a FIFO without a writer must not hang kiln here (it is refused below). */
    int fd = open(c->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return kiln_fail(c->errmsg, EINVAL, "%s: %s", c->file, strerror(err));
    }
    int ret = 0;
    if (S_ISDIR(st.st_mode))
        ret = kiln_fail(c->errmsg, EINVAL, "%s: %s", c->file, strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        ret = kiln_fail(c->errmsg, EINVAL, "%s: not a regular file", c->file);
    *text = ret == 0 ? malloc(CONFIG_MAX_BYTES + 1) : NULL;
    if (ret == 0 && !*text)
        ret = kiln_fail(c->errmsg, EINVAL, "%s: %s", c->file, strerror(ENOMEM));
    *len = 0;
    while (ret == 0 && *len <= CONFIG_MAX_BYTES) {
        ssize_t n = read(fd, *text + *len, CONFIG_MAX_BYTES + 1 - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            ret = kiln_fail(c->errmsg, EINVAL, "%s: %s", c->file, strerror(errno));
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    close(fd);
    if (ret == 0 && *len > CONFIG_MAX_BYTES)
        ret = kiln_fail(c->errmsg, EINVAL, "%s: larger than %d KiB; not a config file", c->file,
                        CONFIG_MAX_BYTES >> 10);
    if (ret < 0) {
        free(*text);
        *text = NULL;
    }
    return ret;
}

/* "line L, column C" of byte offset off in text. */
static void position(const char *text, size_t off, char *buf, size_t n)
{
    unsigned line = 1, col = 1;
    for (size_t i = 0; i < off; i++, col++)
        if (text[i] == '\n') {
            line++;
            col = 0;
        }
    snprintf(buf, n, "line %u, column %u", line, col);
}

/* Strict JSON (RFC 8259), one value and nothing after it but white space. */
static int parse_json(struct cfg_ctx *c, const char *text, size_t len, json_object **root)
{
    char where[48];
    *root = NULL;
    size_t lead = strspn(text, " \t\r\n");
    if (lead == len)
        return kiln_fail(c->errmsg, EINVAL, "%s: empty; expected a JSON object { ... }", c->file);
    if (text[lead] != '{')
        return kiln_fail(c->errmsg, EINVAL, "%s: expected a JSON object { ... } at the top",
                         c->file);
    if (memchr(text, '\0', len))
        return kiln_fail(c->errmsg, EINVAL, "%s: invalid JSON: a NUL byte in the file", c->file);
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return kiln_fail(c->errmsg, EINVAL, "%s: %s", c->file, strerror(ENOMEM));
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* With its terminator: a value at the very end (a number, "true") is then complete. */
    *root = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int ret = 0;
    if (jerr == json_tokener_continue) {
        ret = kiln_fail(c->errmsg, EINVAL, "%s: invalid JSON: unexpected end of the file", c->file);
    } else if (jerr != json_tokener_success) {
        position(text, end, where, sizeof(where));
        ret = kiln_fail(c->errmsg, EINVAL, "%s: invalid JSON at %s: %s", c->file, where,
                        json_tokener_error_desc(jerr));
    } else if (end < len && end + strspn(text + end, " \t\r\n") < len) {
        position(text, end + strspn(text + end, " \t\r\n"), where, sizeof(where));
        ret = kiln_fail(c->errmsg, EINVAL, "%s: invalid JSON at %s: text after the end", c->file,
                        where);
    }
    if (ret < 0 && *root) {
        json_object_put(*root);
        *root = NULL;
    }
    return ret;
}

int cli_config_load(const char *path, uint64_t host_ram, struct cli_options *o, char *errmsg)
{
    struct cfg_ctx c = {.file = path, .host_ram = host_ram, .o = o, .errmsg = errmsg};
    char *text = NULL;
    size_t len = 0;
    o->config_path = path;
    int ret = read_config(&c, &text, &len);
    if (ret < 0)
        return ret;
    json_object *root;
    /* text has room for a terminator (strspn in parse_json reads up to it). */
    text[len] = '\0';
    ret = parse_json(&c, text, len, &root);
    free(text);
    if (ret == 0)
        ret = load_root(&c, root);
    /* Every string o keeps was copied out of the tree: it can go now. */
    json_object_put(root);
    return ret;
}
