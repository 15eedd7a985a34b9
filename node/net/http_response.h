/* HTTP/1.1 responses the node writes: one format for every answer and every error. */
#ifndef SB_HTTP_RESPONSE_H
#define SB_HTTP_RESPONSE_H

#include <stddef.h>

#include <event2/buffer.h>

/* Writes a complete response with Content-Length and Connection: close (and Content-Type unless
 * content_type is NULL). extra is NULL or more header lines, each ending in \r\n. For a HEAD
 * request (head != 0) the headers describe the body but it is not sent. */
void sb_http_respond(struct evbuffer *out, int status, const char *content_type, const char *body,
                     size_t body_len, const char *extra, int head);

/* Writes an error response whose plain-text body is "<status> <reason phrase>: <why>". */
void sb_http_error(struct evbuffer *out, int status, const char *why, const char *extra, int head);

/* The reason phrase of a status the node sends ("Not Found"). */
const char *sb_http_status_text(int status);

#endif
