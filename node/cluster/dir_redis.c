/* The cluster directory in Redis: peer ID claims, sessions and their mailboxes, room members,
 * node liveness, dead-node sweeps.
 *
 * Keys (all upkeep is per node, never per peer):
 *   sb:alive:<node>          liveness, refreshed every second, expiring after --node-ttl
 *   sb:nodes                 set of nodes that have registered
 *   sb:id:<peer>             the node holding a peer ID (or that held it, while detached)
 *   sb:resume:<peer>         the session's resume token
 *   sb:node:<node>:ids       the peer IDs a node's connections hold (for its sweep)
 *   sb:detached              sorted set: sessions waiting for a resume, by deadline (ms)
 *   sb:mbox:<peer>           list: envelopes held for a detached session, and
 *   sb:mboxb:<peer>          their bytes
 *   sb:members:<room>        hash peer -> node
 *   sb:rooms:<peer>          set of the rooms a peer is in
 *   sb:sweeper               the node that sweeps dead nodes and ended sessions, while it lives
 * Every check-and-set is one Lua script, run by its SHA (loaded on each connect), so two nodes
 * never both win. Room events for other nodes' members are published by those scripts on the
 * members' peer channels (sb:peer:<id>), as envelopes (proto/envelope.h) like every bus message.
 * Deadlines are on Redis's clock (TIME), so the nodes' clocks need not agree.
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

/* A room event for the member whose peer ID is in Lua variable member, as the envelope of
 * proto/envelope.h; kind, sent (the calling node's clock), peer and room are Lua expressions. */
#define PUBLISH_EVENT(member, kind, sent, peer, room)                                              \
    "redis.call('PUBLISH', '" SB_ENV_PEER_CHANNEL "' .. " member                                   \
    ", string.format('" SB_ENV_ROOM_EVENT_LUA "', " kind ", " sent ", " peer ", " room "))"

/* Lua shared by the scripts that end sessions: Redis's clock, and the end of a session (out of
 * its rooms, every remaining member told peer-left, its keys gone). */
#define SESSION_LUA                                                                                \
    "local function now_ms()\n"                                                                    \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                         \
    "end\n"                                                                                        \
    "local function end_session(peer, sent)\n"                                                     \
    "  local rkey = 'sb:rooms:' .. peer\n"                                                         \
    "  for _, room in ipairs(redis.call('SMEMBERS', rkey)) do\n"                                   \
    "    local hash = 'sb:members:' .. room\n"                                                     \
    "    if redis.call('HDEL', hash, peer) == 1 then\n"                                            \
    "      for _, member in ipairs(redis.call('HKEYS', hash)) do\n"                                \
    "        " PUBLISH_EVENT("member", "'peer-left'", "sent", "peer",                              \
                             "room") "\n"                                                          \
                                     "      end\n"                                                 \
                                     "    end\n"                                                   \
                                     "  end\n"                                                     \
                                     "  redis.call('DEL', 'sb:id:' .. peer, 'sb:resume:' .. "      \
                                     "peer, rkey, 'sb:mbox:' .. peer,\n"                           \
                                     "             'sb:mboxb:' .. peer)\n"                         \
                                     "  redis.call('ZREM', 'sb:detached', peer)\n"                 \
                                     "end\n"

/* KEYS: sb:id:<peer>, sb:node:<node>:ids. ARGV: node, peer, the resume token presented ("" for
 * none), the new token, the resume window in ms, sent, and how ("new", "held" or "again": see
 * sb_dir_claim_how_t). Returns {0} when taken; {1, 0} for a new session; for a resumed one
 * {1, 1, nrooms, room, nmembers, member..., ..., envelope...}. */
