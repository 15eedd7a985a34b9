/* The cluster bus over Redis Cluster's sharded pub/sub: SPUBLISH and SSUBSCRIBE at the master of
 * each channel's slot. */
#ifndef SB_BUS_RCLUSTER_H
#define SB_BUS_RCLUSTER_H

#include <event2/event.h>

#include "cluster/bus.h"
#include "redis_url.h"

/* Creates the bus and starts reading the cluster's slot map from url's seeds (url, a cluster
 * URL, and node_id must outlive it). Publishing to a channel whose master is unreachable fails at
 * once (receivers -1). Returns NULL when out of memory. */
sb_bus_t *sb_bus_rcluster_new(struct event_base *base, const sb_redis_url_t *url,
                              const char *node_id);

#endif
