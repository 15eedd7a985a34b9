/* The message bus between nodes: named channels, publish with a count of receivers, subscribe. */
#ifndef SB_BUS_H
#define SB_BUS_H

#include <stddef.h>

typedef struct sb_bus sb_bus_t;

/* Hands a message published on a channel this node subscribed to the node. Returns how many
 * local connections it was queued on. msg is valid only during the call. */
typedef int (*sb_bus_deliver_fn)(void *ctx, const char *channel, const char *msg, size_t len);

/* The outcome of a publish: receivers >= 0 took the message, -1 the bus could not take it.
 * May run before publish returns (the embedded bus) or later (a remote bus). */
typedef void (*sb_bus_done_fn)(void *arg, int receivers);

typedef struct {
    /* Starts receiving a channel's messages. Returns 0, or -1 when out of memory. */
    int (*subscribe)(sb_bus_t *b, const char *channel);
    void (*unsubscribe)(sb_bus_t *b, const char *channel);
    /* Publishes msg (copied before return). done may be NULL. */
    void (*publish)(sb_bus_t *b, const char *channel, const char *msg, size_t len,
                    sb_bus_done_fn done, void *arg);
    void (*free)(sb_bus_t *b);
} sb_bus_ops_t;

/* Every bus starts with this header; deliver and ctx are set by the bus's owner. */
struct sb_bus {
    const sb_bus_ops_t *ops;
    sb_bus_deliver_fn deliver;
    void *ctx;
};

/* The embedded in-process bus of a single node: delivery happens within publish. */
sb_bus_t *sb_bus_memory_new(void);

#endif