static const char CLAIM[] = SESSION_LUA
    "local node, peer, how = ARGV[1], ARGV[2], ARGV[7]\n"
    "local owner = redis.call('GET', KEYS[1])\n"
    "local d = redis.call('ZSCORE', 'sb:detached', peer)\n"
    "local waiting = d and tonumber(d) > now_ms()\n"
    "local resumed = 0\n"
    "if owner then\n"
    "  local alive = redis.call('EXISTS', 'sb:alive:' .. owner) == 1\n"
    "  if how ~= 'again' and ARGV[3] ~= '' and (waiting or not d) and\n"
    "     redis.call('GET', 'sb:resume:' .. peer) == ARGV[3] then\n"
    "    resumed = 1\n"
    "    if not d and owner ~= node and alive then\n"
    "      redis.call('PUBLISH', '" SB_ENV_PEER_CHANNEL "' .. peer,\n"
    "                 string.format('" SB_ENV_REPLACED_LUA "', ARGV[6], peer, peer))\n"
    "    end\n"
    "  elseif owner == node and not d and how ~= 'held' then\n"
    "    -- this node's own record: its peer recorded again, or left over from a release\n"
    "  elseif d and not waiting then\n"
    "    end_session(peer, ARGV[6])\n"
    "  elseif waiting or alive or tonumber(ARGV[5]) > 0 then\n"
    "    return {0}\n"
    "  else\n"
    "    end_session(peer, ARGV[6])\n"
    "  end\n"
    "  if owner ~= node then redis.call('SREM', 'sb:node:' .. owner .. ':ids', peer) end\n"
    "end\n"
    "redis.call('SET', KEYS[1], node)\n"
    "redis.call('SADD', KEYS[2], peer)\n"
    "redis.call('ZREM', 'sb:detached', peer)\n"
    "redis.call('SET', 'sb:resume:' .. peer, ARGV[4])\n"
    "if resumed == 0 then return {1, 0} end\n"
    "local reply = {1, 1}\n"
    "local rooms = redis.call('SMEMBERS', 'sb:rooms:' .. peer)\n"
    "table.insert(reply, #rooms)\n"
    "for _, room in ipairs(rooms) do\n"
    "  local hash = 'sb:members:' .. room\n"
    "  redis.call('HSET', hash, peer, node)\n"
    "  local members = redis.call('HKEYS', hash)\n"
    "  table.insert(reply, room)\n"
    "  table.insert(reply, #members)\n"
    "  for _, m in ipairs(members) do table.insert(reply, m) end\n"
    "end\n"
    "local mbox = 'sb:mbox:' .. peer\n"
    "for _, env in ipairs(redis.call('LRANGE', mbox, 0, -1)) do table.insert(reply, env) end\n"
    "redis.call('DEL', mbox, 'sb:mboxb:' .. peer)\n"
    "return reply\n";

/* KEYS: sb:id:<peer>, sb:node:<node>:ids. ARGV: node, peer. Its rooms were left before. */
static const char RELEASE[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1], 'sb:resume:' .. ARGV[2], 'sb:rooms:' .. ARGV[2],\n"
    "             'sb:mbox:' .. ARGV[2], 'sb:mboxb:' .. ARGV[2])\n"
    "  redis.call('ZREM', 'sb:detached', ARGV[2])\n"
    "end\n"
    "redis.call('SREM', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* KEYS: sb:id:<peer>, sb:node:<node>:ids. ARGV: node, peer, the resume window in ms, sent. */
static const char DETACH[] =
    SESSION_LUA "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                "redis.call('SREM', KEYS[2], ARGV[2])\n"
                "if tonumber(ARGV[3]) <= 0 then\n"
                "  end_session(ARGV[2], ARGV[4])\n"
                "else\n"
                "  redis.call('ZADD', 'sb:detached', now_ms() + tonumber(ARGV[3]), ARGV[2])\n"
                "end\n"
                "return 1\n";

/* KEYS: sb:id:<peer>, sb:mbox:<peer>, sb:mboxb:<peer>. ARGV: peer, envelope, most messages, most
 * bytes, the resume window in ms. Returns -1 held, 0 no session, 1 a connection holds it (its
 * node is subscribing), 2 the mailbox is full. A peer of a dead node not swept yet is held for
 * as the sweep will make it: detached. */
