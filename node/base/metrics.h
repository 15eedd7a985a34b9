/* The node's metrics: plain counters on the event loop, rendered for Prometheus at /metrics. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

/* Why a WebSocket connection ended (switchboard_websockets_closed_total{reason}). */
typedef enum {
    SB_CLOSED_NORMAL,      /* the closing handshake completed */
    SB_CLOSED_GONE,        /* the client vanished without a close frame */
    SB_CLOSED_PROTOCOL,    /* the client broke RFC 6455 (see the protocol error counter) */
    SB_CLOSED_PING,        /* no answer to a ping */
    SB_CLOSED_SLOW_READER, /* over --max-output queued */
    SB_CLOSED_REFUSED,     /* closed by the relay: a bad or taken ID, the cluster unavailable */
    SB_CLOSED_SHUTDOWN,    /* the node is draining or stopping */
    SB_CLOSED_REASONS
} sb_closed_t;

/* Relayed message types and their outcomes (switchboard_relays_total{type,outcome}). */
enum { SB_RELAY_TYPES = 4 };
typedef enum {
    SB_RELAY_DELIVERED,   /* handed to the recipient's connection or node */
    SB_RELAY_UNKNOWN,     /* peer-unavailable */
    SB_RELAY_UNAVAILABLE, /* unavailable: the cluster could not deliver it just now */
    SB_RELAY_QUEUED,      /* held in the mailbox of a peer between connections */
    SB_RELAY_BOXFULL,     /* mailbox-full */
    SB_RELAY_OUTCOMES
} sb_relay_outcome_t;

/* Room requests and their answers (switchboard_room_requests_total{type,outcome}). */
typedef enum {
    SB_ROOM_JOINED,
    SB_ROOM_LEFT,
    SB_ROOM_FULL,
    SB_ROOM_TOO_MANY,
    SB_ROOM_NOT_JOINED,
    SB_ROOM_UNAVAILABLE,
    SB_ROOM_FORBIDDEN, /* the peer's token does not allow the room */
    SB_ROOM_OUTCOMES
} sb_room_outcome_t;

/* Why a handshake was refused by auth (switchboard_auth_refused_total{reason}): 0 a disallowed
 * Origin, 1 no token, 2 + n for the token error -n-1 (proto/token.h's codes, in order), and
 * last an ?id= that is not the token's sub. */
#define SB_AUTH_REASONS 12
extern const char *const sb_auth_reason_names[SB_AUTH_REASONS];

/* A latency histogram in seconds, with fixed buckets. */
#define SB_LATENCY_BUCKETS 14
typedef struct {
    uint64_t counts[SB_LATENCY_BUCKETS + 1]; /* the last one is +Inf */
    double sum;
    uint64_t count;
} sb_histogram_t;

/* One Redis connection's figures, by its name (pub, sub, dir, upkeep). */
#define SB_REDIS_SLOTS 8
typedef struct {
    const char *name; /* NULL: slot unused */
    int connected;
    uint64_t reconnects;
    uint64_t in_flight;
} sb_metrics_redis_t;

/* Every figure the node exports. Modules update their own fields directly; nothing here
 * allocates or locks (the node has one thread). */
typedef struct {
    const char *node_id;
    double start_time; /* seconds since the epoch */
    int draining;

    /* net/ */
    uint64_t accepted;    /* TCP connections accepted */
    uint64_t refused;     /* answered 503 over --max-connections */
    uint64_t connections; /* being served now */
    uint64_t websockets;  /* open WebSockets now */
    uint64_t closed[SB_CLOSED_REASONS];
    uint64_t protocol_errors[5]; /* by close code 1002, 1003, 1007, 1009, 1011 */
    uint64_t http_errors[11];    /* by status 400 401 403 404 405 408 426 429 431 503, other */
    uint64_t messages_in, messages_out;
    uint64_t bytes_in, bytes_out;    /* WebSocket message payloads */
    uint64_t tls_handshake_failures; /* TLS connections whose handshake failed */
    double tls_cert_expiry;          /* the TLS certificate's notAfter, Unix time; 0: no TLS */

    /* net/limits */
    uint64_t source_refused[2];     /* answered 429: by limit, --source-connections, -handshakes */
    uint64_t sources;               /* client addresses (IPv6: /64s) the limits track now */
    uint64_t proxy_protocol_errors; /* trusted proxies' connections without a valid header */

    /* app/ */
    uint64_t peers, rooms; /* now */
    uint64_t peerjs_peers; /* PeerJS connections now (app/peerjs.c), past their checks */
    uint64_t relays[SB_RELAY_TYPES][SB_RELAY_OUTCOMES];
    uint64_t room_requests[SB_ROOM_OUTCOMES];
    uint64_t bad_requests;
    uint64_t rate_limited[2];   /* messages refused rate-limited: over --rate-messages, -bytes */
    uint64_t rate_limit_closes; /* connections closed 1008 for going on over a rate limit */
    uint64_t ids_taken;
    uint64_t auth_refused[SB_AUTH_REASONS];
    uint64_t bus_dropped; /* bus messages that were not envelopes of this version */
    sb_histogram_t latency_local, latency_cluster;

    /* cluster/ */
    sb_metrics_redis_t redis[SB_REDIS_SLOTS];
    uint64_t publish_failures;
    double selfcheck_seconds; /* the last pub/sub round trip of the self-check, -1 before one */
    uint64_t sweeps, dead_nodes_removed;

    /* sessions (app/peers.c, the directories) */
    uint64_t sessions_detached; /* connections whose session waits for a resume */
    uint64_t sessions_resumed;  /* sessions taken back by a new connection */
    uint64_t sessions_replaced; /* connections closed 4004: their session resumed elsewhere */
    uint64_t sessions_ended;    /* sessions whose window passed (this node's sweeps) */
    uint64_t held_relays;       /* relays waiting for the bus now (--bus-hold-ms) */
    uint64_t held_bytes;        /* their bytes */
    uint64_t held_relays_total; /* relays that had to wait, since the start */
    uint64_t kept_relays;       /* acked relays kept to be sent again if lost (--resend-seconds) */
    uint64_t kept_bytes;        /* the memory they hold (their buffers) */
    uint64_t kept_evicted;      /* kept copies dropped early: --bus-hold-bytes was reached */
    uint64_t resent;         /* kept copies sent again after a node or Redis may have lost them */
    uint64_t resend_failed;  /* of those, copies that could not be delivered again */
    uint64_t resent_dropped; /* copies a resumed peer's node dropped: the message was there */
} sb_metrics_t;

extern sb_metrics_t sb_metrics;

/* The metric label of a relay outcome ("delivered", ...). */
const char *sb_metrics_relay_outcome_name(sb_relay_outcome_t outcome);

/* Adds one observation of seconds to h. */
void sb_histogram_observe(sb_histogram_t *h, double seconds);

/* The slot of the Redis connection called name, made on first use; NULL when all are taken. */
sb_metrics_redis_t *sb_metrics_redis(const char *name);

/* Counts a WebSocket close code the node sent for a protocol violation. */
void sb_metrics_protocol_error(unsigned code);

/* Counts an HTTP error response by its status. */
void sb_metrics_http_error(int status);

/* Appends every metric, and the standard process_* ones, in the Prometheus text exposition
 * format 0.0.4. ready is the node's readiness now. */
void sb_metrics_render(struct evbuffer *out, int ready);

#endif
