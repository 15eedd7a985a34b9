/* The relay's insides, shared by its files: relay.c, peers.c, catchup.c, rooms.c, relaying.c. */
#ifndef SB_RELAY_INT_H
#define SB_RELAY_INT_H

#include "app/relay.h"
#include "base/map.h"
#include "base/pool.h"
#include "envelope.h"
#include "message.h"
#include "source.h"

#include <event2/event.h>

/* Close codes of the protocol (PROTOCOL.md). */
#define CLOSE_TRY_AGAIN 4003
#define CLOSE_ID_TAKEN 4001
#define CLOSE_BAD_ID 4002
#define CLOSE_POLICY 1008 /* RFC 6455: a client that goes on sending while rate-limited */
#define CLOSE_REPLACED 4004

/* A resume token: 32 random bytes in base64url, 43 characters. */
#define RESUME_TOKEN_LEN 43

/* Rate limits (--rate-messages, --rate-bytes): buckets of RATE_BURST_SECONDS' worth. A message
 * over either is answered rate-limited and not handled; a client whose messages are refused
 * RATE_STRIKES times in a row after that (it does not slow down) is closed with 1008. */
#define RATE_BURST_SECONDS 2.0
#define RATE_STRIKES 10

/* Backpressure. A peer is not read while a join or leave of its waits for the directory, so its
 * requests take effect in the order it sent them, whatever the bus; nor while it has
 * RELAY_WINDOW relays waiting for the bus, so what one client has in flight is bounded. */
#define RELAY_WINDOW 64

typedef struct room room_t;
struct pending_join;
typedef struct pending_relay pending_relay_t;

/* A peer lives as long as its connection or any answer it waits for (refs). */
typedef struct peer peer_t;
struct peer {
    sb_relay_t *relay;
    sb_conn_t *conn;
    sb_dialect_t dialect; /* the client protocol it speaks: v1, or PeerJS's (peerjs.c) */
    int refs;
    double heard; /* PeerJS: when its last HEARTBEAT came (monotonic) */
    char id[SB_ID_MAX + 1];
    room_t **rooms; /* rooms joined on this node, at most max_rooms_per_peer */
    size_t nrooms;
    struct pending_join *join; /* a join waiting for the directory: its room's events wait too */
    size_t relays;             /* relays waiting for the bus */
    sb_bucket_t rate_messages, rate_bytes;
    unsigned refused_in_a_row; /* messages refused rate-limited since the last one let through */

    /* Its session (peers.c). */
    char token[RESUME_TOKEN_LEN + 1];  /* its resume token, "" when sessions are off */
    char resume[RESUME_TOKEN_LEN + 1]; /* the token it came with, "" for none */
    char **greeting;                   /* what follows the welcome of a resume: joined, held */
    size_t *greeting_lens, ngreeting, greeting_cap;
    int marks_due, marks_seen;   /* the nodes asked (-1: not known yet) and those that answered */
    struct event *catchup_timer; /* the end of the wait at the latest */
    struct event *retry;         /* a claim waiting for the directory (--bus-hold-ms) */
    double claim_deadline;

    /* Its messages waiting for the bus or a resuming peer (relaying.c). */
    uint64_t seq;          /* relays sent so far */
    pending_relay_t *held; /* oldest first */
    peer_t *hold_prev, *hold_next;
    size_t inbound; /* relays to it from this node on their way through the bus */

    /* Flags, one bit each. */
    unsigned counted : 1;     /* PeerJS: counted in the relay's peerjs_peers */
    unsigned closed : 1;      /* its connection has ended */
    unsigned registered : 1;  /* holds its ID (welcome sent) and its bus channel */
    unsigned leaving : 1;     /* a leave waiting for the directory */
    unsigned paused : 1;      /* not read: see RELAY_WINDOW */
    unsigned rated : 1;       /* the rate buckets are set (on its first message) */
    unsigned claimed : 1;     /* the directory gave it its ID */
    unsigned resumed : 1;     /* this connection took its session back */
    unsigned replaced : 1;    /* its session was taken by another connection */
    unsigned catching_up : 1; /* its messages wait in greeting for the nodes (catchup.c) */
    unsigned holding : 1;     /* on the relay's list of holders */
    unsigned kicking : 1, rekick : 1;
};

/* What a held message is to do next. */
typedef enum { HOLD_PUBLISH, HOLD_PUT } hold_step_t;

/* Where a relayed message went, kept until the bus says whether anyone took it, and while it
 * waits (relaying.c; from the relay's pool). */