static const char PUT[] = SESSION_LUA
    "local owner = redis.call('GET', KEYS[1])\n"
    "if not owner then return 0 end\n"
    "local now = now_ms()\n"
    "local d = redis.call('ZSCORE', 'sb:detached', ARGV[1])\n"
    "local deadline\n"
    "if d then\n"
    "  if tonumber(d) <= now then return 0 end\n"
    "  deadline = tonumber(d)\n"
    "elseif redis.call('EXISTS', 'sb:alive:' .. owner) == 1 then\n"
    "  return 1\n"
    "elseif tonumber(ARGV[5]) > 0 then\n"
    "  deadline = now + tonumber(ARGV[5])\n"
    "else\n"
    "  return 0\n"
    "end\n"
    "if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) or\n"
    "   (tonumber(redis.call('GET', KEYS[3])) or 0) + #ARGV[2] > tonumber(ARGV[4]) then\n"
    "  return 2\n"
    "end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[2])\n"
    "redis.call('INCRBY', KEYS[3], #ARGV[2])\n"
    "redis.call('PEXPIREAT', KEYS[2], deadline + 60000)\n"
    "redis.call('PEXPIREAT', KEYS[3], deadline + 60000)\n"
    "return -1\n";

/* Room events for the members on other nodes go to their peer channels, which they subscribed
 * before their welcome, from inside the script that changes the room: a member joining at the
 * same moment is either in the list the script sees, or sees the change in its own answer. */

/* KEYS: sb:members:<room>, sb:rooms:<peer>. ARGV: peer, node, limit, room, sent. Returns {added,
 * peer1, node1, peer2, node2, ...}, or nil when the room is full. */
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
                           "      " PUBLISH_EVENT("all[i]", "'peer-joined'", "ARGV[5]", "ARGV[1]",
                                                  "ARGV[4]") "\n"
                                                             "    end\n"
                                                             "  end\n"
                                                             "end\n"
                                                             "table.insert(all, 1, added)\n"
                                                             "return all\n";

/* KEYS: sb:members:<room>, sb:rooms:<peer>. ARGV: peer, node, room, announce, sent. Tells the
 * others when it removed the member, or always with announce "1" (a leave that waited out an
 * outage: Redis may have lost the member, not the others' memory of it). */
static const char LEAVE[] = "local removed = 0\n"
                            "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
                            "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                            "  redis.call('SREM', KEYS[2], ARGV[3])\n"
                            "  removed = 1\n"
                            "end\n"
                            "if removed == 1 or ARGV[4] == '1' then\n"
                            "  local all = redis.call('HGETALL', KEYS[1])\n"
                            "  for i = 1, #all, 2 do\n"
                            "    if all[i + 1] ~= ARGV[2] then\n"
                            "      " PUBLISH_EVENT("all[i]", "'peer-left'", "ARGV[5]", "ARGV[1]",
                                                   "ARGV[3]") "\n"
                                                              "    end\n"
                                                              "  end\n"
                                                              "end\n"
                                                              "return removed\n";

/* KEYS: sb:alive:<node>. ARGV: node, ttl in ms. Returns 1 when the node was not registered
 * (first start, a Redis that lost its data, or a sweep after the node fell silent): the node
 * must then record its peers and rooms again. */
static const char ALIVE[] = "redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])\n"
                            "return redis.call('SADD', 'sb:nodes', ARGV[1])\n";

/* ARGV: node, sent, the resume window in ms. Removes every node whose liveness key has expired:
 * its peers' sessions wait for a resume (or, with sessions off, end at once: their rooms'
 * members told peer-left). Then ends the sessions whose window has passed. Atomic, so the work
 * is done once. One live node at a time holds the sweeper lease (sb:sweeper) and does the scan;
 * the others stop at the lease, so a cluster's sweeping costs O(nodes) a second, not
 * O(nodes^2). A lease whose holder's liveness key has expired is taken over at once: a dead
 * sweeper is no delay. Returns {nodes removed, sessions ended}. */
