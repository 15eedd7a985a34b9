/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms.
 *
 * Local state is the peers connected to this node and the rooms they are in; cluster-wide
 * state (who holds an ID, who is in a room) is the directory's. A message for a peer on
 * another node is published, as the recipient's JSON, on that peer's bus channel. Room events
 * reach this node's members from here, and other nodes' members from the directory. */
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "conn.h"
#include "log.h"
#include "map.h"
#include "message.h"
#include "ws.h"

/* Close codes of the protocol (PROTOCOL.md). */
#define CLOSE_TRY_AGAIN 4003
#define CLOSE_ID_TAKEN 4001
#define CLOSE_BAD_ID 4002

#define PEER_CHANNEL "sb:peer:"
#define CHANNEL_MAX (sizeof(PEER_CHANNEL) + SB_ID_MAX)

/* Backpressure. A peer is not read while a join or leave of its waits for the directory, so its
 * requests take effect in the order it sent them, whatever the bus; nor while it has
 * RELAY_WINDOW relays waiting for the bus, so what one client has in flight is bounded. */
#define RELAY_WINDOW 64
/* Room events held for one join being answered; past that they are delivered at once. */
#define HELD_EVENTS_MAX 1024

typedef struct room room_t;

/* A peer lives as long as its connection or any directory answer it waits for. */
typedef struct {
    sb_relay_t *relay;
    sb_conn_t *conn;
    int refs;
    int closed;     /* its connection has ended */
    int registered; /* holds its ID (welcome sent) and its bus channel */
    char id[SB_ID_MAX + 1];
    room_t **rooms; /* rooms joined on this node, at most max_rooms_per_peer */
    size_t nrooms;
    struct pending_join *join; /* a join waiting for the directory: its room's events wait too */
    int leaving;               /* a leave waiting for the directory */
    size_t relays;             /* relays waiting for the bus */
    int paused;                /* not read: see RELAY_WINDOW */
} peer_t;

/* A room's members on this node. */
struct room {
    char name[SB_ROOM_MAX + 1];
    peer_t **members;
    size_t n, cap;
};

struct sb_relay {
    const sb_config_t *cfg;
    sb_bus_t *bus;
    sb_dir_t *dir;
    sb_map_t *peers; /* id -> peer_t: peers of this node, registered or claiming */
    sb_map_t *rooms; /* name -> room_t: rooms with members on this node */
    char node_id[SB_ID_MAX + 1];
    size_t reasserting; /* directory answers still due after a bus reconnect */
    sb_relay_stats_t stats;
};

static peer_t *peer_ref(peer_t *p)
{
    p->refs++;
    return p;
}

static void peer_unref(peer_t *p)
{
    if (--p->refs == 0) {
        free(p->rooms);
        free(p);
    }
}

/* Pauses or resumes reading the peer's connection as its requests in flight say. */
static void flow(peer_t *p)
{
    int stop = p->join != NULL || p->leaving || p->relays >= RELAY_WINDOW;
    if (stop == p->paused || p->closed)
        return;
    p->paused = stop;
    if (stop)
        sb_conn_pause(p->conn);
    else
        sb_conn_resume(p->conn);
}

/* Sends a built message and frees it; NULL (out of memory) sends nothing. */
static int send_owned(sb_conn_t *c, char *msg, size_t len)
{
    int rc = -1;
    if (msg != NULL)
        rc = sb_conn_send_text(c, msg, len);
    free(msg);
    return rc;
}

static void send_error(sb_conn_t *c, const char *code, const char *message, const char *to,
                       const char *room, sb_str_t mid)
{
    size_t len = 0;
    char *msg = sb_msg_error(code, message, to, room, mid, &len);
    send_owned(c, msg, len);
}

static sb_str_t no_mid(void) { return (sb_str_t){NULL, 0}; }

static void channel_name(char *out, const char *prefix, const char *name)
{
    snprintf(out, CHANNEL_MAX, "%s%s", prefix, name);
}

