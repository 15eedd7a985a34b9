/* The directory: who holds which peer ID and who is in which room, across every node. */
#ifndef SB_DIR_H
#define SB_DIR_H

#include <stddef.h>

typedef struct sb_dir sb_dir_t;

/* The outcome of a request. */
typedef enum {
    SB_DIR_OK,
    SB_DIR_TAKEN,       /* claim: a live connection elsewhere holds the ID */
    SB_DIR_FULL,        /* join: the room is at its limit */
    SB_DIR_UNAVAILABLE, /* the directory cannot answer now (Redis down) */
} sb_dir_result_t;

/* The outcome of a claim. */
typedef void (*sb_dir_claim_fn)(void *arg, sb_dir_result_t result);

/* The outcome of a join: on SB_DIR_OK, members lists everyone in the room (the joiner
 * included), nodes the node of each (NULL when all are on this node), and added says whether
 * the joiner was not a member before. Valid during the call. */
typedef void (*sb_dir_join_fn)(void *arg, sb_dir_result_t result, int added,
                               const char *const *members, const char *const *nodes, size_t n);

/* A leave has taken effect in the directory, or is recorded to be sent once it is reachable. */
typedef void (*sb_dir_done_fn)(void *arg);

/* Whether a live connection somewhere holds a peer ID (1) or not (0). */
typedef void (*sb_dir_held_fn)(void *arg, int held);

/* Callbacks may run before the call returns (the embedded directory) or later (Redis). */
typedef struct {
    /* Claims id for this node: free IDs, IDs this node holds, and IDs of dead nodes. */
    void (*claim)(sb_dir_t *d, const char *id, sb_dir_claim_fn done, void *arg);
    /* Gives id up, if this node still holds it. */
    void (*release)(sb_dir_t *d, const char *id);
    /* Asks whether id is held by a live connection on any node. */
    void (*held)(sb_dir_t *d, const char *id, sb_dir_held_fn done, void *arg);
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

/* Every directory starts with this header; lost and ctx are set by its owner. */
struct sb_dir {
    const sb_dir_ops_t *ops;
    sb_dir_lost_fn lost;
    void *ctx;
};

/* The embedded directory of a single node. */
sb_dir_t *sb_dir_memory_new(void);

#endif