#define SESSIONS_PER_SWEEP 1000
#define STR_(x) #x
#define STR(x) STR_(x)
static const char SWEEP[] = SESSION_LUA
    "local holder = redis.call('GET', 'sb:sweeper')\n"
    "if holder and holder ~= ARGV[1] and redis.call('EXISTS', 'sb:alive:' .. holder) == 1 then\n"
    "  return {{}, 0}\n"
    "end\n"
    "redis.call('SET', 'sb:sweeper', ARGV[1])\n"
    "local now, window = now_ms(), tonumber(ARGV[3])\n"
    "local removed = {}\n"
    "for _, node in ipairs(redis.call('SMEMBERS', 'sb:nodes')) do\n"
    "  if redis.call('EXISTS', 'sb:alive:' .. node) == 0 then\n"
    "    local ikey = 'sb:node:' .. node .. ':ids'\n"
    "    for _, id in ipairs(redis.call('SMEMBERS', ikey)) do\n"
    "      if redis.call('GET', 'sb:id:' .. id) == node then\n"
    "        if window > 0 then\n"
    "          redis.call('ZADD', 'sb:detached', 'NX', now + window, id)\n"
    "        else\n"
    "          end_session(id, ARGV[2])\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "    redis.call('DEL', ikey)\n"
    "    redis.call('SREM', 'sb:nodes', node)\n"
    "    table.insert(removed, node)\n"
    "  end\n"
    "end\n"
    "local ended = redis.call('ZRANGEBYSCORE', 'sb:detached', '-inf', now, 'LIMIT', 0, " STR(
        SESSIONS_PER_SWEEP) ")\n"
                            "for _, id in ipairs(ended) do end_session(id, ARGV[2]) end\n"
                            "return {removed, #ended}\n";