struct pending_relay {
    peer_t *sender;
    peer_t *via; /* its recipient here, when it went through the bus all the same */
    sb_msg_type_t type;
    uint64_t seq;    /* its place among the sender's relays */
    double deadline; /* while it waits for the bus: refused unavailable past this */
    char *env;       /* its envelope, for another try */
    size_t env_len;
    pending_relay_t *next; /* the sender's held list */
    hold_step_t step;
    int busy;                   /* a publish or put of it is under way */
    int published;              /* it went out once at least */
    int answered;               /* the sender was told (an acked message sent again) */
    double kept_until;          /* while kept after its ack: dropped then */
    pending_relay_t *kept_next; /* the relay's list of kept messages, oldest first */
    int stale;                  /* a later message to the same peer was delivered first */
    double not_before;          /* not tried again before this */
    char to[SB_ID_MAX + 1];
    char mid[SB_MID_MAX * 6 + 3]; /* raw JSON, "" when absent */
};

/* A room's members on this node. */
struct room {
    char name[SB_ROOM_MAX + 1];
    peer_t **members;
    size_t n, cap;
};

struct sb_relay {
    const sb_config_t *cfg;
    struct event_base *base;
    sb_bus_t *bus;
    sb_dir_t *dir;
    sb_map_t *peers; /* id -> peer_t: peers of this node, registered or claiming */
    sb_map_t *rooms; /* name -> room_t: rooms with members on this node */
    char node_id[SB_ID_MAX + 1];
    size_t reasserting;       /* directory answers still due after the directory lost this node */
    double lost_at;           /* when the directory last lost this node (monotonic), 0: never */
    sb_pool_t pending_relays; /* pending_relay_t blocks, one per relay waiting for the bus */
    sb_pool_t env_small, env_medium;    /* envelope copies of relays in flight (relaying.c) */
    peer_t *holders;                    /* peers with held messages */
    size_t held_bytes;                  /* their envelopes' bytes, at most --bus-hold-bytes */
    struct event *hold_timer;           /* works on held messages while there are any */
    pending_relay_t *kept, **kept_tail; /* acked relays kept for a resend, oldest first */
    size_t kept_bytes;                  /* their buffers' bytes, at most --bus-hold-bytes */
    struct event *kept_timer;           /* drops kept relays whose time is up */
    struct event *peerjs_timer;         /* closes silent PeerJS connections (peerjs.c) */
    size_t peerjs_peers;                /* PeerJS connections past their checks, at most
                                           --peerjs-concurrent-limit */
    int stopping;                       /* the bus and directory are going away: nothing waits */
};

/* relay.c: peers' lifetime, backpressure, and answers. */
peer_t *relay_peer_ref(peer_t *p);
void relay_peer_unref(peer_t *p);
/* Pauses or resumes reading the peer's connection as its requests in flight say. */
void relay_flow(peer_t *p);
/* Sends a built message and frees it; NULL (out of memory) sends nothing. */
int relay_send_owned(sb_conn_t *c, char *msg, size_t len);
void relay_send_error(sb_conn_t *c, const char *code, const char *message, const char *to,
                      const char *room, sb_str_t mid);

/* peers.c: IDs, sessions, connections opening and closing, and recording them again after a
 * loss. */
/* Finds NAME=VALUE in a query string. Returns 1 and copies VALUE (at most cap-1 bytes, longer
 * is reported through *too_long), or 0 when there is no such parameter. */
int relay_query_param(const char *query, const char *name, char *out, size_t cap, int *too_long);
void relay_on_open(void *app, sb_conn_t *c);
void relay_on_close(void *app, sb_conn_t *c);
void relay_reassert(void *relay);
/* Another connection resumed the peer's session: this one is closed 4004. */
void relay_replaced(peer_t *peer);
/* The directory ended a session whose window passed (the embedded one): tells this node's
 * members of its rooms. */
void relay_session_ended(void *relay, const char *id, const char *const *rooms, size_t n);

/* rooms.c */
void relay_join(sb_relay_t *r, peer_t *peer, const sb_msg_t *m);
void relay_leave(sb_relay_t *r, peer_t *peer, const sb_msg_t *m);
/* A departing peer leaves every room (telling the others). */
void relay_leave_all(sb_relay_t *r, peer_t *peer);
/* A peer whose session goes on without it (detached or replaced) leaves this node's rooms and
 * nothing else: the directory keeps its memberships, and nobody is told. */