/* Sends json to this node's members of room, except the peer named skip. */
static int fan_out(room_t *room, const char *skip, const char *json, size_t len)
{
    int delivered = 0;
    /* Sends never remove members here: a dropped connection leaves on a later loop turn. */
    for (size_t i = 0; room != NULL && i < room->n; i++)
        if (strcmp(room->members[i]->id, skip) != 0 &&
            sb_conn_send_text(room->members[i]->conn, json, len) == 0)
            delivered++;
    return delivered;
}

/* Tells this node's members of the room that peer joined or left (the directory tells the
 * members on other nodes). */
static void room_event(sb_relay_t *r, const char *room, const char *event, const char *peer)
{
    size_t len = 0;
    char *msg = sb_msg_peer_event(event, room, peer, &len);
    if (msg == NULL)
        return;
    fan_out(sb_map_get(r->rooms, room), peer, msg, len);
    free(msg);
}

/* ---- relaying ---- */

/* Where a relayed message went, kept until the bus says whether anyone took it. */
typedef struct {
    peer_t *sender;
    char to[SB_ID_MAX + 1];
    char mid[SB_MID_MAX * 6 + 3]; /* raw JSON, "" when absent */
} pending_relay_t;

/* Tells the sender the outcome: 1 delivered, 0 no such peer, -1 the cluster could not
 * deliver it (bus down, or the recipient's node not receiving just now). */
static void answer_sender(pending_relay_t *p, int outcome)
{
    sb_relay_t *r = p->sender->relay;
    sb_str_t mid = {p->mid, strlen(p->mid)};

    if (outcome > 0)
        r->stats.relayed++;
    else
        r->stats.unavailable++;
    p->sender->relays--;
    flow(p->sender);
    if (!p->sender->closed) {
        if (outcome > 0 && mid.len > 0) {
            size_t len = 0;
            char *msg = sb_msg_ack(mid, &len);
            send_owned(p->sender->conn, msg, len);
        } else if (outcome == 0) {
            send_error(p->sender->conn, "peer-unavailable", "no peer with that ID is connected",
                       p->to, NULL, mid);
        } else if (outcome < 0) {
            send_error(p->sender->conn, "unavailable",
                       "the cluster could not deliver the message just now; try again", p->to, NULL,
                       mid);
        }
    }
    peer_unref(p->sender);
    free(p);
}

static void held_done(void *arg, int held) { answer_sender(arg, held ? -1 : 0); }

static void relay_done(void *arg, int receivers)
{
    pending_relay_t *p = arg;
    sb_relay_t *r = p->sender->relay;
    /* Nobody took it: either the peer is not connected, or its node is subscribing again after
     * a reconnect. The directory knows which. */
    if (receivers == 0)
        r->dir->ops->held(r->dir, p->to, held_done, p);
    else
        answer_sender(p, receivers > 0 ? 1 : -1);
}

static void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m)
{
    size_t len = 0;
    char *msg = sb_msg_relay(m->type, sender->id, m->payload, m->mid, &len);
    pending_relay_t *p = calloc(1, sizeof(*p));
    if (msg == NULL || p == NULL) {
        free(msg);
        free(p);
        send_error(sender->conn, "unavailable", "out of memory", m->to, NULL, m->mid);
        return;
    }
    p->sender = peer_ref(sender);
    sender->relays++;
    memcpy(p->to, m->to, sizeof(p->to));
    if (m->mid.len > 0)
        memcpy(p->mid, m->mid.p, m->mid.len);

    peer_t *local = sb_map_get(r->peers, m->to);
    if (local != NULL && local->registered) {
        /* Same node: straight to the connection, no bus round trip. */
        answer_sender(p, sb_conn_send_text(local->conn, msg, len) == 0 ? 1 : 0);
    } else {
        /* Not here, or a connection here still claiming the ID, which may well be held by a
         * peer on another node: the bus and the directory decide. */
        char channel[CHANNEL_MAX];
        channel_name(channel, PEER_CHANNEL, m->to);
        r->bus->ops->publish(r->bus, channel, msg, len, relay_done, p);
        flow(sender);
    }
    free(msg);
}

