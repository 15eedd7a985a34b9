/* PeerServer's HTTP API under --peerjs-path, with its CORS, and where its WebSocket is. */
#ifndef SB_PEERJS_ROUTES_H
#define SB_PEERJS_ROUTES_H

#include <event2/buffer.h>

#include "base/config.h"
#include "http.h"

/* Whether req asks for the PeerJS WebSocket (<path>peerjs, --peerjs-path set). */
int sb_peerjs_is_socket(const sb_config_t *cfg, const sb_http_request_t *req);

/* Answers req into out when it is one of PeerServer's HTTP routes (its info at <path>, a fresh
 * ID at <path><key>/id, the peer list at <path><key>/peers, a CORS preflight under <path>):
 * returns 1; else 0 (nothing written). */
int sb_peerjs_answer(const sb_config_t *cfg, const sb_http_request_t *req, struct evbuffer *out);

#endif
