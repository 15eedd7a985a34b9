/* Redis Cluster's slot map read from a parsed CLUSTER SHARDS (or CLUSTER SLOTS) reply; no I/O.
 *
 * The result is a slot table the caller provides: for each hash slot (proto/slot.h), the index of
 * the master serving it in a list of masters the caller also provides, or -1 for none. */
#ifndef SB_SHARDS_H
#define SB_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "resp.h"
#include "slot.h"

/* The length of a node ID (hexadecimal digits), as in Redis's CLUSTER_NAMELEN. */
#define SB_SHARDS_ID_LEN 40

/* A master serving slots, and where to reach it. */
typedef struct {
    /* Where to connect: the endpoint Redis prefers (an IP address or a host name, as its
     * cluster-preferred-endpoint-type says), or the IP address when that endpoint is unknown
     * ("?" or empty), or "" when Redis knows neither: then connect to the address the reply came
     * from, on this port. NUL-terminated, an IPv6 address without brackets. */
    char host[256];
    int port;     /* the plain TCP port, 1-65535; 0 when the node has none (TLS only) */
    int tls_port; /* CLUSTER SHARDS' tls-port, 1-65535, or 0 when absent (always 0 from CLUSTER
                   * SLOTS, whose port is the one for connections like the one that asked) */
    char id[SB_SHARDS_ID_LEN + 1]; /* 40 lowercase hexadecimal digits, NUL-terminated */
} sb_shards_master_t;

/* What the readers return when they refuse a reply; *err says more. */
enum {
    SB_SHARDS_EREPLY = -1,   /* the reply is a Redis error (nodes[0].str says which); for
                              * CLUSTER SHARDS on a server without it, ask CLUSTER SLOTS */
    SB_SHARDS_ESHAPE = -2,   /* not the command's reply: a part of the wrong type or count, a
                              * field missing, a map with an odd count or a key not a string */
    SB_SHARDS_ESLOT = -3,    /* a slot range out of 0-16383, reversed, or overlapping another */
    SB_SHARDS_ENODE = -4,    /* a master's ID, port or address malformed or missing, one master
                              * in two shards, or listed twice with different addresses */
    SB_SHARDS_EMASTERS = -5, /* more masters than max_masters: read again with more */
};

/* Reads a CLUSTER SHARDS reply (Redis 7.0 and later, RESP2), parsed by sb_resp_parse into
 * nodes[0, used): an array of shards, each a flat map holding "slots" (integers: start, end
 * pairs, inclusive) and "nodes" (flat maps with "id", "port" and/or "tls-port", "ip",
 * "endpoint", "role", "health", and others, which are skipped as are unknown keys).
 *
 * Each shard's master is its node whose role is "master" and whose health is "online" (Redis
 * 7.0.15 writes "fail" for a failed node); replicas are never used. A shard with slots but no
 * online master leaves its slots at -1, as do slots no shard holds. Masters are listed in
 * masters[0, max_masters) in the reply's order, each once, only when they serve a slot.
 *
 * Returns the number of masters listed (>= 0) with slots[s] set for every s in 0 to SB_SLOTS - 1
 * (an index below the return value, or -1); or a negative SB_SHARDS_E* code with *err (when not
 * NULL) set to a static reason, every slots[s] -1 and masters holding nothing to use. Writes
 * nothing outside slots[0, SB_SLOTS) and masters[0, max_masters) (a max_masters over INT16_MAX
 * counts as INT16_MAX: the table holds int16_t). */
int sb_shards_read(const sb_resp_t *nodes, size_t used, int16_t slots[SB_SLOTS],
                   sb_shards_master_t *masters, size_t max_masters, const char **err);

/* The same for a CLUSTER SLOTS reply, for servers without CLUSTER SHARDS: an array of
 * [start, end, master, replicas...], each node [endpoint, port, id, metadata] (endpoint a string,
 * "?" or nil when unknown; metadata, from Redis 7.0, a flat map that may hold "ip" and
 * "hostname"). CLUSTER SLOTS does not say whether a master is up, so every listed master serves
 * its slots. A master with several ranges is listed once. */
int sb_shards_read_slots(const sb_resp_t *nodes, size_t used, int16_t slots[SB_SLOTS],
                         sb_shards_master_t *masters, size_t max_masters, const char **err);

/* Where Redis Cluster sends a command it will not run: MOVED (the slot has another master now)
 * or ASK (the slot is migrating: this one command goes to the importing master, after ASKING). */
typedef struct {
    int ask;       /* 1 for ASK, 0 for MOVED */
    unsigned slot; /* 0 to SB_SLOTS - 1 */
    /* The address, NUL-terminated (an IPv6 address without brackets), or "" when Redis does not
     * know its endpoint: then the one the answer came from, on this port. */
    char host[256];
    int port; /* 1-65535 */
} sb_shards_redirect_t;

/* Reads the text of an error reply (after its '-', len bytes, no NUL needed): "MOVED <slot>
 * <host>:<port>" or "ASK <slot> <host>:<port>", the port after the last ':'. Returns 0 with *out
 * filled, or -1 (*out zeroed) for any other error or a malformed one: a slot out of 0-16383, a
 * port out of 1-65535, a number with a sign or leading zeros, a host of 256 bytes or more or
 * holding a space or control byte. */
int sb_shards_redirect(const char *err, size_t len, sb_shards_redirect_t *out);

#endif
