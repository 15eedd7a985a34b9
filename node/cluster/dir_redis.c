/* The cluster directory in Redis: peer ID claims, room members, node liveness, dead-node sweeps.
 *
 * Keys (all upkeep is per node, never per peer):
 *   sb:alive:<node>          liveness, refreshed every second, expiring after --node-ttl
 *   sb:nodes                 set of nodes that have registered
 *   sb:id:<peer>             the node holding a peer ID
 *   sb:node:<node>:ids       the peer IDs a node holds (for its sweep)
 *   sb:members:<room>        hash peer -> node
 *   sb:node:<node>:members   "<room>\t<peer>" entries of a node (for its sweep)
 *   sb:sweeper               the node that sweeps dead nodes, while it is alive
 * Every check-and-set is one Lua script, run by its SHA (loaded on each connect), so two nodes
 * never both win. Room events for other nodes' members are published by those scripts on the
 * members' peer channels (sb:peer:<id>), as envelopes (proto/envelope.h) like every bus message.
 *
 * Two connections of its own: "dir" for claims and rooms, which carries client requests, and
 * "upkeep" for this node's liveness and the sweeps, at the loop's upkeep priority. Nothing a
 * client sends waits in front of the liveness refresh, so no burst of requests can make the
 * other nodes take this one for dead. */
#include "cluster/dir_redis.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/map.h"
#include "base/metrics.h"
#include "envelope.h"
#include "names.h"
#include "cluster/redis.h"

/* KEYS: sb:id:<peer>, sb:node:<node>:ids. ARGV: node, peer. A dead node's ID is taken over. */
static const char CLAIM[] =
    "local owner = redis.call('GET', KEYS[1])\n"
    "if owner and owner ~= ARGV[1] and redis.call('EXISTS', 'sb:alive:' .. owner) == 1 then\n"
    "  return 0\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('SADD', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* KEYS: sb:id:<peer>, sb:node:<node>:ids. ARGV: node, peer. */
static const char RELEASE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* Room events for the members on other nodes go to their peer channels, which they subscribed
 * before their welcome, from inside the script that changes the room: a member joining at the
 * same moment is either in the list the script sees, or sees the change in its own answer. */

/* A room event for the member whose peer ID is in Lua variable member, as the envelope of
 * proto/envelope.h; kind, sent (the calling node's clock), peer and room are Lua expressions. */
#define PUBLISH_EVENT(member, kind, sent, peer, room)                                              \
    "redis.call('PUBLISH', '" SB_ENV_PEER_CHANNEL "' .. " member                                   \
    ", string.format('" SB_ENV_ROOM_EVENT_LUA "', " kind ", " sent ", " peer ", " room "))"

/* KEYS: sb:members:<room>, sb:node:<node>:members. ARGV: peer, node, limit, "<room>\t<peer>",
 * room, sent. Returns {added, peer1, node1, peer2, node2, ...}, or nil when the room is full. */
static const char JOIN[] = "local added = 0\n"
                           "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then\n"
                           "  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and\n"
                           "     redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then\n"
                           "    return false\n"
                           "  end\n"
                           "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                           "  redis.call('SADD', KEYS[2], ARGV[4])\n"
                           "  added = 1\n"
                           "end\n"
                           "local all = redis.call('HGETALL', KEYS[1])\n"
                           "if added == 1 then\n"
                           "  for i = 1, #all, 2 do\n"
                           "    if all[i + 1] ~= ARGV[2] then\n"
                           "      " PUBLISH_EVENT("all[i]", "'peer-joined'", "ARGV[6]", "ARGV[1]",
                                                  "ARGV[5]") "\n"
                                                             "    end\n"
                                                             "  end\n"
                                                             "end\n"
                                                             "table.insert(all, 1, added)\n"
                                                             "return all\n";

/* KEYS: sb:members:<room>, sb:node:<node>:members. ARGV: peer, node, "<room>\t<peer>", room,
 * announce, sent. Tells the others when it removed the member, or always with announce "1" (a leave
 * that waited out an outage: Redis may have lost the member, not the others' memory of it). */
