/* cli_config.h: what the parts of the config file loader (cli_config*.c) share. */
#ifndef KILN_CLI_CONFIG_H
#define KILN_CLI_CONFIG_H

#include <json-c/json.h>

#include "cli/cli.h"
#include "util.h"

/* Longest JSON path a message names (".nets[7].hostfwd[15]" and the like). */
#define JPATH_MAX 64

/* One load of a config file into options. */
struct cfg_ctx {
    const char *file; /* as the user named it, for messages */
    uint64_t host_ram;
    struct cli_options *o;
    char *errmsg;
};

/* n bytes (aligned for anything) that o owns until cli_options_free; NULL without memory. */
void *cfg_own_alloc(struct cli_options *o, size_t n);

/* The message "FILE: JPATH: reason" in c->errmsg; returns -EINVAL. */
int cfg_fail(struct cfg_ctx *c, const char *jpath, const char *fmt, ...) KILN_PRINTF(3, 4);
/* A flag parser refused value with a message in c->errmsg: the same reason, at jpath. */
int cfg_rewrap(struct cfg_ctx *c, const char *jpath, const char *flag, const char *value);

/* v's member name, or NULL when it is absent or null (null means "not given"). */
json_object *cfg_member(json_object *v, const char *name);
/* out (JPATH_MAX bytes) = jpath.name */
void cfg_subpath(char *out, const char *jpath, const char *name);
/* v is an object whose members are all among names (an unknown one is a typo: refused). */
int cfg_check_object(struct cfg_ctx *c, const char *jpath, json_object *v, const char *const *names,
                     size_t n);
/* A JSON string (no NUL inside), copied after prefix into storage the options own. */
int cfg_get_str(struct cfg_ctx *c, const char *jpath, json_object *v, const char *prefix,
                char **out);
int cfg_get_bool(struct cfg_ctx *c, const char *jpath, json_object *v, bool *out);
/* A path the file names must exist now, so that the message can name the field. */
int cfg_check_exists(struct cfg_ctx *c, const char *jpath, const char *file);

/* disks, nets, ports, shares: an array of objects, each one entry of flag's list. */
int cfg_load_list(struct cfg_ctx *c, const char *jpath, json_object *v, const char *flag);

#endif
