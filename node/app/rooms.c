/* The relay's rooms: joining and leaving through the directory, room events for this node's
 * members, and the events that overtake a join's answer. */
#include "app/relay_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/loop.h"
#include "base/metrics.h"
#include "net/conn.h"

/* Room events held for one join being answered; past that they are delivered at once. */
#define HELD_EVENTS_MAX 1024

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
    sb_metrics.rooms++;
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
    sb_metrics.rooms--;
    free(room->members);
    free(room);
}

static void left_done(void *arg)
{
    peer_t *peer = arg;
    peer->leaving = 0;
    relay_flow(peer);
    relay_peer_unref(peer);
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
        r->dir->ops->leave(r->dir, name, peer->id, left_done, relay_peer_ref(peer));
        relay_flow(peer); /* unless it was done already */
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
    int reassert;        /* re-recording a membership after an outage, no answer to send */
    double deadline;     /* while the directory is unreachable, asked again until then */
    struct event *retry; /* the next time it is asked */
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

static void join_done(void *arg, sb_dir_result_t result, int added, const char *const *members,
                      const char *const *nodes, size_t n);

/* Asks the directory (again). */
static void ask_join(sb_relay_t *r, pending_join_t *p)
{
    /* A re-recorded membership was within the limit when it was made. */
    r->dir->ops->join(r->dir, p->room, p->peer->id,
                      p->reassert ? (size_t)-1 : r->cfg->max_room_peers, join_done, p);
}

static void join_retry(evutil_socket_t fd, short what, void *arg)
{
    pending_join_t *p = arg;
    (void)fd;
    (void)what;
    event_free(p->retry);
    p->retry = NULL;
    if (p->peer->closed)
        join_done(p, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
    else
        ask_join(p->peer->relay, p);
}

/* The directory cannot answer now: the join waits (its peer unread meanwhile) and is asked
 * again, within --bus-hold-ms. Returns 1 when it will be, else 0. */
static int join_later(sb_relay_t *r, pending_join_t *p)
{
    struct timeval tv = {0, 50000};
    if (p->reassert || p->peer->closed || r->stopping || sb_clock_mono() >= p->deadline)
        return 0;
    if ((p->retry = evtimer_new(r->base, join_retry, p)) == NULL)
        return 0;
    if (evtimer_add(p->retry, &tv) != 0) {
        event_free(p->retry);
        p->retry = NULL;
        return 0;
    }
    return 1;
}

static void join_done(void *arg, sb_dir_result_t result, int added, const char *const *members,
                      const char *const *nodes, size_t n)
{
    pending_join_t *p = arg;
    peer_t *peer = p->peer;
    sb_relay_t *r = peer->relay;
    sb_str_t mid = {p->mid, strlen(p->mid)};

    if (result == SB_DIR_UNAVAILABLE && join_later(r, p))
        return;
    if (p->reassert) {
        r->reasserting--;
    } else {
        peer->join = NULL;
        relay_flow(peer);
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
        sb_metrics.room_requests[SB_ROOM_FULL]++;
        relay_send_error(peer->conn, "room-full", "this room has as many peers as allowed", NULL,
                         p->room, mid);
        goto out;
    }
    room_t *room = result == SB_DIR_OK ? local_room(r, p->room, 1) : NULL;
    if (room == NULL || (!is_member(peer, room) && add_member(r, room, peer) != 0)) {
        if (result == SB_DIR_OK && added)
            r->dir->ops->leave(r->dir, p->room, peer->id, NULL, NULL);
        if (room != NULL)
            close_room_if_empty(r, room);
        sb_metrics.room_requests[SB_ROOM_UNAVAILABLE]++;
        relay_send_error(peer->conn, "unavailable",
                         result == SB_DIR_UNAVAILABLE ? "the cluster's directory is unavailable"
                                                      : "out of memory",
                         NULL, p->room, mid);
        goto out;
    }
    sb_metrics.room_requests[SB_ROOM_JOINED]++;
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
    relay_send_owned(peer->conn, msg, len);
    if (added)
        room_event(r, p->room, "peer-joined", peer->id);
out:
    relay_peer_unref(peer);
    free(p->events);
    free(p);
}

static void start_join(sb_relay_t *r, peer_t *peer, const char *room, sb_str_t mid, int reassert)
{
    pending_join_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        if (!reassert)
            relay_send_error(peer->conn, "unavailable", "out of memory", NULL, room, mid);
        return;
    }
    p->peer = relay_peer_ref(peer);
    p->reassert = reassert;
    p->deadline = sb_clock_mono() + r->cfg->bus_hold_ms / 1000.0;
    snprintf(p->room, sizeof(p->room), "%s", room);
    if (mid.len > 0)
        memcpy(p->mid, mid.p, mid.len);
    if (reassert)
        r->reasserting++;
    else
        peer->join = p;
    ask_join(r, p);
    if (!reassert)
        relay_flow(peer); /* unless it was answered already */
}

void relay_join(sb_relay_t *r, peer_t *peer, const sb_msg_t *m)
{
    room_t *room = sb_map_get(r->rooms, m->room);
    const sb_token_claims_t *claims = sb_conn_claims(peer->conn);
    if (claims != NULL && !sb_token_room_allowed(claims, m->room, strlen(m->room))) {
        sb_metrics.room_requests[SB_ROOM_FORBIDDEN]++;
        relay_send_error(peer->conn, "forbidden", "this peer's token does not allow that room",
                         NULL, m->room, m->mid);
        return;
    }
    if ((room == NULL || !is_member(peer, room)) && peer->nrooms >= r->cfg->max_rooms_per_peer) {
        sb_metrics.room_requests[SB_ROOM_TOO_MANY]++;
        relay_send_error(peer->conn, "too-many-rooms", "this peer is in as many rooms as allowed",
                         NULL, m->room, m->mid);
        return;
    }
    start_join(r, peer, m->room, m->mid, 0);
}

void relay_leave(sb_relay_t *r, peer_t *peer, const sb_msg_t *m)
{
    room_t *room = sb_map_get(r->rooms, m->room);
    if (room == NULL || !is_member(peer, room)) {
        sb_metrics.room_requests[SB_ROOM_NOT_JOINED]++;
        relay_send_error(peer->conn, "not-joined", "this peer is not in that room", NULL, m->room,
                         m->mid);
        return;
    }
    size_t len = 0;
    char *msg = sb_msg_left(m->room, m->mid, &len);
    sb_metrics.room_requests[SB_ROOM_LEFT]++;
    remove_member(r, room, peer, 1);
    relay_send_owned(peer->conn, msg, len);
}

int relay_room_event(peer_t *peer, const sb_env_t *env)
{
    pending_join_t *p = peer->join;
    char room[SB_ROOM_MAX + 1], who[SB_ID_MAX + 1];
    memcpy(room, env->room.p, env->room.len);
    room[env->room.len] = '\0';
    memcpy(who, env->from.p, env->from.len);
    who[env->from.len] = '\0';
    /* The event overtook the answer to this peer's join of that room: hold it until then. */
    if (p != NULL && strcmp(p->room, room) == 0) {
        if (p->nevents == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 4;
            held_event_t *events =
                cap <= HELD_EVENTS_MAX ? realloc(p->events, cap * sizeof(*events)) : NULL;
            if (events != NULL) {
                p->events = events;
                p->cap = cap;
            }
        }
        if (p->nevents < p->cap) {
            held_event_t *ev = &p->events[p->nevents++];
            ev->joined = env->kind == SB_ENV_PEER_JOINED;
            memcpy(ev->peer, who, sizeof(who));
            return 1;
        }
        /* Out of memory: delivered at once instead; the view may be off, the event is not lost. */
    }
    size_t len = 0;
    char *msg = sb_msg_peer_event(sb_env_kind_name(env->kind), room, who, &len);
    return relay_send_owned(peer->conn, msg, len) == 0;
}

void relay_leave_all(sb_relay_t *r, peer_t *peer)
{
    while (peer->nrooms > 0)
        remove_member(r, peer->rooms[peer->nrooms - 1], peer, 0);
}

void relay_rejoin_all(sb_relay_t *r, peer_t *peer)
{
    for (size_t i = 0; i < peer->nrooms; i++)
        start_join(r, peer, peer->rooms[i]->name, relay_no_mid(), 1);
}

void relay_forget_rooms(sb_relay_t *r, peer_t *peer)
{
    while (peer->nrooms > 0) {
        room_t *room = peer->rooms[--peer->nrooms];
        for (size_t i = 0; i < room->n; i++)
            if (room->members[i] == peer) {
                memmove(&room->members[i], &room->members[i + 1],
                        (room->n - i - 1) * sizeof(*room->members));
                room->n--;
                break;
            }
        close_room_if_empty(r, room);
    }
}

int relay_restore_room(sb_relay_t *r, peer_t *peer, const char *name)
{
    room_t *room = local_room(r, name, 1);
    if (room == NULL)
        return -1;
    if (is_member(peer, room) || peer->nrooms >= r->cfg->max_rooms_per_peer)
        return 0; /* (a node with a lower limit than the one it came from keeps what it can) */
    if (add_member(r, room, peer) != 0) {
        close_room_if_empty(r, room);
        return -1;
    }
    return 0;
}

void relay_session_ended(void *relay, const char *id, const char *const *rooms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        room_event(relay, rooms[i], "peer-left", id);
}

void relay_join_cancel(peer_t *peer)
{
    pending_join_t *p = peer->join;
    if (p == NULL || p->retry == NULL)
        return;
    event_free(p->retry);
    p->retry = NULL;
    join_done(p, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
}
