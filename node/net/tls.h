/* TLS for the node's listener: the server's keys (reloadable) and a transport that uses them. */
#ifndef SB_TLS_H
#define SB_TLS_H

#include <stddef.h>

#include "net/transport.h"

typedef struct sb_tls sb_tls_t;

/* Loads the certificate chain (PEM, the leaf first) and its private key (PEM) into a server
 * context: TLS 1.2 or 1.3, forward-secret AEAD cipher suites only, ALPN http/1.1, no
 * renegotiation, session resumption by tickets and a session cache. Logs the certificate's
 * subject and expiry and sets the expiry metric. cert and key are paths that must outlive it.
 * Returns NULL with err filled when a file is missing or bad or the key does not match. */
sb_tls_t *sb_tls_new(const char *cert, const char *key, char *err, size_t errlen);

/* Loads the files again into a fresh context, which new connections use from now on; open
 * connections keep the one they started with. Logs what happened (the new certificate, or why
 * the files were refused). Returns 0, or -1 when the old certificate stays in use. */
int sb_tls_reload(sb_tls_t *t);

/* The transport serving connections with the current context; its ctx is t. It lives as long
 * as t. */
const sb_transport_t *sb_tls_transport(sb_tls_t *t);

/* Frees t; connections still open keep their context until they end. */
void sb_tls_free(sb_tls_t *t);

#endif
