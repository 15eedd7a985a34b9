/* The listener and the set of live connections: accepting, reaping and shutting down. */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stddef.h>

#include <event2/event.h>

#include "base/config.h"
#include "net/conn.h"
#include "net/routes.h"

typedef struct sb_server sb_server_t;

/* Creates a server listening on cfg->listen, serving WebSockets to handler and plain HTTP
 * through the node's routes. cfg and base must outlive it. Returns NULL with err filled when
 * the address is bad or cannot be bound. */
sb_server_t *sb_server_new(struct event_base *base, const sb_config_t *cfg,
                           const sb_handler_t *handler, char *err, size_t errlen);

/* Readiness for /readyz, besides "shutting down": without one set, a server is ready. */
void sb_server_set_ready_check(sb_server_t *s, sb_ready_fn fn, void *ctx);

/* Stops accepting and closes every connection (WebSockets with 1001 and a close handshake);
 * the event loop exits once all are gone, or after the close timeout at the latest. */
void sb_server_shutdown(sb_server_t *s);

/* Frees the server and every connection left. Call after the event loop has returned. */
void sb_server_free(sb_server_t *s);

/* The address actually bound, as HOST:PORT ([HOST]:PORT for IPv6). */
const char *sb_server_address(const sb_server_t *s);

#endif
