/* HTTP/1.1 request-head parser and the WebSocket opening handshake (RFC 7230, RFC 6455 4.2), no
 * I/O. */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <stddef.h>

#include "str.h"

#define SB_HTTP_MAX_HEADERS 64

/* sb_http_parse_request's answer to a head with too many fields (HTTP 431). */
#define SB_HTTP_TOO_LARGE (-2)

typedef struct {
    sb_str_t name;
    sb_str_t value; /* leading and trailing white space removed */
} sb_http_header_t;

typedef struct {
    sb_str_t method;
    sb_str_t target; /* the request target as sent: path and optional query */
    sb_str_t path;   /* target up to '?' */
    sb_str_t query;  /* after '?', empty when there is none */
    int minor;       /* HTTP/1.<minor> */
    sb_http_header_t headers[SB_HTTP_MAX_HEADERS];
    size_t num_headers;
} sb_http_request_t;

/* Parses a request head (request line, header fields, blank line) from buf.
 * Returns the length of the head (> 0) when it is complete, 0 when more bytes are needed, -1
 * when the bytes cannot be a valid HTTP/1.x request head, and SB_HTTP_TOO_LARGE when it has more
 * than SB_HTTP_MAX_HEADERS fields (*err says why in both cases). Bare LF line ends are accepted,
 * obsolete line folding is not. Nothing is allocated; req points into buf. */
int sb_http_parse_request(const char *buf, size_t len, sb_http_request_t *req, const char **err);

/* Returns the value of the first header named name (case-insensitive), or NULL. */
const sb_str_t *sb_http_header(const sb_http_request_t *req, const char *name);

/* Returns 1 when the comma-separated header value contains token (case-insensitive). */
int sb_http_has_token(const sb_str_t *value, const char *token);

/* Checks the Host fields against RFC 9112 section 3.2: exactly one for HTTP/1.1, at most one for
 * HTTP/1.0, and a value that is empty or uri-host [ ":" port ] (RFC 3986 3.2.2-3.2.3). Returns 0
 * when they are acceptable, else -1 with *err set to a static reason (answered with 400). */
int sb_http_check_host(const sb_http_request_t *req, const char **err);

/* The subprotocol Switchboard speaks, echoed when a client offers it. */
#define SB_WS_SUBPROTOCOL "switchboard.v1"

/* Outcome of checking a request to upgrade to a WebSocket. */
typedef struct {
    int status;         /* 101 to accept, else 400, 405 or 426 */
    const char *reason; /* static text saying what was wrong (status != 101) */
    char accept[29];    /* Sec-WebSocket-Accept value, NUL-terminated (status 101) */
    int subprotocol;    /* 1 when the client offered SB_WS_SUBPROTOCOL */
} sb_ws_handshake_t;

/* Checks an upgrade request against RFC 6455 section 4.2.1: GET, HTTP/1.1 or later, Host (as
 * sb_http_check_host), Upgrade: websocket, Connection containing upgrade, Sec-WebSocket-Version
 * 13 (else 426) and a Sec-WebSocket-Key that decodes to 16 bytes. Fills hs; returns hs->status. */
int sb_ws_handshake_check(const sb_http_request_t *req, sb_ws_handshake_t *hs);

/* Computes Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), NUL-terminated. */
void sb_ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
