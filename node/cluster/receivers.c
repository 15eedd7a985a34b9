/* How many nodes a Redis publish reached, for the buses over Redis (bus_redis, bus_rcluster):
 * the answer read, and this node's own subscription to a channel it is leaving taken off. */
#include "cluster/receivers.h"

#include <stdint.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"

typedef struct {
    sb_receivers_t *r;
    sb_bus_done_fn done;
    void *arg;
    int own_stale; /* this node was leaving the channel: its subscription may have counted */
} wait_t;

int sb_receivers_init(sb_receivers_t *r)
{
    r->waits = (sb_pool_t)SB_POOL_INIT(sizeof(wait_t), 1024);
    r->leaving = sb_map_new();
    return r->leaving != NULL ? 0 : -1;
}

void sb_receivers_free(sb_receivers_t *r)
{
    sb_map_free(r->leaving);
    r->leaving = NULL;
    sb_pool_drain(&r->waits);
}

void sb_receivers_leaving(sb_receivers_t *r, const char *channel)
{
    uintptr_t n = (uintptr_t)sb_map_get(r->leaving, channel);
    sb_map_put(r->leaving, channel, (void *)(n + 1));
}

int sb_receivers_left(sb_receivers_t *r, const char *channel)
{
    uintptr_t n = (uintptr_t)sb_map_get(r->leaving, channel);
    if (n > 1)
        sb_map_put(r->leaving, channel, (void *)(n - 1));
    else if (n == 1)
        sb_map_remove(r->leaving, channel);
    return n > 0;
}

void sb_receivers_reset(sb_receivers_t *r) { sb_map_clear(r->leaving); }

void *sb_receivers_wait(sb_receivers_t *r, const char *channel, const sb_map_t *wanted,
                        sb_bus_done_fn done, void *arg, int *refused)
{
    wait_t *w;
    *refused = 0;
    if (done == NULL)
        return NULL;
    if ((w = sb_pool_get(&r->waits)) == NULL) {
        sb_metrics.publish_failures++;
        *refused = 1;
        done(arg, -1);
        return NULL;
    }
    w->r = r;
    w->done = done;
    w->arg = arg;
    /* Almost always nothing is being left: no lookup then. */
    w->own_stale = sb_map_size(r->leaving) > 0 && sb_map_get(r->leaving, channel) != NULL &&
                   sb_map_get(wanted, channel) == NULL;
    return w;
}

void sb_receivers_answer(void *wait, const sb_redis_reply_t *reply)
{
    wait_t *w = wait;
    int receivers = -1;
    if (reply != NULL && reply->type == SB_REDIS_INTEGER)
        receivers = reply->integer > 1000000 ? 1000000 : (int)reply->integer;
    else
        sb_metrics.publish_failures++;
    if (reply != NULL && reply->type == SB_REDIS_ERROR)
        sb_log(SB_LOG_WARN, "redis bus: a publish refused: %.*s", (int)reply->len, reply->str);
    if (w->own_stale && receivers > 0)
        receivers--;
    sb_bus_done_fn done = w->done;
    void *arg = w->arg;
    sb_pool_put(&w->r->waits, w);
    done(arg, receivers);
}

void sb_receivers_unsent(sb_receivers_t *r, void *wait, sb_bus_done_fn done, void *arg)
{
    sb_metrics.publish_failures++;
    sb_pool_put(&r->waits, wait);
    if (done)
        done(arg, -1); /* not connected: the sender hears of it at once */
}

int sb_receivers_channel(char *name, size_t cap, const char *channel, size_t chlen)
{
    if (chlen >= cap)
        return 0;
    memcpy(name, channel, chlen);
    name[chlen] = '\0';
    return 1;
}
