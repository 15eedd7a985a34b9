/* The directory: who holds which peer ID and who is in which room, across every node. */
#ifndef SB_DIR_H
#define SB_DIR_H

#include <stddef.h>

#include <event2/event.h>

#include "str.h"

typedef struct sb_dir sb_dir_t;

/* The outcome of a request. */
typedef enum {
    SB_DIR_OK,
    SB_DIR_TAKEN,       /* claim: a live connection elsewhere holds the ID */
    SB_DIR_FULL,        /* join: the room is at its limit */
    SB_DIR_UNAVAILABLE, /* the directory cannot answer now (Redis down) */
} sb_dir_result_t;

/* A room of a resumed session, with its members (the resumed peer among them). */
typedef struct {
    const char *room;
    const char *const *members;
    size_t n;
} sb_dir_room_t;

/* What a successful claim found: a new session, or one taken back (resumed) with its rooms and
 * the envelopes (proto/envelope.h) held for it, oldest first. Valid during the call. */
typedef struct {
    int resumed;
    const sb_dir_room_t *rooms;
    size_t nrooms;
    const sb_str_t *held;
    size_t nheld;
} sb_dir_session_t;

/* The outcome of a claim; session is not NULL exactly when result is SB_DIR_OK. */
typedef void (*sb_dir_claim_fn)(void *arg, sb_dir_result_t result, const sb_dir_session_t *session);

/* The outcome of offering a message to a peer's mailbox. */
typedef enum {
    SB_DIR_QUEUED,  /* the peer is between connections: held for its resume */
    SB_DIR_LIVE,    /* a connection holds the ID: its node is subscribing; publish again */
    SB_DIR_GONE,    /* no session has the ID */
    SB_DIR_BOXFULL, /* the peer's mailbox is at its limit */
    SB_DIR_PUT_UNAVAILABLE,
} sb_dir_put_t;

typedef void (*sb_dir_put_fn)(void *arg, sb_dir_put_t outcome);

/* The outcome of a join: on SB_DIR_OK, members lists everyone in the room (the joiner
 * included), nodes the node of each (NULL when all are on this node), and added says whether
 * the joiner was not a member before. Valid during the call. */
typedef void (*sb_dir_join_fn)(void *arg, sb_dir_result_t result, int added,
                               const char *const *members, const char *const *nodes, size_t n);

/* A leave has taken effect in the directory, or is recorded to be sent once it is reachable. */
typedef void (*sb_dir_done_fn)(void *arg);

/* Who asks for an ID. */
typedef enum {
    SB_DIR_CLAIM_NEW,       /* a new connection, while no other connection of this node has it */
    SB_DIR_CLAIM_HELD_HERE, /* a new connection with a resume token, while another one here has it
                             */
    SB_DIR_CLAIM_AGAIN,     /* this node's own peer, recorded again after the directory lost it */
} sb_dir_claim_how_t;

/* Callbacks may run before the call returns (the embedded directory) or later (Redis). */
typedef struct {
    /* Claims id for this node: free IDs, IDs this node holds, and IDs of dead nodes when
     * sessions are off. With resume (not NULL), the session's last token: when it matches, the
     * session is taken back from wherever it is (a connection on another node is told to close)
     * with its rooms and held messages. token is the session's new token, recorded on success. */
    void (*claim)(sb_dir_t *d, const char *id, sb_dir_claim_how_t how, const char *resume,
                  const char *token, sb_dir_claim_fn done, void *arg);
    /* Ends id's session at once, if this node still holds it (its rooms are left first). */
    void (*release)(sb_dir_t *d, const char *id);
    /* The connection of id (of this node) ended by accident: its session, rooms included, waits
     * --resume-seconds for a resume, and messages for it are held meanwhile. */
    void (*detach)(sb_dir_t *d, const char *id);
    /* Offers an envelope for id, which no connection took: held when id is between connections.
     * env is copied. */
    void (*put)(sb_dir_t *d, const char *id, const char *env, size_t len, sb_dir_put_fn done,
                void *arg);
    /* Adds peer (of this node) to room unless the room has limit members already. When it was
     * not a member, members on other nodes are sent peer-joined, in the same step: a member
     * that joins at the same time either is listed to the joiner or hears of it. */
    void (*join)(sb_dir_t *d, const char *room, const char *peer, size_t limit, sb_dir_join_fn done,
                 void *arg);
    /* Removes peer (of this node) from room; members on other nodes are sent peer-left, in the
     * same step. The members on this node are the caller's to tell. done (may be NULL) runs
     * when that has happened, so that the caller can keep a peer's requests in order. */
    void (*leave)(sb_dir_t *d, const char *room, const char *peer, sb_dir_done_fn done, void *arg);
    /* Returns 1 when requests can be answered now, else 0 with a reason. */
    int (*ready)(sb_dir_t *d, char *why, size_t len);
    /* Returns 1 when nothing sent waits for an answer (what this node changed is recorded). */
    int (*idle)(sb_dir_t *d);
    void (*free)(sb_dir_t *d);
} sb_dir_ops_t;

/* The directory has lost this node's records (its Redis restarted empty, or other nodes took
 * it for dead): the owner must record its peers and rooms again. */
typedef void (*sb_dir_lost_fn)(void *ctx);

/* A session ended without a resume (its window passed): the members of its rooms on this node
 * must hear peer-left. Only the embedded directory calls it; Redis's tells every node's members
 * through the bus. rooms is valid during the call. */
typedef void (*sb_dir_ended_fn)(void *ctx, const char *id, const char *const *rooms, size_t n);

/* Every directory starts with this header; lost, ended and ctx are set by its owner. */
struct sb_dir {
    const sb_dir_ops_t *ops;
    sb_dir_lost_fn lost;
    sb_dir_ended_fn ended;
    void *ctx;
};

/* Sessions: how long one waits for a resume (0: no sessions) and what its mailbox holds. */
typedef struct {
    double resume_seconds;
    size_t mailbox_messages;
    size_t mailbox_bytes;
} sb_dir_sessions_t;

/* The embedded directory of a single node; base runs its session timer. */
sb_dir_t *sb_dir_memory_new(struct event_base *base, const sb_dir_sessions_t *sessions);

#endif
