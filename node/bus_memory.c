/* The embedded bus of a single node: channels live in this process and delivery is immediate. */
#include <stdlib.h>

#include "bus.h"
#include "map.h"

typedef struct {
    sb_bus_t base;
    sb_map_t *channels; /* channel -> non-NULL marker while subscribed */
} memory_bus_t;

static int subscribe(sb_bus_t *b, const char *channel)
{
    memory_bus_t *m = (memory_bus_t *)b;
    return sb_map_put(m->channels, channel, m);
}

static void unsubscribe(sb_bus_t *b, const char *channel)
{
    sb_map_remove(((memory_bus_t *)b)->channels, channel);
}

static void publish(sb_bus_t *b, const char *channel, const char *msg, size_t len,
                    sb_bus_done_fn done, void *arg)
{
    memory_bus_t *m = (memory_bus_t *)b;
    int receivers = 0;
    if (sb_map_get(m->channels, channel) != NULL && b->deliver != NULL)
        receivers = b->deliver(b->ctx, channel, msg, len);
    if (done)
        done(arg, receivers);
}

static void bus_free(sb_bus_t *b)
{
    memory_bus_t *m = (memory_bus_t *)b;
    sb_map_free(m->channels);
    free(m);
}

static const sb_bus_ops_t ops = {subscribe, unsubscribe, publish, bus_free};

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
