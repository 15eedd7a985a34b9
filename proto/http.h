/* HTTP/1.1 request-head parser, header lookups and the Host check (RFC 9112), no I/O. */
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

/* The same, with the token's case significant (subprotocol names, RFC 6455 4.1). */
int sb_http_has_exact_token(const sb_str_t *value, const char *token);

/* Checks the Host fields against RFC 9112 section 3.2: exactly one for HTTP/1.1, at most one for
 * HTTP/1.0, and a value that is empty or uri-host [ ":" port ] (RFC 3986 3.2.2-3.2.3). Returns 0
 * when they are acceptable, else -1 with *err set to a static reason (answered with 400). */
int sb_http_check_host(const sb_http_request_t *req, const char **err);

#endif
