/* The cluster bus over Redis Cluster's sharded pub/sub: SPUBLISH and SSUBSCRIBE at the master of
 * each channel's slot.
 *
 * One connection per master for SPUBLISH and one for SSUBSCRIBE (cluster/rcluster.h). A channel
 * is subscribed on the subscriber of its slot's master, and again wherever the slot goes: after
 * a failover (that master's connection lost, the map read again), or a migration (Redis pushes a
 * sunsubscribe for every channel of a slot that left its master). As on one Redis, the receiver
 * count of SPUBLISH is the answer, a channel being left does not count this node, and the path
 * is checked all the time: every second the node publishes on a channel of its own on each
 * master and expects it back; a master whose subscriber stops delivering is reconnected. */
#include "cluster/bus_rcluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/map.h"
#include "base/metrics.h"
#include "cluster/rcluster.h"
#include "cluster/receivers.h"
#include "slot.h"

#define CHECK_INTERVAL 1.0
#define CHECK_TIMEOUT 3.0

enum { PUB, SUB };

/* A channel this node wants. */
typedef struct {
    void *sub;
    sb_bus_subscribed_fn done; /* NULL once told */
    void *arg;
    unsigned slot;
    sb_redis_t *on; /* the subscriber its SSUBSCRIBE went to; NULL while it is not subscribed */
} channel_t;

/* The self-check of one master: a channel of this node in one of the master's slots. */
typedef struct {
    char channel[128];
    int slot;          /* the slot it is in, -1 while the master is not followed */
    int subscribed;    /* its SSUBSCRIBE was sent on the current subscriber */
    double up_since;   /* when the master's subscriber became ready, 0 while it is not */
    double down_since; /* when it was lost, 0 while ready or before its first time */
    double last_echo;
    unsigned long seq;
    double sent;
} check_t;

typedef struct {
    sb_bus_t base;
    struct event_base *evbase;
    const char *node_id;
    sb_rcluster_t *rc;
    sb_map_t *channels;       /* channel -> channel_t */
    sb_receivers_t receivers; /* publishes' answers, and the channels being left */
    int loose;                /* some wanted channel may be subscribed nowhere */
    check_t checks[SB_RCLUSTER_MASTERS_MAX];
    struct event *check_timer;
    double last_heard;
    int ready; /* last readiness logged */
} cluster_bus_t;

static double now(const cluster_bus_t *b) { return sb_loop_now(b->evbase); }

/* The index of the master whose connection of role is r, or -1. */
static int master_of_conn(const cluster_bus_t *b, const sb_redis_t *r, int role)
{
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++)
        if (sb_rcluster_conn(b->rc, i, role) == r)
            return i;
    return -1;
}

/* The subscriber of the master serving slot, or NULL. */
static sb_redis_t *sub_of_slot(const cluster_bus_t *b, unsigned slot)
{
    return sb_rcluster_conn(b->rc, sb_rcluster_master_of(b->rc, slot), SUB);
}

static int compute_ready(cluster_bus_t *b, char *why, size_t len)
{
    if (!sb_rcluster_ready(b->rc, why, len))
        return 0;
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        const check_t *k = &b->checks[i];
        if (sb_rcluster_conn(b->rc, i, SUB) != NULL &&
            (k->up_since == 0 || k->last_echo < k->up_since)) {
            snprintf(why, len, "own messages not back yet through every Redis master");
            return 0;
        }
    }
    return 1;
}

static void update_ready(cluster_bus_t *b)
{
    char why[160];
    int ready = compute_ready(b, why, sizeof(why));
    if (ready == b->ready)
        return;
    b->ready = ready;
    if (ready)
        sb_log(SB_LOG_INFO, "cluster bus ready");
    else
        sb_log(SB_LOG_WARN, "cluster bus not ready: %s", why);
}

static void tell(channel_t *ch, int ok)
{
    if (ch->done != NULL) {
        sb_bus_subscribed_fn done = ch->done;
        ch->done = NULL;
        done(ch->arg, ok);
    }
}

/* Sends SSUBSCRIBE or SUNSUBSCRIBE of one channel on r. */
static int sub_cmd(sb_redis_t *r, const char *verb, const char *channel)
{
    const char *argv[2] = {verb, channel};
    size_t lens[2] = {strlen(verb), strlen(channel)};
    return sb_redis_command(r, 2, argv, lens, NULL, NULL);
}

