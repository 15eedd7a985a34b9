/* The cluster directory in a Redis Cluster: peer ID claims, sessions and their mailboxes, room
 * members, node liveness and dead-node sweeps, each script touching the keys of one slot.
 *
 * Keys, by the slot their hash tag puts them in:
 *   a peer's, {<id>}:   sb:{<id>}:owner   the node holding the ID (or that held it, while detached)
 *                       sb:{<id>}:resume  the session's resume token
 *                       sb:{<id>}:until   while detached: the deadline of its resume (ms)
 *                       sb:{<id>}:rooms   set of its rooms
 *                       sb:{<id>}:mbox, sb:{<id>}:mboxb  envelopes held while detached, their bytes
 *                       sb:{<id>}:ch      its channel (SPUBLISH, cluster/bus_rcluster.c)
 *   a room's, {r:<room>}:  sb:{r:<room>}:members  hash peer -> node
 *   a node's, {n:<node>}:  sb:{n:<node>}:alive    liveness, expiring after --node-ttl
 *                          sb:{n:<node>}:ids      the IDs it holds (for its sweep)
 *   the cluster's, {sb}:   sb:{sb}:nodes     the nodes registered
 *                          sb:{sb}:detached  sorted set: detached sessions by deadline (a hint: a
 *                                            session's own sb:{<id>}:until decides)
 *                          sb:{sb}:sweeper   the sweeper's lease
 * A step that needs two slots is two steps, ordered so that a node dying between them leaves
 * nothing a later step cannot finish: the index entry before the claim, the hint before the
 * deadline. A claim or a put that depends on whether another node lives asks that node's
 * liveness key, then runs again with the answer, conditional on the holder being unchanged.
 * Room events for members on other nodes are published by the node that changed the room,
 * right after its script, on each member's channel; the replaced event is published by the
 * claim script itself (the channel is in the peer's slot). */
#include "cluster/dir_rcluster.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "base/map.h"
#include "base/metrics.h"
#include "cluster/rcluster.h"
#include "envelope.h"
#include "names.h"
#include "slot.h"

enum { DIR, UPKEEP };

#define NOW_LUA                                                                                    \
    "local function now_ms()\n"                                                                    \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                         \
    "end\n"

/* The peer scripts' KEYS: owner, resume, until, rooms, mbox, mboxb, ch. Ending a session deletes
 * its keys and returns its rooms, which the caller then leaves. */
#define END_LUA                                                                                    \
    "local function end_session()\n"                                                               \
    "  local rooms = redis.call('SMEMBERS', KEYS[4])\n"                                            \
    "  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])\n"                  \
    "  return rooms\n"                                                                             \
    "end\n"                                                                                        \
    "local function with(head, list)\n"                                                            \
    "  for _, x in ipairs(list) do table.insert(head, x) end\n"                                    \
    "  return head\n"                                                                              \
    "end\n"

/* ARGV: node, peer, token presented ("" none), new token, window ms, how, sent, the holder's
 * liveness ("1", "0" or "?" when not known) and the holder it is about. Returns {0} taken,
 * {2, holder} when the holder's liveness is needed, {1, 0, room...} for a new session (rooms of
 * an ended one to leave), {1, 1, nrooms, room..., envelope...} for a resumed one. */
static const char CLAIM[] = NOW_LUA END_LUA
    "local node, peer, how = ARGV[1], ARGV[2], ARGV[6]\n"
    "local owner = redis.call('GET', KEYS[1])\n"
    "local untl = redis.call('GET', KEYS[3])\n"
    "local waiting = untl and tonumber(untl) > now_ms()\n"
    "local resumed, ended = 0, {}\n"
    "if owner then\n"
    "  local alive\n"
    "  if owner == node then alive = true\n"
    "  elseif ARGV[8] ~= '?' and ARGV[9] == owner then alive = ARGV[8] == '1' end\n"
    "  if how ~= 'again' and ARGV[3] ~= '' and (waiting or not untl) and\n"
    "     redis.call('GET', KEYS[2]) == ARGV[3] then\n"
    "    if not untl and owner ~= node then\n"
    "      if alive == nil then return {2, owner} end\n"
    "      if alive then\n"
    "        redis.call('SPUBLISH', KEYS[7], string.format('" SB_ENV_REPLACED_LUA "', ARGV[7],\n"
    "                   peer, peer))\n"
    "      end\n"
    "    end\n"
    "    resumed = 1\n"
    "  elseif owner == node and not untl and how ~= 'held' then\n"
    "    -- this node's own record: its peer recorded again, or left over from a release\n"
    "  elseif untl and not waiting then\n"
    "    ended = end_session()\n"
    "  elseif waiting then\n"
    "    return {0}\n"
    "  else\n"
    "    if alive == nil then return {2, owner} end\n"
    "    if alive or tonumber(ARGV[5]) > 0 then return {0} end\n"
    "    ended = end_session()\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[1], node)\n"
    "redis.call('DEL', KEYS[3])\n"
    "redis.call('SET', KEYS[2], ARGV[4])\n"
    "if resumed == 0 then return with({1, 0}, ended) end\n"
    "local rooms = redis.call('SMEMBERS', KEYS[4])\n"
    "local reply = with({1, 1, #rooms}, rooms)\n"
    "with(reply, redis.call('LRANGE', KEYS[5], 0, -1))\n"
    "redis.call('DEL', KEYS[5], KEYS[6])\n"
    "return reply\n";

