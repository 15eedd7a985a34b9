/* A Redis Cluster on the event loop: its slot map, connections to every master, and commands
 * routed to the master of their slot, following MOVED and ASK.
 *
 * Each master gets one connection (cluster/redis.h) per role the owner names: "pub" and "sub"
 * for the bus, "dir" and "upkeep" for the directory. The slot map is read with CLUSTER SHARDS
 * (CLUSTER SLOTS on a server without it) on a connection of its own, to a seed of the URL or to
 * a master seen since, at start, whenever a connection to a master is lost or a reply says a
 * slot moved, and four times a second while a slot has no reachable master. */
#ifndef SB_RCLUSTER_H
#define SB_RCLUSTER_H

#include <stddef.h>

#include <event2/event.h>

#include "cluster/redis.h"
#include "redis_url.h"
#include "str.h"

/* The most roles a cluster's owner may name, and the most masters followed at once. */
#define SB_RCLUSTER_ROLES_MAX 2
#define SB_RCLUSTER_MASTERS_MAX 128

typedef struct sb_rcluster sb_rcluster_t;

typedef struct {
    /* One connection per master for each role, made with these options (their callbacks get
     * their own ctx, the owner's). A master's connection is told down (on_state with up = 0)
     * before it is freed when the master stops serving slots. */
    sb_redis_opts_t roles[SB_RCLUSTER_ROLES_MAX];
    size_t nroles;
    const char *node_id; /* for CLIENT SETNAME of the map's connection */
    /* The slot map changed: some slots have another master, or none, or one again. */
    void (*on_map)(void *ctx);
    void *ctx;
} sb_rcluster_opts_t;

/* Creates the cluster's client and starts reading its map (url must be a cluster URL and
 * outlive it). Returns NULL when out of memory. */
sb_rcluster_t *sb_rcluster_new(struct event_base *base, const sb_redis_url_t *url,
                               const sb_rcluster_opts_t *opts);

/* Fails pending commands (their callbacks hear NULL), closes everything, frees. */
void sb_rcluster_free(sb_rcluster_t *c);

/* Reads the slot map again soon: a slot seems to have moved (a sunsubscribe pushed by Redis, a
 * MOVED pushed on a subscriber). Several requests in a moment make one read. */
void sb_rcluster_refresh(sb_rcluster_t *c);

/* The index (0 to SB_RCLUSTER_MASTERS_MAX - 1) of the master serving slot, or -1 when none is
 * known. An index stays its master's while the master serves slots. */
int sb_rcluster_master_of(const sb_rcluster_t *c, unsigned slot);

/* Master i's connection of role, or NULL when there is no master i. */
sb_redis_t *sb_rcluster_conn(const sb_rcluster_t *c, int i, int role);

/* A slot master i serves, or -1 when there is no master i. */
int sb_rcluster_master_slot(const sb_rcluster_t *c, int i);

/* 1 when every slot has a master whose connections of every role are ready; else 0 with why
 * filled. */
int sb_rcluster_ready(const sb_rcluster_t *c, char *why, size_t len);

/* Sends a command (as sb_redis_command) to the master of slot, on its connection of role. A
 * MOVED or ASK answer sends it again where Redis says (at most a few times), waiting for that
 * connection up to its connect timeout; cb hears the final answer, or NULL when the connection
 * was lost or none could be reached. The command is copied. Returns 0, or -1 when no master
 * of slot is ready or out of memory (cb is then not called). */
int sb_rcluster_command(sb_rcluster_t *c, int role, unsigned slot, int argc, const char **argv,
                        const size_t *lens, sb_redis_reply_fn cb, void *arg);

/* The same for sb_redis_publish (SPUBLISH, the role's options having sharded set): the message
 * made of nparts parts is copied. */
int sb_rcluster_publish(sb_rcluster_t *c, int role, unsigned slot, const char *channel,
                        const sb_str_t *parts, size_t nparts, sb_redis_reply_fn cb, void *arg);

/* The same for sb_redis_eval (args NUL-terminated). */
int sb_rcluster_eval(sb_rcluster_t *c, int role, unsigned slot, const sb_redis_script_t *s,
                     int nkeys, const char *const *args, int nargs, sb_redis_reply_fn cb,
                     void *arg);

/* How many times a master started serving slots it did not (the first map's masters, then a
 * replica promoted by a failover, or a master given slots when it had none): what was written
 * to those slots before may be missing there. A slot migrated between masters that both serve
 * slots does not count: its keys move with it. */
unsigned sb_rcluster_takeovers(const sb_rcluster_t *c);

/* How long (seconds) the connection of role to the master of slot has been ready: 0 when it is
 * not (or no master serves slot). A fresh connection to a master that has just taken over after
 * a failover says so: what others failed to write there meanwhile is not there yet. */
double sb_rcluster_up_for(const sb_rcluster_t *c, unsigned slot, int role);

/* Commands of role sent and not answered yet, over every master. */
size_t sb_rcluster_in_flight(const sb_rcluster_t *c, int role);

#endif
