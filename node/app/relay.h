/* The signaling relay (protocol v1): peer IDs, relaying by ID with delivery feedback, rooms. */
#ifndef SB_RELAY_H
#define SB_RELAY_H

#include <stddef.h>

#include "base/config.h"
#include "cluster/bus.h"
#include "cluster/dir.h"
#include "net/conn.h"

typedef struct sb_relay sb_relay_t;

/* Creates a relay publishing on bus and keeping IDs, sessions and rooms in dir. It owns neither,
 * but sets the bus's deliver and the directory's lost and ended callbacks. cfg, bus and dir must
 * outlive it; base runs its timers. node_id names this node in welcome messages. Returns NULL
 * when out of memory. */
sb_relay_t *sb_relay_new(struct event_base *base, const sb_config_t *cfg, sb_bus_t *bus,
                         sb_dir_t *dir, const char *node_id);

/* Nothing waits any more: messages held for the bus are refused now and later ones at once.
 * Call it before freeing the bus and directory, whose failing requests call into the relay. */
void sb_relay_stop(sb_relay_t *r);

/* Frees the relay. Free the server first: closing its connections calls into the relay. */
void sb_relay_free(sb_relay_t *r);

/* The server handler that routes connections to the relay. */
sb_handler_t sb_relay_handler(sb_relay_t *r);

/* Readiness for /readyz (an sb_ready_fn): the bus and the directory answer, and this node's
 * peers and rooms are recorded in the directory. Returns 1, or 0 with a reason in why. */
int sb_relay_ready(void *relay, char *why, size_t len);

/* Returns 1 when every change this node made (IDs released, rooms left) is recorded in the
 * directory, for a clean exit. */
int sb_relay_idle(const sb_relay_t *r);

#endif