/* ARGV: node. Its rooms were left before. */
static const char RELEASE[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                              "  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5],\n"
                              "             KEYS[6])\n"
                              "end\n"
                              "return 1\n";

/* ARGV: node (the holder: this node, or a dead one being swept), window ms. Returns {0} when
 * the holder has not the ID attached, {1, deadline} detached (or already, by a sweep that
 * stopped half-way), {2, room...} ended (window 0: its rooms to leave). */
static const char DETACH[] =
    NOW_LUA END_LUA "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end\n"
                    "local untl = redis.call('GET', KEYS[3])\n"
                    "if untl then return {1, untl} end\n"
                    "if tonumber(ARGV[2]) <= 0 then return with({2}, end_session()) end\n"
                    "local deadline = now_ms() + tonumber(ARGV[2])\n"
                    "redis.call('SET', KEYS[3], deadline)\n"
                    "return {1, tostring(deadline)}\n";

/* No ARGV. Ends the session when its deadline has passed. Returns {1, room...} ended, {2}
 * still waiting, {0} not detached (resumed or gone). */
static const char EXPIRE[] = NOW_LUA END_LUA "local untl = redis.call('GET', KEYS[3])\n"
                                             "if not untl then return {0} end\n"
                                             "if tonumber(untl) > now_ms() then return {2} end\n"
                                             "return with({1}, end_session())\n";

/* ARGV: envelope, most messages, most bytes, window ms, the holder's liveness ("1", "0", "?") and
 * the holder it is about. Returns {-1} held, {0} no session, {1} a live connection holds it,
 * {2} the mailbox is full, {3, holder} when the holder's liveness is needed. */
static const char PUT[] =
    NOW_LUA "local owner = redis.call('GET', KEYS[1])\n"
            "if not owner then return {0} end\n"
            "local now = now_ms()\n"
            "local untl = redis.call('GET', KEYS[3])\n"
            "local deadline\n"
            "if untl then\n"
            "  if tonumber(untl) <= now then return {0} end\n"
            "  deadline = tonumber(untl)\n"
            "else\n"
            "  if ARGV[5] == '?' or ARGV[6] ~= owner then return {3, owner} end\n"
            "  if ARGV[5] == '1' then return {1} end\n"
            "  if tonumber(ARGV[4]) <= 0 then return {0} end\n"
            "  deadline = now + tonumber(ARGV[4])\n"
            "end\n"
            "if redis.call('LLEN', KEYS[5]) >= tonumber(ARGV[2]) or\n"
            "   (tonumber(redis.call('GET', KEYS[6])) or 0) + #ARGV[1] > tonumber(ARGV[3]) then\n"
            "  return {2}\n"
            "end\n"
            "redis.call('RPUSH', KEYS[5], ARGV[1])\n"
            "redis.call('INCRBY', KEYS[6], #ARGV[1])\n"
            "redis.call('PEXPIREAT', KEYS[5], deadline + 60000)\n"
            "redis.call('PEXPIREAT', KEYS[6], deadline + 60000)\n"
            "return {-1}\n";

/* KEYS: members. ARGV: peer, node, limit. Returns {added, peer1, node1, ...}, or nil when full. */
static const char JOIN[] = "local added = 0\n"
                           "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then\n"
                           "  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and\n"
                           "     redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then\n"
                           "    return false\n"
                           "  end\n"
                           "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                           "  added = 1\n"
                           "end\n"
                           "local all = redis.call('HGETALL', KEYS[1])\n"
                           "table.insert(all, 1, added)\n"
                           "return all\n";

/* KEYS: members. ARGV: peer, node ("" for whichever: a session that ended). Returns {removed,
 * peer1, node1, ...}: the members left. */
static const char LEAVE[] = "local removed = 0\n"
                            "local at = redis.call('HGET', KEYS[1], ARGV[1])\n"
                            "if at and (ARGV[2] == '' or at == ARGV[2]) then\n"
                            "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                            "  removed = 1\n"
                            "end\n"
                            "local all = redis.call('HGETALL', KEYS[1])\n"
                            "table.insert(all, 1, removed)\n"
                            "return all\n";

/* KEYS: sweeper. ARGV: node, lease ms. Returns 1 when this node holds the lease (now renewed). */
static const char LEASE[] = "local h = redis.call('GET', KEYS[1])\n"
                            "if h and h ~= ARGV[1] then return 0 end\n"
                            "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
                            "return 1\n";

enum { S_CLAIM, S_RELEASE, S_DETACH, S_PUT, S_JOIN, S_LEAVE, S_EXPIRE, S_LEASE, S_COUNT };
static sb_redis_script_t scripts[S_COUNT] = {
    {CLAIM, ""}, {RELEASE, ""}, {DETACH, ""}, {PUT, ""},
    {JOIN, ""},  {LEAVE, ""},   {EXPIRE, ""}, {LEASE, ""},
};

#define KEY_MAX 256
#define SESSIONS_PER_SWEEP 1000
#define LEAVE_REPLAYS 5
/* How many times a claim or put asks a holder's liveness before giving up (the holder keeps
 * changing under it). */
#define ASKS_MAX 3

typedef struct {
    sb_dir_t base;
    struct event_base *evbase;
    sb_rcluster_t *rc;
    const char *node;
    double ttl;
    sb_dir_sessions_t sessions;
    char window[24];
    struct event *timer;
    int registered;
    int reassert;       /* a master changed: this node's records are made again once ready */
    unsigned takeovers; /* sb_rcluster_takeovers when last looked at */
    int sweeping;       /* steps of this second's sweep still under way */
    sb_map_t *releases; /* IDs given up while unreachable */
    sb_map_t *leaves;   /* "<room>\t<peer>" left while unreachable */
} cdir_t;

/* --- keys and slots --- */

static unsigned slot_of(const char *key) { return sb_slot_of(key, strlen(key)); }

/* The seven peer keys of id, as KEYS of the peer scripts. */
typedef struct {
    char k[7][KEY_MAX];
    const char *p[7];
} peer_keys_t;

static void peer_keys(peer_keys_t *pk, const char *id)
{
    static const char *const names[7] = {"owner", "resume", "until", "rooms",
                                         "mbox",  "mboxb",  "ch"};
    for (int i = 0; i < 7; i++) {
        snprintf(pk->k[i], KEY_MAX, "sb:{%s}:%s", id, names[i]);
        pk->p[i] = pk->k[i];
    }
}

static void members_key(char *out, const char *room)
{
    snprintf(out, KEY_MAX, "sb:{r:%s}:members", room);
}

static void node_key(char *out, const char *node, const char *what)
{
    snprintf(out, KEY_MAX, "sb:{n:%s}:%s", node, what);
}

static void sent_now(char out[24])
{
    snprintf(out, 24, "%llu", (unsigned long long)sb_clock_wall_us());
}

static void log_error(void *arg, const sb_redis_reply_t *reply)
{
    const char *what = arg;
    if (reply != NULL && reply->type == SB_REDIS_ERROR)
        sb_log(SB_LOG_ERROR, "redis %s: %.*s", what, (int)reply->len, reply->str);
}

/* A script on the slot of its first key (every script declares at least one). */
static int eval(cdir_t *d, int role, int script, int nkeys, const char *const *args, int nargs,
                sb_redis_reply_fn cb, void *arg)
{
    return sb_rcluster_eval(d->rc, role, slot_of(args[0]), &scripts[script], nkeys, args, nargs, cb,
                            arg);
}

/* A plain command on the slot of key (argv[1]). */
static int cmd(cdir_t *d, int role, int argc, const char **argv, sb_redis_reply_fn cb, void *arg)
{
    size_t lens[8];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return sb_rcluster_command(d->rc, role, slot_of(argv[1]), argc, argv, lens, cb, arg);
}

static int cmd3(cdir_t *d, int role, const char *verb, const char *key, const char *value)
{
    const char *argv[3] = {verb, key, value};
    return cmd(d, role, 3, argv, log_error, (void *)verb);
}

static const char *str_at(const sb_redis_reply_t *reply, size_t i)
{
    return i < reply->elements && reply->element[i]->type == SB_REDIS_STRING
               ? reply->element[i]->str
               : NULL;
}

static long long int_at(const sb_redis_reply_t *reply, size_t i)
{
    return i < reply->elements && reply->element[i]->type == SB_REDIS_INTEGER
               ? reply->element[i]->integer
               : -100;
}

/* --- room events and leaves --- */

/* Tells the members of room on other nodes than skip ("" tells them all) that peer did kind, on
 * their channels: members come as {.., peer1, node1, ...} from element first of reply. */
static void announce(cdir_t *d, const sb_redis_reply_t *reply, size_t first, const char *kind,
                     const char *peer, const char *room, const char *skip)
{
    char sent[24], env[64 + 2 * SB_ID_MAX + SB_ROOM_MAX], channel[SB_ENV_CHANNEL_MAX];
    sent_now(sent);
    int len = snprintf(env, sizeof(env), SB_ENV_ROOM_EVENT_LUA, kind, sent, peer, room);
    sb_str_t part = {env, (size_t)len};
    for (size_t i = first; i + 1 < reply->elements; i += 2) {
        const char *member = str_at(reply, i), *at = str_at(reply, i + 1);
        if (member == NULL || at == NULL || strcmp(member, peer) == 0 || strcmp(at, skip) == 0)
            continue;
        sb_env_peer_channel(member, 1, channel);
        if (sb_rcluster_publish(d->rc, DIR, slot_of(channel), channel, &part, 1, NULL, NULL) != 0)
            sb_log(SB_LOG_WARN, "redis: %s of %s not told to %s (its master unreachable)", kind,
                   peer, member);
    }
}

/* A leave on its way: the room's script, then the peer's set of rooms. */
typedef struct {
    cdir_t *dir;
    sb_dir_done_fn done;
    void *arg;
    int announce; /* tell the others even when the member was not there (a replayed leave) */
    int ended;    /* a session that ended: whichever node it was on, and everyone is told */
    char room[SB_ROOM_MAX + 1];
    char peer[SB_ID_MAX + 1];
} leave_t;

static void remember_leave(cdir_t *d, const char *room, const char *peer)
{
    char entry[SB_ROOM_MAX + SB_ID_MAX + 2];
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    if (sb_map_put(d->leaves, entry, (void *)(intptr_t)LEAVE_REPLAYS) != 0)
        sb_log(SB_LOG_ERROR, "out of memory: the leave %s is not recorded in Redis", entry);
}

static void on_left(void *arg, const sb_redis_reply_t *reply)
{
    leave_t *l = arg;
    cdir_t *d = l->dir;
    log_error("leave", reply);
    if (reply == NULL) {
        if (!l->ended)
            remember_leave(d, l->room, l->peer);
    } else if (reply->type == SB_REDIS_ARRAY && reply->elements >= 1) {
        if (int_at(reply, 0) == 1 || l->announce || l->ended)
            announce(d, reply, 1, "peer-left", l->peer, l->room, l->ended ? "" : d->node);
        char key[KEY_MAX];
        snprintf(key, sizeof(key), "sb:{%s}:rooms", l->peer);
        if (!l->ended)
            cmd3(d, DIR, "SREM", key, l->room);
    }
    if (l->done)
        l->done(l->arg);
    free(l);
}

/* Sends a leave; returns 0, or -1 when it could not go out (l is then untouched). */
static int send_leave(cdir_t *d, leave_t *l)
{
    char key[KEY_MAX];
    members_key(key, l->room);
    const char *args[] = {key, l->peer, l->ended ? "" : d->node};
    return eval(d, DIR, S_LEAVE, 1, args, 3, on_left, l);
}

static leave_t *new_leave(cdir_t *d, const char *room, const char *peer)
{
    leave_t *l = calloc(1, sizeof(*l));
    if (l != NULL) {
        l->dir = d;
        snprintf(l->room, sizeof(l->room), "%s", room);
        snprintf(l->peer, sizeof(l->peer), "%s", peer);
    }
    return l;
}

/* The rooms of an ended session, elements first.. of reply: each left, everyone told. */
static void leave_ended(cdir_t *d, const char *peer, const sb_redis_reply_t *reply, size_t first)
{
    for (size_t i = first; i < reply->elements; i++) {
        const char *room = str_at(reply, i);
        leave_t *l = room ? new_leave(d, room, peer) : NULL;
        if (l == NULL)
            continue;
        l->ended = 1;
        if (send_leave(d, l) != 0) {
            sb_log(SB_LOG_WARN, "redis: %s left %s unannounced (its master unreachable)", peer,
                   room);
            free(l);
        }
    }
}

/* --- claims --- */

typedef struct {
    cdir_t *dir;
    sb_dir_claim_fn done;
    void *arg;
    int asks;
    int how;
    char id[SB_ID_MAX + 1];
    char resume[128], token[128];
    char holder[SB_ID_MAX + 1]; /* the node whose liveness was asked */
    char alive[2];              /* "1", "0", or "?" */
    /* A resumed session, while its rooms record this node again. */
    int pending;
    size_t nrooms;
    char **rooms;
    char ***members;
    size_t *nmembers;
    sb_str_t *held;
    size_t nheld;
    char *held_copy;
} claim_t;

static void claim_free(claim_t *c)
{
    for (size_t i = 0; c->rooms && i < c->nrooms; i++) {
        free(c->rooms[i]);
        for (size_t k = 0; c->members[i] && k < c->nmembers[i]; k++)
            free(c->members[i][k]);
        free(c->members[i]);
    }
    free(c->rooms);
    free(c->members);
    free(c->nmembers);
    free(c->held);
    free(c->held_copy);
    free(c);
}

static int send_claim(claim_t *c);

/* Whether a node whose liveness key was found missing is dead: only when this node's connection
 * (of role) to that key's master has been up longer than the key lives. A master that has just
 * taken over after a failover lacks the refreshes its nodes failed to write meanwhile, and a node
 * that could not write its key is not dead for that. */
static int missing_means_dead(const cdir_t *d, const char *node, int role)
{
    char key[KEY_MAX];
    node_key(key, node, "alive");
    return sb_rcluster_up_for(d->rc, slot_of(key), role) > d->ttl + 1;
}

/* Asks whether holder is alive (an EXISTS of its liveness key, in its own slot). */
static int ask_alive(cdir_t *d, const char *holder, sb_redis_reply_fn cb, void *arg)
{
    char key[KEY_MAX];
    node_key(key, holder, "alive");
    const char *argv[2] = {"EXISTS", key};
    return cmd(d, DIR, 2, argv, cb, arg);
}

/* The liveness answer for a claim lands in c->alive before the claim goes again. */
static void on_claim_alive(void *arg, const sb_redis_reply_t *reply)
{
    claim_t *c = arg;
    if (reply == NULL || reply->type != SB_REDIS_INTEGER) {
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
        claim_free(c);
        return;
    }
    int dead = reply->integer == 0 && missing_means_dead(c->dir, c->holder, DIR);
    snprintf(c->alive, sizeof(c->alive), "%d", dead ? 0 : 1);
    if (send_claim(c) != 0) {
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
        claim_free(c);
    }
}

static void finish_resumed(claim_t *c)
{
    sb_dir_room_t *rooms = calloc(c->nrooms + 1, sizeof(*rooms));
    if (rooms == NULL) {
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
        claim_free(c);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->nrooms; i++)
        if (c->members[i] != NULL)
            rooms[k++] =
                (sb_dir_room_t){c->rooms[i], (const char *const *)c->members[i], c->nmembers[i]};
    sb_dir_session_t session = {1, rooms, k, c->held, c->nheld};
    c->done(c->arg, SB_DIR_OK, &session);
    free(rooms);
    claim_free(c);
}

typedef struct {
    claim_t *claim;
    size_t i;
} rejoin_t;

static void on_rejoined(void *arg, const sb_redis_reply_t *reply)
{
    rejoin_t *j = arg;
    claim_t *c = j->claim;
    size_t i = j->i;
    free(j);
    log_error("rejoin", reply);
    if (reply != NULL && reply->type == SB_REDIS_ARRAY && reply->elements % 2 == 1) {
        size_t n = reply->elements / 2, k = 0;
        c->members[i] = calloc(n + 1, sizeof(char *));
        for (size_t m = 0; c->members[i] && m < n; m++) {
            const char *p = str_at(reply, 1 + 2 * m);
            if (p != NULL && (c->members[i][k] = strdup(p)) != NULL)
                k++;
        }
        c->nmembers[i] = k;
    } else {
        sb_log(SB_LOG_WARN,
               "redis: resumed %s is not recorded in room %s again (Redis "
               "unreachable); it is left out",
               c->id, c->rooms[i]);
    }
    if (--c->pending == 0)
        finish_resumed(c);
}

/* {1, 1, nrooms, room..., envelope...}: each room records this node again (a join without
 * events: the others never heard it leave), then the claim is answered. */
static void resumed(claim_t *c, const sb_redis_reply_t *reply)
{
    cdir_t *d = c->dir;
    long long n = int_at(reply, 2);
    if (n < 0 || (size_t)n > reply->elements - 3) {
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
        claim_free(c);
        return;
    }
    c->nrooms = (size_t)n;
    c->rooms = calloc(c->nrooms + 1, sizeof(*c->rooms));
    c->members = calloc(c->nrooms + 1, sizeof(*c->members));
    c->nmembers = calloc(c->nrooms + 1, sizeof(*c->nmembers));
    size_t nheld = reply->elements - 3 - c->nrooms, bytes = 0;
    for (size_t i = 0; i < nheld; i++)
        bytes += reply->element[3 + c->nrooms + i]->len + 1;
    c->held = calloc(nheld + 1, sizeof(*c->held));
    c->held_copy = malloc(bytes + 1);
    if (!c->rooms || !c->members || !c->nmembers || !c->held || !c->held_copy) {
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
        claim_free(c);
        return;
    }
    char *p = c->held_copy;
    for (size_t i = 0; i < nheld; i++) {
        const sb_redis_reply_t *e = reply->element[3 + c->nrooms + i];
        if (e->type != SB_REDIS_STRING)
            continue;
        memcpy(p, e->str, e->len);
        c->held[c->nheld++] = (sb_str_t){p, e->len};
        p += e->len + 1;
    }
    c->pending = 1;
    for (size_t i = 0; i < c->nrooms; i++) {
        const char *room = str_at(reply, 3 + i);
        char key[KEY_MAX], lim[24];
        rejoin_t *j = room ? malloc(sizeof(*j)) : NULL;
        if (room == NULL || (c->rooms[i] = strdup(room)) == NULL || j == NULL) {
            free(j);
            continue;
        }
        *j = (rejoin_t){c, i};
        members_key(key, room);
        snprintf(lim, sizeof(lim), "%d", 1000000000);
        const char *args[] = {key, c->id, d->node, lim};
        c->pending++;
        if (eval(d, DIR, S_JOIN, 1, args, 4, on_rejoined, j) != 0) {
            c->pending--;
            free(j);
        }
    }
    if (--c->pending == 0)
        finish_resumed(c);
}

static void on_claimed(void *arg, const sb_redis_reply_t *reply)
{
    claim_t *c = arg;
    cdir_t *d = c->dir;
    log_error("claim", reply);
    long long first = reply != NULL && reply->type == SB_REDIS_ARRAY ? int_at(reply, 0) : -100;
    if (first == 0) {
        c->done(c->arg, SB_DIR_TAKEN, NULL);
    } else if (first == 2 && str_at(reply, 1) != NULL && c->asks++ < ASKS_MAX) {
        snprintf(c->holder, sizeof(c->holder), "%s", str_at(reply, 1));
        if (ask_alive(d, c->holder, on_claim_alive, c) == 0)
            return;
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
    } else if (first == 1 && int_at(reply, 1) == 0) {
        leave_ended(d, c->id, reply, 2);
        sb_dir_session_t fresh = {0};
        c->done(c->arg, SB_DIR_OK, &fresh);
    } else if (first == 1 && int_at(reply, 1) == 1) {
        resumed(c, reply);
        return;
    } else {
        if (reply != NULL && reply->type != SB_REDIS_ERROR)
            sb_log(SB_LOG_ERROR, "redis claim: an answer of an unexpected shape");
        c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
    }
    claim_free(c);
}

static int send_claim(claim_t *c)
{
    static const char *const hows[] = {"new", "held", "again"};
    cdir_t *d = c->dir;
    peer_keys_t pk;
    char sent[24];
    peer_keys(&pk, c->id);
    sent_now(sent);
    const char *args[] = {pk.p[0],      pk.p[1], pk.p[2],  pk.p[3],   pk.p[4],  pk.p[5],
                          pk.p[6],      d->node, c->id,    c->resume, c->token, d->window,
                          hows[c->how], sent,    c->alive, c->holder};
    return eval(d, DIR, S_CLAIM, 7, args, 16, on_claimed, c);
}

static int ready(const cdir_t *d)
{
    char why[8];
    return sb_rcluster_ready(d->rc, why, sizeof(why));
}

static void claim(sb_dir_t *base, const char *id, sb_dir_claim_how_t how, const char *resume,
                  const char *token, sb_dir_claim_fn done, void *arg)
{
    cdir_t *d = (cdir_t *)base;
    claim_t *c = calloc(1, sizeof(*c));
    if (c == NULL || !ready(d) || !d->registered) {
        free(c);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
        return;
    }
    c->dir = d;
    c->done = done;
    c->arg = arg;
    c->how = (int)how;
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->resume, sizeof(c->resume), "%s", resume ? resume : "");
    snprintf(c->token, sizeof(c->token), "%s", token);
    snprintf(c->alive, sizeof(c->alive), "?");
    sb_map_remove(d->releases, id);
    /* The index first: a node that dies right after the claim is swept with this ID. */
    char ids[KEY_MAX];
    node_key(ids, d->node, "ids");
    cmd3(d, DIR, "SADD", ids, id);
    if (send_claim(c) != 0) {
        claim_free(c);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
    }
}

