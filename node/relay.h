/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms. */
#ifndef SB_RELAY_H
#define SB_RELAY_H

#include "bus.h"
#include "config.h"
#include "dir.h"
#include "server.h"

typedef struct sb_relay sb_relay_t;

/* Counters a user can read. */
typedef struct {
    uint64_t relayed;      /* offer/answer/candidate/bye handed to a recipient */
    uint64_t unavailable;  /* relays answered peer-unavailable */
    uint64_t bad_requests; /* messages answered bad-request */
    uint64_t ids_taken;    /* connections refused id-taken */
    uint64_t peers;        /* peers connected now */
    uint64_t rooms;        /* rooms with local members now */
} sb_relay_stats_t;

/* Creates a relay publishing on bus and keeping IDs and rooms in dir (it owns neither, but sets
 * the bus's deliver callback). cfg must outlive it. node_id names this node in welcome
 * messages and bus messages. Returns NULL when out of memory. */
sb_relay_t *sb_relay_new(const sb_config_t *cfg, sb_bus_t *bus, sb_dir_t *dir, const char *node_id);

/* After the bus and directory come back from an outage (which may have lost their data):
 * claims every local peer's ID again, closing with id-taken a peer whose ID another node took
 * meanwhile, and records every local room membership again. */
void sb_relay_reassert(sb_relay_t *r);

/* 1 while the answers to sb_relay_reassert are still due. */
int sb_relay_reasserting(const sb_relay_t *r);

/* Frees the relay. Free the server first: closing its connections calls into the relay. */
void sb_relay_free(sb_relay_t *r);

/* The server handler that routes connections to the relay. */
sb_handler_t sb_relay_handler(sb_relay_t *r);

const sb_relay_stats_t *sb_relay_stats(const sb_relay_t *r);

#endif
