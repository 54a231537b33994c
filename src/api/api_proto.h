/* api_proto.h: the API socket's protocol: one JSON request line in, one JSON reply line out. */
#ifndef KILN_API_PROTO_H
#define KILN_API_PROTO_H

#include <stddef.h>

/* Longest request line, its newline excluded; a longer one gets an error reply. */
#define API_LINE_MAX 4096
/* Longest error message a handler writes. */
#define API_ERR_MAX 256

struct json_object;

/*
 * One command. run gets the request object and an empty reply object to add its result fields
 * to; it returns 0, or -1 with a one-line message in err (API_ERR_MAX bytes), which becomes the
 * reply {"error": err}.
 */
struct api_command {
    const char *name;
    int (*run)(void *ctx, struct json_object *req, struct json_object *reply, char *err);
};

/*
 * Answer one request line (len bytes, no newline; need not be NUL-terminated) with the command
 * of cmds its "cmd" names. Returns the reply line, newline-terminated and malloc'd, or NULL when
 * out of memory. A success is {"ok": true, ...fields}, a failure {"error": "..."} (bad JSON, not
 * an object, no or unknown cmd, or the command's own error).
 */
char *api_handle_line(const struct api_command *cmds, size_t ncmds, void *ctx, const char *line,
                      size_t len);

/* The reply line {"error": msg}\n, malloc'd (NULL when out of memory). */
char *api_error_line(const char *msg);

#endif
