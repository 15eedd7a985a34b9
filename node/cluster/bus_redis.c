/* The cluster bus over Redis pub/sub: one channel per peer, PUBLISH counts receivers.
 *
 * Two connections: PUBLISH, and a subscriber. Every
 * subscribed channel is remembered and subscribed again after a reconnect. A channel this node
 * has just left is remembered too until Redis confirms the UNSUBSCRIBE: a PUBLISH to it
 * meanwhile may have counted this node's own subscription, which no longer delivers, so it is
 * not taken for a receiver (the count may fall one short, never one over). The node checks its
 * own pub/sub path all the time: it publishes to a channel of its own every second and expects
 * the message back; a subscriber that stops delivering (dropped by Redis without a clean error,
 * an output-buffer limit, a failover) is reconnected. */
#include "cluster/bus_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/metrics.h"
#include "base/map.h"
#include "cluster/receivers.h"
#include "cluster/redis.h"

/* How often the path is checked, and how long an echo may take before the subscriber is
 * declared wedged. */
#define CHECK_INTERVAL 1.0
#define CHECK_TIMEOUT 3.0
/* Channels per SUBSCRIBE when subscribing again after a reconnect. */
#define SUBSCRIBE_BATCH 512

typedef struct {
    sb_bus_t base;
    struct event_base *evbase;
    sb_redis_t *pub, *sub;
    sb_map_t *channels;       /* channel -> channel_t, for every channel this node wants */
    sb_receivers_t receivers; /* publishes' answers, and the channels being left */
    char check_channel[96];
    struct event *check_timer;
    double sub_up_since;   /* when the subscriber became ready, 0 while it is not */
    double sub_down_since; /* when it was lost, 0 while it is ready or before its first time */
    double last_heard;     /* when the subscriber last received anything */
    double last_echo;      /* when our own check message last came back */
    unsigned long check_seq;
    double check_sent; /* when check message check_seq was published */
    int ready;         /* last readiness logged */
} redis_bus_t;

static double now(const redis_bus_t *b) { return sb_loop_now(b->evbase); }

/* Ready: both connections up, and a check message has made the whole trip since the
 * subscriber (re)connected, so every subscription sent before it is in place. */
static void update_ready(redis_bus_t *b)
{
    int ready = sb_redis_state(b->pub) == SB_REDIS_READY &&
                sb_redis_state(b->sub) == SB_REDIS_READY && b->sub_up_since > 0 &&
                b->last_echo >= b->sub_up_since;
    if (ready == b->ready)
        return;
    b->ready = ready;
    sb_log(ready ? SB_LOG_INFO : SB_LOG_WARN, "cluster bus %s", ready ? "ready" : "not ready");
}

/* A channel this node wants, and who waits to hear that its subscription is in place. */
typedef struct {
    void *sub;
    sb_bus_subscribed_fn done; /* NULL once told */
    void *arg;
} channel_t;

/* Tells everyone still waiting for a subscription that it is not coming (the subscriber
 * connection was lost); they may unsubscribe from inside the call. */
static void fail_waiting(redis_bus_t *b)
{
    size_t n = 0, cursor = 0;
    const char *key;
    void *value;
    while (sb_map_next(b->channels, &cursor, &key, &value))
        n += ((channel_t *)value)->done != NULL;
    if (n == 0)
        return;
    channel_t **waiting = malloc(n * sizeof(*waiting));
    size_t k = 0;
    cursor = 0;
    while (waiting && sb_map_next(b->channels, &cursor, &key, &value))
        if (((channel_t *)value)->done != NULL)
            waiting[k++] = value;
    for (size_t i = 0; i < k; i++) {
        sb_bus_subscribed_fn done = waiting[i]->done;
        waiting[i]->done = NULL;
        done(waiting[i]->arg, 0);
    }
    free(waiting);
}

static void subscribe_cmd(redis_bus_t *b, const char *verb, const char **channels, size_t n)
{
    const char *argv[SUBSCRIBE_BATCH + 1];
    size_t lens[SUBSCRIBE_BATCH + 1];
    argv[0] = verb;
    lens[0] = strlen(verb);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = channels[i];
        lens[i + 1] = strlen(channels[i]);
    }
    if (sb_redis_command(b->sub, (int)n + 1, argv, lens, NULL, NULL) != 0)
        sb_redis_reset(b->sub, "cannot queue SUBSCRIBE");
}