/* Subscribes ch where its slot is now, if that subscriber is ready. */
static void place(cluster_bus_t *b, const char *name, channel_t *ch)
{
    sb_redis_t *r = sub_of_slot(b, ch->slot);
    if (r == NULL || sb_redis_state(r) != SB_REDIS_READY || sub_cmd(r, "SSUBSCRIBE", name) != 0) {
        ch->on = NULL;
        b->loose = 1;
        return;
    }
    ch->on = r;
}

/* Every wanted channel not subscribed where its slot is now is subscribed there (or stays
 * loose until its master is ready). */
static void place_all(cluster_bus_t *b)
{
    size_t cursor = 0;
    const char *key;
    void *value;
    b->loose = 0;
    while (sb_map_next(b->channels, &cursor, &key, &value)) {
        channel_t *ch = value;
        if (ch->on == NULL || ch->on != sub_of_slot(b, ch->slot))
            place(b, key, ch);
    }
}

/* A tag that hashes to slot, in out ("c" and digits). */
static void tag_for_slot(unsigned slot, char *out, size_t cap)
{
    for (unsigned long k = 0; k < 10000000; k++) {
        snprintf(out, cap, "c%lu", k);
        if (sb_slot_of(out, strlen(out)) == slot)
            return;
    }
}

/* Master i's check channel follows the slot it serves; a new one is subscribed. */
static void update_check(cluster_bus_t *b, int i)
{
    check_t *k = &b->checks[i];
    int slot = sb_rcluster_master_slot(b->rc, i);
    if (slot == k->slot)
        return;
    if (slot < 0) {
        *k = (check_t){.slot = -1};
        return;
    }
    char tag[24];
    tag_for_slot((unsigned)slot, tag, sizeof(tag));
    snprintf(k->channel, sizeof(k->channel), "sb:check:{%s}:%s", tag, b->node_id);
    k->slot = slot;
    k->subscribed = 0;
    sb_redis_t *r = sb_rcluster_conn(b->rc, i, SUB);
    if (sb_redis_state(r) == SB_REDIS_READY)
        k->subscribed = sub_cmd(r, "SSUBSCRIBE", k->channel) == 0;
}

static void send_check(cluster_bus_t *b, int i)
{
    check_t *k = &b->checks[i];
    char seq[32];
    sb_redis_t *pub = sb_rcluster_conn(b->rc, i, PUB);
    if (k->slot < 0 || k->up_since == 0 || sb_redis_state(pub) != SB_REDIS_READY)
        return;
    const char *argv[3] = {"SPUBLISH", k->channel, seq};
    size_t lens[3] = {8, strlen(k->channel), 0};
    lens[2] = (size_t)snprintf(seq, sizeof(seq), "%lu", ++k->seq);
    k->sent = sb_clock_mono();
    sb_redis_command(pub, 3, argv, lens, NULL, NULL);
}

static void on_map(void *ctx)
{
    cluster_bus_t *b = ctx;
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++)
        update_check(b, i);
    place_all(b);
    update_ready(b);
}

static void on_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    cluster_bus_t *b = ctx;
    int i = master_of_conn(b, r, SUB);
    (void)why;
    if (i >= 0) {
        check_t *k = &b->checks[i];
        double t = now(b);
        if (up) {
            k->up_since = t;
            k->slot = -1; /* subscribed again below */
            update_check(b, i);
            place_all(b);
            /* What was lost at a break was published after the last message received. */
            if (b->base.renewed) {
                double from = b->last_heard > 0 && b->last_heard < k->down_since ? b->last_heard
                                                                                 : k->down_since;
                b->base.renewed(b->base.ctx, k->down_since > 0 ? t - from : 0,
                                k->down_since > 0 ? t - k->down_since : 0);
            }
            k->down_since = 0;
        } else {
            k->up_since = 0;
            k->subscribed = 0;
            if (k->down_since == 0)
                k->down_since = t;
            /* Its channels are subscribed nowhere now; their waiters hear so. */
            size_t cursor = 0;
            const char *key;
            void *value;
            while (sb_map_next(b->channels, &cursor, &key, &value)) {
                channel_t *ch = value;
                if (ch->on == r) {
                    ch->on = NULL;
                    b->loose = 1;
                }
            }
            cursor = 0;
            while (sb_map_next(b->channels, &cursor, &key, &value)) {
                channel_t *ch = value;
                if (ch->on == NULL && ch->done != NULL) {
                    tell(ch, 0); /* may unsubscribe: start over */
                    cursor = 0;
                }
            }
        }
    } else {
        i = master_of_conn(b, r, PUB);
    }
    if (up && i >= 0)
        send_check(b, i);
    update_ready(b);
}