/* --- release, detach --- */

static int send_release(cdir_t *d, const char *id)
{
    peer_keys_t pk;
    char ids[KEY_MAX];
    peer_keys(&pk, id);
    const char *args[] = {pk.p[0], pk.p[1], pk.p[2], pk.p[3], pk.p[4], pk.p[5], pk.p[6], d->node};
    if (eval(d, DIR, S_RELEASE, 7, args, 8, log_error, "release") != 0)
        return -1;
    node_key(ids, d->node, "ids");
    cmd3(d, DIR, "SREM", ids, id);
    return 0;
}

static void release(sb_dir_t *base, const char *id)
{
    cdir_t *d = (cdir_t *)base;
    if (send_release(d, id) != 0)
        sb_map_put(d->releases, id, d);
}

/* A dead node being swept: its records go once each of its IDs is detached. */
typedef struct {
    cdir_t *dir;
    int pending, failed;
    char node[SB_ID_MAX + 1];
} dead_t;

typedef struct {
    cdir_t *dir;
    char id[SB_ID_MAX + 1];
    dead_t *dead; /* a dead node's session, detached by the sweeper; else NULL */
} detach_t;

static void dead_step_done(dead_t *x, int ok);

static void on_detached(void *arg, const sb_redis_reply_t *reply)
{
    detach_t *t = arg;
    cdir_t *d = t->dir;
    log_error("detach", reply);
    if (reply != NULL && reply->type == SB_REDIS_ARRAY) {
        long long kind = int_at(reply, 0);
        if (kind == 1 && str_at(reply, 1) != NULL) {
            const char *argv[4] = {"ZADD", "sb:{sb}:detached", str_at(reply, 1), t->id};
            cmd(d, UPKEEP, 4, argv, log_error, "detach");
        } else if (kind == 2) {
            leave_ended(d, t->id, reply, 1);
            if (t->dead)
                sb_metrics.sessions_ended++;
        }
    }
    if (t->dead)
        dead_step_done(t->dead, reply != NULL && reply->type == SB_REDIS_ARRAY);
    free(t);
}