/* ---- rooms ---- */

static room_t *local_room(sb_relay_t *r, const char *name, int create)
{
    room_t *room = sb_map_get(r->rooms, name);
    if (room != NULL || !create)
        return room;
    room = calloc(1, sizeof(*room));
    if (room == NULL)
        return NULL;
    snprintf(room->name, sizeof(room->name), "%s", name);
    if (sb_map_put(r->rooms, name, room) != 0) {
        free(room);
        return NULL;
    }
    r->stats.rooms++;
    return room;
}

static int is_member(const peer_t *peer, const room_t *room)
{
    for (size_t i = 0; i < peer->nrooms; i++)
        if (peer->rooms[i] == room)
            return 1;
    return 0;
}

/* Records peer as a member on this node. Returns 0, or -1 when out of memory. */
static int add_member(sb_relay_t *r, room_t *room, peer_t *peer)
{
    if (peer->rooms == NULL &&
        (peer->rooms = calloc(r->cfg->max_rooms_per_peer, sizeof(*peer->rooms))) == NULL)
        return -1;
    if (room->n == room->cap) {
        size_t cap = room->cap ? room->cap * 2 : 4;
        peer_t **members = realloc(room->members, cap * sizeof(*members));
        if (members == NULL)
            return -1;
        room->members = members;
        room->cap = cap;
    }
    room->members[room->n++] = peer;
    peer->rooms[peer->nrooms++] = room;
    return 0;
}

static void close_room_if_empty(sb_relay_t *r, room_t *room)
{
    if (room->n > 0)
        return;
    sb_map_remove(r->rooms, room->name);
    r->stats.rooms--;
    free(room->members);
    free(room);
}

static void left_done(void *arg)
{
    peer_t *peer = arg;
    peer->leaving = 0;
    flow(peer);
    peer_unref(peer);
}

/* Takes peer out of room, in the directory and here, and tells the others. With wait, the peer
 * is not read until the directory has it too (a leave it asked for, not a disconnect). */
static void remove_member(sb_relay_t *r, room_t *room, peer_t *peer, int wait)
{
    char name[SB_ROOM_MAX + 1];
    for (size_t i = 0; i < room->n; i++)
        if (room->members[i] == peer) {
            memmove(&room->members[i], &room->members[i + 1],
                    (room->n - i - 1) * sizeof(*room->members));
            room->n--;
            break;
        }
    for (size_t i = 0; i < peer->nrooms; i++)
        if (peer->rooms[i] == room) {
            peer->rooms[i] = peer->rooms[--peer->nrooms];
            break;
        }
    memcpy(name, room->name, sizeof(name));
    if (wait) {
        peer->leaving = 1;
        r->dir->ops->leave(r->dir, name, peer->id, left_done, peer_ref(peer));
        flow(peer); /* unless it was done already */
    } else {
        r->dir->ops->leave(r->dir, name, peer->id, NULL, NULL);
    }
    close_room_if_empty(r, room);
    room_event(r, name, "peer-left", peer->id);
}

/* A room event that arrived for a peer while its join of that room was being answered: the
 * event and the answer travel over different Redis connections, so either may come first. */
typedef struct {
    int joined; /* peer-joined, else peer-left */
    char peer[SB_ID_MAX + 1];
} held_event_t;

typedef struct pending_join {
    peer_t *peer;
    char room[SB_ROOM_MAX + 1];
    char mid[SB_MID_MAX * 6 + 3];
    int reassert; /* re-recording a membership after an outage, no answer to send */
    held_event_t *events;
    size_t nevents, cap;
} pending_join_t;

/* Folds the events held during the join into the list of the others it answers with. */
static size_t apply_held(const pending_join_t *p, const char **others, size_t k, size_t cap)
{
    for (size_t e = 0; e < p->nevents; e++) {
        const held_event_t *ev = &p->events[e];
        size_t i = 0;
        while (i < k && strcmp(others[i], ev->peer) != 0)
            i++;
        if (!ev->joined && i < k)
            others[i] = others[--k];
        else if (ev->joined && i == k && k < cap && strcmp(ev->peer, p->peer->id) != 0)
            others[k++] = ev->peer;
    }
    return k;
}

