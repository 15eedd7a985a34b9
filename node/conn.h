/* One client connection: HTTP request head, WebSocket upgrade, framing, pings, closing. */
#ifndef SB_CONN_H
#define SB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "server.h"

/* Takes ownership of fd, a freshly accepted socket. Returns NULL (fd closed) when out of memory.
 * The connection frees itself through sb_server_reap once it ends. */
sb_conn_t *sb_conn_new(sb_server_t *s, evutil_socket_t fd, const struct sockaddr *addr,
                       int socklen);

/* Sends a text message on an open WebSocket. Returns 0, or -1 when the connection is not open
 * or was just dropped for having more than --max-output bytes queued. */
int sb_conn_send_text(sb_conn_t *c, const char *data, size_t len);

/* Starts the closing handshake with code and a short reason (NULL for none); the connection
 * ends when the peer answers or after the close timeout. Plain HTTP connections just end. */
void sb_conn_close(sb_conn_t *c, uint16_t code, const char *reason);

/* Backpressure: stops handing this connection's messages to the handler, and stops reading its
 * socket, until sb_conn_resume; a closing connection is still read. */
void sb_conn_pause(sb_conn_t *c);

/* Undoes sb_conn_pause; messages already received are handled on a later loop turn. */
void sb_conn_resume(sb_conn_t *c);

/* Frees a connection at once, whatever its state: only for sb_server_reap and sb_server_free. */
void sb_conn_free(sb_conn_t *c);

/* Links for the server's lists of connections. */
sb_conn_t **sb_conn_next(sb_conn_t *c);
sb_conn_t **sb_conn_prev(sb_conn_t *c);

/* The query string of the upgrade request (without '?'), "" when there was none. */
const char *sb_conn_query(const sb_conn_t *c);

/* The peer's address, for logs. */
const char *sb_conn_peer(const sb_conn_t *c);
uint64_t sb_conn_id(const sb_conn_t *c);

/* A slot for the handler's per-connection state. */
void *sb_conn_data(const sb_conn_t *c);
void sb_conn_set_data(sb_conn_t *c, void *data);

#endif