/* Detaches (or ends) holder's session of id: holder is this node, or dead->node being swept. */
static int send_detach(cdir_t *d, const char *id, const char *holder, dead_t *dead)
{
    peer_keys_t pk;
    detach_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return -1;
    *t = (detach_t){.dir = d, .dead = dead};
    snprintf(t->id, sizeof(t->id), "%s", id);
    peer_keys(&pk, id);
    const char *args[] = {pk.p[0], pk.p[1], pk.p[2], pk.p[3],  pk.p[4],
                          pk.p[5], pk.p[6], holder,  d->window};
    if (eval(d, dead ? UPKEEP : DIR, S_DETACH, 7, args, 9, on_detached, t) != 0) {
        free(t);
        return -1;
    }
    if (dead)
        dead->pending++;
    return 0;
}

static void detach(sb_dir_t *base, const char *id)
{
    cdir_t *d = (cdir_t *)base;
    char ids[KEY_MAX];
    if (send_detach(d, id, d->node, NULL) != 0) {
        sb_map_put(d->releases, id, d);
        return;
    }
    node_key(ids, d->node, "ids");
    cmd3(d, DIR, "SREM", ids, id);
}

/* --- mailboxes --- */

typedef struct {
    cdir_t *dir;
    sb_dir_put_fn done;
    void *arg;
    int asks;
    char alive[2];
    char holder[SB_ID_MAX + 1];
    char id[SB_ID_MAX + 1];
    size_t len;
    char env[]; /* len bytes, then NUL */
} put_t;