/* 1 when peer id, which the directory lists on this node, is still in room here: a member
 * that left while the directory answered is not listed (its leave was told here only). */
static int still_here(sb_relay_t *r, const char *room_name, const char *id)
{
    room_t *room = sb_map_get(r->rooms, room_name);
    for (size_t i = 0; room != NULL && i < room->n; i++)
        if (strcmp(room->members[i]->id, id) == 0)
            return 1;
    return 0;
}

static void join_done(void *arg, int result, int added, const char *const *members,
                      const char *const *nodes, size_t n)
{
    pending_join_t *p = arg;
    peer_t *peer = p->peer;
    sb_relay_t *r = peer->relay;
    sb_str_t mid = {p->mid, strlen(p->mid)};

    if (p->reassert) {
        r->reasserting--;
    } else {
        peer->join = NULL;
        flow(peer);
    }
    if (peer->closed) {
        if (result == SB_DIR_OK && added) /* it left while we asked */
            r->dir->ops->leave(r->dir, p->room, peer->id, NULL, NULL);
        goto out;
    }
    if (p->reassert) {
        if (result == SB_DIR_OK && added) /* others saw it leave meanwhile: it is back */
            room_event(r, p->room, "peer-joined", peer->id);
        goto out;
    }
    if (result == SB_DIR_FULL) {
        send_error(peer->conn, "room-full", "this room has as many peers as allowed", NULL, p->room,
                   mid);
        goto out;
    }
    room_t *room = result == SB_DIR_OK ? local_room(r, p->room, 1) : NULL;
    if (room == NULL || (!is_member(peer, room) && add_member(r, room, peer) != 0)) {
        if (result == SB_DIR_OK && added)
            r->dir->ops->leave(r->dir, p->room, peer->id, NULL, NULL);
        if (room != NULL)
            close_room_if_empty(r, room);
        send_error(peer->conn, "unavailable",
                   result == SB_DIR_UNAVAILABLE ? "the cluster's directory is unavailable"
                                                : "out of memory",
                   NULL, p->room, mid);
        goto out;
    }
    /* The answer lists the others; they hear of the newcomer after it has its answer. */
    size_t cap = n + p->nevents + 1;
    const char **others = malloc(cap * sizeof(*others));
    size_t k = 0, len = 0;
    if (others != NULL)
        for (size_t i = 0; i < n; i++)
            if (strcmp(members[i], peer->id) != 0 &&
                (nodes == NULL || strcmp(nodes[i], r->node_id) != 0 ||
                 still_here(r, p->room, members[i])))
                others[k++] = members[i];
    if (others != NULL)
        k = apply_held(p, others, k, cap);
    char *msg = others ? sb_msg_joined(p->room, others, k, mid, &len) : NULL;
    free(others);
    send_owned(peer->conn, msg, len);
    if (added)
        room_event(r, p->room, "peer-joined", peer->id);
out:
    peer_unref(peer);
    free(p->events);
    free(p);
}

static void start_join(sb_relay_t *r, peer_t *peer, const char *room, sb_str_t mid, int reassert)
{
    pending_join_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        if (!reassert)
            send_error(peer->conn, "unavailable", "out of memory", NULL, room, mid);
        return;
    }
    p->peer = peer_ref(peer);
    p->reassert = reassert;
    snprintf(p->room, sizeof(p->room), "%s", room);
    if (mid.len > 0)
        memcpy(p->mid, mid.p, mid.len);
    if (reassert)
        r->reasserting++;
    else
        peer->join = p;
    /* A re-recorded membership was within the limit when it was made. */
    r->dir->ops->join(r->dir, room, peer->id, reassert ? (size_t)-1 : r->cfg->max_room_peers,
                      join_done, p);
    if (!reassert)
        flow(peer); /* unless it was answered already */
}

