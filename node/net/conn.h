/* One client connection: PROXY header, HTTP head, WebSocket upgrade, framing, pings, closing. */
#ifndef SB_CONN_H
#define SB_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "base/config.h"
#include "base/deadlines.h"
#include "str.h"
#include "net/limits.h"
#include "net/routes.h"
#include "net/transport.h"

typedef struct sb_conn sb_conn_t;

/* What the node does with WebSocket connections: the echo mode or the signaling relay.
 * on_open runs once the handshake is answered; on_text for each complete text message;
 * on_close once when an open connection has ended, whatever ended it, on a later loop turn
 * (meanwhile sends to it fail). Callbacks may send on any open connection and may close one
 * (sb_conn_close), but never free it. */
typedef struct {
    void (*on_open)(void *app, sb_conn_t *c);
    void (*on_text)(void *app, sb_conn_t *c, const char *data, size_t len);
    void (*on_close)(void *app, sb_conn_t *c);
    void *app;
} sb_handler_t;

/* A connection's surroundings, given by its owner; everything here must outlive it. */
typedef struct {
    struct event_base *base;
    const sb_config_t *cfg;
    const sb_transport_t *transport;
    const sb_handler_t *handler;
    /* Answers a plain HTTP request head (an sb_routes_answer with its routes). */
    sb_route_t (*route)(void *ctx, const sb_http_request_t *req, struct evbuffer *out,
                        sb_route_conn_t *conn);
    void *route_ctx;
    /* The connection has ended: its owner frees it (sb_conn_free) on a later loop turn, never
     * inside this call. */
    void (*on_end)(void *ctx, sb_conn_t *c);
    void *end_ctx;
    /* The per-source limits, checked at accept; when the socket is a trusted proxy's, once its
     * PROXY header is read (--proxy-protocol) or else its request head; NULL for none. */
    sb_limits_t *limits;
    /* What the connections' streams share (their writes are gathered per loop turn). */
    sb_streams_t *streams;
    /* The connections' timeouts (handshake, ping, pong, close), one heap for all of them, whose
     * callback is sb_conn_deadline_passed. */
    sb_deadlines_t *deadlines;
} sb_conn_env_t;

/* Takes ownership of fd, a freshly accepted socket, and serves it. Returns NULL (fd closed)
 * when out of memory. */
sb_conn_t *sb_conn_new(const sb_conn_env_t *env, evutil_socket_t fd, const struct sockaddr *addr);

/* The callback of the env's deadlines: a connection's timeout has come. */
void sb_conn_deadline_passed(sb_deadline_t *d, void *ctx);

/* Sends a text message on an open WebSocket. Returns 0, or -1 when the connection is not open
 * or was just dropped for having more than --max-output bytes queued. */
int sb_conn_send_text(sb_conn_t *c, const char *data, size_t len);

/* The most parts sb_conn_send_parts takes. */
#define SB_CONN_MAX_PARTS 15

/* The same for a message made of n parts (at most SB_CONN_MAX_PARTS), one after another,
 * written into the connection's buffer as they are (no copy is joined first). */
int sb_conn_send_parts(sb_conn_t *c, const sb_str_t *parts, size_t n);

/* Starts the closing handshake with code and a short reason (NULL for none); the connection
 * ends when the peer answers or after the close timeout. Plain HTTP connections just end. */
void sb_conn_close(sb_conn_t *c, uint16_t code, const char *reason);

/* Backpressure: stops handing this connection's messages to the handler, and stops reading its
 * socket, until sb_conn_resume; a closing connection is still read. */
void sb_conn_pause(sb_conn_t *c);

/* Undoes sb_conn_pause; messages already received are handled on a later loop turn. */
void sb_conn_resume(sb_conn_t *c);

/* Frees a connection at once, whatever its state: for its owner, after on_end or at exit. */
void sb_conn_free(sb_conn_t *c);

/* Links for the owner's lists of connections. */
sb_conn_t **sb_conn_next(sb_conn_t *c);
sb_conn_t **sb_conn_prev(sb_conn_t *c);

/* The query string of the upgrade request (without '?'), "" when there was none. */
const char *sb_conn_query(const sb_conn_t *c);

/* The claims of the token the connection opened with, NULL when tokens are off. */
const sb_token_claims_t *sb_conn_claims(const sb_conn_t *c);

/* The client protocol the connection speaks (the path it upgraded at). */
sb_dialect_t sb_conn_dialect(const sb_conn_t *c);

/* The peer's address, for logs: the client's as its trusted proxy names it (in its PROXY
 * header, or else X-Forwarded-For once the request head is read), else the socket's. */
const char *sb_conn_peer(const sb_conn_t *c);
uint64_t sb_conn_id(const sb_conn_t *c);

/* Whether the connection ended in a way its client did not choose and was not refused for:
 * the client vanished, stopped answering pings or reading, or the node is shutting down. For
 * on_close: such a peer may come back for its session. */
int sb_conn_ended_by_accident(const sb_conn_t *c);

/* A slot for the handler's per-connection state. */
void *sb_conn_data(const sb_conn_t *c);
void sb_conn_set_data(sb_conn_t *c, void *data);

#endif