/* The scripts by connection: the first five run on "dir", the last two on "upkeep". */
/* The scripts by connection: all but the last two run on "dir", those two on "upkeep". */
enum { S_CLAIM, S_RELEASE, S_DETACH, S_PUT, S_JOIN, S_LEAVE, S_ALIVE, S_SWEEP, S_COUNT };
static sb_redis_script_t scripts[S_COUNT] = {
    {CLAIM, ""}, {RELEASE, ""}, {DETACH, ""}, {PUT, ""},
    {JOIN, ""},  {LEAVE, ""},   {ALIVE, ""},  {SWEEP, ""},
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
    sb_dir_sessions_t sessions;
    char window[24]; /* the resume window in ms, as the scripts take it */
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

/* A string element of a reply, or NULL. */
static const char *str_at(const sb_redis_reply_t *reply, size_t i)
{
    return i < reply->elements && reply->element[i]->type == SB_REDIS_STRING
               ? reply->element[i]->str
               : NULL;
}

/* The resumed session in a claim's reply: {1, 1, nrooms, room, n, member..., ..., envelope...}.
 * Returns 0 with done called, -1 when the reply is malformed (done not called). */
static int answer_resumed(claim_t *c, const sb_redis_reply_t *reply)
{
    const sb_redis_reply_t *n = reply->elements > 2 ? reply->element[2] : NULL;
    if (n == NULL || n->type != SB_REDIS_INTEGER || n->integer < 0 ||
        (size_t)n->integer > reply->elements)
        return -1;
    size_t nrooms = (size_t)n->integer, i = 3;
    sb_dir_room_t *rooms = calloc(nrooms + 1, sizeof(*rooms));
    const char **members = calloc(reply->elements + 1, sizeof(*members));
    sb_str_t *held = calloc(reply->elements + 1, sizeof(*held));
    int rc = -1;
    if (rooms == NULL || members == NULL || held == NULL)
        goto out;
    size_t used = 0;
    for (size_t r = 0; r < nrooms; r++) {
        const char *room = str_at(reply, i);
        if (room == NULL || i + 1 >= reply->elements ||
            reply->element[i + 1]->type != SB_REDIS_INTEGER)
            goto out;
        long long count = reply->element[i + 1]->integer;
        if (count < 0 || (size_t)count > reply->elements - i - 2)
            goto out;
        rooms[r] = (sb_dir_room_t){room, members + used, (size_t)count};
        for (long long k = 0; k < count; k++)
            if ((members[used++] = str_at(reply, i + 2 + (size_t)k)) == NULL)
                goto out;
        i += 2 + (size_t)count;
    }
    size_t nheld = 0;
    for (; i < reply->elements; i++) {
        if (reply->element[i]->type != SB_REDIS_STRING)
            goto out;
        held[nheld++] = (sb_str_t){reply->element[i]->str, reply->element[i]->len};
    }
    sb_dir_session_t session = {1, rooms, nrooms, held, nheld};
    c->done(c->arg, SB_DIR_OK, &session);
    rc = 0;
out:
    free(rooms);
    free(members);
    free(held);
    return rc;
}

static void on_claimed(void *arg, const sb_redis_reply_t *reply)
{
    claim_t *c = arg;
    log_error("claim", reply);
    if (reply != NULL && reply->type == SB_REDIS_ARRAY && reply->elements >= 1 &&
        reply->element[0]->type == SB_REDIS_INTEGER) {
        if (reply->element[0]->integer == 0) {
            c->done(c->arg, SB_DIR_TAKEN, NULL);
            goto out;
        }
        if (reply->elements >= 2 && reply->element[1]->type == SB_REDIS_INTEGER) {
            sb_dir_session_t fresh = {0};
            if (reply->element[1]->integer == 0) {
                c->done(c->arg, SB_DIR_OK, &fresh);
                goto out;
            }
            if (answer_resumed(c, reply) == 0)
                goto out;
        }
        sb_log(SB_LOG_ERROR, "redis claim: an answer of an unexpected shape");
    }
    c->done(c->arg, SB_DIR_UNAVAILABLE, NULL);
out:
    free(c);
}

static void claim(sb_dir_t *base, const char *id, sb_dir_claim_how_t how, const char *resume,
                  const char *token, sb_dir_claim_fn done, void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX], ids[KEY_MAX], sent[24];
    static const char *const hows[] = {"new", "held", "again"};
    claim_t *c = malloc(sizeof(*c));
    /* Until this node's liveness key is written, other nodes would take its claims for a dead
     * node's and take them over: no claims before then. */
    if (c == NULL || !ready(d) || !d->registered) {
        free(c);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
        return;
    }
    c->done = done;
    c->arg = arg;
    snprintf(key, sizeof(key), "sb:id:%s", id);
    snprintf(ids, sizeof(ids), "sb:node:%s:ids", d->node);
    sent_now(sent);
    sb_map_remove(d->releases, id); /* claimed again: no longer to be released */
    const char *args[] = {key,   ids,       d->node, id,       resume ? resume : "",
                          token, d->window, sent,    hows[how]};
    if (eval(d, S_CLAIM, 2, args, 9, on_claimed, c) != 0) {
        free(c);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
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

static void detach(sb_dir_t *base, const char *id)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX], ids[KEY_MAX], sent[24];
    snprintf(key, sizeof(key), "sb:id:%s", id);
    snprintf(ids, sizeof(ids), "sb:node:%s:ids", d->node);
    sent_now(sent);
    const char *args[] = {key, ids, d->node, id, d->window, sent};
    /* Unsent (Redis unreachable), the ID stays this node's until Redis is back and this node
     * records its peers again without it: a resume then finds it free, and its rooms are
     * left by the sweep of this node's records, as when a node dies. */
    if (eval(d, S_DETACH, 2, args, 6, log_error, "detach") != 0)
        sb_map_put(d->releases, id, d);
}

typedef struct {
    sb_dir_put_fn done;
    void *arg;
} put_t;

static void on_put(void *arg, const sb_redis_reply_t *reply)
{
    put_t *p = arg;
    sb_dir_put_t outcome = SB_DIR_PUT_UNAVAILABLE;
    log_error("put", reply);
    if (reply != NULL && reply->type == SB_REDIS_INTEGER)
        outcome = reply->integer == -1  ? SB_DIR_QUEUED
                  : reply->integer == 0 ? SB_DIR_GONE
                  : reply->integer == 1 ? SB_DIR_LIVE
                                        : SB_DIR_BOXFULL;
    p->done(p->arg, outcome);
    free(p);
}