static void join(sb_relay_t *r, peer_t *peer, const sb_msg_t *m)
{
    room_t *room = sb_map_get(r->rooms, m->room);
    if ((room == NULL || !is_member(peer, room)) && peer->nrooms >= r->cfg->max_rooms_per_peer) {
        send_error(peer->conn, "too-many-rooms", "this peer is in as many rooms as allowed", NULL,
                   m->room, m->mid);
        return;
    }
    start_join(r, peer, m->room, m->mid, 0);
}

static void leave(sb_relay_t *r, peer_t *peer, const sb_msg_t *m)
{
    room_t *room = sb_map_get(r->rooms, m->room);
    if (room == NULL || !is_member(peer, room)) {
        send_error(peer->conn, "not-joined", "this peer is not in that room", NULL, m->room,
                   m->mid);
        return;
    }
    size_t len = 0;
    char *msg = sb_msg_left(m->room, m->mid, &len);
    remove_member(r, room, peer, 1);
    send_owned(peer->conn, msg, len);
}

static void on_text(void *app, sb_conn_t *c, const char *data, size_t len)
{
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    sb_msg_t m;
    char err[160];

    if (peer == NULL)
        return; /* refused at open; its close is on the way */
    if (sb_msg_parse(data, len, &m, err, sizeof(err)) != 0) {
        r->stats.bad_requests++;
        send_error(c, "bad-request", err, NULL, NULL, m.mid);
        return;
    }
    if (!peer->registered) {
        send_error(c, "unavailable", "wait for welcome before sending", NULL, NULL, m.mid);
        return;
    }
    switch (m.type) {
    case SB_MSG_JOIN:
        join(r, peer, &m);
        break;
    case SB_MSG_LEAVE:
        leave(r, peer, &m);
        break;
    default:
        relay_message(r, peer, &m);
        break;
    }
}

/* ---- peer IDs ---- */

/* A random, unguessable ID: 96 bits in base64url, 16 characters. */
static int random_id(char out[17])
{
    unsigned char raw[12], b64[17];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    EVP_EncodeBlock(b64, raw, sizeof(raw));
    for (int i = 0; i < 16; i++)
        out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    out[16] = '\0';
    return 0;
}

/* Finds id=NAME in a query string. Returns 1 and copies NAME (at most cap-1 bytes, longer is
 * reported through *too_long), or 0 when there is no id parameter. */
static int query_id(const char *query, char *out, size_t cap, int *too_long)
{
    for (const char *p = query; *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n >= 3 && strncmp(p, "id=", 3) == 0) {
            *too_long = n - 3 >= cap;
            snprintf(out, cap, "%.*s", (int)(n - 3), p + 3);
            return 1;
        }
        p += n + (amp ? 1 : 0);
    }
    return 0;
}

static void refuse(sb_conn_t *c, const char *code, const char *message, uint16_t close_code)
{
    send_error(c, code, message, NULL, NULL, no_mid());
    sb_conn_close(c, close_code, code);
}

/* Drops peer from the local map if it is the one registered under its ID. */
static void forget(sb_relay_t *r, peer_t *peer)
{
    if (sb_map_get(r->peers, peer->id) == peer)
        sb_map_remove(r->peers, peer->id);
}

