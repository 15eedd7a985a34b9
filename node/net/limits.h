/* Per-source limits: connections open at once and new connections a second from one client
 * address (an IPv6 /64), the client named by a trusted proxy's X-Forwarded-For, and the table of
 * sources. */
#ifndef SB_LIMITS_H
#define SB_LIMITS_H

#include <stddef.h>

#include <event2/event.h>

#include "base/config.h"
#include "http.h"
#include "source.h"

typedef struct sb_limits sb_limits_t;

/* One source's counts (an IPv4 address or an IPv6 /64), owned by the limits; valid until
 * released. */
typedef struct sb_source sb_source_t;

/* Which limit refused a connection (switchboard_source_refused_total{limit}). */
typedef enum {
    SB_SOURCE_OK,
    SB_SOURCE_CONNECTIONS, /* --source-connections open already */
    SB_SOURCE_HANDSHAKES,  /* over --source-handshakes a second */
} sb_source_verdict_t;

/* Creates the limits of cfg (--source-connections, --source-handshakes, --trust-proxy) on base,
 * whose timer sweeps the table. cfg and base must outlive it. Returns NULL with err filled when
 * --trust-proxy is malformed or memory is short. */
sb_limits_t *sb_limits_new(struct event_base *base, const sb_config_t *cfg, char *err,
                           size_t errlen);

/* Frees the limits; release every source first (free the connections). */
void sb_limits_free(sb_limits_t *l);

/* Returns 1 when ip is a trusted proxy (--trust-proxy). */
int sb_limits_trusted(const sb_limits_t *l, const sb_ip_t *ip);

/* The client a trusted proxy's request names: the rightmost address in its X-Forwarded-For
 * fields that is not a trusted proxy (sb_xff_client); *ip is the socket's address on entry and
 * stays so when the request has none. */
void sb_limits_client(const sb_limits_t *l, const sb_http_request_t *req, sb_ip_t *ip);

/* Counts a new connection from ip against its source's limits (its /64 for IPv6). On SB_SOURCE_OK,
 * *src is the source to release when the connection ends (NULL when out of memory: the connection
 * is let in uncounted). Otherwise nothing is counted but the refusal, and *retry_after is the
 * seconds after which trying again may succeed. */
sb_source_verdict_t sb_limits_admit(sb_limits_t *l, const sb_ip_t *ip, sb_source_t **src,
                                    unsigned *retry_after);

/* Ends a connection admitted from src (NULL does nothing). */
void sb_limits_release(sb_limits_t *l, sb_source_t *src);

#endif