static int send_put(put_t *p);

static void put_answer(put_t *p, sb_dir_put_t outcome)
{
    p->done(p->arg, outcome);
    free(p);
}

static void on_put_alive(void *arg, const sb_redis_reply_t *reply)
{
    put_t *p = arg;
    if (reply == NULL || reply->type != SB_REDIS_INTEGER) {
        put_answer(p, SB_DIR_PUT_UNAVAILABLE);
        return;
    }
    int dead = reply->integer == 0 && missing_means_dead(p->dir, p->holder, DIR);
    snprintf(p->alive, sizeof(p->alive), "%d", dead ? 0 : 1);
    if (send_put(p) != 0)
        put_answer(p, SB_DIR_PUT_UNAVAILABLE);
}

static void on_put(void *arg, const sb_redis_reply_t *reply)
{
    put_t *p = arg;
    log_error("put", reply);
    long long v = reply != NULL && reply->type == SB_REDIS_ARRAY ? int_at(reply, 0) : -100;
    if (v == 3 && str_at(reply, 1) != NULL && p->asks++ < ASKS_MAX) {
        snprintf(p->holder, sizeof(p->holder), "%s", str_at(reply, 1));
        if (ask_alive(p->dir, p->holder, on_put_alive, p) != 0)
            put_answer(p, SB_DIR_PUT_UNAVAILABLE);
        return;
    }
    put_answer(p, v == -1  ? SB_DIR_QUEUED
                  : v == 0 ? SB_DIR_GONE
                  : v == 1 ? SB_DIR_LIVE
                  : v == 2 ? SB_DIR_BOXFULL
                           : SB_DIR_PUT_UNAVAILABLE);
}

