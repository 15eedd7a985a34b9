/* The listener and the set of live connections: accepting, counting, reaping and shutting down. */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "config.h"

typedef struct sb_server sb_server_t;
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

/* Counters a user can read (healthz now, metrics later). */
typedef struct {
    uint64_t accepted;        /* TCP connections accepted */
    uint64_t refused;         /* answered 503: over --max-connections */
    uint64_t http_requests;   /* plain HTTP requests answered */
    uint64_t http_errors;     /* requests answered 4xx */
    uint64_t ws_opened;       /* WebSocket handshakes completed */
    uint64_t ws_open;         /* WebSocket connections open now */
    uint64_t messages_in;     /* text messages received */
    uint64_t messages_out;    /* text messages sent */
    uint64_t protocol_errors; /* connections closed for breaking RFC 6455 (1002/1003/1007/1009) */
    uint64_t slow_consumers;  /* connections dropped over --max-output */
    uint64_t ping_timeouts;   /* connections dropped for not answering a ping */
    uint64_t handshake_timeouts; /* connections dropped for a slow request head */
} sb_stats_t;

/* Creates a server listening on cfg->listen. cfg and base must outlive it. Returns NULL with
 * err filled when the address is bad or cannot be bound. */
sb_server_t *sb_server_new(struct event_base *base, const sb_config_t *cfg,
                           const sb_handler_t *handler, char *err, size_t errlen);

/* Stops accepting and closes every connection (WebSockets with 1001 and a close handshake);
 * the event loop exits once all are gone, or after the close timeout at the latest. */
void sb_server_shutdown(sb_server_t *s);

/* Frees the server and every connection left. Call after the event loop has returned. */
void sb_server_free(sb_server_t *s);

/* Readiness for /readyz: returns 1 when ready, or 0 and a reason in why. Without one set, a
 * server is always ready. */
typedef int (*sb_ready_fn)(void *ctx, char *why, size_t len);
void sb_server_set_ready_check(sb_server_t *s, sb_ready_fn fn, void *ctx);
int sb_server_ready(sb_server_t *s, char *why, size_t len);

/* The address actually bound, as HOST:PORT ([HOST]:PORT for IPv6). */
const char *sb_server_address(const sb_server_t *s);

sb_stats_t *sb_server_stats(sb_server_t *s);
const sb_config_t *sb_server_config(const sb_server_t *s);
struct event_base *sb_server_base(const sb_server_t *s);
const sb_handler_t *sb_server_handler(const sb_server_t *s);

/* Connection bookkeeping, for conn.c: adds a new connection, and hands over one that has
 * ended so it is freed on the next loop turn (never inside its own callback). */
void sb_server_track(sb_server_t *s, sb_conn_t *c);
void sb_server_reap(sb_server_t *s, sb_conn_t *c);

#endif
