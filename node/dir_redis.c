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
 * Every check-and-set is one Lua script, so two nodes never both win. Room events for other
 * nodes' members are published by those scripts on the members' peer channels (sb:peer:<id>). */
#include "dir_redis.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "map.h"
#include "message.h"

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

/* KEYS: sb:members:<room>, sb:node:<node>:members. ARGV: peer, node, limit, "<room>\t<peer>",
 * room. Returns {added, peer1, node1, peer2, node2, ...}, or nil when the room is full. */
static const char JOIN[] =
    "local added = 0\n"
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
    "  local event = '{\"type\":\"peer-joined\",\"room\":\"' .. ARGV[5] .. '\",\"peer\":\"' ..\n"
    "    ARGV[1] .. '\"}'\n"
    "  for i = 1, #all, 2 do\n"
    "    if all[i + 1] ~= ARGV[2] then redis.call('PUBLISH', 'sb:peer:' .. all[i], event) end\n"
    "  end\n"
    "end\n"
    "table.insert(all, 1, added)\n"
    "return all\n";

/* KEYS: sb:members:<room>, sb:node:<node>:members. ARGV: peer, node, "<room>\t<peer>", room,
 * announce. Tells the others when it removed the member, or always with announce "1" (a leave
 * that waited out an outage: Redis may have lost the member, not the others' memory of it). */
static const char LEAVE[] =
    "local removed = 0\n"
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  removed = 1\n"
    "end\n"
    "redis.call('SREM', KEYS[2], ARGV[3])\n"
    "if removed == 1 or ARGV[5] == '1' then\n"
    "  local event = '{\"type\":\"peer-left\",\"room\":\"' .. ARGV[4] .. '\",\"peer\":\"' ..\n"
    "    ARGV[1] .. '\"}'\n"
    "  local all = redis.call('HGETALL', KEYS[1])\n"
    "  for i = 1, #all, 2 do\n"
    "    if all[i + 1] ~= ARGV[2] then redis.call('PUBLISH', 'sb:peer:' .. all[i], event) end\n"
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

/* ARGV: node. Removes every node whose liveness key has expired: its room members (telling every
 * remaining member, on whatever node, peer-left) and its ID claims. Atomic, so the work is done
 * once. One live node at a time holds the sweeper lease (sb:sweeper) and does the scan; the others
 * stop at the lease, so a cluster's sweeping costs O(nodes) a second, not O(nodes^2). A lease
 * whose holder's liveness key has expired is taken over at once: a dead sweeper is no delay.
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
    "        local event = '{\"type\":\"peer-left\",\"room\":\"' .. room .. '\",\"peer\":\"' ..\n"
    "          peer .. '\"}'\n"
    "        local all = redis.call('HGETALL', hash)\n"
    "        for i = 1, #all, 2 do\n"
    "          if all[i + 1] ~= node then redis.call('PUBLISH', 'sb:peer:' .. all[i], event) end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    local ikey = 'sb:node:' .. node .. ':ids'\n"
    "    for _, id in ipairs(redis.call('SMEMBERS', ikey)) do\n"
    "      if redis.call('GET', 'sb:id:' .. id) == node then redis.call('DEL', 'sb:id:' .. id) "
    "end\n"
    "    end\n"
    "    redis.call('DEL', mkey, ikey)\n"
    "    redis.call('SREM', 'sb:nodes', node)\n"
    "    table.insert(removed, node)\n"
    "  end\n"
    "end\n"
    "return removed\n";

/* How many times a leave that waited out an outage is announced: once right away, and again
 * over the next seconds, after the other nodes have recorded their members again. */
#define LEAVE_REPLAYS 5

/* Room and peer names are at most 64 bytes, node IDs too: every key fits. */
#define KEY_MAX 256

typedef struct {
    sb_dir_t base;
    sb_redis_t *cmd;
    const char *node;
    double ttl;
    struct event *timer;
    int registered;     /* the last liveness refresh succeeded */
    sb_map_t *releases; /* IDs given up while Redis was unreachable: to release later */
    sb_map_t *leaves;   /* "<room>\t<peer>" left while unreachable: to remove later */
    sb_dir_redis_lost_fn on_lost;
    void *ctx;
} redis_dir_t;

static int ready(const redis_dir_t *d) { return sb_redis_state(d->cmd) == SB_REDIS_READY; }

/* Runs a script: EVAL script nkeys keys... args... */
static int eval(redis_dir_t *d, const char *script, int nkeys, const char **args, int nargs,
                sb_redis_reply_fn cb, void *arg)
{
    const char *argv[12];
    size_t lens[12];
    char numkeys[4];
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = numkeys;
    for (int i = 0; i < nargs; i++)
        argv[3 + i] = args[i];
    for (int i = 0; i < 3 + nargs; i++)
        lens[i] = strlen(argv[i]);
    return sb_redis_command(d->cmd, 3 + nargs, argv, lens, cb, arg);
}