static const char LEAVE[] = "local removed = 0\n"
                            "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
                            "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                            "  removed = 1\n"
                            "end\n"
                            "redis.call('SREM', KEYS[2], ARGV[3])\n"
                            "if removed == 1 or ARGV[5] == '1' then\n"
                            "  local all = redis.call('HGETALL', KEYS[1])\n"
                            "  for i = 1, #all, 2 do\n"
                            "    if all[i + 1] ~= ARGV[2] then\n"
                            "      " PUBLISH_EVENT("all[i]", "'peer-left'", "ARGV[6]", "ARGV[1]",
                                                   "ARGV[4]") "\n"
                                                              "    end\n"
                                                              "  end\n"
                                                              "end\n"
                                                              "return removed\n";

/* KEYS: sb:id:<peer>. Returns 1 when a live node holds the ID. */
static const char HELD[] =
    "local owner = redis.call('GET', KEYS[1])\n"
    "if owner and redis.call('EXISTS', 'sb:alive:' .. owner) == 1 then return 1 end\n"
    "return 0\n";

/* KEYS: sb:alive:<node>. ARGV: node, ttl in ms. Returns 1 when the node was not registered
 * (first start, a Redis that lost its data, or a sweep after the node fell silent): the node
 * must then record its peers and rooms again. */
static const char ALIVE[] = "redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])\n"
                            "return redis.call('SADD', 'sb:nodes', ARGV[1])\n";

/* ARGV: node, sent. Removes every node whose liveness key has expired: its room members (telling
 * every remaining member, on whatever node, peer-left) and its ID claims. Atomic, so the work is
 * done once. One live node at a time holds the sweeper lease (sb:sweeper) and does the scan; the
 * others stop at the lease, so a cluster's sweeping costs O(nodes) a second, not O(nodes^2). A
 * lease whose holder's liveness key has expired is taken over at once: a dead sweeper is no delay.
 * Returns the nodes removed. */
static const char SWEEP[] =
    "local holder = redis.call('GET', 'sb:sweeper')\n"
    "if holder and holder ~= ARGV[1] and redis.call('EXISTS', 'sb:alive:' .. holder) == 1 then\n"
    "  return {}\n"
    "end\n"
    "redis.call('SET', 'sb:sweeper', ARGV[1])\n"
    "local removed = {}\n"
    "for _, node in ipairs(redis.call('SMEMBERS', 'sb:nodes')) do\n"
    "  if redis.call('EXISTS', 'sb:alive:' .. node) == 0 then\n"
    "    local mkey = 'sb:node:' .. node .. ':members'\n"
    "    for _, entry in ipairs(redis.call('SMEMBERS', mkey)) do\n"
    "      local tab = string.find(entry, '\\t', 1, true)\n"
    "      local room, peer = string.sub(entry, 1, tab - 1), string.sub(entry, tab + 1)\n"
    "      local hash = 'sb:members:' .. room\n"
    "      if redis.call('HGET', hash, peer) == node then\n"
    "        redis.call('HDEL', hash, peer)\n"
    "        local all = redis.call('HGETALL', hash)\n"
    "        for i = 1, #all, 2 do\n"
    "          if all[i + 1] ~= node then\n"
    "            " PUBLISH_EVENT(
        "all[i]", "'peer-left'", "ARGV[2]", "peer",
        "room") "\n"
                "          end\n"
                "        end\n"
                "      end\n"
                "    end\n"
                "    local ikey = 'sb:node:' .. node .. ':ids'\n"
                "    for _, id in ipairs(redis.call('SMEMBERS', ikey)) do\n"
                "      if redis.call('GET', 'sb:id:' .. id) == node then redis.call('DEL', "
                "'sb:id:' .. id) "
                "end\n"
                "    end\n"
                "    redis.call('DEL', mkey, ikey)\n"
                "    redis.call('SREM', 'sb:nodes', node)\n"
                "    table.insert(removed, node)\n"
                "  end\n"
                "end\n"
                "return removed\n";

