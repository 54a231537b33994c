/* api_proto.c: parses a request line, dispatches on its "cmd", and formats the reply line. */
#include "api/api_proto.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* obj as one line of JSON plus a newline (json-c escapes any newline inside strings). */
static char *to_line(struct json_object *obj)
{
    size_t n;
    const char *s = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *line = s ? malloc(n + 2) : NULL;
    if (line) {
        memcpy(line, s, n);
        line[n] = '\n';
        line[n + 1] = '\0';
    }
    return line;
}

char *api_error_line(const char *msg)
{
    struct json_object *obj = json_object_new_object();
    if (!obj)
        return NULL;
    json_object_object_add(obj, "error", json_object_new_string(msg));
    char *line = to_line(obj);
    json_object_put(obj);
    return line;
}

/* The whole line as one JSON value, or NULL with the reason in err. */
static struct json_object *parse(const char *line, size_t len, char *err)
{
    if (memchr(line, '\0', len)) {
        snprintf(err, API_ERR_MAX, "bad JSON: a NUL byte in the request");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        snprintf(err, API_ERR_MAX, "out of memory");
        return NULL;
    }
    struct json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    /* Nothing but white space may follow the value. */
    bool trailing = obj && strspn(line + used, " \t\r") < len - used;
    if (!obj || jerr != json_tokener_success || trailing) {
        const char *why = trailing                        ? "text after the request object"
                          : jerr == json_tokener_continue ? "the request ends early"
                                                          : json_tokener_error_desc(jerr);
        snprintf(err, API_ERR_MAX, "bad JSON: %s", why);
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

static const struct api_command *find(const struct api_command *cmds, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cmds[i].name, name) == 0)
            return &cmds[i];
    return NULL;
}

/*
 * The file descriptors that came with req match its "fds" and what command c takes: 0, or -1
 * with err. "fds" absent means none; a request may not carry any it does not announce.
 */
static int check_fds(const struct api_command *c, struct json_object *req,
                     const struct api_fds *fds, char *err)
{
    unsigned got = fds ? fds->n : 0;
    bool extra = fds && fds->extra;
    struct json_object *v;
    if (!json_object_object_get_ex(req, "fds", &v)) {
        if (got == 0 && !extra)
            return 0;
        snprintf(err, API_ERR_MAX,
                 "%s: file descriptors came with a request that has no \"fds\" count", c->name);
        return -1;
    }
    int64_t want = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || want < 0 || want > API_FDS_MAX) {
        snprintf(err, API_ERR_MAX, "%s: \"fds\" must be a count of file descriptors, 0 to %d",
                 c->name, API_FDS_MAX);
        return -1;
    }
    if (extra || (int64_t)got != want) {
        snprintf(err, API_ERR_MAX, "%s: \"fds\" is %lld, and %s%u file descriptors came with it",
                 c->name, (long long)want, extra ? "more than " : "", got);
        return -1;
    }
    if (want != 0 && want != c->nfds) {
        snprintf(err, API_ERR_MAX, "%s: takes %u file descriptors, not %lld", c->name, c->nfds,
                 (long long)want);
        return -1;
    }
    return 0;
}

/* Run the command req names: 0 with reply filled, or -1 with err. */
static int dispatch(const struct api_command *cmds, size_t n, void *ctx, struct json_object *req,
                    const struct api_fds *fds, struct json_object *reply, char *err)
{
    struct json_object *cmd;
    if (!json_object_is_type(req, json_type_object)) {
        snprintf(err, API_ERR_MAX, "the request must be a JSON object");
        return -1;
    }
    if (!json_object_object_get_ex(req, "cmd", &cmd) ||
        !json_object_is_type(cmd, json_type_string)) {
        snprintf(err, API_ERR_MAX, "the request has no \"cmd\" string");
        return -1;
    }
    const struct api_command *c = find(cmds, n, json_object_get_string(cmd));
    if (!c) {
        snprintf(err, API_ERR_MAX, "unknown command '%.64s'", json_object_get_string(cmd));
        return -1;
    }
    if (check_fds(c, req, fds, err) < 0)
        return -1;
    return c->run(ctx, req, fds && fds->n ? fds->fd : NULL, reply, err);
}

char *api_handle_line(const struct api_command *cmds, size_t ncmds, void *ctx, const char *line,
                      size_t len, const struct api_fds *fds)
{
    char err[API_ERR_MAX] = "";
    struct json_object *req = parse(line, len, err);
    if (!req)
        return api_error_line(err);
    struct json_object *reply = json_object_new_object();
    if (!reply) {
        json_object_put(req);
        return NULL;
    }
    json_object_object_add(reply, "ok", json_object_new_boolean(1));
    char *out;
    if (dispatch(cmds, ncmds, ctx, req, fds, reply, err) < 0)
        out = api_error_line(err[0] ? err : "failed");
    else
        out = to_line(reply);
    json_object_put(reply);
    json_object_put(req);
    return out;
}
