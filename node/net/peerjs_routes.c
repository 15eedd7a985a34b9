/* PeerServer's HTTP API under --peerjs-path, with its CORS, and where its WebSocket is. */
#include "net/peerjs_routes.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/metrics.h"
#include "net/http_response.h"

/* PeerServer's own description of itself, byte for byte. */
#define INFO                                                                                       \
    "{\"name\":\"PeerJS Server\",\"description\":\"A server side element to broker connections "   \
    "between PeerJS clients.\",\"website\":\"https://peerjs.com/\"}"

/* Whether req's path starts with --peerjs-path; *rest is what follows it. */
static int under(const sb_config_t *cfg, const sb_http_request_t *req, sb_str_t *rest)
{
    size_t plen = strlen(cfg->peerjs_path);
    if (plen == 0 || req->path.len < plen || memcmp(req->path.p, cfg->peerjs_path, plen) != 0)
        return 0;
    *rest = (sb_str_t){req->path.p + plen, req->path.len - plen};
    return 1;
}

int sb_peerjs_is_socket(const sb_config_t *cfg, const sb_http_request_t *req)
{
    sb_str_t rest;
    return under(cfg, req, &rest) && sb_str_eq(&rest, "peerjs", 0);
}

/* The CORS headers PeerServer's (the cors package with origin: true) gives every answer: the
 * request's Origin echoed, and Vary: Origin. */
static void cors(const sb_http_request_t *req, char *out, size_t cap)
{
    const sb_str_t *origin = sb_http_header(req, "Origin");
    if (origin != NULL && origin->len > 0 && origin->len < 512)
        snprintf(out, cap, "Access-Control-Allow-Origin: %.*s\r\nVary: Origin\r\n",
                 (int)origin->len, origin->p);
    else
        snprintf(out, cap, "Vary: Origin\r\n");
}

/* A random UUID (version 4), as PeerServer's /id gives: an ID PeerJS clients accept. */
static int uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

int sb_peerjs_answer(const sb_config_t *cfg, const sb_http_request_t *req, struct evbuffer *out)
{
    sb_str_t rest;
    char headers[640];
    int head = sb_str_eq(&req->method, "HEAD", 0);

    /* <path> without its last '/' is the info route too (PeerServer's router takes both). */
    size_t plen = strlen(cfg->peerjs_path);
    int bare = plen > 1 && req->path.len == plen - 1 &&
               memcmp(req->path.p, cfg->peerjs_path, plen - 1) == 0;
    if (!bare && !under(cfg, req, &rest))
        return 0;
    if (bare)
        rest = (sb_str_t){"", 0};
    cors(req, headers, sizeof(headers));
    if (sb_str_eq(&req->method, "OPTIONS", 0)) {
        /* A preflight, answered for any route under the path, as PeerServer does. */
        const sb_str_t *asked = sb_http_header(req, "Access-Control-Request-Headers");
        char extra[1200];
        int n =
            snprintf(extra, sizeof(extra),
                     "%sAccess-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n", headers);
        if (asked != NULL && asked->len > 0 && asked->len < 512 && n > 0 &&
            (size_t)n < sizeof(extra))
            snprintf(extra + n, sizeof(extra) - (size_t)n,
                     "Vary: Access-Control-Request-Headers\r\n"
                     "Access-Control-Allow-Headers: %.*s\r\n",
                     (int)asked->len, asked->p);
        sb_http_respond(out, 204, NULL, NULL, 0, extra, 0);
        return 1;
    }
    if (!sb_str_eq(&req->method, "GET", 0) && !head)
        return 0; /* PeerServer has no other routes: a 404 like any other path */

    /* <path>, or <path><key>/id and <path><key>/peers: any key, as PeerServer 1.0 checks none */
    const char *slash = rest.len > 0 ? memchr(rest.p, '/', rest.len) : NULL;
    sb_str_t route = slash ? (sb_str_t){slash + 1, rest.len - (size_t)(slash + 1 - rest.p)}
                           : (sb_str_t){NULL, 0};
    if (rest.len == 0 && plen == 1)
        return 0; /* "/" stays the node's own page: PeerJS clients never ask for it */
    if (rest.len == 0) {
        sb_http_respond(out, 200, "application/json; charset=utf-8", INFO, sizeof(INFO) - 1,
                        headers, head);
    } else if (slash != NULL && slash > rest.p && sb_str_eq(&route, "id", 0)) {
        char id[37];
        if (uuid(id) != 0) {
            sb_metrics_http_error(503);
            sb_http_error(out, 503, "no randomness", NULL, head);
        } else {
            sb_http_respond(out, 200, "text/html; charset=utf-8", id, 36, headers, head);
        }
    } else if (slash != NULL && slash > rest.p && sb_str_eq(&route, "peers", 0)) {
        /* Discovery is off, as PeerServer's default: listing every peer would tell anyone who
         * is online. */
        sb_http_respond(out, 401, "text/plain; charset=utf-8", "Unauthorized", 12, headers, head);
    } else {
        return 0;
    }
    return 1;
}