static void put(sb_dir_t *base, const char *id, const char *env, size_t len, sb_dir_put_fn done,
                void *arg)
{
    redis_dir_t *d = (redis_dir_t *)base;
    char key[KEY_MAX], box[KEY_MAX], bytes[KEY_MAX], most[24], most_bytes[24];
    put_t *p = malloc(sizeof(*p));
    if (p == NULL || !ready(d)) {
        free(p);
        done(arg, SB_DIR_PUT_UNAVAILABLE);
        return;
    }
    p->done = done;
    p->arg = arg;
    snprintf(key, sizeof(key), "sb:id:%s", id);
    snprintf(box, sizeof(box), "sb:mbox:%s", id);
    snprintf(bytes, sizeof(bytes), "sb:mboxb:%s", id);
    snprintf(most, sizeof(most), "%zu", d->sessions.mailbox_messages);
    snprintf(most_bytes, sizeof(most_bytes), "%zu", d->sessions.mailbox_bytes);
    const char *argv[] = {"EVALSHA", scripts[S_PUT].sha, "3",      key, box, bytes, id, env,
                          most,      most_bytes,         d->window};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = argv[i] == env ? len : strlen(argv[i]);
    if (sb_redis_command(d->cmd, 11, argv, lens, on_put, p) != 0) {
        free(p);
        done(arg, SB_DIR_PUT_UNAVAILABLE);
    }
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
    snprintf(set, sizeof(set), "sb:rooms:%s", peer);
    snprintf(entry, sizeof(entry), "%s\t%s", room, peer);
    snprintf(lim, sizeof(lim), "%zu", limit > 1000000000 ? (size_t)1000000000 : limit);
    sb_map_remove(d->leaves, entry);
    char sent[24];
    sent_now(sent);
    const char *args[] = {key, set, peer, d->node, lim, room, sent};
    if (eval(d, S_JOIN, 2, args, 7, on_joined, j) != 0) {
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
    snprintf(set, sizeof(set), "sb:rooms:%s", tab + 1);
    char sent[24];
    sent_now(sent);
    const char *args[] = {key, set, tab + 1, d->node, room, announce ? "1" : "0", sent};
    return l ? eval(d, S_LEAVE, 2, args, 7, on_left, l)
             : eval(d, S_LEAVE, 2, args, 7, log_error, "leave");
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
    redis_dir_t *d = arg;
    log_error("sweep", reply);
    if (reply == NULL || reply->type != SB_REDIS_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != SB_REDIS_ARRAY || reply->element[1]->type != SB_REDIS_INTEGER)
        return;
    const sb_redis_reply_t *nodes = reply->element[0];
    sb_metrics.sweeps++;
    sb_metrics.dead_nodes_removed += nodes->elements;
    sb_metrics.sessions_ended += (uint64_t)reply->element[1]->integer;
    for (size_t i = 0; i < nodes->elements; i++)
        if (nodes->element[i]->type == SB_REDIS_STRING)
            sb_log(SB_LOG_WARN,
                   "cluster: node %s stopped refreshing its liveness; its peers' sessions %s",
                   nodes->element[i]->str,
                   d->sessions.resume_seconds > 0 ? "wait for a resume" : "ended");
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
    const char *sweeper[] = {d->node, sent, d->window};
    eval(d, S_SWEEP, 0, sweeper, 3, on_swept, d);
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

static const sb_dir_ops_t ops = {claim, release,   detach, put,     join,
                                 leave, dir_ready, idle,   dir_free};

sb_dir_t *sb_dir_redis_new(struct event_base *base, const sb_redis_url_t *url, const char *node,
                           double ttl, const sb_dir_sessions_t *sessions)
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
    d->sessions = *sessions;
    snprintf(d->window, sizeof(d->window), "%lld", (long long)(sessions->resume_seconds * 1000));
    sb_redis_opts_t o = {.name = "dir",
                         .node_id = node,
                         .connect_timeout = 2,
                         .command_timeout = 5,
                         .backoff_cap =
                             1, /* back within about a second of Redis: held messages wait less */
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
