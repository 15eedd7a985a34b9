/* Who may open a WebSocket: an allowed Origin and, with token auth on, a valid token. */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "http.h"
#include "token.h"

/* The entry of Sec-WebSocket-Protocol that carries a token: this prefix, then the token. */
#define SB_AUTH_SUBPROTOCOL_PREFIX "switchboard.token."

typedef struct sb_auth sb_auth_t;

/* Reads what cfg asks for: --allow-origin patterns, the --auth-secret and the
 * --auth-public-key file. Returns NULL with err filled on a bad pattern, an unreadable or
 * unusable key, or when out of memory. */
sb_auth_t *sb_auth_new(const sb_config_t *cfg, char *err, size_t errlen);

void sb_auth_free(sb_auth_t *a);

/* Whether peers must bring a token. */
int sb_auth_tokens_on(const sb_auth_t *a);

/* Checks a WebSocket upgrade request from the client conn/remote (for the log): its Origin,
 * then its token, found in the query's token= or in a Sec-WebSocket-Protocol entry
 * SB_AUTH_SUBPROTOCOL_PREFIX<token>, and an ?id= that must be the token's sub. Returns 0, with
 * *claims set to the token's claims (malloc'ed; the caller frees them with sb_auth_claims_free)
 * or NULL when tokens are off; else the HTTP status to answer, 403 for the Origin or 401 for the
 * token, with the reason logged and counted (never told to the client). */
int sb_auth_check(const sb_auth_t *a, const sb_http_request_t *req, uint64_t conn,
                  const char *remote, sb_token_claims_t **claims);

/* Frees claims from sb_auth_check; NULL is fine. */
void sb_auth_claims_free(sb_token_claims_t *claims);

#endif
