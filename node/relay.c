/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms. */
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
#define CLOSE_ID_TAKEN 4001
#define CLOSE_BAD_ID 4002

/* Bus channels: one per peer, one per room. A bus message is "<peer to skip>\n<client JSON>". */
#define PEER_CHANNEL "sb:peer:"
#define ROOM_CHANNEL "sb:room:"

typedef struct room room_t;

typedef struct {
    sb_relay_t *relay;
    sb_conn_t *conn;
    uint64_t conn_id; /* tells this connection from a later one with the same ID */
    char id[SB_ID_MAX + 1];
    int registered;   /* holds its ID and its bus channel */
    room_t **rooms;   /* rooms joined, at most max_rooms_per_peer */
    size_t nrooms;
} peer_t;

struct room {
    char name[SB_ROOM_MAX + 1];
    peer_t **members; /* local members, in joining order */
    size_t n, cap;
};

struct sb_relay {
    const sb_config_t *cfg;
    sb_bus_t *bus;
    sb_map_t *peers; /* id -> peer_t, the peers connected to this node */
    sb_map_t *rooms; /* name -> room_t, the rooms with members on this node */
    char node_id[SB_ID_MAX + 1];
    sb_relay_stats_t stats;
};

/* Sends a built message and frees it; NULL (out of memory) sends nothing. */
static int send_owned(sb_conn_t *c, char *msg, size_t len) {
    int rc = -1;
    if (msg != NULL)
        rc = sb_conn_send_text(c, msg, len);
    free(msg);
    return rc;
}

static void send_error(sb_conn_t *c, const char *code, const char *message, const char *to,
                       const char *room, sb_str_t mid) {
    size_t len = 0;
    char *msg = sb_msg_error(code, message, to, room, mid, &len);
    send_owned(c, msg, len);
}

/* Publishes client JSON on a channel, prefixed with the peer that must not receive it. */
static void publish(sb_relay_t *r, const char *channel, const char *skip, const char *json,
                    size_t len, sb_bus_done_fn done, void *arg) {
    size_t slen = strlen(skip);
    char *env = malloc(slen + 1 + len);
    if (env == NULL) {
        if (done)
            done(arg, -1);
        return;
    }
    memcpy(env, skip, slen);
    env[slen] = '\n';
    memcpy(env + slen + 1, json, len);
    r->bus->ops->publish(r->bus, channel, env, slen + 1 + len, done, arg);
    free(env);
}

static void channel_name(char *out, size_t cap, const char *prefix, const char *name) {
    snprintf(out, cap, "%s%s", prefix, name);
}

/* Where a relayed message went, remembered until the bus says whether anyone took it. */
typedef struct {
    sb_relay_t *relay;
    char from[SB_ID_MAX + 1];
    uint64_t conn_id;
    char to[SB_ID_MAX + 1];
    char mid[SB_MID_MAX * 6 + 3]; /* raw JSON, "" when absent */
} pending_t;

static void relay_done(void *arg, int receivers) {
    pending_t *p = arg;
    sb_relay_t *r = p->relay;
    peer_t *sender = sb_map_get(r->peers, p->from);
    sb_str_t mid = {p->mid, strlen(p->mid)};

    if (receivers > 0)
        r->stats.relayed++;
    else
        r->stats.unavailable++;
    /* The sender may have gone, or its ID may belong to a newer connection, meanwhile. */
    if (sender != NULL && sender->conn_id == p->conn_id) {
        if (receivers > 0) {
            if (mid.len > 0) {
                size_t len = 0;
                char *msg = sb_msg_ack(mid, &len);
                send_owned(sender->conn, msg, len);
            }
        } else {
            send_error(sender->conn, receivers < 0 ? "unavailable" : "peer-unavailable",
                       receivers < 0 ? "the message bus is unavailable; try again"
                                     : "no peer with that ID is connected",
                       p->to, NULL, mid);
        }
    }
    free(p);
}