/* The scripts by connection: the first five run on "dir", the last two on "upkeep". */
enum { S_CLAIM, S_RELEASE, S_JOIN, S_LEAVE, S_HELD, S_ALIVE, S_SWEEP, S_COUNT };
static sb_redis_script_t scripts[S_COUNT] = {
    {CLAIM, ""}, {RELEASE, ""}, {JOIN, ""}, {LEAVE, ""}, {HELD, ""}, {ALIVE, ""}, {SWEEP, ""},
};
#define DIR_SCRIPTS S_ALIVE

/* How many times a leave that waited out an outage is announced: once right away, and again
 * over the next seconds, after the other nodes have recorded their members again. */
#define LEAVE_REPLAYS 5

/* Room and peer names are at most 64 bytes, node IDs too: every key fits. */
#define KEY_MAX 256

typedef struct {
    sb_dir_t base;
    sb_redis_t *cmd;    /* claims, rooms: client requests */
    sb_redis_t *upkeep; /* liveness and sweeps only */
    const char *node;
    double ttl;
    struct event *timer;
    int registered;     /* the last liveness refresh succeeded */
    sb_map_t *releases; /* IDs given up while Redis was unreachable: to release later */
    sb_map_t *leaves;   /* "<room>\t<peer>" left while unreachable: to remove later */
} redis_dir_t;

/* Both connections up: claims and liveness are only made together (a liveness refresh that
 * says Redis lost this node is answered by claims, which must be able to go out). */
static int ready(const redis_dir_t *d)
{
    return sb_redis_state(d->cmd) == SB_REDIS_READY && sb_redis_state(d->upkeep) == SB_REDIS_READY;
}

/* This node's clock for the room events a script sends, in microseconds, as digits (Lua would
 * write a number this large in exponent form). */
static void sent_now(char out[24])
{
    snprintf(out, 24, "%llu", (unsigned long long)sb_clock_wall_us());
}

/* Runs one of the scripts on the connection it belongs to. */
static int eval(redis_dir_t *d, int script, int nkeys, const char **args, int nargs,
                sb_redis_reply_fn cb, void *arg)
{
    return sb_redis_eval(script < DIR_SCRIPTS ? d->cmd : d->upkeep, &scripts[script], nkeys, args,
                         nargs, cb, arg);
}

static void log_error(void *arg, const sb_redis_reply_t *reply)
{
    const char *what = arg;
    if (reply != NULL && reply->type == SB_REDIS_ERROR)
        sb_log(SB_LOG_ERROR, "redis %s: %.*s", what, (int)reply->len, reply->str);
}

typedef struct {
    sb_dir_claim_fn done;
    void *arg;
} claim_t;

static void on_claimed(void *arg, const sb_redis_reply_t *reply)
{
    claim_t *c = arg;
    sb_dir_result_t result = SB_DIR_UNAVAILABLE;
    log_error("claim", reply);
    if (reply != NULL && reply->type == SB_REDIS_INTEGER)
        result = reply->integer == 1 ? SB_DIR_OK : SB_DIR_TAKEN;
    c->done(c->arg, result);
    free(c);
}

static void claim(sb_dir_t *base, const char *id, sb_dir_claim_fn done, void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX], ids[KEY_MAX];
    claim_t *c = malloc(sizeof(*c));
    /* Until this node's liveness key is written, other nodes would take its claims for a dead
     * node's and take them over: no claims before then. */
    if (c == NULL || !ready(d) || !d->registered) {
        free(c);
        done(arg, SB_DIR_UNAVAILABLE);
        return;
    }
    c->done = done;
    c->arg = arg;
    snprintf(key, sizeof(key), "sb:id:%s", id);
    snprintf(ids, sizeof(ids), "sb:node:%s:ids", d->node);
    sb_map_remove(d->releases, id); /* claimed again: no longer to be released */
    const char *args[] = {key, ids, d->node, id};
    if (eval(d, S_CLAIM, 2, args, 4, on_claimed, c) != 0) {
        free(c);
        done(arg, SB_DIR_UNAVAILABLE);
    }
}

static int send_release(redis_dir_t *d, const char *id)
{
    char key[KEY_MAX], ids[KEY_MAX];
    snprintf(key, sizeof(key), "sb:id:%s", id);
    snprintf(ids, sizeof(ids), "sb:node:%s:ids", d->node);
    const char *args[] = {key, ids, d->node, id};
    return eval(d, S_RELEASE, 2, args, 4, log_error, "release");
}