static void log_error(void *arg, const sb_redis_reply_t *reply)
{
    const char *what = arg;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        sb_log(SB_LOG_ERROR, "redis %s: %.*s", what, (int)reply->len, reply->str);
}

typedef struct {
    sb_dir_claim_fn done;
    void *arg;
} claim_t;

static void on_claimed(void *arg, const sb_redis_reply_t *reply)
{
    claim_t *c = arg;
    int result = SB_DIR_UNAVAILABLE;
    log_error("claim", reply);
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
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
    if (eval(d, CLAIM, 2, args, 4, on_claimed, c) != 0) {
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
    return eval(d, RELEASE, 2, args, 4, log_error, "release");
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
    if (reply != NULL && reply->type == REDIS_REPLY_NIL) {
        j->done(j->arg, SB_DIR_FULL, 0, NULL, NULL, 0);
    } else if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 1 &&
               reply->element[0]->type == REDIS_REPLY_INTEGER) {
        size_t n = reply->elements / 2, k = 0;
        const char **members = malloc((n + 1) * sizeof(*members));
        const char **nodes = malloc((n + 1) * sizeof(*nodes));
        for (size_t i = 0; members && nodes && i < n; i++) {
            const sb_redis_reply_t *p = reply->element[1 + 2 * i], *q = reply->element[2 + 2 * i];
            if (p->type == REDIS_REPLY_STRING && q->type == REDIS_REPLY_STRING) {
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
    const char *args[] = {key, set, peer, d->node, lim, entry, room};
    if (eval(d, JOIN, 2, args, 7, on_joined, j) != 0) {
        free(j);
        done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
    }
}

static int send_leave(redis_dir_t *d, const char *entry, int announce)
{
    char key[KEY_MAX], set[KEY_MAX], room[SB_ROOM_MAX + 1];
    const char *tab = strchr(entry, '\t');
    snprintf(room, sizeof(room), "%.*s", (int)(tab - entry), entry);
    snprintf(key, sizeof(key), "sb:members:%s", room);
    snprintf(set, sizeof(set), "sb:node:%s:members", d->node);
    const char *args[] = {key, set, tab + 1, d->node, entry, room, announce ? "1" : "0"};
    return eval(d, LEAVE, 2, args, 7, log_error, "leave");
}

static void leave(sb_dir_t *base, const char *room, const char *peer)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char entry[SB_ROOM_MAX + SB_ID_MAX + 2];
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    if (send_leave(d, entry, 0) != 0)
        sb_map_put(d->leaves, entry, (void *)(intptr_t)LEAVE_REPLAYS);
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
    h->done(h->arg, reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 1);
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
    if (eval(d, HELD, 1, args, 1, on_held, h) != 0) {
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
        if (send_leave(d, entries[i], 1) != 0)
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
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        d->registered = 0;
        return;
    }
    if (!d->registered)
        sb_log(SB_LOG_INFO, "cluster: node %s registered", d->node);
    d->registered = 1;
    if (reply->integer == 1 && d->on_lost)
        d->on_lost(d->ctx); /* Redis did not know us: record our peers and rooms again */
}

static void on_swept(void *arg, const sb_redis_reply_t *reply)
{
    (void)arg;
    log_error("sweep", reply);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING)
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
    eval(d, ALIVE, 1, args, 3, on_alive, d);
    const char *sweeper[] = {d->node};
    eval(d, SWEEP, 0, sweeper, 1, on_swept, d);
}

static void dir_free(sb_dir_t *base)
{
    redis_dir_t *d = (redis_dir_t *)base;
    if (d->timer)
        event_free(d->timer);
    sb_map_free(d->releases);
    sb_map_free(d->leaves);
    free(d);
}

static const sb_dir_ops_t ops = {claim, release, held, join, leave, dir_free};

sb_dir_t *sb_dir_redis_new(struct event_base *base, sb_redis_t *cmd, const char *node, double ttl,
                           sb_dir_redis_lost_fn on_lost, void *ctx)
{
    redis_dir_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->base.ops = &ops;
    d->cmd = cmd;
    d->node = node;
    d->ttl = ttl;
    d->on_lost = on_lost;
    d->ctx = ctx;
    d->releases = sb_map_new();
    d->leaves = sb_map_new();
    d->timer = event_new(base, -1, EV_PERSIST, on_tick, d);
    struct timeval tv = {1, 0};
    if (!d->releases || !d->leaves || !d->timer || event_add(d->timer, &tv) != 0) {
        dir_free(&d->base);
        return NULL;
    }
    return &d->base;
}

void sb_dir_redis_refresh(sb_dir_t *base) { on_tick(-1, 0, base); }

int sb_dir_redis_registered(const sb_dir_t *base)
{
    const redis_dir_t *d = (const redis_dir_t *)base;
    return d->registered && ready(d);
}
