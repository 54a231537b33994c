/* api_server.h: serves the API protocol on a listening unix socket, on a libuv loop. */
#ifndef KILN_API_SERVER_H
#define KILN_API_SERVER_H

#include <stddef.h>
#include <uv.h>

#include "api/api_proto.h"
#include "util.h"

/* Clients served at once; one more is told so and closed. */
#define API_MAX_CLIENTS 8
/* Reply bytes a client may leave unread before kiln drops it. */
#define API_MAX_PENDING (256 * 1024)

struct api_server;

/*
 * Serve cmds (with ctx) on a duplicate of listen_fd (a bound, listening unix stream socket the
 * caller keeps) on loop. Each request line gets one reply line; a line over API_LINE_MAX bytes
 * gets an error reply and is skipped; a partial line when the client goes is dropped. File
 * descriptors a client sends (SCM_RIGHTS, received close-on-exec) go with the line whose bytes
 * came with them, to api_handle_line, and are closed once it has answered; those of a skipped
 * or unfinished line are closed unused. Loop thread only (its calls: accept4, recvmsg with
 * MSG_CMSG_CLOEXEC, sendmsg). Returns 0 or -errno (libuv's codes are negative errnos).
 */
int api_server_start(uv_loop_t *loop, int listen_fd, const struct api_command *cmds, size_t ncmds,
                     void *ctx, const struct kiln_log *log, struct api_server **out);
/* Close the socket and every client (their closes finish on the loop's next turn). */
void api_server_stop(struct api_server *s);
/* Free it, once the loop has run the closes. NULL is accepted. */
void api_server_free(struct api_server *s);

#endif
