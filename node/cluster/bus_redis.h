/* The cluster bus over Redis pub/sub: one channel per peer, PUBLISH counts receivers. */
#ifndef SB_BUS_REDIS_H
#define SB_BUS_REDIS_H

#include <event2/event.h>

#include "cluster/bus.h"
#include "redis_url.h"

/* Creates the bus and starts connecting (url and node_id must outlive it). Publishing while
 * Redis is unreachable fails at once (receivers -1). Returns NULL when out of memory. */
sb_bus_t *sb_bus_redis_new(struct event_base *base, const sb_redis_url_t *url, const char *node_id);

#endif
