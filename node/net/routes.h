/* The node's HTTP routes: probes, /metrics, the WebSocket upgrades, PeerJS's API, static files. */
#ifndef SB_ROUTES_H
#define SB_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "base/config.h"
#include "http.h"
#include "net/auth.h"

/* Readiness for /readyz: returns 1 when ready, or 0 with a reason in why. */
typedef int (*sb_ready_fn)(void *ctx, char *why, size_t len);

typedef struct {
    const sb_config_t *cfg; /* www: the directory served at / ("" for none) */
    const sb_auth_t *auth;  /* who may open a WebSocket */
    int admin;              /* the --admin-listen listener: /metrics, /healthz, /readyz alone */
    int metrics_elsewhere;  /* a public listener while there is an admin one: no /metrics */
    sb_ready_fn ready;      /* NULL: always ready */
    void *ready_ctx;
} sb_routes_t;

/* What sb_routes_answer did with a request. */
typedef enum {
    SB_ROUTE_ANSWERED, /* a response was written; the connection closes after it */
    SB_ROUTE_UPGRADE,  /* a 101 was written: the connection is a WebSocket from here on */
} sb_route_t;

/* The connection a request came on: who asks (for logs), and what an upgrade hands it. */
/* The client protocol a WebSocket speaks: Switchboard's (at /ws), or PeerJS's PeerServer's. */
typedef enum { SB_DIALECT_V1, SB_DIALECT_PEERJS } sb_dialect_t;

typedef struct {
    uint64_t id;
    const char *remote;
    sb_token_claims_t *claims; /* set by an upgrade when tokens are on: the connection's now */
    sb_dialect_t dialect;      /* set by an upgrade: the connection's from then on */
} sb_route_conn_t;

/* Writes the answer to req into out (routes is an sb_routes_t). Every request's Host is checked
 * first (RFC 9112 3.2). A valid upgrade at /ws from an allowed Origin, with a valid token when
 * tokens are on, is answered 101, echoing switchboard.v1 when offered (never a token). */
sb_route_t sb_routes_answer(void *routes, const sb_http_request_t *req, struct evbuffer *out,
                            sb_route_conn_t *conn);

#endif
