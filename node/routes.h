/* Plain HTTP answers: the routes the node serves and the WebSocket upgrade response. */
#ifndef SB_ROUTES_H
#define SB_ROUTES_H

#include <stddef.h>

#include <event2/buffer.h>

#include "http.h"
#include "server.h"

/* Writes the answer to req into out. Returns 1 when it was a valid WebSocket upgrade (a 101
 * response was written, echoing switchboard.v1 when offered), 0 when a plain response was
 * written and the connection is to close after it. */
int sb_http_answer(sb_server_t *s, const sb_http_request_t *req, struct evbuffer *out);

/* Writes a complete error response: Content-Length, Connection: close, and a plain-text body
 * "<status> <reason phrase>: <why>". extra is NULL or additional header lines, each ending in
 * \r\n. The caller counts it. */
void sb_http_error(struct evbuffer *out, int status, const char *why, const char *extra);

#endif