static void resubscribe(redis_bus_t *b)
{
    const char *batch[SUBSCRIBE_BATCH];
    size_t n = 0, cursor = 0;
    const char *key;
    void *value;

    batch[n++] = b->check_channel;
    while (sb_map_next(b->channels, &cursor, &key, &value)) {
        batch[n++] = key;
        if (n == SUBSCRIBE_BATCH) {
            subscribe_cmd(b, "SUBSCRIBE", batch, n);
            n = 0;
        }
    }
    if (n > 0)
        subscribe_cmd(b, "SUBSCRIBE", batch, n);
}

/* Publishes the next check message to our own channel. */
static void send_check(redis_bus_t *b)
{
    char seq[32];
    const char *argv[3] = {"PUBLISH", b->check_channel, seq};
    size_t lens[3] = {7, strlen(b->check_channel), 0};
    lens[2] = (size_t)snprintf(seq, sizeof(seq), "%lu", ++b->check_seq);
    b->check_sent = sb_clock_mono() /* finer than the loop's clock: well under 1 ms */;
    sb_redis_command(b->pub, 3, argv, lens, NULL, NULL);
}

static void on_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    redis_bus_t *b = ctx;
    (void)why;
    if (r == b->sub) {
        double t = now(b);
        b->sub_up_since = up ? t : 0;
        if (up) {
            resubscribe(b);
            /* What was lost at the break was published after the last message received. */
            double from = b->last_heard > 0 && b->last_heard < b->sub_down_since
                              ? b->last_heard
                              : b->sub_down_since;
            if (b->base.renewed)
                b->base.renewed(b->base.ctx, b->sub_down_since > 0 ? t - from : 0,
                                b->sub_down_since > 0 ? t - b->sub_down_since : 0);
            b->sub_down_since = 0;
        } else {
            fail_waiting(b);
            sb_receivers_reset(&b->receivers); /* a lost connection has no subscriptions left */
            if (b->sub_down_since == 0)
                b->sub_down_since = t;
        }
    }
    /* Both up: check the path at once, so that a node is ready as soon as Redis lets it be. */
    if (up && b->sub_up_since > 0 && sb_redis_state(b->pub) == SB_REDIS_READY)
        send_check(b);
    update_ready(b);
}

static void on_message(void *ctx, const char *channel, size_t chlen, const char *msg, size_t len)
{
    redis_bus_t *b = ctx;
    char name[160];

    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    b->last_heard = now(b);
    if (strcmp(name, b->check_channel) == 0) {
        b->last_echo = now(b);
        if (strtoul(msg, NULL, 10) == b->check_seq) /* msg is a bulk string, so NUL-terminated */
            sb_metrics.selfcheck_seconds = sb_clock_mono() - b->check_sent;
        update_ready(b);
        return;
    }
    channel_t *ch = sb_map_get(b->channels, name);
    if (b->base.deliver && ch != NULL)
        b->base.deliver(b->base.ctx, ch->sub, msg, len);
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    redis_bus_t *b = arg;
    double t = now(b);
    (void)fd;
    (void)what;

    if (sb_redis_state(b->pub) == SB_REDIS_READY && b->sub_up_since > 0) {
        double since = b->last_echo > b->sub_up_since ? b->last_echo : b->sub_up_since;
        if (t - since > CHECK_TIMEOUT) {
            sb_log(SB_LOG_WARN, "cluster bus: own messages stopped coming back for %.1f s",
                   t - since);
            sb_redis_reset(b->sub, "pub/sub self-check failed");
        } else {
            send_check(b);
        }
    }
    update_ready(b);
}

/* Redis confirmed a SUBSCRIBE: whoever waits for it hears so. */
static void on_subscribed(void *ctx, const char *channel, size_t chlen)
{
    redis_bus_t *b = ctx;
    char name[160];
    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    channel_t *ch = sb_map_get(b->channels, name);
    if (ch != NULL && ch->done != NULL) {
        sb_bus_subscribed_fn done = ch->done;
        ch->done = NULL;
        done(ch->arg, 1);
    }
}

/* Redis confirmed an UNSUBSCRIBE: that subscription counts no more. */
static void on_unsubscribed(void *ctx, const char *channel, size_t chlen)
{
    redis_bus_t *b = ctx;
    char name[160];
    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    sb_receivers_left(&b->receivers, name);
}

