/* The listener and the set of live connections: accepting, reaping and shutting down. */
#ifndef SB_SERVER_H
#define SB_SERVER_H

#include <stddef.h>

#include <event2/event.h>

#include "base/config.h"
#include "net/conn.h"
#include "net/routes.h"

typedef struct sb_server sb_server_t;

/* Creates a server listening on cfg->listen and on cfg->tls_listen (with cfg->tls_cert and
 * cfg->tls_key), either of them "" for none, serving WebSockets to handler and plain HTTP
 * through the node's routes on both. cfg and base must outlive it. Returns NULL with err filled
 * when an address is bad or cannot be bound, or the certificate or key cannot be loaded. */
sb_server_t *sb_server_new(struct event_base *base, const sb_config_t *cfg,
                           const sb_handler_t *handler, char *err, size_t errlen);

/* Readiness for /readyz, besides "shutting down": without one set, a server is ready. */
void sb_server_set_ready_check(sb_server_t *s, sb_ready_fn fn, void *ctx);

/* Called once every connection has ended after sb_server_shutdown or sb_server_drain (or their
 * deadline has passed). Without one set, the event loop exits then. */
typedef void (*sb_server_done_fn)(void *ctx);
void sb_server_set_done(sb_server_t *s, sb_server_done_fn fn, void *ctx);

/* Stops accepting and closes every connection at once (WebSockets with 1001 and a close
 * handshake); done follows once all are gone, or after the close timeout at the latest. */
void sb_server_shutdown(sb_server_t *s);

/* Stops gracefully: /readyz answers 503 at once, while the listener keeps accepting for delay
 * seconds (a load balancer takes that long to notice); then the listener closes and the
 * connections are closed with 1001 one by one, spread evenly over seconds, so that clients
 * reconnect elsewhere without a stampede; done follows once all are gone, or after delay +
 * seconds + the close timeout at the latest. Does nothing once the server is stopping. */
void sb_server_drain(sb_server_t *s, double delay, double seconds);

/* Frees the server and every connection left. Call after the event loop has returned. */
void sb_server_free(sb_server_t *s);

/* The plain listener's address actually bound, as HOST:PORT ([HOST]:PORT for IPv6), "" when
 * there is none. */
const char *sb_server_address(const sb_server_t *s);

/* The same for the TLS listener. */
const char *sb_server_tls_address(const sb_server_t *s);

/* The same for the admin listener (--admin-listen), which stays open until the server is freed:
 * /metrics and the probes answer through a drain. */
const char *sb_server_admin_address(const sb_server_t *s);

/* Loads the TLS certificate and key again (SIGHUP) for the connections accepted from now on.
 * Returns 0; 1 when there is no TLS listener; -1 when the files were refused, the old pair
 * staying in use (the reason is logged). */
int sb_server_reload_tls(sb_server_t *s);

#endif