void relay_forget_rooms(sb_relay_t *r, peer_t *peer);
/* A closed peer's join that waits to ask the directory again ends now. */
void relay_join_cancel(peer_t *peer);
/* A resumed peer is a member of rooms again on this node. Returns 0, or -1 when out of memory. */
int relay_restore_room(sb_relay_t *r, peer_t *peer, const char *room);
/* Records the peer's memberships in the directory again (no answers to send). */
void relay_rejoin_all(sb_relay_t *r, peer_t *peer);
/* A room event from the bus for peer: shown to it, or held while it waits for the answer to its
 * join of that room. Returns 1 when shown or held. */
int relay_room_event(peer_t *peer, const sb_env_t *env);

/* catchup.c: a resumed peer's messages in the order they were sent, copies sent again included. */
/* Whether a resumed peer catches up: the bus is between processes and acked relays are kept. */
int relay_catchup_wanted(const sb_relay_t *r);
/* Asks every node to send again what it kept for the resumed peer; until all have, what comes
 * for it waits in its greeting with what its mailbox held. */
void relay_catchup_start(peer_t *peer);
/* A message from the bus for the peer: 1 when the catch-up took it (a relayed message that
 * waits, or a node's mark), else 0. */
int relay_catchup_take(peer_t *peer, const sb_env_t *env, const char *msg, size_t len);
/* Delivers what waited, ordered by when it was sent, each once; frees the greeting. */
void relay_catchup_end(peer_t *peer);
/* The peer's connection ended: the wait stops (what waited is freed with the greeting). */
void relay_catchup_cancel(peer_t *peer);
/* Frees what waits to follow a resumed welcome (and ends a catch-up). */
void relay_greeting_free(peer_t *peer);

/* peerjs.c: PeerJS clients, speaking PeerServer's protocol (proto/PEERJS.md). */
/* Reads a PeerJS connection's key, id and token into peer: 0; or -1 when it is refused (its
 * answer sent, its close begun). */
int relay_pj_open(sb_relay_t *r, peer_t *peer, sb_conn_t *c);
/* PeerServer's refusal for one of ours (code "id-taken", or any other with message): ID-TAKEN
 * or ERROR, then a close without a code. */
void relay_pj_refuse(sb_conn_t *c, const char *code, const char *message);
/* OPEN, the PeerJS welcome. */
void relay_pj_welcome(peer_t *peer);
/* A PeerJS connection has ended. */
void relay_pj_close(sb_relay_t *r, peer_t *peer);
/* A PeerJS client's frame. */
void relay_pj_text(sb_relay_t *r, peer_t *peer, const char *data, size_t len);
/* Tells a PeerJS sender that its message to `to` was not delivered: EXPIRE. */
void relay_pj_expire(peer_t *sender, const char *to);
/* Writes a relayed message into a PeerJS peer's connection. Returns 0, or -1 as
 * sb_conn_send_parts. */
int relay_pj_hand_over(peer_t *to, sb_msg_type_t type, const char *from, sb_str_t payload);
/* The relay's PeerJS timer (an event callback): closes connections without a HEARTBEAT for
 * --peerjs-alive-ms. */
void relay_pj_sweep(evutil_socket_t fd, short what, void *arg);

/* relaying.c */
void relay_message(sb_relay_t *r, peer_t *sender, const sb_msg_t *m);
/* The bus's deliver callback: a message from another node for one of our peers. */
int relay_deliver(void *ctx, void *sub, const char *msg, size_t len);
/* Writes a relayed envelope's message into the peer's connection. Returns 1 when queued. */
int relay_deliver_envelope(peer_t *peer, const sb_env_t *env);
/* The held messages' timer (an event callback), and the end of waiting when the node stops. */
void relay_hold_tick(evutil_socket_t fd, short what, void *arg);
void relay_hold_stop(sb_relay_t *r);
/* The connection of peer id here has ended and its end is recorded: messages held for it ask
 * the directory again now (its mailbox, or gone). */
void relay_hold_wake(sb_relay_t *r, const char *id);
/* The kept relays' timer (an event callback). */
void relay_kept_tick(evutil_socket_t fd, short what, void *arg);
/* Asks every node, this one included, to send again what it kept for the peers ids[0, n): what
 * it acked from `from` until `until` seconds ago (from > 0; a resumed peer's request is
 * catchup.c's). */
void relay_ask_resend(sb_relay_t *r, const char *const *ids, size_t n, double from, double until);
/* The bus's renewed callback: this node's subscriptions are being made again after a break. */
void relay_bus_renewed(void *relay, double heard_ago, double lost_ago);

static inline sb_str_t relay_no_mid(void) { return (sb_str_t){NULL, 0}; }

#endif
