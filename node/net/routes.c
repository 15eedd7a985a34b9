/* The node's HTTP routes: probes, /metrics, the WebSocket upgrades, PeerJS's API, static files. */
#include "net/routes.h"

#include "base/metrics.h"
#include "net/http_response.h"
#include "net/peerjs_routes.h"
#include "handshake.h"
#include "net/static.h"

/* An error answer, counted. */
static void error(struct evbuffer *out, int status, const char *why, const char *extra, int head)
{
    sb_metrics_http_error(status);
    sb_http_error(out, status, why, extra, head);
}

static sb_route_t upgrade(const sb_routes_t *rt, const sb_http_request_t *req, struct evbuffer *out,
                          sb_route_conn_t *conn)
{
    sb_ws_handshake_t hs;
    if (sb_ws_handshake_check(req, &hs) != 101) {
        const char *extra = hs.status == 405   ? "Allow: GET\r\n"
                            : hs.status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                               : NULL;
        error(out, hs.status, hs.reason, extra, 0);
        return SB_ROUTE_ANSWERED;
    }
    /* The same answer whatever was wrong: the reason is in the log and the metrics. */
    int status = sb_auth_check(rt->auth, req, conn->id, conn->remote, &conn->claims);
    if (status == 403) {
        error(out, 403, "origin not allowed", NULL, 0);
        return SB_ROUTE_ANSWERED;
    }
    if (status != 0) {
        error(out, 401, "a valid token is required",
              "WWW-Authenticate: Bearer realm=\"switchboard\"\r\n", 0);
        return SB_ROUTE_ANSWERED;
    }
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Server: switchboard\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n"
                        "%s\r\n",
                        hs.accept,
                        hs.subprotocol ? "Sec-WebSocket-Protocol: " SB_WS_SUBPROTOCOL "\r\n" : "");
    return SB_ROUTE_UPGRADE;
}

sb_route_t sb_routes_answer(void *routes, const sb_http_request_t *req, struct evbuffer *out,
                            sb_route_conn_t *conn)
{
    const sb_routes_t *rt = routes;
    int get = sb_str_eq(&req->method, "GET", 0), head = sb_str_eq(&req->method, "HEAD", 0);
    const char *err;

    /* RFC 9112 section 3.2: a missing, repeated or malformed Host is a 400 on every path. */
    if (sb_http_check_host(req, &err) != 0) {
        error(out, 400, err, NULL, head);
        return SB_ROUTE_ANSWERED;
    }
    if (sb_str_eq(&req->path, "/ws", 0) && !rt->admin)
        return upgrade(rt, req, out, conn);
    if (!rt->admin && sb_peerjs_is_socket(rt->cfg, req)) {
        conn->dialect = SB_DIALECT_PEERJS;
        return upgrade(rt, req, out, conn);
    }
    if (!rt->admin && sb_peerjs_answer(rt->cfg, req, out))
        return SB_ROUTE_ANSWERED;

    if (sb_str_eq(&req->path, "/healthz", 0)) {
        if (!get && !head)
            error(out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
        else /* liveness only: the event loop answered; it never depends on anything external */
            sb_http_respond(out, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL, head);
        return SB_ROUTE_ANSWERED;
    }
    if (sb_str_eq(&req->path, "/readyz", 0)) {
        char why[160];
        if (!get && !head)
            error(out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
        else if (rt->ready == NULL || rt->ready(rt->ready_ctx, why, sizeof(why)))
            sb_http_respond(out, 200, "text/plain; charset=utf-8", "ready\n", 6, NULL, head);
        else
            error(out, 503, why, NULL, head);
        return SB_ROUTE_ANSWERED;
    }
    if (sb_str_eq(&req->path, "/metrics", 0) && !rt->metrics_elsewhere) {
        char why[160];
        if (!get && !head) {
            error(out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
            return SB_ROUTE_ANSWERED;
        }
        struct evbuffer *body = evbuffer_new();
        if (body == NULL) {
            error(out, 503, "out of memory", NULL, head);
            return SB_ROUTE_ANSWERED;
        }
        sb_metrics_render(body, rt->ready == NULL || rt->ready(rt->ready_ctx, why, sizeof(why)));
        size_t len = evbuffer_get_length(body);
        sb_http_respond(out, 200, "text/plain; version=0.0.4; charset=utf-8",
                        (const char *)evbuffer_pullup(body, -1), len, NULL, head);
        evbuffer_free(body);
        return SB_ROUTE_ANSWERED;
    }
    if (rt->cfg->www[0] != '\0' && !rt->admin)
        sb_static_answer(rt->cfg->www, req, out);
    else
        error(out, 404, "no such path", NULL, head);
    return SB_ROUTE_ANSWERED;
}