static void on_message(void *ctx, const char *channel, size_t chlen, const char *msg, size_t len)
{
    cluster_bus_t *b = ctx;
    char name[160];
    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    b->last_heard = now(b);
    if (strncmp(name, "sb:check:", 9) == 0) {
        for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
            check_t *k = &b->checks[i];
            if (k->slot >= 0 && strcmp(k->channel, name) == 0) {
                k->last_echo = now(b);
                if (strtoul(msg, NULL, 10) == k->seq)
                    sb_metrics.selfcheck_seconds = sb_clock_mono() - k->sent;
                update_ready(b);
                return;
            }
        }
    }
    channel_t *ch = sb_map_get(b->channels, name);
    if (b->base.deliver && ch != NULL)
        b->base.deliver(b->base.ctx, ch->sub, msg, len);
}

static void on_subscribed(void *ctx, const char *channel, size_t chlen)
{
    cluster_bus_t *b = ctx;
    char name[160];
    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    channel_t *ch = sb_map_get(b->channels, name);
    if (ch != NULL && ch->on != NULL)
        tell(ch, 1);
}

/* A SUNSUBSCRIBE confirmed, or pushed by Redis because the channel's slot left this master:
 * then the channel is subscribed again where the slot went. */
static void on_unsubscribed(void *ctx, const char *channel, size_t chlen)
{
    cluster_bus_t *b = ctx;
    char name[160];
    if (!sb_receivers_channel(name, sizeof(name), channel, chlen))
        return;
    if (sb_receivers_left(&b->receivers, name))
        return; /* one this node sent */
    channel_t *ch = sb_map_get(b->channels, name);
    if (ch != NULL) {
        sb_log(SB_LOG_INFO, "cluster bus: %s moved to another Redis master", name);
        ch->on = NULL;
        b->loose = 1;
    } else {
        for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++)
            if (b->checks[i].slot >= 0 && strcmp(b->checks[i].channel, name) == 0)
                b->checks[i].slot = -1; /* its slot moved: a new channel is chosen */
    }
    sb_rcluster_refresh(b->rc);
}

/* A subscriber's SSUBSCRIBE refused (MOVED: the slot is elsewhere): the channels sent there and
 * not confirmed are subscribed again once the map is read. */
static void on_push_error(void *ctx, sb_redis_t *r, const char *err, size_t len)
{
    cluster_bus_t *b = ctx;
    size_t cursor = 0;
    const char *key;
    void *value;
    (void)err;
    (void)len;
    while (sb_map_next(b->channels, &cursor, &key, &value)) {
        channel_t *ch = value;
        if (ch->on == r && ch->done != NULL) {
            ch->on = NULL;
            b->loose = 1;
        }
    }
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    cluster_bus_t *b = arg;
    double t = now(b);
    (void)fd;
    (void)what;
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++) {
        check_t *k = &b->checks[i];
        sb_redis_t *sub = sb_rcluster_conn(b->rc, i, SUB);
        if (sub == NULL || k->up_since == 0)
            continue;
        if (k->slot < 0)
            update_check(b, i);
        if (!k->subscribed && sb_redis_state(sub) == SB_REDIS_READY)
            k->subscribed = sub_cmd(sub, "SSUBSCRIBE", k->channel) == 0;
        double since = k->last_echo > k->up_since ? k->last_echo : k->up_since;
        if (t - since > CHECK_TIMEOUT) {
            sb_log(SB_LOG_WARN,
                   "cluster bus: own messages stopped coming back from %s:%d for %.1f s",
                   sb_redis_url(sub)->host, sb_redis_url(sub)->port, t - since);
            sb_redis_reset(sub, "pub/sub self-check failed");
        } else {
            send_check(b, i);
        }
    }
    if (b->loose)
        place_all(b);
    update_ready(b);
}

static int subscribe(sb_bus_t *base, const char *channel, void *sub, sb_bus_subscribed_fn done,
                     void *arg)
{
    cluster_bus_t *b = (cluster_bus_t *)base;
    channel_t *ch = sb_map_get(b->channels, channel);
    if (ch != NULL) { /* already wanted: a new subscriber takes it over */
        ch->sub = sub;
        if (done)
            done(arg, ch->on != NULL && ch->done == NULL);
        return 0;
    }
    unsigned slot = sb_slot_of(channel, strlen(channel));
    sb_redis_t *r = sub_of_slot(b, slot);
    if (r == NULL || sb_redis_state(r) != SB_REDIS_READY) {
        if (done)
            done(arg, 0); /* not now: the caller says so rather than wait for Redis */
        return 0;
    }
    if ((ch = malloc(sizeof(*ch))) == NULL || sb_map_put(b->channels, channel, ch) != 0) {
        free(ch);
        return -1;
    }
    *ch = (channel_t){sub, done, arg, slot, NULL};
    place(b, channel, ch);
    return 0;
}