static int send_put(put_t *p)
{
    cdir_t *d = p->dir;
    peer_keys_t pk;
    char most[24], most_bytes[24], nkeys[4];
    peer_keys(&pk, p->id);
    snprintf(most, sizeof(most), "%zu", d->sessions.mailbox_messages);
    snprintf(most_bytes, sizeof(most_bytes), "%zu", d->sessions.mailbox_bytes);
    snprintf(nkeys, sizeof(nkeys), "7");
    /* EVALSHA by hand: the envelope may hold any byte. */
    const char *argv[] = {"EVALSHA",  scripts[S_PUT].sha,
                          nkeys,      pk.p[0],
                          pk.p[1],    pk.p[2],
                          pk.p[3],    pk.p[4],
                          pk.p[5],    pk.p[6],
                          p->env,     most,
                          most_bytes, d->window,
                          p->alive,   p->holder};
    size_t lens[16];
    for (int i = 0; i < 16; i++)
        lens[i] = argv[i] == p->env ? p->len : strlen(argv[i]);
    return sb_rcluster_command(d->rc, DIR, slot_of(pk.p[0]), 16, argv, lens, on_put, p);
}

static void put(sb_dir_t *base, const char *id, const char *env, size_t len, sb_dir_put_fn done,
                void *arg)
{
    cdir_t *d = (cdir_t *)base;
    put_t *p = malloc(sizeof(*p) + len + 1);
    if (p == NULL || !ready(d)) {
        free(p);
        done(arg, SB_DIR_PUT_UNAVAILABLE);
        return;
    }
    *p = (put_t){.dir = d, .done = done, .arg = arg, .len = len};
    snprintf(p->alive, sizeof(p->alive), "?");
    snprintf(p->id, sizeof(p->id), "%s", id);
    memcpy(p->env, env, len);
    p->env[len] = '\0';
    if (send_put(p) != 0) {
        free(p);
        done(arg, SB_DIR_PUT_UNAVAILABLE);
    }
}

/* --- rooms --- */

typedef struct {
    cdir_t *dir;
    sb_dir_join_fn done;
    void *arg;
    char room[SB_ROOM_MAX + 1];
    char peer[SB_ID_MAX + 1];
} join_t;

static void on_joined(void *arg, const sb_redis_reply_t *reply)
{
    join_t *j = arg;
    cdir_t *d = j->dir;
    log_error("join", reply);
    char rooms[KEY_MAX];
    snprintf(rooms, sizeof(rooms), "sb:{%s}:rooms", j->peer);
    if (reply != NULL && reply->type == SB_REDIS_NIL) {
        cmd3(d, DIR, "SREM", rooms, j->room); /* recorded before, in vain */
        j->done(j->arg, SB_DIR_FULL, 0, NULL, NULL, 0);
    } else if (reply != NULL && reply->type == SB_REDIS_ARRAY && reply->elements % 2 == 1 &&
               reply->element[0]->type == SB_REDIS_INTEGER) {
        size_t n = reply->elements / 2, k = 0;
        const char **members = malloc((n + 1) * sizeof(*members));
        const char **nodes = malloc((n + 1) * sizeof(*nodes));
        for (size_t i = 0; members && nodes && i < n; i++) {
            const char *p = str_at(reply, 1 + 2 * i), *q = str_at(reply, 2 + 2 * i);
            if (p && q) {
                members[k] = p;
                nodes[k++] = q;
            }
        }
        int added = reply->element[0]->integer == 1;
        if (added)
            announce(d, reply, 1, "peer-joined", j->peer, j->room, d->node);
        if (members && nodes)
            j->done(j->arg, SB_DIR_OK, added, members, nodes, k);
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
    cdir_t *d = (cdir_t *)base;
    char key[KEY_MAX], rooms[KEY_MAX], entry[SB_ROOM_MAX + SB_ID_MAX + 2], lim[24];
    join_t *j = malloc(sizeof(*j));
    if (j == NULL || !ready(d) || !d->registered) {
        free(j);
        done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
        return;
    }
    *j = (join_t){.dir = d, .done = done, .arg = arg};
    snprintf(j->room, sizeof(j->room), "%s", room);
    snprintf(j->peer, sizeof(j->peer), "%s", peer);
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    sb_map_remove(d->leaves, entry);
    /* The peer's set of rooms first: a session that ends leaves every room in it. */
    snprintf(rooms, sizeof(rooms), "sb:{%s}:rooms", peer);
    cmd3(d, DIR, "SADD", rooms, room);
    members_key(key, room);
    snprintf(lim, sizeof(lim), "%zu", limit > 1000000000 ? (size_t)1000000000 : limit);
    const char *args[] = {key, peer, d->node, lim};
    if (eval(d, DIR, S_JOIN, 1, args, 4, on_joined, j) != 0) {
        free(j);
        done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
    }
}

static void leave(sb_dir_t *base, const char *room, const char *peer, sb_dir_done_fn done,
                  void *arg)
{
    cdir_t *d = (cdir_t *)base;
    leave_t *l = new_leave(d, room, peer);
    if (l != NULL) {
        l->done = done;
        l->arg = arg;
    }
    if (l == NULL || !ready(d) || send_leave(d, l) != 0) {
        free(l);
        remember_leave(d, room, peer);
        if (done)
            done(arg);
    }
}

static void replay_releases(cdir_t *d)
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
        cursor = 0;
    }
}

