/* The embedded bus of a single node: channels live in this process and delivery is immediate. */
#include <stdlib.h>
#include <string.h>

#include "cluster/bus.h"
#include "base/map.h"

typedef struct {
    sb_bus_t base;
    sb_map_t *channels; /* channel -> its subscriber */
} memory_bus_t;

static int subscribe(sb_bus_t *b, const char *channel, void *sub, sb_bus_subscribed_fn done,
                     void *arg)
{
    memory_bus_t *m = (memory_bus_t *)b;
    if (sb_map_put(m->channels, channel, sub) != 0)
        return -1;
    if (done)
        done(arg, 1); /* in place at once */
    return 0;
}

static void unsubscribe(sb_bus_t *b, const char *channel)
{
    sb_map_remove(((memory_bus_t *)b)->channels, channel);
}

static void publish(sb_bus_t *b, const char *channel, const sb_str_t *parts, size_t nparts,
                    sb_bus_done_fn done, void *arg)
{
    memory_bus_t *m = (memory_bus_t *)b;
    void *sub = sb_map_get(m->channels, channel);
    int receivers = 0;
    if (sub != NULL && b->deliver != NULL) {
        /* Delivered as one message, as a remote bus would. */
        size_t len = 0;
        for (size_t i = 0; i < nparts; i++)
            len += parts[i].len;
        char *msg = malloc(len ? len : 1);
        if (msg == NULL) {
            if (done)
                done(arg, -1);
            return;
        }
        for (size_t i = 0, at = 0; i < nparts; at += parts[i].len, i++)
            if (parts[i].len > 0)
                memcpy(msg + at, parts[i].p, parts[i].len);
        receivers = b->deliver(b->ctx, sub, msg, len);
        free(msg);
    }
    if (done)
        done(arg, receivers);
}

static int ready(sb_bus_t *b, char *why, size_t len)
{
    (void)b;
    (void)why;
    (void)len;
    return 1; /* in-process: always */
}

static void bus_free(sb_bus_t *b)
{
    memory_bus_t *m = (memory_bus_t *)b;
    sb_map_free(m->channels);
    free(m);
}

static const sb_bus_ops_t ops = {subscribe, unsubscribe, publish, ready, bus_free};

sb_bus_t *sb_bus_memory_new(void)
{
    memory_bus_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->channels = sb_map_new();
    if (m->channels == NULL) {
        free(m);
        return NULL;
    }
    m->base.ops = &ops;
    return &m->base;
}
