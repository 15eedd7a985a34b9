/* The WebSocket opening handshake, server side (RFC 6455 section 4.2), no I/O. */
#ifndef SB_HANDSHAKE_H
#define SB_HANDSHAKE_H

#include <stddef.h>

#include "http.h"

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