static int subscribe(sb_bus_t *base, const char *channel, void *sub, sb_bus_subscribed_fn done,
                     void *arg)
{
    redis_bus_t *b = (redis_bus_t *)base;
    channel_t *ch = sb_map_get(b->channels, channel);
    if (ch != NULL) { /* already wanted: a new subscriber takes it over */
        ch->sub = sub;
        if (done)
            done(arg, ch->done == NULL);
        return 0;
    }
    if (sb_redis_state(b->sub) != SB_REDIS_READY) {
        if (done)
            done(arg, 0); /* not now: the caller says so rather than wait for Redis */
        return 0;
    }
    if ((ch = malloc(sizeof(*ch))) == NULL || sb_map_put(b->channels, channel, ch) != 0) {
        free(ch);
        return -1;
    }
    *ch = (channel_t){sub, done, arg};
    subscribe_cmd(b, "SUBSCRIBE", &channel, 1);
    return 0;
}

static void unsubscribe(sb_bus_t *base, const char *channel)
{
    redis_bus_t *b = (redis_bus_t *)base;
    channel_t *ch = sb_map_remove(b->channels, channel);
    if (ch == NULL)
        return;
    if (sb_redis_state(b->sub) == SB_REDIS_READY) {
        sb_receivers_leaving(&b->receivers, channel);
        subscribe_cmd(b, "UNSUBSCRIBE", &channel, 1);
    }
    if (ch->done != NULL)
        ch->done(ch->arg, 0);
    free(ch);
}

static void publish(sb_bus_t *base, const char *channel, const sb_str_t *parts, size_t nparts,
                    sb_bus_done_fn done, void *arg)
{
    redis_bus_t *b = (redis_bus_t *)base;
    int refused;
    void *w = sb_receivers_wait(&b->receivers, channel, b->channels, done, arg, &refused);
    if (refused)
        return;
    if (sb_redis_publish(b->pub, channel, parts, nparts, w ? sb_receivers_answer : NULL, w) != 0)
        sb_receivers_unsent(&b->receivers, w, done, arg);
}

static int ready(sb_bus_t *base, char *why, size_t len)
{
    redis_bus_t *b = (redis_bus_t *)base;
    if (!b->ready)
        snprintf(why, len, "cannot publish and receive through Redis");
    return b->ready;
}

static void bus_free(sb_bus_t *base)
{
    redis_bus_t *b = (redis_bus_t *)base;
    if (b->check_timer)
        event_free(b->check_timer);
    fail_waiting(b); /* first: the waiting may unsubscribe */
    sb_redis_free(b->sub);
    sb_redis_free(b->pub); /* fails pending publishes: their senders are told */
    size_t cursor = 0;
    const char *key;
    void *value;
    while (sb_map_next(b->channels, &cursor, &key, &value))
        free(value);
    sb_map_free(b->channels);
    sb_receivers_free(&b->receivers); /* after the publisher, whose failed publishes answer */
    free(b);
}

static const sb_bus_ops_t ops = {subscribe, unsubscribe, publish, ready, bus_free};

sb_bus_t *sb_bus_redis_new(struct event_base *base, const sb_redis_url_t *url, const char *node_id)
{
    redis_bus_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->base.ops = &ops;
    b->base.remote = 1;
    b->evbase = base;
    snprintf(b->check_channel, sizeof(b->check_channel), "sb:check:%s", node_id);
    sb_redis_opts_t o = {.node_id = node_id,
                         .connect_timeout = 2,
                         .command_timeout = 5,
                         .backoff_cap =
                             1, /* back within about a second of Redis: held messages wait less */
                         .priority = SB_PRIO_CLIENTS,
                         .on_state = on_state,
                         .on_message = on_message,
                         .on_subscribed = on_subscribed,
                         .on_unsubscribed = on_unsubscribed,
                         .ctx = b};
    o.name = "pub";
    b->pub = sb_redis_new(base, url, &o);
    o.name = "sub";
    o.pubsub = 1;
    b->sub = sb_redis_new(base, url, &o);
    b->channels = sb_map_new();
    b->check_timer = event_new(base, -1, EV_PERSIST, on_check, b);
    struct timeval tv = {(time_t)CHECK_INTERVAL, 0};
    if (!b->pub || !b->sub || !b->channels || sb_receivers_init(&b->receivers) != 0 ||
        !b->check_timer || event_add(b->check_timer, &tv)) {
        bus_free(&b->base);
        return NULL;
    }
    sb_redis_start(b->pub);
    sb_redis_start(b->sub);
    return &b->base;
}
