/* The cluster directory in a Redis Cluster: claims, sessions, rooms, liveness and sweeps, each
 * script within one hash slot. */
#ifndef SB_DIR_RCLUSTER_H
#define SB_DIR_RCLUSTER_H

#include <event2/event.h>

#include "cluster/dir.h"
#include "redis_url.h"

/* Creates the directory and starts reading the cluster's slot map from url's seeds (url, a
 * cluster URL, and node must outlive it). As sb_dir_redis_new otherwise: a liveness key
 * refreshed every second, expiring after ttl seconds, and dead nodes swept by one node at a
 * time. Returns NULL when out of memory. */
sb_dir_t *sb_dir_rcluster_new(struct event_base *base, const sb_redis_url_t *url, const char *node,
                              double ttl, const sb_dir_sessions_t *sessions);

#endif