static void release(sb_dir_t *base, const char *id)
{
    redis_dir_t *d = (redis_dir_t *)base;
    if (send_release(d, id) != 0)
        sb_map_put(d->releases, id, d); /* out of memory here only delays the release */
}

typedef struct {
    sb_dir_join_fn done;
    void *arg;
} join_t;

static void on_joined(void *arg, const sb_redis_reply_t *reply)
{
    join_t *j = arg;
    log_error("join", reply);
    if (reply != NULL && reply->type == SB_REDIS_NIL) {
        j->done(j->arg, SB_DIR_FULL, 0, NULL, NULL, 0);
    } else if (reply != NULL && reply->type == SB_REDIS_ARRAY && reply->elements % 2 == 1 &&
               reply->element[0]->type == SB_REDIS_INTEGER) {
        size_t n = reply->elements / 2, k = 0;
        const char **members = malloc((n + 1) * sizeof(*members));
        const char **nodes = malloc((n + 1) * sizeof(*nodes));
        for (size_t i = 0; members && nodes && i < n; i++) {
            const sb_redis_reply_t *p = reply->element[1 + 2 * i], *q = reply->element[2 + 2 * i];
            if (p->type == SB_REDIS_STRING && q->type == SB_REDIS_STRING) {
                members[k] = p->str;
                nodes[k++] = q->str;
            }
        }
        if (members && nodes)
            j->done(j->arg, SB_DIR_OK, reply->element[0]->integer == 1, members, nodes, k);
        else
            j->done(j->arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
        free(members);
        free(nodes);
    } else {
        j->done(j->arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
    }
    free(j);
}

static void join(sb_dir_t *base, const char *room, const char *peer, size_t limit,
                 sb_dir_join_fn done, void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX], set[KEY_MAX], entry[SB_ROOM_MAX + SB_ID_MAX + 2], lim[24];
    join_t *j = malloc(sizeof(*j));
    if (j == NULL || !ready(d) || !d->registered) {
        free(j);
        done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
        return;
    }
    j->done = done;
    j->arg = arg;
    snprintf(key, sizeof(key), "sb:members:%s", room);
    snprintf(set, sizeof(set), "sb:node:%s:members", d->node);
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    snprintf(lim, sizeof(lim), "%zu", limit > 1000000000 ? (size_t)1000000000 : limit);
    sb_map_remove(d->leaves, entry);
    char sent[24];
    sent_now(sent);
    const char *args[] = {key, set, peer, d->node, lim, entry, room, sent};
    if (eval(d, S_JOIN, 2, args, 8, on_joined, j) != 0) {
        free(j);
        done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
    }
}

/* A leave waiting for Redis: if the connection is lost first, it may not have run, so it is
 * recorded to be sent again (removing a member twice is harmless). */
typedef struct {
    redis_dir_t *dir;
    sb_dir_done_fn done;
    void *arg;
    char entry[SB_ROOM_MAX + SB_ID_MAX + 2];
} leave_t;

static void remember_leave(redis_dir_t *d, const char *entry)
{
    /* Out of memory here loses the leave in Redis until this node's sweep: logged. */
    if (sb_map_put(d->leaves, entry, (void *)(intptr_t)LEAVE_REPLAYS) != 0)
        sb_log(SB_LOG_ERROR, "out of memory: the leave %s is not recorded in Redis", entry);
}

static void on_left(void *arg, const sb_redis_reply_t *reply)
{
    leave_t *l = arg;
    log_error("leave", reply);
    if (reply == NULL && sb_map_get(l->dir->leaves, l->entry) == NULL)
        remember_leave(l->dir, l->entry);
    if (l->done)
        l->done(l->arg);
    free(l);
}

static int send_leave(redis_dir_t *d, const char *entry, int announce, leave_t *l)
{
    char key[KEY_MAX], set[KEY_MAX], room[SB_ROOM_MAX + 1];
    const char *tab = strchr(entry, '\t');
    snprintf(room, sizeof(room), "%.*s", (int)(tab - entry), entry);
    snprintf(key, sizeof(key), "sb:members:%s", room);
    snprintf(set, sizeof(set), "sb:node:%s:members", d->node);
    char sent[24];
    sent_now(sent);
    const char *args[] = {key, set, tab + 1, d->node, entry, room, announce ? "1" : "0", sent};
    return l ? eval(d, S_LEAVE, 2, args, 8, on_left, l)
             : eval(d, S_LEAVE, 2, args, 8, log_error, "leave");
}

static void leave(sb_dir_t *base, const char *room, const char *peer, sb_dir_done_fn done,
                  void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    leave_t *l = calloc(1, sizeof(*l));
    char entry[SB_ROOM_MAX + SB_ID_MAX + 2];
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    if (l != NULL) {
        l->dir = d;
        l->done = done;
        l->arg = arg;
        memcpy(l->entry, entry, sizeof(entry));
    }
    if (l == NULL || !ready(d) || send_leave(d, entry, 0, l) != 0) {
        free(l);
        remember_leave(d, entry);
        if (done)
            done(arg);
    }
}

typedef struct {
    sb_dir_held_fn done;
    void *arg;
} held_t;

static void on_held(void *arg, const sb_redis_reply_t *reply)
{
    held_t *h = arg;
    log_error("held", reply);
    /* Unknown counts as held: the caller then says "unavailable", not "not connected". */
    h->done(h->arg, reply == NULL || reply->type != SB_REDIS_INTEGER || reply->integer == 1);
    free(h);
}

static void held(sb_dir_t *base, const char *id, sb_dir_held_fn done, void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX];
    held_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        done(arg, 1);
        return;
    }
    h->done = done;
    h->arg = arg;
    snprintf(key, sizeof(key), "sb:id:%s", id);
    const char *args[] = {key};
    if (eval(d, S_HELD, 1, args, 1, on_held, h) != 0) {
        free(h);
        done(arg, 1);
    }
}

