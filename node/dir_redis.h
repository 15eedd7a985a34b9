/* The cluster directory in Redis: peer ID claims, room members, node liveness, dead-node sweeps. */
#ifndef SB_DIR_REDIS_H
#define SB_DIR_REDIS_H

#include <event2/dns.h>
#include <event2/event.h>

#include "dir.h"
#include "redis_url.h"

/* Redis did not know this node (first start, data lost, or the node was swept after falling
 * silent): the owner must record its peers and rooms again (sb_relay_reassert). */
typedef void (*sb_dir_redis_lost_fn)(void *ctx);

/* Creates the directory and starts connecting to Redis at url (dns, url and node must outlive
 * it).
 * Every second, on a connection of its own at upkeep priority, it refreshes this node's
 * liveness key, which expires after ttl seconds, and sweeps nodes whose key has expired.
 * Returns NULL when out of memory. */
sb_dir_t *sb_dir_redis_new(struct event_base *base, struct evdns_base *dns,
                           const sb_redis_url_t *url, const char *node, double ttl,
                           sb_dir_redis_lost_fn on_lost, void *ctx);

/* 1 when the last liveness refresh succeeded and the connection is up. */
int sb_dir_redis_registered(const sb_dir_t *d);

#endif