static void unsubscribe(sb_bus_t *base, const char *channel)
{
    cluster_bus_t *b = (cluster_bus_t *)base;
    channel_t *ch = sb_map_remove(b->channels, channel);
    if (ch == NULL)
        return;
    if (ch->on != NULL && sb_redis_state(ch->on) == SB_REDIS_READY) {
        sb_receivers_leaving(&b->receivers, channel);
        sub_cmd(ch->on, "SUNSUBSCRIBE", channel);
    }
    if (ch->done != NULL)
        ch->done(ch->arg, 0);
    free(ch);
}

static void publish(sb_bus_t *base, const char *channel, const sb_str_t *parts, size_t nparts,
                    sb_bus_done_fn done, void *arg)
{
    cluster_bus_t *b = (cluster_bus_t *)base;
    int refused;
    void *w = sb_receivers_wait(&b->receivers, channel, b->channels, done, arg, &refused);
    if (refused)
        return;
    unsigned slot = sb_slot_of(channel, strlen(channel));
    if (sb_rcluster_publish(b->rc, PUB, slot, channel, parts, nparts,
                            w ? sb_receivers_answer : NULL, w) != 0)
        sb_receivers_unsent(&b->receivers, w, done, arg);
}

static int ready(sb_bus_t *base, char *why, size_t len)
{
    cluster_bus_t *b = (cluster_bus_t *)base;
    return compute_ready(b, why, len);
}

static void bus_free(sb_bus_t *base)
{
    cluster_bus_t *b = (cluster_bus_t *)base;
    if (b->check_timer)
        event_free(b->check_timer);
    size_t cursor = 0;
    const char *key;
    void *value;
    while (b->channels && sb_map_next(b->channels, &cursor, &key, &value))
        if (((channel_t *)value)->done != NULL) {
            tell(value, 0); /* may unsubscribe: start over */
            cursor = 0;
        }
    sb_rcluster_free(b->rc); /* fails pending publishes: their senders are told */
    cursor = 0;
    while (b->channels && sb_map_next(b->channels, &cursor, &key, &value))
        free(value);
    sb_map_free(b->channels);
    sb_receivers_free(&b->receivers); /* after the cluster, whose failed publishes answer */
    free(b);
}

static const sb_bus_ops_t ops = {subscribe, unsubscribe, publish, ready, bus_free};

sb_bus_t *sb_bus_rcluster_new(struct event_base *base, const sb_redis_url_t *url,
                              const char *node_id)
{
    cluster_bus_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->base.ops = &ops;
    b->base.remote = 1;
    b->base.sharded = 1;
    b->evbase = base;
    b->node_id = node_id;
    for (int i = 0; i < SB_RCLUSTER_MASTERS_MAX; i++)
        b->checks[i].slot = -1;
    sb_redis_opts_t o = {.node_id = node_id,
                         .connect_timeout = 2,
                         .command_timeout = 5,
                         .backoff_cap = 1,
                         .priority = SB_PRIO_CLIENTS,
                         .on_state = on_state,
                         .on_message = on_message,
                         .on_subscribed = on_subscribed,
                         .on_unsubscribed = on_unsubscribed,
                         .on_push_error = on_push_error,
                         .ctx = b};
    sb_rcluster_opts_t co = {.nroles = 2, .node_id = node_id, .on_map = on_map, .ctx = b};
    co.roles[PUB] = o;
    co.roles[PUB].name = "pub";
    co.roles[PUB].sharded = 1;
    co.roles[SUB] = o;
    co.roles[SUB].name = "sub";
    co.roles[SUB].pubsub = 1;
    b->channels = sb_map_new();
    b->check_timer = event_new(base, -1, EV_PERSIST, on_check, b);
    struct timeval tv = {(time_t)CHECK_INTERVAL, 0};
    if (!b->channels || sb_receivers_init(&b->receivers) != 0 || !b->check_timer ||
        event_add(b->check_timer, &tv) != 0 || (b->rc = sb_rcluster_new(base, url, &co)) == NULL) {
        bus_free(&b->base);
        return NULL;
    }
    return &b->base;
}
