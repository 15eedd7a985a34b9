/* The cluster bus over Redis pub/sub: one channel per peer, PUBLISH counts receivers. */
#ifndef SB_BUS_REDIS_H
#define SB_BUS_REDIS_H

#include <event2/dns.h>
#include <event2/event.h>

#include "bus.h"
#include "redis_url.h"

/* Readiness changed: 1 when publishing and receiving both work, 0 when not. */
typedef void (*sb_bus_redis_ready_fn)(void *ctx, int ready);

/* Creates the bus and starts connecting (dns, url and node_id must outlive it). Publishing while
 * Redis is unreachable fails at once (receivers -1). Returns NULL when out of memory. */
sb_bus_t *sb_bus_redis_new(struct event_base *base, struct evdns_base *dns,
                           const sb_redis_url_t *url, const char *node_id,
                           sb_bus_redis_ready_fn on_ready, void *ctx);

int sb_bus_redis_ready(const sb_bus_t *b);

#endif
