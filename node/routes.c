/* Plain HTTP answers: /healthz, the WebSocket upgrade at /ws, and errors for everything else. */
#include "routes.h"

#include "static.h"

#include <stdio.h>
#include <string.h>

static const char *status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Writes a response; for HEAD (head != 0) the headers describe the body but it is not sent. */
static void respond(struct evbuffer *out, int status, const char *content_type, const char *body,
                    size_t body_len, const char *extra, int head)
{
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Server: switchboard\r\n"
                        "Content-Type: %s\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Content-Type-Options: nosniff\r\n"
                        "Connection: close\r\n"
                        "%s\r\n",
                        status, status_text(status), content_type, body_len, extra ? extra : "");
    if (body_len > 0 && !head)
        evbuffer_add(out, body, body_len);
}

/* An error answer whose body says what was wrong, in plain text. */
static void error_response(struct evbuffer *out, int status, const char *why, const char *extra,
                           int head)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, status_text(status), why);
    respond(out, status, "text/plain; charset=utf-8", body, (size_t)n, extra, head);
}

void sb_http_error(struct evbuffer *out, int status, const char *why, const char *extra)
{
    error_response(out, status, why, extra, 0);
}

static void respond_error(sb_server_t *s, struct evbuffer *out, int status, const char *why,
                          const char *extra, int head)
{
    sb_server_stats(s)->http_errors++;
    error_response(out, status, why, extra, head);
}

static int upgrade(sb_server_t *s, const sb_http_request_t *req, struct evbuffer *out)
{
    sb_ws_handshake_t hs;
    if (sb_ws_handshake_check(req, &hs) != 101) {
        const char *extra = hs.status == 405   ? "Allow: GET\r\n"
                            : hs.status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                                               : NULL;
        respond_error(s, out, hs.status, hs.reason, extra, 0);
        return 0;
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
    return 1;
}

int sb_http_answer(sb_server_t *s, const sb_http_request_t *req, struct evbuffer *out)
{
    int get = sb_str_eq(&req->method, "GET", 0), head = sb_str_eq(&req->method, "HEAD", 0);
    const char *err;

    /* RFC 9112 section 3.2: a missing, repeated or malformed Host is a 400 on every path. */
    if (sb_http_check_host(req, &err) != 0) {
        respond_error(s, out, 400, err, NULL, head);
        return 0;
    }
    if (sb_str_eq(&req->path, "/ws", 0))
        return upgrade(s, req, out);

    sb_server_stats(s)->http_requests++;
    if (sb_str_eq(&req->path, "/healthz", 0)) {
        if (!get && !head)
            respond_error(s, out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
        else /* liveness only: the event loop answered; it never depends on anything external */
            respond(out, 200, "text/plain; charset=utf-8", "ok\n", 3, NULL, head);
        return 0;
    }
    if (sb_str_eq(&req->path, "/readyz", 0)) {
        char why[160];
        if (!get && !head)
            respond_error(s, out, 405, "use GET or HEAD", "Allow: GET, HEAD\r\n", 0);
        else if (sb_server_ready(s, why, sizeof(why)))
            respond(out, 200, "text/plain; charset=utf-8", "ready\n", 6, NULL, head);
        else
            respond_error(s, out, 503, why, NULL, head);
        return 0;
    }
    const char *www = sb_server_config(s)->www;
    if (www[0] != '\0') {
        if (sb_static_answer(www, req, out) >= 400)
            sb_server_stats(s)->http_errors++;
        return 0;
    }
    respond_error(s, out, 404, "no such path", NULL, head);
    return 0;
}
