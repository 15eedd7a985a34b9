/* The cluster directory in Redis: peer ID claims, room members, node liveness, dead-node sweeps. */
#ifndef SB_DIR_REDIS_H
#define SB_DIR_REDIS_H

#include <event2/event.h>

#include "cluster/dir.h"
#include "redis_url.h"

/* Creates the directory and starts connecting to Redis at url (url and node must outlive it). Every
 * second, on a connection of its own at upkeep priority, it refreshes this node's liveness key,
 * which expires after ttl seconds, and sweeps nodes whose key has expired. Returns NULL when out of
 * memory. */
sb_dir_t *sb_dir_redis_new(struct event_base *base, const sb_redis_url_t *url, const char *node,
                           double ttl, const sb_dir_sessions_t *sessions);

#endif