static void replay_leaves(cdir_t *d)
{
    size_t n = sb_map_size(d->leaves), k = 0, cursor = 0;
    const char *key;
    void *value;
    char(*entries)[SB_ROOM_MAX + SB_ID_MAX + 2] = n ? malloc(n * sizeof(*entries)) : NULL;
    while (entries && k < n && sb_map_next(d->leaves, &cursor, &key, &value))
        snprintf(entries[k++], sizeof(entries[0]), "%s", key);
    for (size_t i = 0; i < k; i++) {
        intptr_t left = (intptr_t)sb_map_get(d->leaves, entries[i]);
        char *tab = strchr(entries[i], '\t');
        *tab = '\0';
        leave_t *l = new_leave(d, entries[i], tab + 1);
        *tab = '\t';
        if (l == NULL)
            break;
        l->announce = 1;
        if (send_leave(d, l) != 0) {
            free(l);
            break;
        }
        if (left <= 1)
            sb_map_remove(d->leaves, entries[i]);
        else
            sb_map_put(d->leaves, entries[i], (void *)(left - 1));
    }
    free(entries);
}

/* --- liveness and sweeps --- */

static void on_registered(void *arg, const sb_redis_reply_t *reply)
{
    cdir_t *d = arg;
    log_error("liveness", reply);
    if (reply == NULL || reply->type != SB_REDIS_INTEGER) {
        d->registered = 0;
        return;
    }
    if (!d->registered)
        sb_log(SB_LOG_INFO, "cluster: node %s registered", d->node);
    d->registered = 1;
    if (reply->integer == 1)
        d->reassert = 1;
    /* Recording its peers again takes every shard: once they are all reachable. */
    if (d->reassert && ready(d) && d->base.lost) {
        d->reassert = 0;
        d->base.lost(d->base.ctx); /* Redis did not know us: record our peers and rooms again */
    }
}

static void on_alive(void *arg, const sb_redis_reply_t *reply)
{
    cdir_t *d = arg;
    log_error("liveness", reply);
    if (reply == NULL || reply->type == SB_REDIS_ERROR) {
        d->registered = 0;
        return;
    }
    const char *argv[3] = {"SADD", "sb:{sb}:nodes", d->node};
    if (cmd(d, UPKEEP, 3, argv, on_registered, d) != 0)
        d->registered = 0;
}

/* One step of a dead node's sweep is over; after the last, when all went well, its records go.
 * A sweep that failed somewhere leaves them to the next sweep, which does it all again. */
static void dead_step_done(dead_t *x, int ok)
{
    cdir_t *d = x->dir;
    x->failed |= !ok;
    if (--x->pending > 0)
        return;
    d->sweeping--;
    if (!x->failed) {
        char ids[KEY_MAX];
        node_key(ids, x->node, "ids");
        const char *del[2] = {"DEL", ids};
        cmd(d, UPKEEP, 2, del, log_error, "sweep");
        const char *srem[3] = {"SREM", "sb:{sb}:nodes", x->node};
        cmd(d, UPKEEP, 3, srem, log_error, "sweep");
        sb_metrics.dead_nodes_removed++;
        sb_log(SB_LOG_WARN,
               "cluster: node %s stopped refreshing its liveness; its peers' sessions %s", x->node,
               d->sessions.resume_seconds > 0 ? "wait for a resume" : "ended");
    }
    free(x);
}

static void on_dead_ids(void *arg, const sb_redis_reply_t *reply)
{
    dead_t *x = arg;
    cdir_t *d = x->dir;
    /* pending is 1 (this reply) until the detaches are on their way */
    for (size_t i = 0; reply != NULL && reply->type == SB_REDIS_ARRAY && i < reply->elements; i++) {
        const char *id = str_at(reply, i);
        if (id != NULL && send_detach(d, id, x->node, x) != 0)
            x->failed = 1;
    }
    (void)d;
    dead_step_done(x, reply != NULL && reply->type == SB_REDIS_ARRAY);
}

static void on_node_alive(void *arg, const sb_redis_reply_t *reply)
{
    dead_t *x = arg;
    cdir_t *d = x->dir;
    d->sweeping--;
    if (reply != NULL && reply->type == SB_REDIS_INTEGER && reply->integer == 0 &&
        missing_means_dead(d, x->node, UPKEEP)) {
        char ids[KEY_MAX];
        node_key(ids, x->node, "ids");
        const char *argv[2] = {"SMEMBERS", ids};
        x->pending = 1;
        if (cmd(d, UPKEEP, 2, argv, on_dead_ids, x) == 0) {
            d->sweeping++;
            return;
        }
    }
    free(x);
}

static void on_nodes(void *arg, const sb_redis_reply_t *reply)
{
    cdir_t *d = arg;
    d->sweeping--;
    if (reply == NULL || reply->type != SB_REDIS_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const char *node = str_at(reply, i);
        dead_t *x = node && strcmp(node, d->node) != 0 ? calloc(1, sizeof(*x)) : NULL;
        if (x == NULL)
            continue;
        x->dir = d;
        snprintf(x->node, sizeof(x->node), "%s", node);
        char key[KEY_MAX];
        node_key(key, node, "alive");
        const char *argv[2] = {"EXISTS", key};
        if (cmd(d, UPKEEP, 2, argv, on_node_alive, x) == 0)
            d->sweeping++;
        else
            free(x);
    }
}

typedef struct {
    cdir_t *dir;
    char id[SB_ID_MAX + 1];
} expire_t;

static void on_expired(void *arg, const sb_redis_reply_t *reply)
{
    expire_t *e = arg;
    cdir_t *d = e->dir;
    d->sweeping--;
    log_error("sweep", reply);
    long long v = reply != NULL && reply->type == SB_REDIS_ARRAY ? int_at(reply, 0) : -100;
    if (v == 1) {
        leave_ended(d, e->id, reply, 1);
        sb_metrics.sessions_ended++;
    }
    if (v == 0 || v == 1) {
        const char *argv[3] = {"ZREM", "sb:{sb}:detached", e->id};
        cmd(d, UPKEEP, 3, argv, log_error, "sweep");
    }
    free(e);
}

