/* How many nodes a Redis publish reached, for the buses over Redis (bus_redis, bus_rcluster):
 * the answer read, and this node's own subscription to a channel it is leaving taken off. */
#ifndef SB_RECEIVERS_H
#define SB_RECEIVERS_H

#include <stddef.h>

#include "base/map.h"
#include "base/pool.h"
#include "cluster/bus.h"
#include "cluster/redis.h"

/* Until Redis confirms an UNSUBSCRIBE, a publish to that channel may still count this node's
 * subscription, which no longer delivers: such a publish's count is taken one lower (it may fall
 * one short, never one over). */
typedef struct {
    sb_map_t *leaving; /* channel -> UNSUBSCRIBEs of it not confirmed yet (a count) */
    sb_pool_t waits;   /* one block per publish waiting for its answer */
} sb_receivers_t;

/* Returns 0, or -1 when out of memory. */
int sb_receivers_init(sb_receivers_t *r);

/* Frees it, once no publish waits (the connections that carry them are freed first). */
void sb_receivers_free(sb_receivers_t *r);

/* An UNSUBSCRIBE of channel was sent (or SUNSUBSCRIBE). Out of memory it is not remembered, and
 * a publish meanwhile may count this node, as it would without this. */
void sb_receivers_leaving(sb_receivers_t *r, const char *channel);

/* Redis confirmed an unsubscribe of channel: returns 1 when it was one this node sent, 0 when
 * Redis pushed it on its own (a sharded channel whose slot moved). */
int sb_receivers_left(sb_receivers_t *r, const char *channel);

/* The subscriber connection was lost: it has no subscriptions left to leave. */
void sb_receivers_reset(sb_receivers_t *r);

/* Before a publish to channel: what its answer is given to (with sb_receivers_answer as the
 * reply callback). wanted holds the channels this node subscribes now. NULL when done is
 * NULL (nobody waits for the answer), or when out of memory: then done has heard -1 and the
 * publish must not be sent (*refused is set). */
void *sb_receivers_wait(sb_receivers_t *r, const char *channel, const sb_map_t *wanted,
                        sb_bus_done_fn done, void *arg, int *refused);

/* The reply callback of a publish: its sender hears the receivers (-1 for no answer or an error
 * reply, which is logged). */
void sb_receivers_answer(void *wait, const sb_redis_reply_t *reply);

/* The publish could not be sent: its sender hears -1 at once (wait may be NULL). */
void sb_receivers_unsent(sb_receivers_t *r, void *wait, sb_bus_done_fn done, void *arg);

/* A channel's name from a pub/sub push (not NUL-terminated) into name (cap bytes): 0 when it
 * does not fit, which makes it none of a bus's channels. */
int sb_receivers_channel(char *name, size_t cap, const char *channel, size_t chlen);

#endif
