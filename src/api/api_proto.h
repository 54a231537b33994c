/* api_proto.h: the API socket's protocol: one JSON request line in, one JSON reply line out. */
#ifndef KILN_API_PROTO_H
#define KILN_API_PROTO_H

#include <stdbool.h>
#include <stddef.h>

/* Longest request line, its newline excluded; a longer one gets an error reply. */
#define API_LINE_MAX 4096
/* Longest error message a handler writes. */
#define API_ERR_MAX 256
/* Most file descriptors one request may carry (SCM_RIGHTS). */
#define API_FDS_MAX 2

struct json_object;

/* The file descriptors that came with one request line, in the order sent. */
struct api_fds {
    int fd[API_FDS_MAX];
    unsigned n;
    bool extra; /* more came than fit in fd[] (the rest are closed) */
};

/*
 * One command. run gets the request object and an empty reply object to add its result fields
 * to; it returns 0, or -1 with a one-line message in err (API_ERR_MAX bytes), which becomes the
 * reply {"error": err}. A command with nfds > 0 may be sent with that many file descriptors
 * ("fds": nfds in the request); run then gets them in fds (lent for the call: the caller closes
 * them), else fds is NULL.
 */
struct api_command {
    const char *name;
    int (*run)(void *ctx, struct json_object *req, const int *fds, struct json_object *reply,
               char *err);
    unsigned nfds;
};

/*
 * Answer one request line (len bytes, no newline; need not be NUL-terminated) with the command
 * of cmds its "cmd" names, and fds (NULL: none) the file descriptors that came with it; they
 * stay the caller's to close. Returns the reply line, newline-terminated and malloc'd, or NULL
 * when out of memory. A success is {"ok": true, ...fields}, a failure {"error": "..."} (bad
 * JSON, not an object, no or unknown cmd, file descriptors the request does not announce with
 * "fds": N or the command does not take, or the command's own error).
 */
char *api_handle_line(const struct api_command *cmds, size_t ncmds, void *ctx, const char *line,
                      size_t len, const struct api_fds *fds);

/* The reply line {"error": msg}\n, malloc'd (NULL when out of memory). */
char *api_error_line(const char *msg);

#endif
