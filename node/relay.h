/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms. */
#ifndef SB_RELAY_H
#define SB_RELAY_H

#include "bus.h"
#include "config.h"
#include "server.h"

typedef struct sb_relay sb_relay_t;

/* Counters a user can read. */
typedef struct {
    uint64_t relayed;          /* offer/answer/candidate/bye handed to a recipient */
    uint64_t unavailable;      /* relays answered peer-unavailable */
    uint64_t bad_requests;     /* messages answered bad-request */
    uint64_t ids_taken;        /* connections refused id-taken */
    uint64_t peers;            /* peers connected now */
    uint64_t rooms;            /* rooms with local members now */
} sb_relay_stats_t;

/* Creates a relay publishing on bus (which it does not own, but whose deliver callback it
 * sets). cfg must outlive it. node_id names this node in welcome messages. Returns NULL when
 * out of memory. */
sb_relay_t *sb_relay_new(const sb_config_t *cfg, sb_bus_t *bus, const char *node_id);

/* Frees the relay. Free the server first: closing its connections calls into the relay. */
void sb_relay_free(sb_relay_t *r);

/* The server handler that routes connections to the relay. */
sb_handler_t sb_relay_handler(sb_relay_t *r);

const sb_relay_stats_t *sb_relay_stats(const sb_relay_t *r);

#endif