static void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m) {
    size_t len = 0;
    char *msg = sb_msg_relay(m->type, sender->id, m->payload, m->mid, &len);
    pending_t *p = calloc(1, sizeof(*p));
    if (msg == NULL || p == NULL) {
        free(msg);
        free(p);
        send_error(sender->conn, "unavailable", "out of memory", m->to, NULL, m->mid);
        return;
    }
    p->relay = r;
    p->conn_id = sender->conn_id;
    memcpy(p->from, sender->id, sizeof(p->from));
    memcpy(p->to, m->to, sizeof(p->to));
    memcpy(p->mid, m->mid.p ? m->mid.p : "", m->mid.len);

    peer_t *local = sb_map_get(r->peers, m->to);
    if (local != NULL) {
        /* Same node: straight to the connection, no bus round trip. */
        relay_done(p, sb_conn_send_text(local->conn, msg, len) == 0 ? 1 : 0);
    } else {
        char channel[sizeof(PEER_CHANNEL) + SB_ID_MAX];
        channel_name(channel, sizeof(channel), PEER_CHANNEL, m->to);
        publish(r, channel, "", msg, len, relay_done, p);
    }
    free(msg);
}

static int in_room(const peer_t *peer, const room_t *room) {
    for (size_t i = 0; i < peer->nrooms; i++)
        if (peer->rooms[i] == room)
            return 1;
    return 0;
}

static void room_event(sb_relay_t *r, room_t *room, const char *event, const char *peer) {
    size_t len = 0;
    char channel[sizeof(ROOM_CHANNEL) + SB_ROOM_MAX];
    char *msg = sb_msg_peer_event(event, room->name, peer, &len);
    if (msg == NULL)
        return;
    channel_name(channel, sizeof(channel), ROOM_CHANNEL, room->name);
    publish(r, channel, peer, msg, len, NULL, NULL);
    free(msg);
}

static room_t *room_open(sb_relay_t *r, const char *name) {
    room_t *room = sb_map_get(r->rooms, name);
    if (room != NULL)
        return room;
    room = calloc(1, sizeof(*room));
    if (room == NULL)
        return NULL;
    snprintf(room->name, sizeof(room->name), "%s", name);
    char channel[sizeof(ROOM_CHANNEL) + SB_ROOM_MAX];
    channel_name(channel, sizeof(channel), ROOM_CHANNEL, name);
    if (sb_map_put(r->rooms, name, room) != 0 || r->bus->ops->subscribe(r->bus, channel) != 0) {
        sb_map_remove(r->rooms, name);
        free(room);
        return NULL;
    }
    r->stats.rooms++;
    return room;
}

static void room_close_if_empty(sb_relay_t *r, room_t *room) {
    if (room->n > 0)
        return;
    char channel[sizeof(ROOM_CHANNEL) + SB_ROOM_MAX];
    channel_name(channel, sizeof(channel), ROOM_CHANNEL, room->name);
    r->bus->ops->unsubscribe(r->bus, channel);
    sb_map_remove(r->rooms, room->name);
    r->stats.rooms--;
    free(room->members);
    free(room);
}

/* Removes peer from room (both sides) and tells the others. */
static void room_remove(sb_relay_t *r, room_t *room, peer_t *peer) {
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
    room_event(r, room, "peer-left", peer->id);
    room_close_if_empty(r, room);
}