/* Sends the releases that waited out an outage. */
static void replay_releases(redis_dir_t *d)
{
    size_t cursor = 0;
    const char *key;
    void *value;
    while (sb_map_next(d->releases, &cursor, &key, &value)) {
        char id[SB_ID_MAX + 1];
        snprintf(id, sizeof(id), "%s", key);
        if (send_release(d, id) != 0)
            return;
        sb_map_remove(d->releases, id);
        cursor = 0; /* the map changed: start over */
    }
}

/* Announces the leaves that waited out an outage, LEAVE_REPLAYS times each. */
static void replay_leaves(redis_dir_t *d)
{
    size_t n = sb_map_size(d->leaves), k = 0, cursor = 0;
    const char *key;
    void *value;
    char(*entries)[SB_ROOM_MAX + SB_ID_MAX + 2] = n ? malloc(n * sizeof(*entries)) : NULL;
    while (entries && k < n && sb_map_next(d->leaves, &cursor, &key, &value))
        snprintf(entries[k++], sizeof(entries[0]), "%s", key);
    for (size_t i = 0; i < k; i++) {
        intptr_t left = (intptr_t)sb_map_get(d->leaves, entries[i]);
        if (send_leave(d, entries[i], 1, NULL) != 0)
            break;
        if (left <= 1)
            sb_map_remove(d->leaves, entries[i]);
        else
            sb_map_put(d->leaves, entries[i], (void *)(left - 1));
    }
    free(entries);
}

static void on_alive(void *arg, const sb_redis_reply_t *reply)
{
    redis_dir_t *d = arg;
    log_error("liveness", reply);
    if (reply == NULL || reply->type != SB_REDIS_INTEGER) {
        d->registered = 0;
        return;
    }
    if (!d->registered)
        sb_log(SB_LOG_INFO, "cluster: node %s registered", d->node);
    d->registered = 1;
    if (reply->integer == 1 && d->base.lost)
        d->base.lost(d->base.ctx); /* Redis did not know us: record our peers and rooms again */
}