static void on_due(void *arg, const sb_redis_reply_t *reply)
{
    cdir_t *d = arg;
    d->sweeping--;
    if (reply == NULL || reply->type != SB_REDIS_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const char *id = str_at(reply, i);
        expire_t *e = id ? malloc(sizeof(*e)) : NULL;
        if (e == NULL)
            continue;
        e->dir = d;
        snprintf(e->id, sizeof(e->id), "%s", id);
        peer_keys_t pk;
        peer_keys(&pk, id);
        if (eval(d, UPKEEP, S_EXPIRE, 7, pk.p, 7, on_expired, e) == 0)
            d->sweeping++;
        else
            free(e);
    }
}

static void on_lease(void *arg, const sb_redis_reply_t *reply)
{
    cdir_t *d = arg;
    d->sweeping--;
    log_error("sweep", reply);
    if (reply == NULL || reply->type != SB_REDIS_INTEGER || reply->integer != 1)
        return;
    sb_metrics.sweeps++;
    const char *nodes[2] = {"SMEMBERS", "sb:{sb}:nodes"};
    if (cmd(d, UPKEEP, 2, nodes, on_nodes, d) == 0)
        d->sweeping++;
    char until[24], limit[16];
    snprintf(until, sizeof(until), "%llu", (unsigned long long)(sb_clock_wall_us() / 1000));
    snprintf(limit, sizeof(limit), "%d", SESSIONS_PER_SWEEP);
    const char *due[7] = {"ZRANGEBYSCORE", "sb:{sb}:detached", "-inf", until, "LIMIT", "0", limit};
    if (cmd(d, UPKEEP, 7, due, on_due, d) == 0)
        d->sweeping++;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    cdir_t *d = arg;
    char key[KEY_MAX], ttl[24], lease[24];
    (void)fd;
    (void)what;
    /* Liveness first, whenever its own master is reachable: a failover of another shard must
     * not make this node look dead to the others. */
    node_key(key, d->node, "alive");
    snprintf(ttl, sizeof(ttl), "%ld", (long)(d->ttl * 1000));
    const char *argv[5] = {"SET", key, "1", "PX", ttl};
    if (cmd(d, UPKEEP, 5, argv, on_alive, d) != 0)
        d->registered = 0;
    /* What follows touches every shard. */
    if (!ready(d) || !d->registered)
        return;
    replay_releases(d);
    replay_leaves(d);
    /* One sweep at a time: the last one's steps may still be on their way. */
    if (d->sweeping == 0) {
        snprintf(lease, sizeof(lease), "%ld", (long)(d->ttl * 1000));
        const char *args[] = {"sb:{sb}:sweeper", d->node, lease};
        if (eval(d, UPKEEP, S_LEASE, 1, args, 3, on_lease, d) == 0)
            d->sweeping++;
    }
}

/* A master took slots over (a failover): what this node recorded there may be gone (Redis
 * replicates asynchronously), so it records its peers and rooms again once it is registered, as
 * after a Redis restart. A slot migrated between masters moves its keys with it: nothing to do. */
static void on_map(void *ctx)
{
    cdir_t *d = ctx;
    unsigned t = sb_rcluster_takeovers(d->rc);
    if (t != d->takeovers)
        d->reassert = 1;
    d->takeovers = t;
}

static void on_state(void *ctx, sb_redis_t *r, int up, const char *why)
{
    cdir_t *d = ctx;
    (void)r;
    (void)why;
    if (up)
        on_tick(-1, 0, d);
    else if (!up)
        d->registered = 0;
}

static void dir_free(sb_dir_t *base)
{
    cdir_t *d = (cdir_t *)base;
    if (d->timer)
        event_free(d->timer);
    sb_rcluster_free(d->rc);
    sb_map_free(d->releases);
    sb_map_free(d->leaves);
    free(d);
}

static int dir_ready(sb_dir_t *base, char *why, size_t len)
{
    cdir_t *d = (cdir_t *)base;
    if (!sb_rcluster_ready(d->rc, why, len))
        return 0;
    if (!d->registered)
        snprintf(why, len, "not registered in Redis yet");
    return d->registered;
}

static int idle(sb_dir_t *base)
{
    cdir_t *d = (cdir_t *)base;
    return sb_rcluster_in_flight(d->rc, DIR) == 0;
}

static const sb_dir_ops_t ops = {claim, release,   detach, put,     join,
                                 leave, dir_ready, idle,   dir_free};

sb_dir_t *sb_dir_rcluster_new(struct event_base *base, const sb_redis_url_t *url, const char *node,
                              double ttl, const sb_dir_sessions_t *sessions)
{
    cdir_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    if (scripts[0].sha[0] == '\0')
        for (int i = 0; i < S_COUNT; i++)
            sb_redis_script_init(&scripts[i]);
    d->base.ops = &ops;
    d->evbase = base;
    d->node = node;
    d->ttl = ttl;
    d->sessions = *sessions;
    snprintf(d->window, sizeof(d->window), "%lld", (long long)(sessions->resume_seconds * 1000));
    sb_redis_opts_t o = {.node_id = node,
                         .connect_timeout = 2,
                         .command_timeout = 5,
                         .backoff_cap = 1,
                         .sharded = 1, /* room events go out as SPUBLISH */
                         .scripts = scripts,
                         .nscripts = S_COUNT,
                         .on_state = on_state,
                         .ctx = d};
    sb_rcluster_opts_t co = {.nroles = 2, .node_id = node, .on_map = on_map, .ctx = d};
    co.roles[DIR] = o;
    co.roles[DIR].name = "dir";
    co.roles[DIR].priority = SB_PRIO_CLIENTS;
    co.roles[UPKEEP] = o;
    co.roles[UPKEEP].name = "upkeep";
    co.roles[UPKEEP].priority = SB_PRIO_UPKEEP;
    co.roles[UPKEEP].command_timeout = ttl;
    d->releases = sb_map_new();
    d->leaves = sb_map_new();
    d->timer = event_new(base, -1, EV_PERSIST, on_tick, d);
    struct timeval tv = {1, 0};
    if (!d->releases || !d->leaves || !d->timer ||
        event_priority_set(d->timer, SB_PRIO_UPKEEP) != 0 || event_add(d->timer, &tv) != 0 ||
        (d->rc = sb_rcluster_new(base, url, &co)) == NULL) {
        dir_free(&d->base);
        return NULL;
    }
    return &d->base;
}