static void register_peer(sb_relay_t *r, peer_t *peer)
{
    char channel[CHANNEL_MAX];
    size_t len = 0;
    channel_name(channel, PEER_CHANNEL, peer->id);
    if (r->bus->ops->subscribe(r->bus, channel) != 0) {
        r->dir->ops->release(r->dir, peer->id);
        forget(r, peer);
        sb_conn_close(peer->conn, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->registered = 1;
    r->stats.peers++;
    char *msg = sb_msg_welcome(peer->id, r->node_id, r->cfg->ice_servers, &len);
    send_owned(peer->conn, msg, len);
    sb_log(SB_LOG_DEBUG, "conn %llu %s: peer %s", (unsigned long long)sb_conn_id(peer->conn),
           sb_conn_peer(peer->conn), peer->id);
}

static void claim_done(void *arg, int result)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;

    if (peer->closed) {
        /* Gone while we asked: give the ID back unless a newer connection here has it. */
        if (result == SB_DIR_OK && sb_map_get(r->peers, peer->id) == NULL)
            r->dir->ops->release(r->dir, peer->id);
    } else if (result == SB_DIR_OK) {
        register_peer(r, peer);
    } else {
        forget(r, peer);
        if (result == SB_DIR_TAKEN) {
            r->stats.ids_taken++;
            refuse(peer->conn, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
        } else {
            refuse(peer->conn, "unavailable", "the cluster's directory is unavailable; retry",
                   CLOSE_TRY_AGAIN);
        }
    }
    peer_unref(peer);
}

static void on_open(void *app, sb_conn_t *c)
{
    sb_relay_t *r = app;
    peer_t *peer = calloc(1, sizeof(*peer));
    int too_long = 0;

    if (peer == NULL) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->relay = r;
    peer->conn = c;
    peer->refs = 1; /* the connection's */
    sb_conn_set_data(c, peer);

    if (query_id(sb_conn_query(c), peer->id, sizeof(peer->id), &too_long)) {
        if (too_long || !sb_peer_id_valid(peer->id, strlen(peer->id))) {
            refuse(c, "bad-id", "id must be 1-64 characters of [A-Za-z0-9_.-]", CLOSE_BAD_ID);
            return;
        }
    } else if (random_id(peer->id) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "no randomness");
        return;
    }
    /* Held or being claimed by a connection of this node. */
    if (sb_map_get(r->peers, peer->id) != NULL) {
        r->stats.ids_taken++;
        refuse(c, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
        return;
    }
    if (sb_map_put(r->peers, peer->id, peer) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    r->dir->ops->claim(r->dir, peer->id, claim_done, peer_ref(peer));
}

static void on_close(void *app, sb_conn_t *c)
{
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    if (peer == NULL)
        return;
    sb_conn_set_data(c, NULL);
    peer->closed = 1;
    while (peer->nrooms > 0)
        remove_member(r, peer->rooms[peer->nrooms - 1], peer, 0);
    if (peer->registered) {
        char channel[CHANNEL_MAX];
        channel_name(channel, PEER_CHANNEL, peer->id);
        r->bus->ops->unsubscribe(r->bus, channel);
        r->dir->ops->release(r->dir, peer->id);
        r->stats.peers--;
    }
    forget(r, peer);
    peer_unref(peer);
}

/* ---- the bus ---- */

/* Reads a room event as the directory writes it: {"type":"peer-joined"|"peer-left",
 * "room":"<room>","peer":"<id>"} (names never need escaping). Returns 0, or -1 for anything else.
 */
static int parse_room_event(const char *msg, size_t len, held_event_t *ev, char *room)
{
    static const char joined[] = "{\"type\":\"peer-joined\",\"room\":\"";
    static const char left[] = "{\"type\":\"peer-left\",\"room\":\"";
    static const char mid[] = "\",\"peer\":\"";
    const char *end = msg + len, *p;

    if (len > sizeof(joined) && memcmp(msg, joined, sizeof(joined) - 1) == 0)
        ev->joined = 1, p = msg + sizeof(joined) - 1;
    else if (len > sizeof(left) && memcmp(msg, left, sizeof(left) - 1) == 0)
        ev->joined = 0, p = msg + sizeof(left) - 1;
    else
        return -1;
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL || q - p > SB_ROOM_MAX || (size_t)(end - q) < sizeof(mid) + 2 ||
        memcmp(q, mid, sizeof(mid) - 1) != 0)
        return -1;
    snprintf(room, SB_ROOM_MAX + 1, "%.*s", (int)(q - p), p);
    p = q + sizeof(mid) - 1;
    q = memchr(p, '"', (size_t)(end - p));
    if (q == NULL || q - p > SB_ID_MAX || end - q != 2 || q[1] != '}')
        return -1;
    snprintf(ev->peer, sizeof(ev->peer), "%.*s", (int)(q - p), p);
    return 0;
}

/* Holds a room event for a join of that room still being answered. Returns 1 when held. */
static int hold_for_join(peer_t *peer, const char *msg, size_t len)
{
    pending_join_t *p = peer->join;
    held_event_t ev;
    char room[SB_ROOM_MAX + 1];
    if (p == NULL || parse_room_event(msg, len, &ev, room) != 0 || strcmp(p->room, room) != 0)
        return 0;
    if (p->nevents == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        held_event_t *events =
            cap <= HELD_EVENTS_MAX ? realloc(p->events, cap * sizeof(*events)) : NULL;
        if (events == NULL)
            return 0; /* delivered at once instead: the view may be off, the event is not lost */
        p->events = events;
        p->cap = cap;
    }
    p->events[p->nevents++] = ev;
    return 1;
}

/* A message from another node for one of our peers: relayed, or a room event. */
static int deliver(void *ctx, const char *channel, const char *msg, size_t len)
{
    sb_relay_t *r = ctx;
    if (strncmp(channel, PEER_CHANNEL, strlen(PEER_CHANNEL)) != 0)
        return 0;
    peer_t *peer = sb_map_get(r->peers, channel + strlen(PEER_CHANNEL));
    if (peer == NULL || !peer->registered)
        return 0;
    if (hold_for_join(peer, msg, len))
        return 1;
    return sb_conn_send_text(peer->conn, msg, len) == 0;
}

/* ---- after an outage ---- */

static void reclaim_done(void *arg, int result)
{
    peer_t *peer = arg;
    sb_relay_t *r = peer->relay;
    r->reasserting--;
    if (!peer->closed && result == SB_DIR_TAKEN) {
        /* Another node took the ID over while we were cut off: it is theirs now. */
        r->stats.ids_taken++;
        sb_log(SB_LOG_INFO, "peer %s: its ID was taken over during the outage", peer->id);
        refuse(peer->conn, "id-taken", "another connection took this id over", CLOSE_ID_TAKEN);
    }
    peer_unref(peer);
}

void sb_relay_reassert(sb_relay_t *r)
{
    size_t cursor = 0;
    const char *key;
    void *value;
    while (sb_map_next(r->peers, &cursor, &key, &value)) {
        peer_t *peer = value;
        if (!peer->registered || peer->closed)
            continue;
        r->reasserting++;
        r->dir->ops->claim(r->dir, peer->id, reclaim_done, peer_ref(peer));
        for (size_t i = 0; i < peer->nrooms; i++)
            start_join(r, peer, peer->rooms[i]->name, no_mid(), 1);
    }
}

int sb_relay_reasserting(const sb_relay_t *r) { return r->reasserting > 0; }

/* ---- life cycle ---- */

sb_relay_t *sb_relay_new(const sb_config_t *cfg, sb_bus_t *bus, sb_dir_t *dir, const char *node_id)
{
    sb_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cfg = cfg;
    r->bus = bus;
    r->dir = dir;
    snprintf(r->node_id, sizeof(r->node_id), "%s", node_id);
    r->peers = sb_map_new();
    r->rooms = sb_map_new();
    if (r->peers == NULL || r->rooms == NULL) {
        sb_relay_free(r);
        return NULL;
    }
    bus->deliver = deliver;
    bus->ctx = r;
    return r;
}

void sb_relay_free(sb_relay_t *r)
{
    if (r == NULL)
        return;
    sb_map_free(r->peers);
    sb_map_free(r->rooms);
    free(r);
}

sb_handler_t sb_relay_handler(sb_relay_t *r)
{
    sb_handler_t h = {.on_open = on_open, .on_text = on_text, .on_close = on_close, .app = r};
    return h;
}

const sb_relay_stats_t *sb_relay_stats(const sb_relay_t *r) { return &r->stats; }