static void on_swept(void *arg, const sb_redis_reply_t *reply)
{
    (void)arg;
    log_error("sweep", reply);
    if (reply == NULL || reply->type != SB_REDIS_ARRAY)
        return;
    sb_metrics.sweeps++;
    sb_metrics.dead_nodes_removed += reply->elements;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == SB_REDIS_STRING)
            sb_log(SB_LOG_WARN,
                   "cluster: node %s stopped refreshing its liveness; removed its "
                   "peers and room members",
                   reply->element[i]->str);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    redis_dir_t *d = arg;
    char key[KEY_MAX], ttl[24];
    (void)fd;
    (void)what;
    if (!ready(d)) {
        d->registered = 0;
        return;
    }
    if (d->registered) {
        replay_releases(d);
        replay_leaves(d);
    }
    snprintf(key, sizeof(key), "sb:alive:%s", d->node);
    snprintf(ttl, sizeof(ttl), "%ld", (long)(d->ttl * 1000));
    const char *args[] = {key, d->node, ttl};
    eval(d, S_ALIVE, 1, args, 3, on_alive, d);
    char sent[24];
    sent_now(sent);
    const char *sweeper[] = {d->node, sent};
    eval(d, S_SWEEP, 0, sweeper, 2, on_swept, d);
}

static void on_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    redis_dir_t *d = ctx;
    (void)r;
    (void)why;
    if (up)
        on_tick(-1, 0, d); /* register at once rather than on the next tick */
    else
        d->registered = 0;
}

static void dir_free(sb_dir_t *base)
{
    redis_dir_t *d = (redis_dir_t *)base;
    if (d->timer)
        event_free(d->timer);
    /* The connections first: failing their pending commands may record leaves. */
    sb_redis_free(d->cmd);
    sb_redis_free(d->upkeep);
    sb_map_free(d->releases);
    sb_map_free(d->leaves);
    free(d);
}

static int dir_ready(sb_dir_t *base, char *why, size_t len)
{
    redis_dir_t *d = (redis_dir_t *)base;
    if (!ready(d))
        snprintf(why, len, "not connected to Redis");
    else if (!d->registered)
        snprintf(why, len, "not registered in Redis yet");
    return ready(d) && d->registered;
}

static int idle(sb_dir_t *base)
{
    redis_dir_t *d = (redis_dir_t *)base;
    return sb_redis_in_flight(d->cmd) == 0;
}

static const sb_dir_ops_t ops = {claim, release, held, join, leave, dir_ready, idle, dir_free};

sb_dir_t *sb_dir_redis_new(struct event_base *base, const sb_redis_url_t *url, const char *node,
                           double ttl)
{
    redis_dir_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    if (scripts[0].sha[0] == '\0')
        for (int i = 0; i < S_COUNT; i++)
            sb_redis_script_init(&scripts[i]);
    d->base.ops = &ops;
    d->node = node;
    d->ttl = ttl;
    sb_redis_opts_t o = {.name = "dir",
                         .node_id = node,
                         .connect_timeout = 2,
                         .command_timeout = 5,
                         .backoff_cap = 2,
                         .priority = SB_PRIO_CLIENTS,
                         .scripts = scripts,
                         .nscripts = DIR_SCRIPTS,
                         .on_state = on_state,
                         .ctx = d};
    d->cmd = sb_redis_new(base, url, &o);
    o.name = "upkeep";
    o.priority = SB_PRIO_UPKEEP;
    o.scripts = scripts + DIR_SCRIPTS;
    o.nscripts = S_COUNT - DIR_SCRIPTS;
    /* A reply later than the liveness key lives means this node is as good as dead anyway. */
    o.command_timeout = ttl;
    d->upkeep = sb_redis_new(base, url, &o);
    d->releases = sb_map_new();
    d->leaves = sb_map_new();
    d->timer = event_new(base, -1, EV_PERSIST, on_tick, d);
    struct timeval tv = {1, 0};
    if (!d->cmd || !d->upkeep || !d->releases || !d->leaves || !d->timer ||
        event_priority_set(d->timer, SB_PRIO_UPKEEP) != 0 || event_add(d->timer, &tv) != 0) {
        dir_free(&d->base);
        return NULL;
    }
    sb_redis_start(d->cmd);
    sb_redis_start(d->upkeep);
    return &d->base;
}