static void join(sb_relay_t *r, peer_t *peer, const sb_msg_t *m) {
    room_t *room = sb_map_get(r->rooms, m->room);
    int member = room != NULL && in_room(peer, room);

    if (!member && peer->nrooms >= r->cfg->max_rooms_per_peer) {
        send_error(peer->conn, "too-many-rooms", "this peer is in as many rooms as allowed",
                   NULL, m->room, m->mid);
        return;
    }
    if (!member && room != NULL && room->n >= r->cfg->max_room_peers) {
        send_error(peer->conn, "room-full", "this room has as many peers as allowed", NULL,
                   m->room, m->mid);
        return;
    }
    if (room == NULL && (room = room_open(r, m->room)) == NULL) {
        send_error(peer->conn, "unavailable", "out of memory", NULL, m->room, m->mid);
        return;
    }
    if (!member) {
        if (peer->rooms == NULL)
            peer->rooms = calloc(r->cfg->max_rooms_per_peer, sizeof(*peer->rooms));
        if (room->n == room->cap) {
            size_t cap = room->cap ? room->cap * 2 : 4;
            peer_t **members = realloc(room->members, cap * sizeof(*members));
            if (members != NULL)
                room->members = members, room->cap = cap;
        }
        if (peer->rooms == NULL || room->n == room->cap) {
            room_close_if_empty(r, room);
            send_error(peer->conn, "unavailable", "out of memory", NULL, m->room, m->mid);
            return;
        }
    }

    /* The answer lists the others; they hear of the newcomer after it has its answer. */
    const char **ids = malloc((room->n + 1) * sizeof(*ids));
    size_t n = 0, len = 0;
    if (ids == NULL) {
        room_close_if_empty(r, room);
        send_error(peer->conn, "unavailable", "out of memory", NULL, m->room, m->mid);
        return;
    }
    for (size_t i = 0; i < room->n; i++)
        if (room->members[i] != peer)
            ids[n++] = room->members[i]->id;
    char *msg = sb_msg_joined(room->name, ids, n, m->mid, &len);
    free(ids);
    if (!member) {
        room->members[room->n++] = peer;
        peer->rooms[peer->nrooms++] = room;
    }
    send_owned(peer->conn, msg, len);
    if (!member)
        room_event(r, room, "peer-joined", peer->id);
}

static void leave(sb_relay_t *r, peer_t *peer, const sb_msg_t *m) {
    room_t *room = sb_map_get(r->rooms, m->room);
    if (room == NULL || !in_room(peer, room)) {
        send_error(peer->conn, "not-joined", "this peer is not in that room", NULL, m->room,
                   m->mid);
        return;
    }
    size_t len = 0;
    char *msg = sb_msg_left(m->room, m->mid, &len);
    room_remove(r, room, peer);
    send_owned(peer->conn, msg, len);
}

