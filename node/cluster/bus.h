/* The message bus between nodes: named channels, publish with a count of receivers, subscribe. */
#ifndef SB_BUS_H
#define SB_BUS_H

#include <stddef.h>

#include "str.h"

typedef struct sb_bus sb_bus_t;

/* Hands the node a message published on a channel it subscribed to; sub is what it gave
 * subscribe for that channel. Returns 1 when the message was queued on a connection, else 0.
 * msg is valid only during the call. */
typedef int (*sb_bus_deliver_fn)(void *ctx, void *sub, const char *msg, size_t len);

/* A subscription is in place (ok = 1): a message published on the channel from now on reaches
 * this node; or it could not be made (ok = 0: the bus is not connected). */
typedef void (*sb_bus_subscribed_fn)(void *arg, int ok);

/* The outcome of a publish: receivers >= 0 took the message, -1 the bus could not take it.
 * May run before publish returns (the embedded bus) or later (a remote bus). */
typedef void (*sb_bus_done_fn)(void *arg, int receivers);

typedef struct {
    /* Starts receiving a channel's messages, each delivered with sub (not NULL); done (may be
     * NULL) hears when the subscription is in place, before or after subscribe returns.
     * Returns 0, or -1 when out of memory (done is then not called). */
    int (*subscribe)(sb_bus_t *b, const char *channel, void *sub, sb_bus_subscribed_fn done,
                     void *arg);
    void (*unsubscribe)(sb_bus_t *b, const char *channel);
    /* Publishes the message made of nparts parts, one after another (copied before return).
     * done may be NULL. */
    void (*publish)(sb_bus_t *b, const char *channel, const sb_str_t *parts, size_t nparts,
                    sb_bus_done_fn done, void *arg);
    /* Returns 1 when messages can be published and received now, else 0 with a reason. */
    int (*ready)(sb_bus_t *b, char *why, size_t len);
    void (*free)(sb_bus_t *b);
} sb_bus_ops_t;

/* This node's subscriptions are being made (again): its link to the bus is up. After a break,
 * heard_ago is how long ago the last message before the break arrived, and lost_ago how long
 * ago the break was seen (both 0 the first time): messages published to this node between the
 * two may have been lost. */
typedef void (*sb_bus_renewed_fn)(void *ctx, double heard_ago, double lost_ago);

/* Every bus starts with this header; deliver, renewed (may be NULL) and ctx are set by the bus's
 * owner. remote is 1 for a bus between processes, which can lose a message it counted as taken
 * (its link broke before the receiver read it); 0 for the embedded bus, which cannot. */
struct sb_bus {
    const sb_bus_ops_t *ops;
    sb_bus_deliver_fn deliver;
    sb_bus_renewed_fn renewed;
    void *ctx;
    int remote;
    int sharded; /* 1 on Redis Cluster: a peer's channel carries its hash tag (proto/envelope.h) */
};

/* The embedded in-process bus of a single node: delivery happens within publish. */
sb_bus_t *sb_bus_memory_new(void);

#endif
