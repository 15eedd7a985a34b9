/* `switchboard healthcheck`: asks a running node's /healthz, for container health checks. */
#ifndef SB_HEALTHCHECK_H
#define SB_HEALTHCHECK_H

#include <stddef.h>

/* Sends GET /healthz to the node listening on listen (HOST:PORT as --listen takes it; a wildcard
 * host means this machine), over TLS when tls is 1 (without verifying the certificate: it is
 * the node's own, asked on this machine), and waits at most timeout seconds for the answer,
 * blocking. proxies is the node's --trust-proxy list when it has --proxy-protocol, else NULL:
 * when this connection's own address is in it, a PROXY header (v2 LOCAL, a health check's) goes
 * first, as the node requires of those addresses. Returns 0 when it answered 200, -1 with err
 * filled otherwise. */
int sb_healthcheck(const char *listen, int tls, const char *proxies, double timeout, char *err,
                   size_t errlen);

#endif