static void on_text(void *app, sb_conn_t *c, const char *data, size_t len) {
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    sb_msg_t m;
    char err[160];

    if (peer == NULL || !peer->registered)
        return; /* refused at open; its close is on the way */
    if (sb_msg_parse(data, len, &m, err, sizeof(err)) != 0) {
        r->stats.bad_requests++;
        send_error(c, "bad-request", err, NULL, NULL, m.mid);
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

/* A random, unguessable ID: 96 bits in base64url, 16 characters. */
static int random_id(char out[17]) {
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
static int query_id(const char *query, char *out, size_t cap, int *too_long) {
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

static void refuse(sb_relay_t *r, sb_conn_t *c, const char *code, const char *message,
                   uint16_t close_code) {
    (void)r;
    send_error(c, code, message, NULL, NULL, (sb_str_t){NULL, 0});
    sb_conn_close(c, close_code, code);
}

static void on_open(void *app, sb_conn_t *c) {
    sb_relay_t *r = app;
    peer_t *peer = calloc(1, sizeof(*peer));
    int too_long = 0;
    size_t len = 0;

    if (peer == NULL) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->relay = r;
    peer->conn = c;
    peer->conn_id = sb_conn_id(c);
    sb_conn_set_data(c, peer);

    if (query_id(sb_conn_query(c), peer->id, sizeof(peer->id), &too_long)) {
        if (too_long || !sb_peer_id_valid(peer->id, strlen(peer->id))) {
            refuse(r, c, "bad-id", "id must be 1-64 characters of [A-Za-z0-9_.-]", CLOSE_BAD_ID);
            return;
        }
        if (sb_map_get(r->peers, peer->id) != NULL) {
            r->stats.ids_taken++;
            refuse(r, c, "id-taken", "another connection holds this id", CLOSE_ID_TAKEN);
            return;
        }
    } else {
        do {
            if (random_id(peer->id) != 0) {
                sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "no randomness");
                return;
            }
        } while (sb_map_get(r->peers, peer->id) != NULL);
    }

    char channel[sizeof(PEER_CHANNEL) + SB_ID_MAX];
    channel_name(channel, sizeof(channel), PEER_CHANNEL, peer->id);
    if (sb_map_put(r->peers, peer->id, peer) != 0) {
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    if (r->bus->ops->subscribe(r->bus, channel) != 0) {
        sb_map_remove(r->peers, peer->id);
        sb_conn_close(c, SB_WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    peer->registered = 1;
    r->stats.peers++;
    char *msg = sb_msg_welcome(peer->id, r->node_id, r->cfg->ice_servers, &len);
    send_owned(c, msg, len);
    sb_log(SB_LOG_DEBUG, "conn %llu %s: peer %s", (unsigned long long)sb_conn_id(c),
           sb_conn_peer(c), peer->id);
}

static void on_close(void *app, sb_conn_t *c) {
    sb_relay_t *r = app;
    peer_t *peer = sb_conn_data(c);
    if (peer == NULL)
        return;
    sb_conn_set_data(c, NULL);
    if (peer->registered) {
        while (peer->nrooms > 0)
            room_remove(r, peer->rooms[peer->nrooms - 1], peer);
        char channel[sizeof(PEER_CHANNEL) + SB_ID_MAX];
        channel_name(channel, sizeof(channel), PEER_CHANNEL, peer->id);
        r->bus->ops->unsubscribe(r->bus, channel);
        sb_map_remove(r->peers, peer->id);
        r->stats.peers--;
    }
    free(peer->rooms);
    free(peer);
}

/* A message from the bus: to one local peer, or to the local members of a room. */
static int deliver(void *ctx, const char *channel, const char *msg, size_t len) {
    sb_relay_t *r = ctx;
    const char *nl = memchr(msg, '\n', len);
    char skip[SB_ID_MAX + 1];
    int delivered = 0;

    if (nl == NULL || (size_t)(nl - msg) > SB_ID_MAX)
        return 0;
    snprintf(skip, sizeof(skip), "%.*s", (int)(nl - msg), msg);
    const char *json = nl + 1;
    size_t jlen = len - (size_t)(json - msg);

    if (strncmp(channel, PEER_CHANNEL, strlen(PEER_CHANNEL)) == 0) {
        peer_t *peer = sb_map_get(r->peers, channel + strlen(PEER_CHANNEL));
        return peer != NULL && sb_conn_send_text(peer->conn, json, jlen) == 0;
    }
    if (strncmp(channel, ROOM_CHANNEL, strlen(ROOM_CHANNEL)) == 0) {
        room_t *room = sb_map_get(r->rooms, channel + strlen(ROOM_CHANNEL));
        /* Sends never remove members here: a dropped connection leaves on a later turn. */
        for (size_t i = 0; room != NULL && i < room->n; i++)
            if (strcmp(room->members[i]->id, skip) != 0 &&
                sb_conn_send_text(room->members[i]->conn, json, jlen) == 0)
                delivered++;
    }
    return delivered;
}

sb_relay_t *sb_relay_new(const sb_config_t *cfg, sb_bus_t *bus, const char *node_id) {
    sb_relay_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->cfg = cfg;
    r->bus = bus;
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

void sb_relay_free(sb_relay_t *r) {
    if (r == NULL)
        return;
    sb_map_free(r->peers);
    sb_map_free(r->rooms);
    free(r);
}

sb_handler_t sb_relay_handler(sb_relay_t *r) {
    sb_handler_t h = {.on_open = on_open, .on_text = on_text, .on_close = on_close, .app = r};
    return h;
}

const sb_relay_stats_t *sb_relay_stats(const sb_relay_t *r) { return &r->stats; }
