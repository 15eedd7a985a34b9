/* The cluster directory in Redis: peer ID claims, room members, node liveness, dead-node sweeps. */
#ifndef SB_DIR_REDIS_H
#define SB_DIR_REDIS_H

#include <event2/event.h>

#include "dir.h"
#include "redis.h"

/* Redis did not know this node (first start, data lost, or the node was swept after falling
 * silent): the owner must record its peers and rooms again (sb_relay_reassert). */
typedef void (*sb_dir_redis_lost_fn)(void *ctx);

/* Creates the directory over the command connection cmd (shared with the bus; it must outlive
 * the directory, as must node). Every second it refreshes this node's liveness key, which
 * expires after ttl seconds, and sweeps nodes whose key has expired. */
sb_dir_t *sb_dir_redis_new(struct event_base *base, sb_redis_t *cmd, const char *node, double ttl,
                           sb_dir_redis_lost_fn on_lost, void *ctx);

/* Refreshes liveness now (for example as soon as the connection is back). */
void sb_dir_redis_refresh(sb_dir_t *d);

/* 1 when the last liveness refresh succeeded and the connection is up. */
int sb_dir_redis_registered(const sb_dir_t *d);

#endif
